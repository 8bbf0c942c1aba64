"""Pieces of the ``pixelkiln`` command: argument checks, the progress bar, tables.

Left out of the client wheel the Blender add-on bundles (like cli.py)."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._request import INPUT_KINDS, MAP_KINDS, image_kind
from .events import SAVE_SUFFIXES, Accepted, Event, Preview, Progress, Queued, Result


class UsageError(Exception):
    """A mistake on the command line or in its files: printed as one line, exit status 2."""


class ProgressBar:
    """Progress on stderr: one line redrawn with ``\\r`` on a terminal; otherwise plain lines
    (accepted, queued, each quarter of the steps, done) and never a ``\\r``."""

    def __init__(self, stream: Any = None, width: int = 30, tty: bool | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty()) if isatty is not None else False
        self.tty = tty
        self._open = False  # a redrawn line waits for its end
        self._quarter = -1

    def __call__(self, event: Event) -> None:
        if isinstance(event, Accepted):
            self._line(
                f"accepted {event.request_id} seed={event.seed} {event.width}x{event.height}"
            )
        elif isinstance(event, Queued):
            where = f"position {event.position + 1} of {event.queue_depth}"
            if event.position == 0:
                where = "next, waiting for the model runner (busy, or starting and warming up)"
            self._line(f"queued: {where}")
        elif isinstance(event, Progress):
            step = f"step {event.step}/{event.total} {event.elapsed_ms:.0f} ms"
            if self.tty:
                filled = round(self.width * event.step / max(event.total, 1))
                self._line(f"[{'#' * filled}{'-' * (self.width - filled)}] {step}")
            else:
                quarter = 4 * event.step // max(event.total, 1)
                if quarter != self._quarter:
                    self._quarter = quarter
                    self._line(step)
        elif isinstance(event, Result):
            self._line(f"done in {event.timings.get('total_ms', 0):.0f} ms")
            self.close()
        elif isinstance(event, Preview):
            pass

    def _line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r" + text.ljust(70))
            self._open = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End a redrawn line, so that what is printed next starts on its own line."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


def input_image(flag: str, value: str) -> Path:
    """An image file named on the command line: it exists and is of a kind the daemon decodes
    (:data:`pixelkiln._request.INPUT_KINDS`, told by its first bytes)."""
    kinds = f"{', '.join(INPUT_KINDS[:-1])} or {INPUT_KINDS[-1]}"
    path = Path(value)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise UsageError(f"{flag}: {value} {what}; give a {kinds} image file")
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except OSError as exc:
        raise UsageError(f"{flag}: cannot read {value} ({exc.strerror})") from None
    if image_kind(head) is None:
        raise UsageError(f"{flag}: {value} is not a {kinds} image")
    return path


def free_name(stem: str, suffix: str = ".png") -> str:
    """The default output when no -o is given: ``stem.png``, or ``stem-2.png``, ``stem-3.png``
    ... the first whose whole group (``stem_0.png``, ``stem_normal.png``, ``stem_atlas.json``)
    is free in the current folder, so a second run never replaces the first one's files."""
    # Compared case-blind: macOS and Windows file systems are (Out.png is out.png there).
    names = [p.name.casefold() for p in Path.cwd().iterdir()]
    for n in itertools.count(1):
        name = stem if n == 1 else f"{stem}-{n}"
        group = (f"{name.casefold()}.", f"{name.casefold()}_")
        if not any(existing.startswith(group) for existing in names):
            return name + suffix
    raise AssertionError("unreachable")


def output_path(flag: str, value: str) -> tuple[Path, str]:
    """Where results go and their encoding, from the suffix (checked before any work)."""
    path = Path(value)
    suffix = path.suffix.lower()
    if suffix not in SAVE_SUFFIXES:  # what Image.save writes
        what = f"cannot write {path.suffix} files" if path.suffix else "needs a file suffix"
        raise UsageError(f"{flag}: {what} ({value}); allowed: {', '.join(SAVE_SUFFIXES)}")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"{flag}: folder {parent} does not exist (for {value})")
    if path.is_dir():
        raise UsageError(f"{flag}: {value} is a folder; give a file name in it")
    if not os.access(parent, os.W_OK):  # checked again when writing (Windows folders pass)
        raise UsageError(f"{flag}: folder {parent} is not writable (for {value})")
    return path, SAVE_SUFFIXES[suffix]


def map_kinds(value: str) -> str:
    kinds = [k.strip() for k in value.split(",") if k.strip()]
    for kind in kinds:
        if kind.lower() not in MAP_KINDS:
            raise UsageError(f"--maps: unknown kind {kind!r}; allowed: {', '.join(MAP_KINDS)}")
    return ",".join(kinds)


def unsigned(flags: list[tuple[str, int | None]], bits: int = 32) -> None:
    """Whole numbers the wire carries unsigned (sizes, counts, steps; seeds with 64 bits)."""
    for flag, value in flags:
        if value is not None and value < 0:
            raise UsageError(f"{flag}: must be 0 or more; got {value}")
        if value is not None and value >= 2**bits:
            raise UsageError(f"{flag}: must be below {2**bits}; got {value}")


def positive(flag: str, value: float | None, *, zero_ok: bool = False) -> None:
    if value is not None and (value < 0 or (value == 0 and not zero_ok)):
        limit = ">= 0" if zero_ok else "> 0"
        raise UsageError(f"{flag}: must be {limit}; got {value:g}")


def format_table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """Columns as wide as their widest cell; ``right``: the indexes of right-aligned columns."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = []
    for row in (header, *rows):
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def written(path: Path, save: Callable[[Path], Path]) -> Path:
    """``save(path)``; a file that cannot be written is one line naming it (the file that was
    there, if any, is untouched), not a traceback."""
    try:
        return save(path)
    except OSError as exc:
        raise UsageError(f"-o/--output: cannot write {path}: {exc.strerror or exc}") from None
