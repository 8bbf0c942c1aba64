"""The live front's own cost per frame: everything but the model, through the runner hop.

    python benchmarks/live_front.py [--frames 200] [--rounds 3] [--before DIR]

A daemon with a child-process runner serves the fake model (no torch, zero step time);
a live session asks for one frame after another (a new seed each, so none repeats) as raw
RGBA8 (and PNG for scale) at 64x64 and 256x256, over gRPC and (raw) over the WebSocket
carrier. Per frame: the client's round trip minus
the model time the runner reports = the front overhead (session, engine, pool, runner host
encode, port, gRPC). ``--before DIR``: a checkout of another commit (``git archive C | tar
-x -C DIR``) measured in alternating child processes against this tree, side by side.
Measured, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_ms, percentile, print_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CASES = [(64, "raw_rgba8"), (256, "raw_rgba8"), (64, "png"), (256, "png")]


async def measure(frames: int) -> dict[str, dict[str, float]]:
    from dataclasses import replace

    from pixelkiln import AsyncClient
    from pixelkiln_server.app import Daemon
    from pixelkiln_server.backends.fake import FAKE_SPEC
    from pixelkiln_server.config import ServerConfig

    spec = replace(FAKE_SPEC, native_width=256, native_height=256)
    home = Path(tempfile.mkdtemp(prefix="pk-front-"))
    config = ServerConfig(port=0, ws_port=0, home=home, default_model="fake", runner="process")  # type: ignore[call-arg]
    daemon = Daemon(config)
    daemon.engine.registry.register(spec)
    await daemon.start()
    await daemon.wait_ready()
    out: dict[str, dict[str, float]] = {}
    cpu = CpuPerFrame(daemon.engine.runners[0].pid)
    try:
        async with AsyncClient(daemon.address, timeout=600) as client:
            for size, encoding in CASES:
                overhead: list[float] = []
                settings = {"prompt": "step_ms=0", "steps": 1, "size": size}
                async with client.live(**settings, output_encoding=encoding) as session:
                    frames_iter = session.__aiter__()
                    for i in range(frames + 20):
                        if i == 20:  # after the warm-up
                            cpu.start()
                        started = time.perf_counter()
                        await session.send(seed=i + 1)
                        frame = await frames_iter.__anext__()
                        rtt = (time.perf_counter() - started) * 1000.0
                        if i >= 20:
                            overhead.append(rtt - frame.timings["model_ms"])
                out[f"{size} {encoding}"] = {
                    "p50": percentile(overhead, 50),
                    "p99": percentile(overhead, 99),
                    **cpu.per_frame(frames),
                }
        for size in (64, 256):
            out[f"{size} raw_rgba8 ws"] = await measure_ws(daemon.ws_url, size, frames, cpu)
    finally:
        await daemon.stop(0)
    return out


class CpuPerFrame:
    """CPU time per frame of this process (the daemon's front and the client: one process
    here) and of the runner child (Linux's /proc; NaN elsewhere)."""

    def __init__(self, runner_pid: int | None) -> None:
        self.runner_pid = runner_pid or 0
        self.here = self.runner = 0.0

    def start(self) -> None:
        self.here, self.runner = time.process_time(), cpu_ms(self.runner_pid)

    def per_frame(self, frames: int) -> dict[str, float]:
        here = (time.process_time() - self.here) * 1000.0 / frames
        return {"cpu_here": here, "cpu_runner": (cpu_ms(self.runner_pid) - self.runner) / frames}


async def measure_ws(url: str, size: int, frames: int, cpu: CpuPerFrame) -> dict[str, float]:
    """The same over the WebSocket carrier (protobuf Envelopes)."""
    from websockets.asyncio.client import connect

    from pixelkiln.v1 import envelope_pb2 as env_pb
    from pixelkiln.v1 import generator_pb2 as gen_pb
    from pixelkiln.v1 import image_pb2 as img_pb

    overhead: list[float] = []
    async with connect(url, max_size=2**26) as ws:
        for i in range(frames + 20):
            if i == 20:  # after the warm-up
                cpu.start()
            live_input = gen_pb.LiveInput(seq=i + 1)
            live_input.settings.seed = i + 1
            if i == 0:
                s = live_input.settings
                s.prompt, s.steps, s.width, s.height = "step_ms=0", 1, size, size
                s.output_encoding = img_pb.ENCODING_RAW_RGBA8
            env = env_pb.Envelope(request_id="front", live_input=live_input)
            started = time.perf_counter()
            await ws.send(env.SerializeToString())
            while True:
                answer = env_pb.Envelope.FromString(await ws.recv())
                if answer.WhichOneof("body") == "live_frame":
                    break
                if answer.WhichOneof("body") == "error":
                    raise RuntimeError(answer.error.message)
            rtt = (time.perf_counter() - started) * 1000.0
            if i >= 20:
                overhead.append(rtt - answer.live_frame.timings.model_ms)
    return {
        "p50": percentile(overhead, 50),
        "p99": percentile(overhead, 99),
        **cpu.per_frame(frames),
    }


def child(tree: Path | None, frames: int) -> dict[str, dict[str, float]]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(tree / "server"), str(tree / "clients" / "python")]
        )
    proc = subprocess.run(
        [sys.executable, __file__, "--child", "--frames", str(frames)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, dict[str, float]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def middle(runs: list[dict[str, dict[str, float]]], key: str, field: str) -> float:
    """The median round's ``field`` of case ``key`` (the upper middle of an even count)."""
    return sorted(r[key][field] for r in runs)[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, default=None, help="another checkout to compare")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import pixelkiln_server

        print(f"pixelkiln_server from {pixelkiln_server.__file__}", file=sys.stderr)
        print(json.dumps(asyncio.run(measure(args.frames))))
        return
    arms: dict[str, list[dict[str, dict[str, float]]]] = {"after": [], "before": []}
    for _ in range(args.rounds):
        if args.before is not None:
            arms["before"].append(child(args.before, args.frames))
        arms["after"].append(child(None, args.frames))
    rows: list[list[Any]] = []
    keys = [f"{size} {encoding}" for size, encoding in CASES]
    for key in keys + ["64 raw_rgba8 ws", "256 raw_rgba8 ws"]:
        row: list[Any] = [key]
        medians = {}
        for arm in ("before", "after"):
            runs = arms[arm]
            if not runs:
                continue
            p50, p99 = middle(runs, key, "p50"), middle(runs, key, "p99")
            medians[arm] = p50
            row += [f"{p50:.2f}", f"{p99:.2f}"]
        if len(medians) == 2:
            row.append(f"{medians['after'] / medians['before']:.2f}")
        row += [f"{middle(arms['after'], key, k):.2f}" for k in ("cpu_here", "cpu_runner")]
        rows.append(row)
    headers = ["frame", "p50 ms", "p99 ms"]
    if args.before is not None:
        headers = ["frame", "before p50", "before p99", "after p50", "after p99", "after/before"]
    headers += ["CPU ms/frame: front + client", "runner"]
    print(f"front overhead per live frame (round trip - model time), {args.frames} frames, "
          f"median of {args.rounds} rounds")  # fmt: skip
    print_table(headers, rows)


if __name__ == "__main__":
    main()
