"""Pruning ``$PIXELKILN_HOME/onnx-cache``: exports of earlier weights and abandoned temporaries.

An export is a folder ``<name>-<16 hex digits of its weights' hash>`` (``runtime_choice``), up
to a few hundred megabytes. A model whose weights change (a retrained folder, a new scheduler
preset, a new torch) gets a new folder each time, and a daemon killed mid-export leaves its
``.<folder>.tmp-*`` behind: without pruning the cache only grows. After each use of an export:
the model's :data:`KEEP_PER_MODEL` most recently used exports stay (the one in use always; a
second daemon serving an older version of the same folder keeps its own, since each use marks
it), older ones of the same name go; temporaries untouched for :data:`ABANDONED_S` go (an
export in progress writes into its temporary folder all along). Exports of other names are
never touched: another daemon may serve them. Removal is best effort: a folder that cannot be
removed (Windows: a file still open) stays for the next time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

KEEP_PER_MODEL = 2
ABANDONED_S = 24 * 3600.0
KEY_CHARS = 16


def mark_used(folder: Path) -> None:
    """Record a use of the export in ``folder`` (its modification time)."""
    with contextlib.suppress(OSError):  # a read-only cache still serves
        os.utime(folder)


def _is_key(text: str) -> bool:
    return len(text) == KEY_CHARS and all(c in "0123456789abcdef" for c in text)


def _used_at(folder: Path) -> float:
    try:
        return folder.stat().st_mtime
    except OSError:
        return 0.0


def prune(in_use: Path, now: float | None = None) -> list[Path]:
    """Beside the export ``in_use`` (``<cache>/<name>-<key>``), remove the same model's
    exports beyond the :data:`KEEP_PER_MODEL` most recently used and temporaries abandoned for
    :data:`ABANDONED_S`; returns the folders removed."""
    cache, now = in_use.parent, time.time() if now is None else now
    name = in_use.name[: -(KEY_CHARS + 1)]
    exports, abandoned, removed = [], [], []
    for entry in cache.iterdir():
        if not entry.is_dir() or entry.is_symlink() or entry == in_use:
            continue
        if entry.name.startswith(".") and ".tmp-" in entry.name:
            if now - _used_at(entry) > ABANDONED_S:
                abandoned.append(entry)
            continue
        head, sep, key = entry.name.rpartition("-")
        if sep and head == name and _is_key(key):
            exports.append(entry)
    exports.sort(key=_used_at, reverse=True)
    doomed = exports[KEEP_PER_MODEL - 1 :] + abandoned
    for entry in doomed:
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
    if removed:
        log.info(
            "onnx-cache: removed %d old export(s) beside %s: %s",
            len(removed),
            in_use.name,
            ", ".join(p.name for p in removed),
        )
    return removed
