"""Text helpers for the emitters: an indenting line writer and the naming rules."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class CodeWriter:
    """Collects lines with a current indentation; ``text()`` ends with exactly one newline."""

    def __init__(self, indent: str) -> None:
        self._unit = indent
        self._depth = 0
        self._lines: list[str] = []

    def __call__(self, *lines: str) -> None:
        for line in lines:
            self._lines.append(f"{self._unit * self._depth}{line}" if line else "")

    @contextlib.contextmanager
    def indented(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def blank(self) -> None:
        if self._lines and self._lines[-1] != "":
            self._lines.append("")

    def text(self) -> str:
        while self._lines and self._lines[-1] == "":
            self._lines.pop()
        return "\n".join(self._lines) + "\n"


def words(text: str) -> frozenset[str]:
    """A set from a whitespace-separated list (keeps long keyword tables readable)."""
    return frozenset(text.split())


def pascal_case(name: str) -> str:
    """protoc's C# rule for field names: drop underscores, capitalize after them and digits."""
    out: list[str] = []
    cap_next = True
    for ch in name:
        if "a" <= ch <= "z":
            out.append(ch.upper() if cap_next else ch)
            cap_next = False
        elif "A" <= ch <= "Z":
            out.append(ch)
            cap_next = False
        elif "0" <= ch <= "9":
            out.append(ch)
            cap_next = True
        else:
            cap_next = True
    return "".join(out)


def camel_case(name: str) -> str:
    pascal = pascal_case(name)
    return pascal[:1].lower() + pascal[1:]


def shouty_to_pascal(name: str) -> str:
    """protoc's C# rule for enum value names: ``RAW_RGBA8`` -> ``RawRgba8``."""
    out: list[str] = []
    previous = "_"
    for ch in name:
        if not ch.isalnum():
            previous = ch
            continue
        if not previous.isalnum() or previous.isdigit():
            out.append(ch.upper())
        elif previous.islower():
            out.append(ch)
        else:
            out.append(ch.lower())
        previous = ch
    return "".join(out)


def strip_enum_prefix(enum_name: str, value_name: str) -> str:
    """Drop the enum's name from the front of a value (``PRIORITY_BATCH`` -> ``BATCH``).

    Compared case-insensitively without underscores, as protoc's C# generator does; the value
    keeps its name when nothing (or only a digit-led rest) would remain.
    """
    prefix = enum_name.replace("_", "").lower()
    i = j = 0
    while i < len(value_name) and j < len(prefix):
        if value_name[i] == "_":
            i += 1
        elif value_name[i].lower() == prefix[j]:
            i += 1
            j += 1
        else:
            return value_name
    if j < len(prefix):
        return value_name
    rest = value_name[i:].lstrip("_")
    if not rest or rest[0].isdigit():
        return value_name
    return rest


def comment_lines(text: str) -> list[str]:
    return text.split("\n") if text else []


def varint_size(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size
