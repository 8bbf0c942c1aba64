"""Live mode: frames/s of the default model, and latency under a 30 fps sketch source.

    python benchmarks/live.py [--seconds 10] [--fps 30] [--quick] [--out ...]
                              [--rate-model pixelkiln-textures] [--rate-sizes 64,128]
                              [--runtimes auto,torch,onnx] [--skip-latency] [--skip-rate]

Frames/s (issue #18 item 9; goal >= 15 frames/s at 64x64 on 2 cores): the default model
(``pixelkiln-textures``) served by ``pixelkiln serve`` (runner in a child process), a live
session over gRPC fed closed-loop (the next sketch goes out when the last frame arrives, so
nothing is skipped or queued), raw RGBA8 frames, the model's own steps and guidance at the
session's default strength (0.5), for each size and runtime (``serve --runtime``): auto
(serve's default: the runtime measured faster at load, named in the table), torch (the
diffusers backend, its lean live path) and onnx (the model's ONNX export, made at load and
cached in $PIXELKILN_HOME/onnx-cache). frames/s = frames / wall time.

Latency: a synthetic sketch (a stroke that moves every frame, so no input repeats) is sent at --fps
for --seconds to a tiny-random daemon in a child process, sized so one frame takes about
50 ms of model time. Per processed input: input-to-frame latency. With latest-wins the
floor for a processed input is the model time plus, on average, half the input interval.
Goals: p50 within 15% of that floor; p99 <= model time + one input interval + 20 ms; no
growth (the last seconds are no slower than the first). Measured, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS_DIR,
    ChildDaemon,
    env_line,
    environment,
    free_port,
    percentile,
    pin_threads,
    print_goals,
    print_table,
    write_json,
)


def sketches(n: int, size: int) -> list[bytes]:
    out = []
    for i in range(n):
        img = np.full((size, size, 3), 235, np.uint8)
        x = int((i / max(n - 1, 1)) * (size - 12))
        img[size // 3 : size // 3 + 8, : x + 12] = (120, 60, 30)  # a stroke that grows
        img[:, x : x + 4] = (40, 40, 40)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", compress_level=1)
        out.append(buf.getvalue())
    return out


async def run_grpc(
    address: str, frames: list[bytes], fps: float, settings: dict[str, Any]
) -> dict[str, Any]:
    from pixelkiln import AsyncClient

    sent: dict[int, float] = {}
    lat: list[tuple[float, float, float]] = []  # (arrival time, latency ms, model ms)
    async with AsyncClient(address, timeout=600) as client, client.live(**settings) as session:

        async def sender() -> None:
            start = time.perf_counter()
            for i, data in enumerate(frames):
                await asyncio.sleep(max(0.0, start + i / fps - time.perf_counter()))
                sent[i + 1] = time.perf_counter()
                await session.send(data)
            await session.close()

        task = asyncio.create_task(sender())
        async for frame in session:
            now = time.perf_counter()
            if frame.image is not None:
                lat.append((now, (now - sent[frame.seq]) * 1000, frame.timings["model_ms"]))
        await task
    return summarize(lat, len(frames))


async def run_ws(
    url: str, frames: list[bytes], fps: float, settings: dict[str, Any]
) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    from pixelkiln._request import build_live_input
    from pixelkiln.v1 import envelope_pb2 as env_pb

    sent: dict[int, float] = {}
    lat: list[tuple[float, float, float]] = []
    async with connect(url, max_size=64 * 2**20, compression=None) as ws:

        async def sender() -> None:
            start = time.perf_counter()
            for i, data in enumerate(frames):
                await asyncio.sleep(max(0.0, start + i / fps - time.perf_counter()))
                sent[i + 1] = time.perf_counter()
                extra = settings if i == 0 else {}
                env = env_pb.Envelope(
                    request_id="live", live_input=build_live_input(i + 1, data, **extra)
                )
                await ws.send(env.SerializeToString())
            await ws.send(
                env_pb.Envelope(request_id="live", live_end=env_pb.LiveEnd()).SerializeToString()
            )

        task = asyncio.create_task(sender())
        while True:
            env = env_pb.Envelope.FromString(await ws.recv())
            kind = env.WhichOneof("body")
            if kind == "live_end":
                break
            if kind == "error":
                raise RuntimeError(env.error.message)
            f = env.live_frame
            now = time.perf_counter()
            if f.image.data:
                lat.append((now, (now - sent[f.seq]) * 1000, f.timings.model_ms))
        await task
    return summarize(lat, len(frames))


async def run_rate(address: str, frames: list[bytes], settings: dict[str, Any]) -> dict[str, Any]:
    """Closed loop: send a sketch, wait for its frame, send the next; the first 3 warm up."""
    from pixelkiln import AsyncClient

    wall, model, lags = [], [], []
    async with AsyncClient(address, timeout=600) as client, client.live(**settings) as session:
        frames_in = session.__aiter__()
        for i, data in enumerate(frames):
            t0 = time.perf_counter()
            seq = await session.send(data)
            frame = await frames_in.__anext__()
            if getattr(frame, "stream_batch", False) and frame.seq != seq:
                lags.append(seq - frame.seq)
            if i >= 3:
                wall.append((time.perf_counter() - t0) * 1000)
                model.append(frame.timings["model_ms"])
    total_s = sum(wall) / 1000
    return {
        "frames": len(wall),
        "frames_per_s": len(wall) / total_s if total_s else math.nan,
        "latency_p50_ms": percentile(wall, 50),
        "latency_p99_ms": percentile(wall, 99),
        "model_p50_ms": percentile(model, 50),
    }


def served_runtime(address: str, model: str) -> str:
    """The runtime the daemon serves ``model`` on, as Status reports it ("onnx (measured...)")."""
    from pixelkiln import Client

    with Client(address, timeout=60) as client:
        for loaded in client.status().models:
            if loaded.name == model:
                return str(loaded.options.get("runtime", "?"))
    return "?"


def onnx_folder(model: str) -> Path:
    """``model`` exported to ONNX under $PIXELKILN_HOME/onnx/<model> (once), for
    peer_streamdiffusion.py's ONNX arm (a folder served by the onnx backend)."""
    from pixelkiln_server.catalogue import ONNX_MANIFEST
    from pixelkiln_server.config import default_home

    home = default_home()
    out = home / "onnx" / model
    if not (out / ONNX_MANIFEST).is_file():
        from pixelkiln_server.onnx_export import run_export

        args = argparse.Namespace(model=model, dir=out, fp16=False, home=home, offline=True)
        if run_export(args) != 0:
            raise SystemExit(f"export of {model} to {out} failed")
    return out


