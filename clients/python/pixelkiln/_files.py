"""Writing result files so that a crash, a full disk or two writers never leave a broken one."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(
    path: str | Path, write: Callable[[BinaryIO], object], *, durable: bool = True
) -> Path:
    """Write ``path`` through a temporary file beside it, renamed over it once complete: the
    file that was there stays whole until the new one is, and a failed write leaves nothing
    behind. Each call has its own temporary name, so two writers of one path do not collide
    (the last rename wins). Through a symbolic link the link's target is replaced and the link
    stays; an existing file keeps its permission bits. ``durable``: the bytes reach the disk
    before the rename (a power cut after it cannot leave an empty file)."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    if target.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(target))
    if target.exists() and not os.access(target, os.W_OK):
        # A read-only file (one a version control system has not opened for edit) is not
        # replaced: POSIX would do it silently, Windows refuses the rename and the read-only
        # copy of its mode on the temporary file would stop its removal too.
        raise PermissionError(
            13, "is read-only: make it writable (or check it out) first", str(path)
        )
    # A short prefix: the name must stay within the file system's 255 bytes.
    tmp = target.with_name(f".{target.name[:64]}.{secrets.token_hex(4)}.part")
    try:
        with open(tmp, "xb") as file:
            write(file)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        with contextlib.suppress(OSError):  # a new file keeps the umask's bits
            shutil.copymode(target, tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename == str(tmp):
            raise _about(exc, path, target) from None
        raise
    return path


def _about(exc: OSError, path: Path, target: Path) -> OSError:
    """``exc`` about the temporary file, said about ``path`` (the name the caller knows)."""
    reason = exc.strerror
    if not target.parent.is_dir():
        reason = f"folder {target.parent} does not exist"
    return OSError(exc.errno, reason, str(path))
