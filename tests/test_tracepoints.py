"""Opt-in timestamps along a request's path (tracepoints.py, benchmarks/critical_path.py):
off unless PIXELKILN_TRACE_DIR is set; on, the front and its runner child mark one timeline."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pixelkiln import Client
from pixelkiln_server import tracepoints

from .conftest import ROOT, free_port, start_served


@pytest.fixture
def tracing(tmp_path: Path) -> Iterator[Path]:
    tracepoints.enable(tmp_path)
    try:
        yield tmp_path
    finally:
        tracepoints.enable(None)


def test_marks_write_nothing_unless_tracing_is_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tracepoints.mark("front.received")
    assert list(tmp_path.iterdir()) == []
    assert tracepoints.ENV not in os.environ


def test_a_folder_that_cannot_be_written_turns_tracing_off_not_the_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracepoints.enable(tmp_path / "missing")
    try:
        tracepoints.mark("front.received")  # must not raise: it runs inside a request
        tracepoints.mark("front.queued")
    finally:
        tracepoints.enable(None)
    assert not (tmp_path / "missing").exists()
    warnings = [r for r in caplog.records if tracepoints.ENV in r.getMessage()]
    assert len(warnings) == 1 and "tracing off" in warnings[0].getMessage()


def test_rounds_merge_processes_and_keep_whole_rounds_in_path_order(tmp_path: Path) -> None:
    path = ("a", "b", "c")
    (tmp_path / "10.trace").write_text("a 100\nc 130\na 200\nc 230\na 300\nc 320\n")
    # b twice in the first round (the first one counts), none in the third; a line that is
    # not a mark, and a file of another kind, are ignored.
    (tmp_path / "11.trace").write_text("b 110\nb 120\nb 210\nnot-a-mark\n")
    (tmp_path / "notes.txt").write_text("a 1\n")
    marks = tracepoints.read(tmp_path)
    assert [m[1] for m in marks[:4]] == ["a", "b", "b", "c"]
    rounds = tracepoints.rounds(marks, path)
    assert rounds == [
        {"a": (100, 10), "b": (110, 11), "c": (130, 10)},
        {"a": (200, 10), "b": (210, 11), "c": (230, 10)},
    ]
    # Out of path order (b after c): not a round of this path.
    (tmp_path / "11.trace").write_text("b 140\n")
    assert tracepoints.rounds(tracepoints.read(tmp_path), path) == []


def ws_client(url: str) -> Any:
    """benchmarks/_common.py's WsClient (Generate Envelopes as an engine client sends them):
    the one critical_path.py traces with."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import _common
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return _common.WsClient(url)


@pytest.mark.parametrize("transport", ["grpc", "websocket"])
def test_a_request_through_the_daemon_and_its_runner_child_is_one_timeline(
    tracing: Path, transport: str
) -> None:
    ws_port = free_port()
    # Inherits PIXELKILN_TRACE_DIR from this process.
    proc, address = start_served("--ws-port", str(ws_port))
    options: dict[str, Any] = dict(model="tiny-random", steps=1, seed=3, size=64)
    try:
        tracepoints.mark("client.start")
        if transport == "grpc":
            with Client(address) as client:
                data = client.generate("moss", **options).image.data
        else:
            with ws_client(f"ws://127.0.0.1:{ws_port}/v1") as client:
                data = client.generate("moss", **options).image.data
        tracepoints.mark("client.end")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert data.startswith(b"\x89PNG")
    rounds = tracepoints.rounds(tracepoints.read(tracing))
    assert len(rounds) == 1
    (marks,) = rounds
    pids = {tag: pid for tag, (_, pid) in marks.items()}
    assert pids["client.start"] == pids["client.end"] == os.getpid()
    front = {pids[t] for t in tracepoints.PATH if t.startswith("front.")}
    runner = {pids[t] for t in tracepoints.PATH if t.startswith("runner.")}
    assert front == {proc.pid}
    assert len(runner) == 1 and runner != front  # the runner is a child process of its own
    model_ms = (marks["runner.model_end"][0] - marks["runner.model_start"][0]) / 1e6
    wall_ms = (marks["client.end"][0] - marks["client.start"][0]) / 1e6
    assert 0 < model_ms < wall_ms
