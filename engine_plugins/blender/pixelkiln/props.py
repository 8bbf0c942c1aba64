"""Settings (per scene, saved with the .blend), the add-on's preferences (daemon address, token
and TLS: per user, in Blender's preferences, never in a .blend) and runtime state (per
session, not saved).

The address used to be a scene setting. A .blend saved then still carries it: the address in
the preferences wins, the old value is dropped from the scene (:func:`migrate_scene`) and,
when it differed, the panel says which address is used. A .blend never redirects requests (and
the token that goes with them) to another host.
"""

from __future__ import annotations

import re

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .bridge import DEFAULT_ADDRESS

TILING_ITEMS = [
    ("none", "None", "No tiling"),
    ("x", "X", "Tiles left to right"),
    ("y", "Y", "Tiles top to bottom"),
    ("xy", "XY", "Tiles both ways (seamless texture)"),
]
MAP_KINDS = ("normal", "height", "roughness", "ao")
SEED_MAX = 2**64 - 1  # seeds are uint64 on the wire; an IntProperty stops at 2**31 - 1
_SEED_KEY = "seed_text"  # where the seed field keeps its text


def _get_seed(settings: bpy.types.PropertyGroup) -> str:
    text = settings.get(_SEED_KEY)
    if text is None:  # a .blend from before seeds were text keeps its number (an int here)
        old = settings.get("seed")
        return str(old) if isinstance(old, int) else "0"
    return str(text)


def _set_seed(settings: bpy.types.PropertyGroup, value: str) -> None:
    settings[_SEED_KEY] = value.strip()
    if "seed" in settings:
        del settings["seed"]  # the int an older version saved


def seed_value(settings: PixelKilnSettings) -> int:
    """The seed field as a number; ValueError with a message to show when it is not one."""
    text = settings.seed.strip()
    if re.fullmatch(r"[0-9]{1,20}", text) and int(text) <= SEED_MAX:
        return int(text)
    raise ValueError(
        f"Seed '{text}' is not a whole number from 0 to {SEED_MAX}: type one, or switch on "
        "Random Seed to let the daemon pick."
    )


class PixelKilnSettings(bpy.types.PropertyGroup):
    # Before 0.1.0 moved it to the preferences; kept registered (hidden, empty by default) so
    # that an old .blend's value can be read on every Blender version, then dropped.
    address: StringProperty(  # type: ignore[valid-type]
        name="Address (old)",
        description="Where this .blend pointed before the address moved to the preferences",
        default="",
        options={"HIDDEN"},
    )
    prompt: StringProperty(name="Prompt", default="mossy cobblestone")  # type: ignore[valid-type]
    width: IntProperty(  # type: ignore[valid-type]
        name="Width",
        description="Multiple of 8, 64 to 4096 (the daemon checks and says why)",
        default=512,
        min=8,
        soft_min=64,
        max=4096,
        step=8,
    )
    height: IntProperty(  # type: ignore[valid-type]
        name="Height", default=512, min=8, soft_min=64, max=4096, step=8
    )
    random_seed: BoolProperty(  # type: ignore[valid-type]
        name="Random Seed", description="Let the daemon pick a seed", default=True
    )
    # Text, not an IntProperty: a seed is a uint64 (0 to 18446744073709551615).
    seed: StringProperty(  # type: ignore[valid-type]
        name="Seed",
        description=f"A whole number from 0 to {SEED_MAX}; the same seed gives the same image",
        get=_get_seed,
        set=_set_seed,
    )
    steps: IntProperty(  # type: ignore[valid-type]
        name="Steps", description="0: the model's default", default=0, min=0, max=50
    )
    tiling: EnumProperty(name="Tiling", items=TILING_ITEMS, default="none")  # type: ignore[valid-type]
    transparent: BoolProperty(  # type: ignore[valid-type]
        name="Transparent", description="RGBA sprite on a transparent background"
    )
    map_normal: BoolProperty(name="Normal", default=True)  # type: ignore[valid-type]
    map_height: BoolProperty(name="Height", default=False)  # type: ignore[valid-type]
    map_roughness: BoolProperty(name="Roughness", default=True)  # type: ignore[valid-type]
    map_ao: BoolProperty(name="AO", default=False)  # type: ignore[valid-type]
    count: IntProperty(  # type: ignore[valid-type]
        name="Count", description="Images (seeds seed .. seed+count-1)", default=1, min=1, max=8
    )
    output_dir: StringProperty(  # type: ignore[valid-type]
        name="Save To",
        description="Also save each result as PNG (with its recipe) in this folder; "
        "empty: only pack into the .blend",
        subtype="DIR_PATH",
        default="",
    )
    live_source: PointerProperty(  # type: ignore[valid-type]
        name="Paint Source", type=bpy.types.Image, description="The image being painted"
    )
    live_strength: FloatProperty(  # type: ignore[valid-type]
        name="Strength", default=0.6, min=0.05, max=1.0
    )
    live_interval: FloatProperty(  # type: ignore[valid-type]
        name="Poll Interval",
        description="Seconds between checks of the painted image for changes",
        default=0.25,
        min=0.05,
        max=5.0,
        subtype="TIME_ABSOLUTE",
    )


def selected_maps(settings: PixelKilnSettings) -> list[str]:
    # A module function, not a method: with a method on the PropertyGroup, bpy 4.2 as a
    # module crashes at interpreter exit.
    return [kind for kind in MAP_KINDS if getattr(settings, f"map_{kind}")]


