"""PixelKiln for Blender 4.2+: textures, PBR materials and live paint-overs from a local
PixelKiln daemon, over gRPC.

Module map (only bridge.py and pixels.py may run off the main thread; neither imports bpy):

- bridge.py     jobs on worker threads (health, generate, live) -> one queue of posts;
                error messages a person can act on
- runtime.py    main thread: starts jobs, ``tick`` (a bpy.app.timers callback) applies posts
                to Blender data and polls the painted image in live mode
- images.py     image datablocks: previews as raw pixels, results packed from PNG bytes
- materials.py  Principled BSDF material from albedo + normal + roughness
- pixels.py     numpy conversions between raw RGBA8 and Image.pixels; change hashing
- props.py      scene settings (saved), the add-on's preferences (daemon address, token, TLS:
                per user, never in a .blend) and window-manager state (not saved)
- operators.py, panels.py   the UI

The PixelKiln Python client (``pixelkiln``), grpcio, grpcio-health-checking and protobuf come
as wheels listed in blender_manifest.toml (tools/build_blender_wheels.py builds the client's
from clients/python and fetches the others); Blender installs them into its extensions'
site-packages before it enables the add-on.
"""

from __future__ import annotations

try:
    from . import operators, panels, props, runtime
except ImportError as exc:  # the wheels are missing: say how to get them
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None


def _classes() -> tuple[type, ...]:
    return (*props.CLASSES, *operators.CLASSES, *panels.CLASSES)


def register() -> None:
    if _IMPORT_ERROR is not None:
        raise RuntimeError(
            f"PixelKiln cannot load its bundled libraries ({_IMPORT_ERROR}). Install the "
            "extension zip built with tools/build_blender_wheels.py: it bundles the PixelKiln "
            "client, grpcio and protobuf as wheels for Linux, Windows and macOS, for "
            "Blender 4.2 to 5.3."
        ) from _IMPORT_ERROR
    import bpy

    for cls in _classes():
        bpy.utils.register_class(cls)
    props.register()
    runtime.ensure_timer()


def unregister() -> None:
    if _IMPORT_ERROR is not None:
        return
    import bpy

    runtime.shutdown()
    props.unregister()
    for cls in reversed(_classes()):
        bpy.utils.unregister_class(cls)
