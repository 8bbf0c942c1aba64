"""Operators. Each returns at once: network work goes to a job's thread (see bridge.py)."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, StringProperty

from . import images, materials, props, runtime
from .bridge import check_address

# Generation options of "Seamless texture on selected object".
SEAMLESS_OVERRIDES: dict[str, Any] = {"tiling": "xy", "maps": ["normal", "roughness"]}


def _settings(context: bpy.types.Context) -> Any:
    return context.scene.pixelkiln


def _address_ok(op: bpy.types.Operator, context: bpy.types.Context) -> bool:
    """The preferences' address is usable; an old one saved in this scene is dropped first
    (props.migrate_scene: the preferences win)."""
    address = props.daemon_address(context)
    notice = props.migrate_scene(context.scene, address)
    if notice:
        op.report({"WARNING"}, notice)
    problem = check_address(address)
    if problem:
        _refuse(op, problem)
    return problem is None


def _refuse(op: bpy.types.Operator, message: str) -> set[str]:
    """A request that cannot start: said in the panel and by the operator."""
    runtime.set_status(message, "ERROR")
    op.report({"ERROR"}, message)
    return {"CANCELLED"}


def _show_in_editor(context: bpy.types.Context, image: bpy.types.Image) -> None:
    space = getattr(context, "space_data", None)
    if space is not None and space.type == "IMAGE_EDITOR":
        space.image = image


class PIXELKILN_OT_check(bpy.types.Operator):
    """Ask the daemon for its health and status"""

    bl_idname = "pixelkiln.check"
    bl_label = "Check Daemon"

    def execute(self, context: bpy.types.Context) -> set[str]:
        if not _address_ok(self, context):
            return {"CANCELLED"}
        runtime.start_health(props.daemon_address(context))
        return {"FINISHED"}


class PIXELKILN_OT_generate(bpy.types.Operator):
    """Generate images from the prompt into a new image datablock (packed into the .blend)"""

    bl_idname = "pixelkiln.generate"
    bl_label = "Generate"

    make_material: BoolProperty(  # type: ignore[valid-type]
        name="Make Material", description="Also build a material from the result"
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not runtime.BRIDGE.active("generate")

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = _settings(context)
        if not _address_ok(self, context):
            return {"CANCELLED"}
        if not settings.prompt.strip():
            self.report({"ERROR"}, "Type a prompt first")
            return {"CANCELLED"}
        after = "material" if self.make_material else None
        try:
            options = runtime.request_options(settings)
            _job, target = runtime.start_generate(context.scene, options, after=after)
        except ValueError as exc:  # the seed or Save To: refused before anything starts
            return _refuse(self, str(exc))
        _show_in_editor(context, target)
        return {"FINISHED"}


class PIXELKILN_OT_seamless(bpy.types.Operator):
    """Generate a seamless (tiling XY) texture with normal and roughness maps, make a
    material from it and put it on the selected objects"""

    bl_idname = "pixelkiln.seamless_on_selected"
    bl_label = "Seamless Texture on Selected"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not runtime.BRIDGE.active("generate")

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = _settings(context)
        if not _address_ok(self, context):
            return {"CANCELLED"}
        targets = [o.name for o in context.selected_objects if hasattr(o.data, "materials")]
        if not targets:
            self.report({"ERROR"}, "Select a mesh (or another object that holds materials)")
            return {"CANCELLED"}
        try:
            options = runtime.request_options(settings, **SEAMLESS_OVERRIDES)
            _job, target = runtime.start_generate(context.scene, options, after=("assign", targets))
        except ValueError as exc:
            return _refuse(self, str(exc))
        _show_in_editor(context, target)
        return {"FINISHED"}


class PIXELKILN_OT_cancel(bpy.types.Operator):
    """Cancel the running generation (the daemon stops at its next step)"""

    bl_idname = "pixelkiln.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(runtime.BRIDGE.active("generate"))

    def execute(self, context: bpy.types.Context) -> set[str]:
        runtime.cancel_generation()
        return {"FINISHED"}


class PIXELKILN_OT_make_material(bpy.types.Operator):
    """New material: albedo, normal (through a Normal Map node) and roughness into a
    Principled BSDF"""

    bl_idname = "pixelkiln.make_material"
    bl_label = "Make Material"
    bl_options = {"REGISTER", "UNDO"}

    image: StringProperty(  # type: ignore[valid-type]
        name="Image", description="Albedo image (default: the editor's image, else the last result)"
    )
    assign: BoolProperty(  # type: ignore[valid-type]
        name="Assign to Active Object", default=False
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        albedo = self._albedo(context)
        if albedo is None:
            self.report({"ERROR"}, "No PixelKiln image: generate one first")
            return {"CANCELLED"}
        mat, missing = materials.make_material(albedo)
        message = f"Material '{mat.name}' from '{albedo.name}'"
        if missing:
            message += f"; no {' or '.join(missing)} map (tick under Maps and regenerate)"
        if self.assign and context.object is not None:
            on = materials.assign(mat, [context.object])
            if on:
                message += f"; on {on[0]}"
        runtime.set_status(message, "WARNING" if missing else "INFO")
        self.report({"WARNING"} if missing else {"INFO"}, message)
        return {"FINISHED"}

    def _albedo(self, context: bpy.types.Context) -> bpy.types.Image | None:
        candidates = [self.image]
        space = getattr(context, "space_data", None)
        if space is not None and space.type == "IMAGE_EDITOR" and space.image is not None:
            candidates.append(space.image.name)
        candidates.append(runtime.state().last_image)
        for name in candidates:
            img = bpy.data.images.get(name) if name else None
            if img is None:
                continue
            if img.get(images.PROP_ROLE) in images.NON_COLOR_ROLES:
                img = bpy.data.images.get(str(img.get(images.PROP_BASE, "")))
            if img is not None:
                return img
        return None


class PIXELKILN_OT_live_start(bpy.types.Operator):
    """Send the painted image to the daemon whenever its pixels change; frames come back
    into '<image> (live)'"""

    bl_idname = "pixelkiln.live_start"
    bl_label = "Start Live"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return not runtime.BRIDGE.active("live")

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = _settings(context)
        source = settings.live_source
        space = getattr(context, "space_data", None)
        if source is None and space is not None and space.type == "IMAGE_EDITOR":
            source = space.image
            settings.live_source = source
        if source is None:
            self.report({"ERROR"}, "Pick the image you paint on (Paint Source)")
            return {"CANCELLED"}
        if not _address_ok(self, context):
            return {"CANCELLED"}
        try:
            runtime.start_live(context.scene, source)
        except ValueError as exc:
            return _refuse(self, str(exc))
        return {"FINISHED"}


class PIXELKILN_OT_live_stop(bpy.types.Operator):
    """Stop the live session"""

    bl_idname = "pixelkiln.live_stop"
    bl_label = "Stop Live"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(runtime.BRIDGE.active("live"))

    def execute(self, context: bpy.types.Context) -> set[str]:
        runtime.stop_live()
        runtime.set_status("Live stopped.")
        return {"FINISHED"}


CLASSES = (
    PIXELKILN_OT_check,
    PIXELKILN_OT_generate,
    PIXELKILN_OT_seamless,
    PIXELKILN_OT_cancel,
    PIXELKILN_OT_make_material,
    PIXELKILN_OT_live_start,
    PIXELKILN_OT_live_stop,
)
