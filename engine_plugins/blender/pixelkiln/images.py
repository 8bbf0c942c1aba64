"""Image datablocks: placeholders, previews and live frames as raw pixels, results as PNGs
packed into the .blend (no temporary files, no Pillow). Main thread only."""

from __future__ import annotations

import re
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


def save_result(image: Any, folder: str, name: str) -> Path:
    """Write a result PNG (its recipe embedded) into ``folder``. The client writes a
    temporary file and renames it, so a crash never leaves half a PNG."""
    target_dir = Path(bpy.path.abspath(folder))
    target_dir.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r'[\\/:*?"<>|]+', "_", name).strip(" .") or "pixelkiln"
    return Path(image.save(target_dir / f"{safe}.png"))


def maps_of(albedo: bpy.types.Image) -> dict[str, bpy.types.Image]:
    """The derived maps generated with ``albedo`` (found by their base-name property)."""
    found: dict[str, bpy.types.Image] = {}
    for img in bpy.data.images:
        if img.get(PROP_BASE) == albedo.name and img.get(PROP_ROLE) in NON_COLOR_ROLES:
            found[str(img[PROP_ROLE])] = img
    return found
