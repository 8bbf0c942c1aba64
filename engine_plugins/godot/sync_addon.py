"""Copies the GDScript client into the Godot addon, or checks that the copies are current.

    python engine_plugins/godot/sync_addon.py            # copy, after gen_stubs.py or an edit
    python engine_plugins/godot/sync_addon.py --check    # exit 1 when a copy is stale (tested)

The sources stay in clients/gdscript/ (generated messages, codec, client); the addon carries
committed copies so that addons/pixelkiln/ is self-contained: drop the folder into a project, or
zip it for the Asset Library, with no build step and no symlinks (Windows checkouts and zip
exports do not keep them). The copies keep their relative layout, so the relative preloads
("../generated/pixelkiln_v1.gd", "../runtime/proto_codec.gd") work in both places.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "clients" / "gdscript"
ADDON = Path(__file__).resolve().parent / "addons" / "pixelkiln"
FOLDERS = ("generated", "runtime", "client")


def expected() -> dict[Path, bytes]:
    """Addon path -> the bytes it must hold."""
    return {
        ADDON / folder / src.name: src.read_bytes()
        for folder in FOLDERS
        for src in sorted((SOURCE / folder).glob("*.gd"))
    }


def stale() -> list[str]:
    """Copies that differ from their source, are missing, or have no source any more."""
    want = expected()
    problems = [
        str(p.relative_to(ROOT)) for p, b in want.items() if not p.is_file() or p.read_bytes() != b
    ]
    for folder in FOLDERS:
        for path in sorted((ADDON / folder).glob("*.gd")):
            if path not in want:
                problems.append(f"{path.relative_to(ROOT)} (no source)")
    return problems


def sync() -> None:
    want = expected()
    for path, data in want.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
    for folder in FOLDERS:
        for path in (ADDON / folder).glob("*.gd"):
            if path not in want:
                path.unlink()


def main(argv: list[str]) -> int:
    if "--check" in argv:
        problems = stale()
        for line in problems:
            print(f"stale: {line}")
        if problems:
            print("run: python engine_plugins/godot/sync_addon.py")
        return 1 if problems else 0
    sync()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
