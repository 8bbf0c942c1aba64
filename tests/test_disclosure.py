"""What a caller without the admin scope sees of the server's machine (services/disclosure.py):
paths cut to their last component, runner pids hidden; hub ids, URLs and plain words kept."""

from __future__ import annotations

import pytest

from pixelkiln_server.errors import InvalidArgument, NotFound
from pixelkiln_server.services.disclosure import (
    hide_paths,
    public_source,
    public_status,
    scrub_paths,
)
from pixelkiln_server.types import DaemonStatus, RunnerInfo

SCRUBBED = [
    (
        "cannot load /home/ann/models/x.safetensors: bad header.",
        "cannot load …/x.safetensors: bad header.",
    ),
    ("C:\\Users\\ann\\models\\x.ckpt failed", "…/x.ckpt failed"),
    ("model file '/srv/weights/b' missing", "model file '…/b' missing"),
    ("(at /tmp/run/x)", "(at …/x)"),
    ("~/models/foo is empty", "…/foo is empty"),
    ("see https://huggingface.co/org/model", "see https://huggingface.co/org/model"),
    ("killed by signal SIGKILL; 1/2 of a/b", "killed by signal SIGKILL; 1/2 of a/b"),
]


@pytest.mark.parametrize(("text", "seen"), SCRUBBED)
def test_paths_are_cut_to_their_last_component(text: str, seen: str) -> None:
    assert scrub_paths(text) == seen


def test_sources() -> None:
    assert public_source("stabilityai/sd-turbo") == "stabilityai/sd-turbo"
    assert public_source("builtin:tiny-sdxl") == "builtin:tiny-sdxl"
    assert (
        public_source("/opt/pk/site-packages/weights/pixelkiln-textures") == "…/pixelkiln-textures"
    )
    assert public_source("D:\\art\\models\\mine.safetensors") == "…/mine.safetensors"


def test_status_hides_pids_and_paths_in_errors() -> None:
    runner = RunnerInfo(
        name="cpu",
        device="cpu",
        state="dead",
        loaded_models=[],
        memory_bytes=0,
        running=0,
        restarts=2,
        last_error="load failed: /home/ann/m/x.safetensors is not a checkpoint",
        pid=4242,
        jobs_run=3,
    )
    status = DaemonStatus("1", "cpu", "float32", 0, [], "m", 0, 8, 0, True, 1, runners=[runner])
    (seen,) = public_status(status).runners
    assert seen.pid == 0 and seen.restarts == 2
    assert seen.last_error == "load failed: …/x.safetensors is not a checkpoint"
    assert status.runners[0].pid == 4242  # the daemon's own view is unchanged


def test_hide_paths_copies_the_error_and_keeps_its_kind() -> None:
    original = InvalidArgument("lora", "cannot load 'style' from /home/ann/loras/style.safetensors")
    shown = hide_paths(original)
    assert type(shown) is InvalidArgument and shown.field == "lora"
    assert shown.message == "lora: cannot load 'style' from …/style.safetensors" == str(shown)
    assert "/home/ann" in original.message  # the log and the records keep it whole
    plain = NotFound("no model named 'x'")
    assert hide_paths(plain) is plain
