"""What a caller without the admin scope sees of the daemon's machine.

A studio daemon serves artists with ``generate`` tokens: they need the models' names, sizes and
states, not where the weights lie on the server (a path names its user and its folders), the
runners' process ids, or paths inside a runner's last error. ListModels and Status give such a
caller a model's source as its last path component (hub ids are kept), runner pid 0 and paths
in ``last_error`` cut to their last component; error messages (a model folder that cannot be
loaded, a LoRA file) reach it with paths cut the same way (the daemon's log keeps them whole).
An admin (and every loopback caller of a daemon without tokens) sees everything.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import PurePosixPath, PureWindowsPath
from typing import TypeVar

from ..errors import PixelKilnError
from ..types import DaemonStatus, ModelInfo

# An absolute POSIX path, a Windows drive path, a UNC path or a home path, up to a space or a
# quote (paths with spaces are cut at the space: the rest reads as words, naming no folder).
_PATH = re.compile(r"(?:(?<![\w.])[A-Za-z]:[\\/](?!/)|\\\\|~[\\/]|(?<![\w.:/])/)[^\s'\"<>|]*")


def _last_part(path: str) -> str:
    name = PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name
    return f"…/{name}" if name else "…"


def scrub_paths(text: str) -> str:
    """``text`` with every absolute or home path replaced by ``…/`` and its last component."""
    return _PATH.sub(_cut, text)


def _cut(match: re.Match[str]) -> str:
    """A path's last part, and the punctuation that ended the sentence rather than the path."""
    found = match.group(0)
    path = found.rstrip(".,;:)")
    return _last_part(path) + found[len(path) :]


def public_source(source: str) -> str:
    """A hub id or ``builtin:`` source as it is; a path as its last component."""
    if _PATH.match(source) or source.startswith((".", "~")):
        return _last_part(source)
    return source


def public_models(models: list[ModelInfo]) -> list[ModelInfo]:
    return [replace(m, source=public_source(m.source)) for m in models]


def public_status(status: DaemonStatus) -> DaemonStatus:
    runners = [replace(r, pid=0, last_error=scrub_paths(r.last_error)) for r in status.runners]
    return replace(status, runners=runners)


E = TypeVar("E", bound=PixelKilnError)


def hide_paths(exc: E) -> E:
    """``exc`` as a caller without the admin scope sees it: a copy with paths cut, or ``exc``
    itself when it names none (the original stays whole for the log and the records)."""
    message = scrub_paths(exc.message)
    if message == exc.message:
        return exc
    shown = type(exc).__new__(type(exc))
    shown.__dict__.update(exc.__dict__)
    shown.args, shown.message = (message,), message
    return shown
