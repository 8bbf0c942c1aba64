"""Save To never replaces a file and refuses ``//`` in an unsaved .blend, the seed field takes
any uint64, and a daemon killed during a generation is reported as lost: headless with bpy
(tests/blender/fixes_scenario.py) against a daemon of its own, which the last step kills;
skipped without the bpy venv (``bash tools/setup_bpy_venv.sh``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from pixelkiln import PixelKilnError

from ..conftest import start_served
from .test_blender_addon import BPY_PYTHON, EXTENSION, NO_BPY, client_site, load, run_bpy, step

__all__ = ["client_site"]  # the fixture, shared with test_blender_addon

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, client_site: Path) -> Iterator[dict[str, Any]]:
    if not BPY_PYTHON.exists():
        pytest.skip(NO_BPY)
    work = tmp_path_factory.mktemp("blender_fixes")
    proc, address = start_served()  # its own: the scenario's last step kills it
    try:
        out = work / "report.json"
        run_bpy("fixes_scenario.py", address, str(proc.pid), str(work), str(out), site=client_site)
        yield dict(json.loads(out.read_text()))
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_save_to_never_replaces_an_earlier_result(report: dict[str, Any]) -> None:
    r = step(report, "no_overwrite")
    first, second = r["first"], r["second"]
    assert first["level"] == second["level"] == "INFO", (first, second)
    assert (first["seed"], second["seed"]) == ("1", "2")
    # The name "stone" was free again: a new stem, shared by the result and its maps.
    assert r["before"] == ["stone.png", "stone_normal.png", "stone_roughness.png"]
    assert r["after"] == sorted(
        [*r["before"], "stone_2.png", "stone_2_normal.png", "stone_2_roughness.png"]
    )
    assert r["unchanged"], "the first result's files must stay as they were"
    saved = Path(r["image_path"])
    assert saved.name == "stone_2.png"
    assert second["status"].endswith(f"; saved stone_2.png and maps in {saved.parent}")


def test_save_to_refuses_a_relative_folder_in_an_unsaved_blend(report: dict[str, Any]) -> None:
    r = step(report, "relative_unsaved")
    assert r["blend_path"] == ""
    assert r["level"] == "ERROR" and "save the .blend first (// means next to it)" in r["status"]
    assert r["raised"] and "save the .blend first" in r["raised"]  # the operator refused
    assert r["leftover_images"] == [] and not r["busy"]
    assert r["in_cwd"] == [], "nothing may land in Blender's working directory"
    # Saved: // is next to the .blend.
    assert r["saved"]["level"] == "INFO", r["saved"]
    assert r["next_to_blend"] == ["red brick wall.png"]


def test_seed_field_takes_any_uint64_and_refuses_other_text(report: dict[str, Any]) -> None:
    r = step(report, "big_seed")
    for seed in ("3000000000", str(2**64 - 1)):
        got = r[seed]
        assert "set_failed" not in got, got["set_failed"]
        assert got["field"] == seed and got["seed"] == seed  # as Accepted and the image say
        assert got["level"] == "INFO" and f"seed {seed}" in got["status"], got
    bad = r["not_a_number"]
    assert "set_failed" not in bad, bad["set_failed"]
    assert bad["level"] == "ERROR" and "Seed '12abc' is not a whole number" in bad["status"]
    assert bad["raised"] and "Random Seed" in bad["raised"]
    assert r["old_blend_seed"] == "4242"  # an int saved by an older version still reads


def test_a_daemon_killed_mid_request_is_reported_as_lost(report: dict[str, Any]) -> None:
    r = step(report, "daemon_lost")
    assert r["saw_progress"] and r["status_at_kill"].startswith("Step"), r
    assert r["finished"] and not r["busy"] and r["level"] == "ERROR"
    assert "not with gRPC" not in r["status"] and "wrong port" not in r["status"]
    assert "during the request: the daemon went away" in r["status"], r["status"]
    assert "retry" in r["status"]
    assert r["leftover_images"] == []


def test_unavailable_after_the_daemon_answered_means_it_went_away() -> None:
    bridge = load("pixelkiln_blender_bridge", EXTENSION / "bridge.py")
    closed = PixelKilnError(grpc.StatusCode.UNAVAILABLE, "Socket closed")
    before = bridge.describe_error(closed, "127.0.0.1:50051")
    assert "not with gRPC" in before  # never answered: something else listens there
    after = bridge.describe_error(closed, "127.0.0.1:50051", connected=True)
    assert "during the request: the daemon went away" in after and "wrong port" not in after
