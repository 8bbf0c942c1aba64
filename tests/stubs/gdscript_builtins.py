"""Godot 4 built-in types and functions for gdscript_vm.py (only what the stubs use)."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class GDScriptError(Exception):
    """A runtime or compile error that Godot would report for this script."""


def check_int(value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise GDScriptError(f"integer {value} does not fit in 64 bits")
    return value


def wrap(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


class PackedByteArray:
    __slots__ = ("data",)

    def __init__(self, data: bytes | bytearray = b"") -> None:
        self.data = bytearray(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PackedByteArray) and other.data == self.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PackedByteArray({len(self.data)} bytes)"


class GDArray(list):
    """Array / Array[T]; ``check`` converts or rejects elements of a typed array."""

    def __init__(self, items: Any = (), elem: str | None = None) -> None:
        super().__init__(items)
        self.elem = elem
        self.check: Callable[[Any], Any] | None = None


class Native:
    """A native class used as a namespace of static members (FileAccess, OS, String)."""

    def __init__(self, name: str, members: dict[str, Any]) -> None:
        self.name, self.members = name, members

    def __repr__(self) -> str:
        return f"<native {self.name}>"


_CODECS = {
    "u32": ("<I", 4, 0xFFFFFFFF), "s32": ("<i", 4, None), "u64": ("<Q", 8, (1 << 64) - 1),
    "s64": ("<q", 8, None), "float": ("<f", 4, None), "double": ("<d", 8, None),
}  # fmt: skip


def _encode(pba: PackedByteArray, kind: str, offset: int, value: Any) -> None:
    fmt, size, mask = _CODECS[kind]
    if offset < 0 or offset + size > len(pba.data):
        raise GDScriptError(f"encode_{kind}: offset {offset} out of bounds")
    if kind in ("float", "double"):
        value = float(value)
        if kind == "float" and math.isfinite(value) and abs(value) > 3.4028235677973366e38:
            value = math.copysign(math.inf, value)
    elif mask is not None:
        value &= mask
    else:
        value = wrap(value) if size == 8 else ((value + 2**31) % 2**32) - 2**31
    pba.data[offset : offset + size] = struct.pack(fmt, value)


def _decode(pba: PackedByteArray, kind: str, offset: int) -> Any:
    fmt, size, _ = _CODECS[kind]
    if offset < 0 or offset + size > len(pba.data):
        raise GDScriptError(f"decode_{kind}: offset {offset} out of bounds")
    value = struct.unpack_from(fmt, pba.data, offset)[0]
    return wrap(value) if kind == "u64" else value


def utf8_to_string(data: bytes) -> str:
    """String::parse_utf8: drops a leading BOM and stops at the first NUL byte."""
    if data[:3] == b"\xef\xbb\xbf":
        data = data[3:]
    return data.split(b"\x00", 1)[0].decode("utf-8", errors="replace")


def _pba_method(vm: Any, pba: PackedByteArray, name: str, args: list[Any]) -> Any:
    data = pba.data
    if name == "[]":
        return data[_index(args[0], len(data))]
    if name == "append":
        data.append(args[0] & 0xFF)
        return False
    if name == "append_array":
        data.extend(args[0].data)
        return None
    if name == "resize":
        del data[args[0] :]
        data.extend(b"\x00" * (args[0] - len(data)))
        return 0
    if name == "size":
        return len(data)
    if name == "is_empty":
        return not data
    if name == "slice":
        begin = args[0]
        end = args[1] if len(args) > 1 else len(data)
        return PackedByteArray(data[begin:end])
    if name == "get_string_from_utf8":
        return utf8_to_string(bytes(data))
    if name == "duplicate":
        return PackedByteArray(data)
    if name.startswith("encode_"):
        return _encode(pba, name[7:], args[0], args[1])
    if name.startswith("decode_"):
        return _decode(pba, name[7:], args[0])
    raise GDScriptError(f'PackedByteArray has no method "{name}"')


def _index(index: int, size: int) -> int:
    if not -size <= index < size:
        raise GDScriptError(f"index {index} out of bounds (size {size})")
    return index


def _str_method(value: str, name: str, args: list[Any]) -> Any:
    simple: dict[str, Callable[[], Any]] = {
        "to_utf8_buffer": lambda: PackedByteArray(value.encode("utf-8")),
        "is_empty": lambda: value == "",
        "length": lambda: len(value),
        "ends_with": lambda: value.endswith(args[0]),
        "begins_with": lambda: value.startswith(args[0]),
        "split": lambda: GDArray(value.split(args[0])),
        "path_join": lambda: value.rstrip("/") + "/" + args[0],
        "[]": lambda: value[_index(args[0], len(value))],
    }
    if name not in simple:
        raise GDScriptError(f'String has no method "{name}"')
    return simple[name]()


def call_builtin_method(vm: Any, obj: Any, name: str, args: list[Any]) -> Any:
    if isinstance(obj, PackedByteArray):
        return _pba_method(vm, obj, name, args)
    if isinstance(obj, str):
        return _str_method(obj, name, args)
    if isinstance(obj, Native):
        if name not in obj.members:
            raise GDScriptError(f'{obj.name} has no member "{name}"')
        return obj.members[name](*args)
    if isinstance(obj, list):
        if name == "append":
            obj.append(obj.check(args[0]) if getattr(obj, "check", None) else args[0])
            return None
        simple = {"size": lambda: len(obj), "is_empty": lambda: not obj}
        if name == "[]":
            return obj[_index(args[0], len(obj))]
        if name in simple:
            return simple[name]()
    if isinstance(obj, dict):
        if name == "[]":
            if args[0] not in obj:
                raise GDScriptError(f"invalid access to key {args[0]!r}")
            return obj[args[0]]
        simple = {"size": lambda: len(obj), "is_empty": lambda: not obj,
                  "has": lambda: args[0] in obj, "keys": lambda: GDArray(obj.keys())}  # fmt: skip
        if name in simple:
            return simple[name]()
    if callable(obj) and name == "call":
        return obj(*args)
    raise GDScriptError(f'invalid call: no method "{name}" on {type(obj).__name__}')


def to_str(value: Any) -> str:
    if value is None:
        return "<null>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


class _File:
    def __init__(self, path: str) -> None:
        self.path, self.parts = Path(path), []

    def store(self, data: bytes) -> bool:
        self.parts.append(data)
        return True

    def close(self) -> None:
        self.path.write_bytes(b"".join(self.parts))


def global_functions(vm: Any) -> dict[str, Any]:
    def open_file(path: str, mode: int) -> Native:
        if mode != 2:
            raise GDScriptError("only FileAccess.WRITE is modelled")
        f = _File(path)
        return Native("FileAccess", {
            "store_buffer": lambda b: f.store(bytes(b.data)),
            "store_string": lambda s: f.store(s.encode("utf-8")),
            "close": f.close,
        })  # fmt: skip

    def push_error(*parts: Any) -> None:
        vm.errors.append("".join(to_str(p) for p in parts))

    return {
        "PackedByteArray": lambda *a: PackedByteArray(
            (bytes(a[0]) if isinstance(a[0], list) else a[0].data) if a else b""
        ),
        "str": lambda *a: "".join(to_str(p) for p in a),
        "len": lambda v: len(v.data if isinstance(v, PackedByteArray) else v),
        "print": lambda *a: vm.output.append("".join(to_str(p) for p in a)),
        "push_error": push_error,
        "is_nan": math.isnan,
        "is_inf": math.isinf,
        "FileAccess": Native("FileAccess", {
            "get_file_as_bytes": lambda p: PackedByteArray(Path(p).read_bytes()),
            "get_file_as_string": lambda p: Path(p).read_text(encoding="utf-8"),
            "open": open_file, "WRITE": 2,
        }),
        "DirAccess": Native("DirAccess", {
            "get_files_at": lambda p: GDArray(sorted(c.name for c in Path(p).iterdir())),
        }),
        "OS": Native("OS", {"get_cmdline_user_args": lambda: GDArray(vm.user_args)}),
        "String": Native("String", {"num_uint64": lambda v, *_: str(v & ((1 << 64) - 1))}),
    }  # fmt: skip
