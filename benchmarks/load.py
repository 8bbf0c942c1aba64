"""Load and soak: many clients mixing gRPC, WebSocket and live sessions, with random cancels
and disconnects, against one `pixelkiln serve` on tiny-random.

    python benchmarks/load.py [--clients 32] [--requests 50] [--seed 1] [--out PATH]

Each client runs ``--requests`` operations, each one of: a gRPC generate (one in eight is
cancelled after its first progress event), a WebSocket generate on its own connection (one
in eight disconnects before the result), or a live session of three frames. Every operation
must end in a result, a status code, or the client's own cancel/disconnect; anything that does
not within its deadline is a lost response (goal 0). Prints p50/p99 of completed operations,
refusals by code, and the resident memory of the daemon and its runners before and after
(goal: growth <= 10%). Measured, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import statistics
import sys
import time
from pathlib import Path

import _common as bench  # the script's folder is on sys.path
import numpy as np
from websockets.asyncio.client import connect

from pixelkiln import AsyncClient, PixelKilnError, Progress
from pixelkiln.v1 import envelope_pb2 as env_pb
from pixelkiln.v1 import generator_pb2 as gen_pb

DEADLINE_S = 120.0
SKETCH = np.full((64, 64, 3), 90, np.uint8)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc; 0 where it cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Tally:
    def __init__(self) -> None:
        self.latency: list[float] = []
        self.outcomes: collections.Counter[str] = collections.Counter()

    def done(self, started: float, outcome: str) -> None:
        self.outcomes[outcome] += 1
        if outcome == "result":
            self.latency.append((time.perf_counter() - started) * 1000.0)


async def grpc_generate(client: AsyncClient, rng: random.Random, tally: Tally) -> None:
    started, cancel = time.perf_counter(), rng.random() < 1 / 8
    try:
        async for event in client.stream("load", seed=rng.randrange(2**31), steps=2):
            if cancel and isinstance(event, Progress):
                await client.cancel(event.request_id)
        tally.done(started, "result")
    except PixelKilnError as exc:
        tally.done(started, "cancelled (own)" if cancel and exc.code.name == "CANCELLED"
                   else exc.code.name)  # fmt: skip


async def ws_generate(url: str, rng: random.Random, tally: Tally) -> None:
    started, disconnect = time.perf_counter(), rng.random() < 1 / 8
    request = gen_pb.GenerateRequest(prompt="load", seed=rng.randrange(2**31), steps=2)
    async with connect(url, max_size=None) as ws:
        await ws.send(env_pb.Envelope(request_id="g", generate=request).SerializeToString())
        while True:
            envelope = env_pb.Envelope.FromString(await ws.recv())
            if disconnect:
                tally.done(started, "disconnected (own)")
                return  # leaving the block closes the connection mid-request
            if envelope.HasField("error"):
                tally.done(started, envelope.error.code_name)
                return
            if envelope.event.HasField("result"):
                tally.done(started, "result")
                return


async def live(client: AsyncClient, rng: random.Random, tally: Tally) -> None:
    started = time.perf_counter()
    try:
        async with client.live(prompt="lava", strength=0.5, seed=rng.randrange(2**31)) as s:
            frames = s.__aiter__()
            for i in range(3):
                sketch = SKETCH.copy()
                sketch[i] = 255
                await s.send(bench_png(sketch))
                await frames.__anext__()
        tally.done(started, "result")
    except PixelKilnError as exc:
        tally.done(started, exc.code.name)


def bench_png(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


async def one_client(index: int, args: argparse.Namespace, addr: str, url: str, tally: Tally):
    rng = random.Random(args.seed * 1000 + index)
    async with AsyncClient(addr, timeout=DEADLINE_S) as client:
        for _ in range(args.requests):
            pick = rng.random()
            if pick < 0.6:
                op = grpc_generate(client, rng, tally)
            elif pick < 0.85:
                op = ws_generate(url, rng, tally)
            else:
                op = live(client, rng, tally)
            try:
                await asyncio.wait_for(op, DEADLINE_S)
            except TimeoutError:
                tally.outcomes["LOST (no answer within the deadline)"] += 1
            except OSError as exc:
                tally.outcomes[f"connection error {type(exc).__name__}"] += 1


async def run(args: argparse.Namespace, daemon: bench.ChildDaemon, ws_port: int) -> dict:
    url = f"ws://127.0.0.1:{ws_port}/v1"
    async with AsyncClient(daemon.address) as client:
        status = await client.status()
        pids = [daemon.proc.pid if daemon.proc else 0, *(r.pid for r in status.runners)]
        await client.generate("warm", steps=2, seed=1)
    before = sum(rss_bytes(p) for p in pids)
    tally = Tally()
    t0 = time.perf_counter()
    await asyncio.gather(
        *(one_client(i, args, daemon.address, url, tally) for i in range(args.clients))
    )
    wall = time.perf_counter() - t0
    async with AsyncClient(daemon.address) as client:  # runners may have been restarted
        status = await client.status()
        pids = [pids[0], *(r.pid for r in status.runners)]
        await client.generate("after", steps=2, seed=2)
    after = sum(rss_bytes(p) for p in pids)
    return {"tally": tally, "wall_s": wall, "rss_before": before, "rss_after": after}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=bench.RESULTS_DIR / "load.json")
    args = parser.parse_args()
    env = bench.environment()
    print(bench.env_line(env), flush=True)
    ws_port = bench.free_port()
    with bench.ChildDaemon("--ws-port", str(ws_port), "--queue-size", "64") as daemon:
        out = asyncio.run(run(args, daemon, ws_port))
    tally: Tally = out["tally"]
    total = sum(tally.outcomes.values())
    lost = sum(n for k, n in tally.outcomes.items() if k.startswith("LOST"))
    lat = sorted(tally.latency)
    p50 = statistics.median(lat) if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
    growth = out["rss_after"] / out["rss_before"] - 1 if out["rss_before"] else float("nan")
    print(f"\n{args.clients} clients x {args.requests} operations in {out['wall_s']:.1f} s")
    bench.print_table(["outcome", "count"], [[k, str(n)] for k, n in tally.outcomes.most_common()])
    rows = [
        ["lost responses", str(lost), "0", "PASS" if lost == 0 else "MISS"],
        ["completed p50 / p99 ms", f"{p50:.0f} / {p99:.0f}", "", ""],
        ["RSS before -> after MiB", f"{out['rss_before'] / 2**20:.0f} -> "
         f"{out['rss_after'] / 2**20:.0f} ({growth:+.1%})", "<= +10%",
         "PASS" if growth <= 0.10 else "MISS"],
    ]  # fmt: skip
    bench.print_table(["measure", "value", "goal", ""], rows)
    data = {
        "benchmark": "load",
        "environment": env,
        "operations": total,
        "outcomes": dict(tally.outcomes),
        "lost": lost,
        "p50_ms": p50,
        "p99_ms": p99,
        "rss_before": out["rss_before"],
        "rss_after": out["rss_after"],
        "wall_s": out["wall_s"],
    }
    print(f"wrote {bench.write_json(args.out, data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
