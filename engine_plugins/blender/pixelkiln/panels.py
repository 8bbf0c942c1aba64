"""Sidebar panels (N panel, tab "PixelKiln") in the Image Editor and the Shader Editor.
Drawing only reads state: it never touches the network."""

from __future__ import annotations

from typing import Any

import bpy

from . import props, runtime

_ICONS = {"INFO": "INFO", "WARNING": "ERROR", "ERROR": "CANCEL"}


def draw_connection(layout: Any, context: Any, st: Any) -> None:
    """The address field edits the add-on's preferences (one per user, not per .blend)."""
    col = layout.column(align=True)
    row = col.row(align=True)
    prefs = props.preferences(context)
    if prefs is not None:
        row.prop(prefs, "address", text="")
    else:
        row.label(text=props.daemon_address(context))
    row.operator("pixelkiln.check", text="", icon="FILE_REFRESH")
    wrapped(col, st.health, "LINKED" if st.health.startswith("SERVING") else "UNLINKED")


def draw_generate(layout: Any, settings: Any, st: Any) -> None:
    layout.prop(settings, "prompt", text="")
    col = layout.column(align=True)
    row = col.row(align=True)
    row.prop(settings, "width")
    row.prop(settings, "height")
    row = col.row(align=True)
    row.prop(settings, "random_seed", text="", icon="FILE_REFRESH")
    sub = row.row(align=True)
    sub.enabled = not settings.random_seed
    sub.alert = sub.enabled and not _seed_ok(settings)
    sub.prop(settings, "seed")
    col.prop(settings, "steps")
    col.prop(settings, "count")
    layout.prop(settings, "tiling", expand=True)
    layout.prop(settings, "transparent")
    box = layout.column(heading="Maps", align=True)
    row = box.row(align=True)
    for kind in ("normal", "height", "roughness", "ao"):
        row.prop(settings, f"map_{kind}", toggle=True)
    layout.prop(settings, "output_dir")

    row = layout.row(align=True)
    row.scale_y = 1.4
    if st.busy:
        row.progress(factor=st.progress, type="BAR", text=f"{st.progress * 100:.0f}%")
        row.operator("pixelkiln.cancel", text="", icon="X")
    else:
        row.operator("pixelkiln.generate", icon="IMAGE")
    layout.operator("pixelkiln.seamless_on_selected", icon="MOD_ARRAY")


def _seed_ok(settings: Any) -> bool:
    try:
        props.seed_value(settings)
    except ValueError:
        return False
    return True


def wrapped(layout: Any, text: str, icon: str, width: int = 40, max_lines: int = 8) -> None:
    """A message over a few labels: a sidebar is narrow and a label does not wrap."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + len(word) >= width:
            lines.append(line)
            line = ""
        line = f"{line} {word}".strip()
    lines.append(line)
    for i, part in enumerate(lines[:max_lines]):
        layout.label(text=part, icon=icon if i == 0 else "BLANK1")


def draw_status(layout: Any, st: Any) -> None:
    if st.status:
        wrapped(layout.box(), st.status, _ICONS[st.level])


class _PixelKilnPanel:
    bl_region_type = "UI"
    bl_category = "PixelKiln"

    def settings_and_state(self, context: Any) -> tuple[Any, Any]:
        return context.scene.pixelkiln, runtime.state()


class PIXELKILN_PT_image(_PixelKilnPanel, bpy.types.Panel):
    bl_space_type = "IMAGE_EDITOR"
    bl_label = "PixelKiln"
    bl_idname = "PIXELKILN_PT_image"

    def draw(self, context: Any) -> None:
        settings, st = self.settings_and_state(context)
        draw_connection(self.layout, context, st)
        draw_generate(self.layout, settings, st)
        self.layout.operator("pixelkiln.make_material", icon="MATERIAL")
        draw_status(self.layout, st)


class PIXELKILN_PT_image_live(_PixelKilnPanel, bpy.types.Panel):
    bl_space_type = "IMAGE_EDITOR"
    bl_label = "Live Paint"
    bl_parent_id = "PIXELKILN_PT_image"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: Any) -> None:
        settings, st = self.settings_and_state(context)
        layout = self.layout
        layout.template_ID(settings, "live_source", open="image.open")
        layout.prop(settings, "live_strength")
        layout.prop(settings, "live_interval")
        if st.live_running:
            layout.operator("pixelkiln.live_stop", icon="PAUSE")
            layout.label(text=f"{st.live_frames} frames into '{st.live_result}'")
        else:
            layout.operator("pixelkiln.live_start", icon="PLAY")


class PIXELKILN_PT_shader(_PixelKilnPanel, bpy.types.Panel):
    bl_space_type = "NODE_EDITOR"
    bl_label = "PixelKiln"
    bl_idname = "PIXELKILN_PT_shader"

    @classmethod
    def poll(cls, context: Any) -> bool:
        space = context.space_data
        return space is not None and getattr(space, "tree_type", "") == "ShaderNodeTree"

    def draw(self, context: Any) -> None:
        settings, st = self.settings_and_state(context)
        draw_connection(self.layout, context, st)
        draw_generate(self.layout, settings, st)
        op = self.layout.operator("pixelkiln.make_material", icon="MATERIAL")
        op.assign = True
        draw_status(self.layout, st)


CLASSES = (PIXELKILN_PT_image, PIXELKILN_PT_image_live, PIXELKILN_PT_shader)
