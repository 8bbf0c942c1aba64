"""Godot's PCK format, version 3 (Godot 4.4+), written from plain files.

Layout (core/io/pck_packer.cpp and file_access_pack.cpp of Godot 4.6, and the 4.6 template's own
index.pck): a 112-byte header (``GDPC``, format 3, engine major/minor/patch, flags, the data
offset, the directory offset, 16 reserved words), the file data (each file 16-byte aligned),
then the directory: a count and, per file, its path without ``res://`` (length-prefixed, zero
padded to 4 bytes), offset from the data start, size, MD5 and flags. All little-endian.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from pathlib import Path

MAGIC = b"GDPC"
FORMAT_VERSION = 3
ENGINE_VERSION = (4, 6, 0)
FLAG_REL_FILEBASE = 2  # file offsets count from the data start, which counts from the header
ALIGNMENT = 16
HEADER_SIZE = 4 + 4 * 4 + 4 + 8 + 8 + 16 * 4  # 104 bytes before alignment


def _pad(length: int, alignment: int) -> int:
    return (alignment - length % alignment) % alignment


def pack(files: Mapping[str, bytes]) -> bytes:
    """The bytes of a .pck holding ``files`` (``res://`` path or bare path -> content)."""
    if not files:
        raise ValueError("files: a pack needs at least one file")
    data = bytearray()
    entries: list[tuple[bytes, int, bytes]] = []
    for name, content in sorted(files.items()):
        path = name.removeprefix("res://").lstrip("/")
        if not path or ".." in path.split("/"):
            raise ValueError(f"files: {name!r} is not a path inside the project")
        entries.append((path.encode("utf-8"), len(data), content))
        data += content
        data += b"\0" * _pad(len(data), ALIGNMENT)
    file_base = HEADER_SIZE + _pad(HEADER_SIZE, ALIGNMENT)
    dir_offset = file_base + len(data)
    header = MAGIC + struct.pack(
        "<IIIIIQQ", FORMAT_VERSION, *ENGINE_VERSION, FLAG_REL_FILEBASE, file_base, dir_offset
    )
    header += b"\0" * (16 * 4)
    header += b"\0" * _pad(len(header), ALIGNMENT)
    directory = bytearray(struct.pack("<I", len(entries)))
    for encoded, offset, content in entries:
        padded = encoded + b"\0" * _pad(len(encoded), 4)
        directory += struct.pack("<I", len(padded)) + padded
        directory += struct.pack("<QQ", offset, len(content))
        directory += hashlib.md5(content).digest() + struct.pack("<I", 0)
    return bytes(header + data + directory)


def read_directory(blob: bytes) -> dict[str, bytes]:
    """The files of a v3 pack written with relative offsets (to check what :func:`pack` wrote)."""
    if blob[:4] != MAGIC:
        raise ValueError("not a PCK: no GDPC magic")
    version, _major, _minor, _patch, flags, file_base, dir_offset = struct.unpack_from(
        "<IIIIIQQ", blob, 4
    )
    if version != FORMAT_VERSION or not flags & FLAG_REL_FILEBASE:
        raise ValueError(f"unsupported PCK: format {version}, flags {flags}")
    (count,) = struct.unpack_from("<I", blob, dir_offset)
    pos = dir_offset + 4
    out: dict[str, bytes] = {}
    for _ in range(count):
        (length,) = struct.unpack_from("<I", blob, pos)
        path = blob[pos + 4 : pos + 4 + length].rstrip(b"\0").decode("utf-8")
        pos += 4 + length
        offset, size = struct.unpack_from("<QQ", blob, pos)
        md5 = blob[pos + 16 : pos + 32]
        pos += 36
        content = blob[file_base + offset : file_base + offset + size]
        if hashlib.md5(content).digest() != md5:
            raise ValueError(f"{path}: MD5 mismatch")
        out[path] = content
    return out


def write(files: Mapping[str, bytes], out: Path) -> Path:
    out.write_bytes(pack(files))
    return out
