"""Installs the built extension zip the way Blender's "Install from Disk" does, with only
the zip's wheels providing the PixelKiln client, grpcio and protobuf, and generates once
through it.

    BLENDER_USER_RESOURCES=TMP .venv-bpy/bin/python tests/blender/install_check.py \\
        ZIP ADDRESS REPORT.json

The bpy venv has grpcio and protobuf installed too (the source-tree tests need them); an
import hook hides those (and any other ``pixelkiln``), so what loads is what Blender unpacked
from the zip's wheels.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import sys
import traceback
from pathlib import Path
from typing import Any

BUNDLED = {"grpc", "grpc_health", "google", "typing_extensions", "pixelkiln"}


class OnlyBundled(importlib.abc.MetaPathFinder):
    """Top-level BUNDLED modules come from the extensions' site-packages or nowhere."""

    def __init__(self, site: Path) -> None:
        self.site = str(site)

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if path is not None or name not in BUNDLED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, [self.site])
        if spec is None:
            raise ModuleNotFoundError(f"{name} is not among the bundled wheels", name=name)
        return spec


def main() -> None:
    zip_path, address, report_path = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    report: dict[str, Any] = {}
    try:
        import bpy

        report["blender"] = bpy.app.version_string
        site = Path(bpy.utils.user_resource("EXTENSIONS", path=".local")) / (
            f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
        )
        sys.meta_path.insert(0, OnlyBundled(site))
        for name in list(sys.modules):
            if name.partition(".")[0] in BUNDLED:
                del sys.modules[name]
        result = bpy.ops.extensions.package_install_files(
            filepath=zip_path, repo="user_default", enable_on_install=True
        )
        report["install"] = sorted(result)
        module = "bl_ext.user_default.pixelkiln"
        report["enabled"] = module in bpy.context.preferences.addons
        import google.protobuf
        import grpc

        report["grpc_file"] = grpc.__file__
        report["protobuf_file"] = google.protobuf.__file__
        report["client_file"] = sys.modules["pixelkiln"].__file__
        bpy.context.preferences.addons[module].preferences.address = address
        settings = bpy.context.scene.pixelkiln
        settings.width = settings.height = 64
        settings.steps = 1
        bpy.ops.pixelkiln.generate()
        runtime = sys.modules[f"{module}.runtime"]
        report["finished"] = runtime.pump(timeout=60)
        state = runtime.state()
        report["status"] = state.status
        img = bpy.data.images.get(state.last_image)
        report["size"] = list(img.size) if img else None
        bpy.ops.preferences.addon_disable(module=module)
        report["disabled"] = module not in bpy.context.preferences.addons
        report["unregistered"] = not hasattr(bpy.types.Scene, "pixelkiln")
    except Exception:  # noqa: BLE001 - reported to the test
        report["exception"] = traceback.format_exc()
    report_path.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
