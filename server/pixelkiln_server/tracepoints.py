"""Opt-in timestamps along a request's path, for ``benchmarks/critical_path.py``.

Unless ``PIXELKILN_TRACE_DIR`` names a folder, :func:`mark` does nothing (one ``is None``
check). With it, each process of the daemon (the front, every runner child: they inherit the
environment) appends ``<tag> <time.monotonic_ns()>`` lines to ``<folder>/<pid>.trace``. The
monotonic clock is one clock for every process of a machine (CLOCK_MONOTONIC on Linux,
mach_absolute_time on macOS, QueryPerformanceCounter on Windows), so the lines of the client,
the front and its runners merge into one timeline: :func:`read` merges them, :func:`rounds`
cuts the timeline into one request each. Meant for one request at a time (a benchmark), not
for a daemon under load: marks carry no request id.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "PIXELKILN_TRACE_DIR"
SUFFIX = ".trace"

# Where one request goes, in order (benchmarks/critical_path.py names the stages between).
PATH = (
    "client.start",  # the caller, before Client.generate (the benchmark marks it)
    "front.received",  # Generate (gRPC or the WebSocket carrier) starts, request decoded
    "front.queued",  # converted, validated, admitted and queued
    "front.to_runner",  # the run message goes to the runner
    "runner.received",  # the runner read it
    "runner.model_start",  # the backend's generate_batch starts
    "runner.model_end",  # ... and returns the batch's pixels
    "runner.to_front",  # the result (encoded, with its recipe) goes to the front
    "front.from_runner",  # the front has the batch's last message (its result) decoded
    "front.to_client",  # the Result as protobuf, handed to gRPC or the WebSocket
    "client.end",  # the caller has the Result (the benchmark marks it)
)

_folder: str | None = os.environ.get(ENV) or None
_fd: int | None = None


def mark(tag: str) -> None:
    """Note that this process reached ``tag`` now (nothing unless tracing is on)."""
    if _folder is None:
        return
    _write(tag, time.monotonic_ns())


def _write(tag: str, ns: int) -> None:
    """Append the mark; a folder that cannot be written turns tracing off in this process
    (logged once): a mark never fails the request it marks."""
    global _fd, _folder
    try:
        if _fd is None:
            assert _folder is not None
            name = os.path.join(_folder, f"{os.getpid()}{SUFFIX}")
            _fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(_fd, f"{tag} {ns}\n".encode())
    except OSError as exc:
        log.warning("%s=%s: tracing off in this process (%s)", ENV, _folder, exc)
        _folder = None


def enable(folder: str | Path | None) -> None:
    """Trace this process into ``folder`` (None: stop), and the processes it starts from now
    on (through the environment)."""
    global _folder, _fd
    if _fd is not None:
        os.close(_fd)
        _fd = None
    _folder = None if folder is None else str(folder)
    if _folder is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = _folder


def read(folder: str | Path) -> list[tuple[int, str, int]]:
    """Every mark in ``folder`` as (monotonic ns, tag, pid), in time order."""
    marks = []
    for path in Path(folder).glob(f"*{SUFFIX}"):
        pid = int(path.stem)
        for line in path.read_text().splitlines():
            tag, _, ns = line.rpartition(" ")
            if tag and ns.isdigit():
                marks.append((int(ns), tag, pid))
    marks.sort()
    return marks


def rounds(
    marks: list[tuple[int, str, int]], path: tuple[str, ...] = PATH
) -> list[dict[str, tuple[int, int]]]:
    """The timeline cut at each ``path[0]``: per round, each tag's first time and its pid
    (ns, pid); a tag seen again in the round (the runner reading a later message) is not
    on the path. Only rounds in which every tag of ``path`` appears, in ``path``'s order."""
    out: list[dict[str, tuple[int, int]]] = []
    current: dict[str, tuple[int, int]] | None = None
    for ns, tag, pid in marks:
        if tag == path[0]:
            current = {}
            out.append(current)
        if current is not None and tag in path and tag not in current:
            current[tag] = (ns, pid)
    return [
        r
        for r in out
        if all(t in r for t in path)
        and all(r[a][0] <= r[b][0] for a, b in zip(path, path[1:], strict=False))
    ]
