"""Copies the GDScript client into the Godot addon, or checks that the copies are current.

It also writes a ``.gd.uid`` file beside every script of the addon (Godot 4.4+ keeps a script's
resource UID there and writes a missing one into the user's project on import). Each UID is
derived from the script's path inside the addon, so it is stable across runs and machines.

    python engine_plugins/godot/sync_addon.py            # copy, after gen_stubs.py or an edit
    python engine_plugins/godot/sync_addon.py --check    # exit 1 when a copy is stale (tested)

The sources stay in clients/gdscript/ (generated messages, codec, client); the addon carries
committed copies so that addons/pixelkiln/ is self-contained: drop the folder into a project, or
zip it for the Asset Library, with no build step and no symlinks (Windows checkouts and zip
exports do not keep them). The copies keep their relative layout, so the relative preloads
("../generated/pixelkiln_v1.gd", "../runtime/proto_codec.gd") work in both places.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "clients" / "gdscript"
ADDON = Path(__file__).resolve().parent / "addons" / "pixelkiln"
FOLDERS = ("generated", "runtime", "client")
# core/io/resource_uid.cpp: a UID is a non-negative 63-bit integer, written in base 34 with these
# digits (most significant first) after "uid://".
UID_DIGITS = "abcdefghijklmnopqrstuvwxy012345678"


def uid_text(addon_path: str) -> str:
    """The resource UID of the addon's script at ``addon_path`` (e.g. "client/x.gd")."""
    digest = hashlib.sha256(b"pixelkiln-addon:" + addon_path.encode("utf-8")).digest()
    value = int.from_bytes(digest[:8], "big") & (2**63 - 1)
    digits = ""
    while True:
        value, digit = divmod(value, len(UID_DIGITS))
        digits = UID_DIGITS[digit] + digits
        if value == 0:
            return "uid://" + digits


def expected() -> dict[Path, bytes]:
    """Addon path -> the bytes it must hold (the copies, and a .gd.uid beside every script)."""
    copies = {
        ADDON / folder / src.name: src.read_bytes()
        for folder in FOLDERS
        for src in sorted((SOURCE / folder).glob("*.gd"))
    }
    scripts = [*copies, *sorted(ADDON.glob("*.gd"))]
    uids = {
        path.with_name(
            path.name + ".uid"
        ): f"{uid_text(path.relative_to(ADDON).as_posix())}\n".encode()
        for path in scripts
    }
    return {**copies, **uids}


def _strays(want: dict[Path, bytes]) -> list[Path]:
    """Copies without a source, and .gd.uid files without a script."""
    copies = [p for folder in FOLDERS for p in sorted((ADDON / folder).glob("*.gd"))]
    return [p for p in [*copies, *sorted(ADDON.rglob("*.gd.uid"))] if p not in want]


def stale() -> list[str]:
    """Copies that differ from their source, are missing, or have no source any more."""
    want = expected()
    problems = [
        str(p.relative_to(ROOT)) for p, b in want.items() if not p.is_file() or p.read_bytes() != b
    ]
    problems += [f"{path.relative_to(ROOT)} (no source)" for path in _strays(want)]
    return problems


def sync() -> None:
    want = expected()
    for path, data in want.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
    for path in _strays(want):
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
