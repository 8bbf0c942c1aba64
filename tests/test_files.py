"""Result files written by the Python client: whole or not at all, on real files."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from pixelkiln._files import write_atomically


def leftovers(folder: Path) -> list[Path]:
    return list(folder.glob(".*.part"))


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "stone.png"
    path.write_bytes(b"old asset")

    def fails(file: object) -> None:
        file.write(b"half of the new")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_atomically(path, fails)
    assert path.read_bytes() == b"old asset"
    assert not leftovers(tmp_path)


def test_concurrent_writers_of_one_path_never_collide(tmp_path: Path) -> None:
    """One fixed temporary name once made a third of these fail."""
    path, errors = tmp_path / "frame.png", []
    payloads = [bytes([i]) * 50_000 for i in range(8)]

    def writer(data: bytes) -> None:
        for _ in range(25):
            try:
                write_atomically(path, lambda f: f.write(data), durable=False)
            except OSError as exc:  # pragma: no cover - the failure this test looks for
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert path.read_bytes() in payloads  # one writer's whole file
    assert not leftovers(tmp_path)


@pytest.mark.skipif(os.name != "posix", reason="symbolic links and mode bits as on POSIX")
def test_links_stay_links_and_modes_stay(tmp_path: Path) -> None:
    target = tmp_path / "assets" / "stone.png"
    target.parent.mkdir()
    target.write_bytes(b"old")
    target.chmod(0o640)
    link = tmp_path / "stone.png"
    link.symlink_to(target)
    write_atomically(link, lambda f: f.write(b"new"))
    assert link.is_symlink() and target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    fresh = tmp_path / "fresh.png"
    write_atomically(fresh, lambda f: f.write(b"x"))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask  # not the 0600 of a temp file


def test_a_folder_or_a_long_name(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        write_atomically(tmp_path, lambda f: f.write(b"x"))
    long = tmp_path / ("a" * 250 + ".png")  # legal; a temporary name built from it was not
    write_atomically(long, lambda f: f.write(b"x"))
    assert long.read_bytes() == b"x"
    assert not leftovers(tmp_path)