def rate_block(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    rows, goals = [], []
    for runtime in args.runtimes.split(","):
        with ChildDaemon("--model", args.rate_model, "--runtime", runtime) as daemon:
            served = served_runtime(daemon.address, args.rate_model)
            for size in (int(x) for x in args.rate_sizes.split(",")):
                settings: dict[str, Any] = {"prompt": args.rate_prompt, "size": size, "seed": 1}
                settings["output_encoding"] = "raw"
                if args.rate_steps:
                    settings["steps"] = args.rate_steps
                n = 3 + (10 if args.quick else args.rate_frames)
                r = asyncio.run(run_rate(daemon.address, sketches(n, size), settings))
                r["served"] = served
                results[f"{runtime} {size}"] = r
                print(f"{runtime} {size}: {r['frames_per_s']:.2f} frames/s", file=sys.stderr)
                timing = [r["latency_p50_ms"], r["latency_p99_ms"], r["model_p50_ms"]]
                rows.append([runtime, served.split(" ")[0], size, r["frames"], r["frames_per_s"],
                             *timing])  # fmt: skip
                if size == 64:
                    goals.append((f"{runtime} 64x64: 15 / frames per s", 15 / r["frames_per_s"], 1))
        print(f"{runtime}: {served}", file=sys.stderr)
    print(f"\nframes/s, {args.rate_model}, closed loop, raw frames, strength 0.5")
    header = ["--runtime", "served on", "size", "frames", "frames/s", "p50 ms", "p99 ms"]
    print_table([*header, "model p50"], rows)
    print("\ngoals (issue #18 item 9: >= 15 frames/s at 64x64)")
    results["goals"] = print_goals(goals)
    return results


def summarize(lat: list[tuple[float, float, float]], inputs: int) -> dict[str, Any]:
    latencies = [x[1] for x in lat]
    third = max(1, len(lat) // 3)
    return {
        "inputs": inputs,
        "processed": len(lat),
        "skipped": inputs - len(lat),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p99_ms": percentile(latencies, 99),
        "model_p50_ms": percentile([x[2] for x in lat], 50),
        "first_third_p50_ms": percentile(latencies[:third], 50),
        "last_third_p50_ms": percentile(latencies[-third:], 50),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--size", type=int, default=128, help="frame side (~50 ms at 128)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="2 s per transport (CI smoke)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "live.json")
    parser.add_argument("--rate-model", default="pixelkiln-textures")
    parser.add_argument("--rate-sizes", default="64,128")
    parser.add_argument("--rate-frames", type=int, default=60, help="timed frames per row")
    parser.add_argument("--rate-steps", type=int, default=0, help="0: the model's default")
    parser.add_argument("--rate-prompt", default="red brick wall")
    parser.add_argument("--runtimes", default="auto,torch,onnx")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-rate", action="store_true")
    parser.add_argument(
        "--omp-passive",
        action="store_true",
        help="OMP_WAIT_POLICY=PASSIVE for the daemons (on a loaded machine spinning OpenMP "
        "threads slowed 2-thread torch 20-60x here)",
    )
    args = parser.parse_args()
    pin_threads(0, args.omp_passive)  # the child daemons inherit it
    seconds = 2.0 if args.quick else args.seconds
    frames = sketches(int(seconds * args.fps), args.size)
    settings = {
        "prompt": "red brick wall",
        "strength": 0.5,
        "steps": args.steps,
        "seed": 1,
        "size": args.size,
    }
    ws_port = free_port()
    env = environment()
    print(env_line(env))
    results: dict[str, Any] = {"environment": env, "settings": settings, "fps": args.fps}
    if not args.skip_rate:
        results["rate"] = rate_block(args)
    if args.skip_latency:
        print(f"\nwrote {write_json(args.out, results)}")
        return 0
    with ChildDaemon("--ws-port", str(ws_port)) as daemon:
        url = f"ws://127.0.0.1:{ws_port}/v1"
        asyncio.run(run_grpc(daemon.address, frames[:10], args.fps, settings))  # warm
        results["grpc"] = asyncio.run(run_grpc(daemon.address, frames, args.fps, settings))
        results["websocket"] = asyncio.run(run_ws(url, frames, args.fps, settings))
    interval = 1000.0 / args.fps
    rows, goals = [], []
    for name in ("grpc", "websocket"):
        r = results[name]
        floor = r["model_p50_ms"] + interval / 2
        r["floor_ms"] = floor
        rows.append(
            [
                name,
                r["inputs"],
                r["processed"],
                r["skipped"],
                r["model_p50_ms"],
                floor,
                r["latency_p50_ms"],
                r["latency_p99_ms"],
                r["first_third_p50_ms"],
                r["last_third_p50_ms"],
            ]
        )
        goals += [
            (f"{name}: p50 / floor", r["latency_p50_ms"] / floor, 1.15),
            (
                f"{name}: p99 - (model + interval) ms",
                r["latency_p99_ms"] - r["model_p50_ms"] - interval,
                20.0,
            ),
            (
                f"{name}: growth (last/first third p50)",
                r["last_third_p50_ms"] / r["first_third_p50_ms"],
                1.15,
            ),
        ]
    print(
        f"\n{seconds:g} s at {args.fps:g} fps, {args.size}x{args.size}, "
        f"{args.steps} steps x 0.5 strength"
    )
    print_table(
        [
            "transport",
            "inputs",
            "processed",
            "skipped",
            "model p50",
            "floor",
            "p50",
            "p99",
            "p50 first 1/3",
            "p50 last 1/3",
        ],
        rows,
    )
    print("\ngoals")
    results["goals"] = print_goals(goals)
    print(f"\nwrote {write_json(args.out, results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
