"""What this machine charges to wake a sleeping process: the floor under a multi-process
request path's extra time on an idle machine (critical_path.py, overhead_pool.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from _common import percentile


def _echo(conn: Any) -> None:
    """The child of :func:`hand_off_us`: sends back what it gets until it gets an empty message."""
    while message := conn.recv_bytes():
        conn.send_bytes(message)


def hand_off_us(gaps_ms: Sequence[float] = (0.0, 20.0), rounds: int = 200) -> dict[str, float]:
    """What this machine charges to wake a process: the median round trip (microseconds) of
    100 bytes to a spawned child and back, back to back and after each pause in ``gaps_ms``.

    A request to the daemon crosses several such hand-offs that the in-process arm never pays
    (the client's thread, gRPC's threads, the front's event loop, the runner child, and back).
    Back to back they are cheap; after an idle pause each one waits for the OS to wake a
    sleeping thread (on a VM, for the host to run an idle virtual CPU again), which is the
    floor under the daemon's extra milliseconds on an idle machine."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    child = ctx.Process(target=_echo, args=(there,), daemon=True)
    child.start()
    payload, out = b"x" * 100, {}
    try:
        for _ in range(20):  # the child is up once it answers; then warm the path
            here.send_bytes(payload)
            here.recv_bytes()
        for gap in gaps_ms:
            trips = []
            for _ in range(rounds):
                if gap:
                    time.sleep(gap / 1000.0)
                started = time.perf_counter()
                here.send_bytes(payload)
                here.recv_bytes()
                trips.append((time.perf_counter() - started) * 1e6)
            out[f"{gap:g} ms"] = percentile(trips, 50)
    finally:
        here.send_bytes(b"")
        child.join(5)
        here.close()
    return out


def hand_off_line(costs: dict[str, float]) -> str:
    """:func:`hand_off_us`'s result as one line of a report."""
    shown = ", ".join(f"{v:.0f} us after {k}" for k, v in costs.items())
    shown = shown.replace("after 0 ms", "back to back")
    return f"process hand-off round trip on this machine (median): {shown}"
