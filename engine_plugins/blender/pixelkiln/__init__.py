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
- props.py      scene settings (saved) and window-manager state (not saved)
- operators.py, panels.py   the UI
- vendor/pixelkiln          the PixelKiln Python client, copied by
                            tools/build_blender_wheels.py (a test checks it is current)

grpcio, grpcio-health-checking and protobuf come as wheels listed in blender_manifest.toml.
"""

from __future__ import annotations

import os
import sys

_VENDOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor")


def _use_vendored_client() -> None:
    """Make ``import pixelkiln`` find vendor/pixelkiln. The generated protobuf modules import
    ``pixelkiln.v1`` by absolute name, so the client must be a top-level package; rewriting
    their imports is what the project avoids (STYLE.md)."""
    if _VENDOR not in sys.path:
        sys.path.insert(0, _VENDOR)
    loaded = sys.modules.get("pixelkiln")
    origin = os.path.abspath(getattr(loaded, "__file__", "") or "")
    if loaded is not None and not origin.startswith(_VENDOR):
        print(f"PixelKiln: using an already imported client from {origin}, not the bundled one")


_use_vendored_client()

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
            f"PixelKiln cannot load its network libraries ({_IMPORT_ERROR}). Install the "
            "extension zip built with tools/build_blender_wheels.py: it bundles grpcio and "
            "protobuf as wheels for Linux, Windows and macOS."
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