class PixelKilnState(bpy.types.PropertyGroup):
    """What the panel shows; written only by the main-thread timer and the operators."""

    status: StringProperty(default="")  # type: ignore[valid-type]
    level: EnumProperty(  # type: ignore[valid-type]
        items=[("INFO", "Info", ""), ("WARNING", "Warning", ""), ("ERROR", "Error", "")],
        default="INFO",
    )
    health: StringProperty(default="not checked")  # type: ignore[valid-type]
    busy: BoolProperty(default=False)  # type: ignore[valid-type]
    progress: FloatProperty(default=0.0, min=0.0, max=1.0)  # type: ignore[valid-type]
    last_image: StringProperty(default="")  # type: ignore[valid-type]
    last_seed: StringProperty(default="")  # type: ignore[valid-type] # uint64: not an int prop
    live_running: BoolProperty(default=False)  # type: ignore[valid-type]
    live_frames: IntProperty(default=0, min=0)  # type: ignore[valid-type]
    live_result: StringProperty(default="")  # type: ignore[valid-type]


class PixelKilnPreferences(bpy.types.AddonPreferences):
    """Edit > Preferences > Add-ons > PixelKiln: how to reach a daemon on a studio network.
    Kept in Blender's user preferences, so a token never travels inside a .blend file."""

    bl_idname = __package__ or "pixelkiln"

    address: StringProperty(  # type: ignore[valid-type]
        name="Address",
        description="host:port of the daemon's gRPC port (`pixelkiln serve --port N`)",
        default=DEFAULT_ADDRESS,
    )
    token: StringProperty(  # type: ignore[valid-type]
        name="Token",
        description=(
            "The daemon's token (`pixelkiln token create NAME`), for a daemon started with "
            "--token-file. Empty: the PIXELKILN_TOKEN environment variable"
        ),
        subtype="PASSWORD",
    )
    use_tls: BoolProperty(  # type: ignore[valid-type]
        name="TLS",
        description="The daemon was started with --tls-cert/--tls-key",
        default=False,
    )
    tls_ca: StringProperty(  # type: ignore[valid-type]
        name="CA certificate",
        description=(
            "PEM file of the CA that signed the daemon's certificate (turns TLS on). Empty: "
            "the PIXELKILN_TLS_CA environment variable, else the system's trusted roots"
        ),
        subtype="FILE_PATH",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "address")
        layout.label(text="A daemon on a studio network: pixelkiln serve --token-file --tls-cert")
        layout.prop(self, "token")
        layout.prop(self, "use_tls")
        layout.prop(self, "tls_ca")


def preferences(context: bpy.types.Context) -> PixelKilnPreferences | None:
    addon = context.preferences.addons.get(PixelKilnPreferences.bl_idname)
    return None if addon is None else addon.preferences


def daemon_address(context: bpy.types.Context) -> str:
    """The daemon's address: the preferences' (the default when they are not there)."""
    prefs = preferences(context)
    address = prefs.address.strip() if prefs is not None else ""
    return address or DEFAULT_ADDRESS


def migrate_scene(scene: bpy.types.Scene, address: str) -> str | None:
    """Drop an address an old version saved in ``scene``; a notice when it was not
    ``address`` (the preferences'), else None."""
    settings = getattr(scene, "pixelkiln", None)
    old = settings.address.strip() if settings is not None else ""
    if settings is None or not old:
        return None
    settings.property_unset("address")
    if old == address:
        return None
    return (
        f"This .blend named the daemon {old}; the address is now set in Edit > Preferences > "
        f"Add-ons > PixelKiln, which says {address}."
    )


def migrate_all(context: bpy.types.Context) -> list[str]:
    """:func:`migrate_scene` on every scene of the open file; the notices."""
    address = daemon_address(context)
    notices = [migrate_scene(scene, address) for scene in bpy.data.scenes]
    return [n for n in notices if n]


@bpy.app.handlers.persistent
def _migrate_on_load(_filepath: object = None) -> None:
    notices = migrate_all(bpy.context)
    if notices and bpy.data.window_managers:
        st = bpy.data.window_managers[0].pixelkiln_state
        st.status, st.level = notices[0], "WARNING"
        print(f"PixelKiln: {notices[0]}")


def client_security(context: bpy.types.Context) -> dict[str, object]:
    """``token=``, ``tls=``, ``root_certificates=`` for the client, from the preferences; an
    empty field is left out, so the client falls back to PIXELKILN_TOKEN / PIXELKILN_TLS_CA."""
    prefs = preferences(context)
    if prefs is None:
        return {}
    out: dict[str, object] = {}
    if prefs.token.strip():
        out["token"] = prefs.token.strip()
    if prefs.tls_ca.strip():
        out["root_certificates"] = bpy.path.abspath(prefs.tls_ca.strip())
    if prefs.use_tls:
        out["tls"] = True
    return out


CLASSES = (PixelKilnSettings, PixelKilnState, PixelKilnPreferences)


def register() -> None:
    bpy.types.Scene.pixelkiln = PointerProperty(type=PixelKilnSettings)
    bpy.types.WindowManager.pixelkiln_state = PointerProperty(type=PixelKilnState)
    bpy.app.handlers.load_post.append(_migrate_on_load)


def unregister() -> None:
    if _migrate_on_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_migrate_on_load)
    del bpy.types.WindowManager.pixelkiln_state
    del bpy.types.Scene.pixelkiln
