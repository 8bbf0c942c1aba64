"""Image datablocks: placeholders, previews and live frames as raw pixels, results as PNGs
packed into the .blend (no temporary files, no Pillow), and Save To's PNG files (never
replacing one). Main thread only."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from pathlib import Path
from typing import Any

import bpy

from .pixels import rgba8_to_pixels

MAX_NAME = 48
# Custom properties on a generated image (ID properties are 32-bit ints: seeds are strings).
PROP_ROLE = "pixelkiln_role"  # "albedo" | a map kind | "live"
PROP_BASE = "pixelkiln_base"  # the albedo image's name, on the albedo and its maps
PROP_SEED = "pixelkiln_seed"
PROP_RECIPE = "pixelkiln_recipe"
NON_COLOR_ROLES = frozenset({"normal", "height", "roughness", "ao"})
_SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}  # results: PNG unless asked


def name_from_prompt(prompt: str) -> str:
    """A datablock name from the prompt: spaces collapsed, at most MAX_NAME characters."""
    name = re.sub(r"\s+", " ", prompt).strip()[:MAX_NAME].strip()
    return name or "PixelKiln"


def new_image(name: str, width: int, height: int, *, role: str = "albedo") -> bpy.types.Image:
    """A black RGBA image kept in the .blend (fake user: it has no other user yet)."""
    img = bpy.data.images.new(name, max(1, width), max(1, height), alpha=True)
    img.use_fake_user = True
    img[PROP_ROLE] = role
    if role in NON_COLOR_ROLES:
        img.colorspace_settings.name = "Non-Color"
    return img


def write_rgba8(img: bpy.types.Image, data: bytes, width: int, height: int) -> None:
    """Show raw RGBA8 pixels (a preview, a live frame) in ``img``, resizing it if needed."""
    if tuple(img.size) != (width, height):
        img.scale(width, height)
    img.pixels.foreach_set(rgba8_to_pixels(data, width, height))
    img.update()


def load_encoded(img: bpy.types.Image, data: bytes) -> None:
    """Replace ``img``'s content with an encoded image (PNG ...) packed into the .blend.

    Packing from memory avoids a temporary file; Blender decodes the packed bytes itself."""
    if img.packed_file is not None:
        img.unpack(method="REMOVE")  # drops the old packed bytes; writes nothing to disk
    img.source = "FILE"
    img.pack(data=data, data_len=len(data))
    img.buffers_free()  # the next draw or pixel read decodes the new bytes


def output_folder(folder: str) -> Path:
    """The folder Save To names, made absolute now (``//`` is next to the .blend).
    ValueError when it is ``//...`` and the .blend was never saved: Blender would resolve it
    against its working directory (the install folder, or /)."""
    folder = folder.strip()
    if folder.startswith("//") and not bpy.data.filepath:
        raise ValueError(
            f"Save To '{folder}' is relative to the .blend, which is not saved yet: save the "
            ".blend first (// means next to it), or pick an absolute folder."
        )
    return Path(bpy.path.abspath(folder))


def unique_stem(folder: Path, stem: str) -> str:
    """``stem``, else ``stem_2``, ``stem_3`` ...: the first that no file in ``folder`` uses as
    ``stem.*`` or ``stem_*`` (a result's maps are ``stem_normal.png`` ...: they share it)."""
    names = [p.name.casefold() for p in folder.iterdir()] if folder.is_dir() else []

    def taken(candidate: str) -> bool:
        c = candidate.casefold()
        return any(n.startswith((f"{c}.", f"{c}_")) for n in names)

    candidate, n = stem, 2
    while taken(candidate):
        candidate, n = f"{stem}_{n}", n + 1
    return candidate


def write_new(path: Path, data: bytes) -> Path:
    """Write ``path`` through a temporary file beside it, put in place only when complete (a
    crash never leaves half a PNG). Never replaces a file: FileExistsError when ``path``
    exists (a hard link is the atomic "create if absent"; without one, a rename)."""
    tmp = path.with_name(f".{path.name[:64]}.{secrets.token_hex(4)}.part")
    try:
        with open(tmp, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links (FAT, some network shares)
            if path.exists():
                raise FileExistsError(errno.EEXIST, "File exists", str(path)) from None
            os.rename(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path


def save_result(image: Any, folder: Path, name: str) -> list[Path]:
    """Write a result and its maps as they came (PNG, the recipe embedded) into ``folder``:
    ``stem.png``, ``stem_normal.png`` ..., under one stem from ``name`` that no file there uses
    yet, so an earlier result's files are never replaced. The albedo's path comes first."""
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r'[\\/:*?"<>|]+', "_", name).strip(" .") or "pixelkiln"
    stem = unique_stem(folder, safe)
    files = [(stem, image)] + [(f"{stem}_{kind}", m) for kind, m in image.maps.items()]
    return [write_new(folder / f"{n}{_SUFFIXES.get(i.encoding, '.png')}", i.data) for n, i in files]


def maps_of(albedo: bpy.types.Image) -> dict[str, bpy.types.Image]:
    """The derived maps generated with ``albedo`` (found by their base-name property)."""
    found: dict[str, bpy.types.Image] = {}
    for img in bpy.data.images:
        if img.get(PROP_BASE) == albedo.name and img.get(PROP_ROLE) in NON_COLOR_ROLES:
            found[str(img[PROP_ROLE])] = img
    return found
