"""onnx-cache pruning: a model's older exports and abandoned temporaries go, nothing else."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pixelkiln_server.backends import export_cache

NOW = 1_800_000_000.0
DAY = 24 * 3600.0


def folder(cache: Path, name: str, age_s: float) -> Path:
    path = cache / name
    path.mkdir(parents=True)
    (path / "unet.onnx").write_bytes(b"weights")
    os.utime(path, (NOW - age_s, NOW - age_s))
    return path


def test_a_models_older_exports_beyond_the_newest_go(tmp_path: Path) -> None:
    in_use = folder(tmp_path, "brick-" + "a" * 16, 0)
    newest_other = folder(tmp_path, "brick-" + "b" * 16, 60)
    older = [folder(tmp_path, f"brick-{c * 16}", 3600 * (i + 2)) for i, c in enumerate("cde")]
    removed = export_cache.prune(in_use, now=NOW)
    assert sorted(removed) == sorted(older)
    assert in_use.is_dir() and newest_other.is_dir()
    assert not any(p.exists() for p in older)


def test_the_export_in_use_stays_even_when_it_is_the_oldest(tmp_path: Path) -> None:
    in_use = folder(tmp_path, "brick-" + "a" * 16, 10 * DAY)
    others = [folder(tmp_path, f"brick-{c * 16}", 60 * (i + 1)) for i, c in enumerate("bc")]
    export_cache.prune(in_use, now=NOW)
    assert in_use.is_dir() and others[0].is_dir() and not others[1].exists()


def test_other_models_and_look_alike_names_are_never_touched(tmp_path: Path) -> None:
    in_use = folder(tmp_path, "brick-" + "a" * 16, 0)
    kept = [
        folder(tmp_path, "brick-" + "b" * 16, 60),  # the model's newest other export
        folder(tmp_path, "stone-" + "c" * 16, 10 * DAY),  # another model
        folder(tmp_path, "brick-wall-" + "d" * 16, 10 * DAY),  # another model, same prefix
        folder(tmp_path, "brick-notahexkey00000", 10 * DAY),  # not an export's name
        folder(tmp_path, "brick-" + "E" * 16, 10 * DAY),  # keys are lower-case hex
    ]
    (tmp_path / ("brick-" + "f" * 16)).write_bytes(b"a file, not an export")
    assert export_cache.prune(in_use, now=NOW) == []
    assert all(p.is_dir() for p in kept)
    assert (tmp_path / ("brick-" + "f" * 16)).is_file()


def test_abandoned_temporaries_go_and_one_in_progress_stays(tmp_path: Path) -> None:
    in_use = folder(tmp_path, "brick-" + "a" * 16, 0)
    abandoned = folder(tmp_path, f".stone-{'c' * 16}.tmp-x1y2", export_cache.ABANDONED_S + 60)
    in_progress = folder(tmp_path, f".brick-{'b' * 16}.tmp-z3w4", 120)
    assert export_cache.prune(in_use, now=NOW) == [abandoned]
    assert in_progress.is_dir()


def test_a_use_marks_the_export_as_recent(tmp_path: Path) -> None:
    in_use = folder(tmp_path, "brick-" + "a" * 16, 10 * DAY)
    export_cache.mark_used(in_use)
    assert abs(in_use.stat().st_mtime - time.time()) < 60
