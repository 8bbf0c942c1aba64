"""The web test project: the addon's client, messages, codec, asset writer, dock, settings and
daemon launcher (what runs without editor classes; the dock reaches the editor by name, and the
tests give it a stand-in), the end-to-end scripts and a main scene that runs them, as the files
of a .pck."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import pck

ROOT = Path(__file__).resolve().parents[2]
ADDON = ROOT / "engine_plugins" / "godot" / "addons" / "pixelkiln"
TESTS = ROOT / "tests" / "clients_gd"
ADDON_FILES = (
    *sorted(f"client/{path.name}" for path in (ADDON / "client").glob("*.gd")),
    "generated/pixelkiln_v1.gd",
    "runtime/proto_codec.gd",
    "asset_writer.gd",
    "dock.gd",
    "dock_request.gd",
    "dock_live_options.gd",
    "dock_settings.gd",
    "dock_widgets.gd",
    "dock_daemon.gd",
    "daemon_command.gd",
    "daemon_launcher.gd",
)

PROJECT_GODOT = """\
config_version=5

[application]

config/name="PixelKiln GDScript client, web end-to-end"
run/main_scene="res://main.tscn"
config/features=PackedStringArray("4.6", "GL Compatibility")

[rendering]

renderer/rendering_method="gl_compatibility"
renderer/rendering_method.mobile="gl_compatibility"
"""

MAIN_TSCN = """\
[gd_scene load_steps=2 format=3]

[ext_resource type="Script" path="res://web_main.gd" id="1_main"]

[node name="Main" type="Node"]
script = ExtResource("1_main")
"""


def _class_cache(scripts: dict[str, bytes]) -> str:
    """.godot/global_script_class_cache.cfg: the editor writes it; without it a ``class_name``
    is unknown to the other scripts of an exported project."""
    entries = []
    for path, source in sorted(scripts.items()):
        lines = source.decode("utf-8").splitlines()
        names = [line.split()[1] for line in lines if line.startswith("class_name ")]
        bases = [line.split()[1] for line in lines if line.startswith("extends ")]
        if names:
            entries.append(
                "{\n"
                f'"base": &"{bases[0] if bases else "RefCounted"}",\n'
                f'"class": &"{names[0]}",\n'
                '"icon": "",\n"is_abstract": false,\n"is_tool": false,\n'
                '"language": &"GDScript",\n'
                f'"path": "{path}"\n'
                "}"
            )
    return "list=[" + ", ".join(entries) + "]\n"


def files(run: dict[str, Any]) -> dict[str, bytes]:
    """res:// path -> bytes; ``run`` and the addon's UIDs become res://run.json (web_main.gd)."""
    scripts = {
        f"res://addons/pixelkiln/{name}": (ADDON / name).read_bytes() for name in ADDON_FILES
    }
    scripts["res://tests/e2e.gd"] = (TESTS / "e2e.gd").read_bytes()
    scripts["res://tests/secure.gd"] = (TESTS / "secure.gd").read_bytes()
    scripts["res://tests/dock_checks.gd"] = (TESTS / "dock_checks.gd").read_bytes()
    scripts["res://web_main.gd"] = (TESTS / "web_main.gd").read_bytes()
    out = dict(scripts)
    out["res://project.godot"] = PROJECT_GODOT.encode("utf-8")
    out["res://main.tscn"] = MAIN_TSCN.encode("utf-8")
    # The addon's .gd.uid files, for the engine to parse (a release build does not read them).
    uids = {
        path.relative_to(ADDON).as_posix().removesuffix(".uid"): path.read_text("utf-8").strip()
        for path in sorted(ADDON.rglob("*.gd.uid"))
    }
    out["res://run.json"] = json.dumps({**run, "uids": uids}).encode("utf-8")
    out["res://.godot/global_script_class_cache.cfg"] = _class_cache(scripts).encode("utf-8")
    return out


def build(run: dict[str, Any]) -> bytes:
    return pck.pack(files(run))
