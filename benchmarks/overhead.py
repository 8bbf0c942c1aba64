"""Daemon overhead against the physical limit: the same pipeline call made in-process.

    python benchmarks/overhead.py [--quick] [--out PATH] [--threads N] [--skip-thread]
                                  [--omp-passive] [--gap-ms MS]

Each case runs as blocks of interleaved arms (noisy machines): in-process (pipeline call +
to_uint8 + encode, as the daemon's runner does) against the daemon as a child process with
its model runner in a child process of its own (`pixelkiln serve`'s default), reached
through the Python gRPC client (the headline) and, in the same blocks, through its WebSocket
carrier (Envelopes, as the engines' clients send them); then against the daemon with its
runner on a thread (``--runner thread``: what the runner port costs is the difference), then
against the daemon on a thread of this process. Case 3 sends a 1 MiB raw RGBA image through
img2img and back; the transport rows echo a 1 MiB ``pixelkiln.v1.Image`` through a bare
grpc.aio server with the daemon's options.
Prints PASS/MISS against the goals and never fails on timings (only on differing pixels).
One daemon and one in-process arm carry their processes' luck (the model's speed moves from one
process to the next by more than the goals' margins): overhead_pool.py pools fresh pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as bench  # the script's folder is on sys.path
import grpc
import numpy as np
from PIL import Image

from pixelkiln.client import channel_options
from pixelkiln.v1 import image_pb2 as pb
from pixelkiln_server.app import grpc_options
from pixelkiln_server.imaging import codec
from pixelkiln_server.types import Encoding

PROMPT, SEED, MIB, NAN = "mossy cobblestone", 1234, 1024 * 1024, float("nan")
MODEL = "tiny-random"  # every arm: the in-process pipeline is tiny-random
CASES = [  # name, size, steps, runs, quick runs, goal for daemon/in-process of the medians
    ("1: txt2img 64x64 1 step", 64, 1, 120, 5, 1.15),
    ("2: txt2img 256x256 4 steps", 256, 4, 45, 5, 1.03),
    ("3: img2img 1 MiB raw in+out", 512, 1, 15, 5, None),
]
# What the diffusers backend passes besides steps, size, images, embeddings and callbacks.
PIPE_ARGS = dict(guidance_scale=0.0, output_type="np", num_images_per_prompt=1)
GOAL_MS_PER_MIB = 2.0  # p50 per MiB, each direction
ECHO = "/pixelkiln.bench.Echo/Echo"
HEADLINE = "daemon (child process) + runner (child process)"
WEBSOCKET = "daemon (child process) + runner (child process), over WebSocket"
THREAD_RUNNER = "daemon (child process) + runner (thread)"
THREAD, LOCAL = "daemon + runner (threads of this process)", "in-process"
SHORT = {
    HEADLINE: "child",
    WEBSOCKET: "WebSocket",
    THREAD_RUNNER: "thread runner",
    THREAD: "threads",
}


class InProcess:
    """The tiny-random pipeline loaded here, called as the daemon's diffusers backend calls it
    (minus its step callback and progress bar), with the prompt embeddings computed once as
    the daemon's warm embedding cache has them. ``stages`` collects (model_ms, encode_ms)."""

    def __init__(self) -> None:
        import diffusers
        import torch

        from pixelkiln_server.backends.tiny_random import ensure_tiny_random

        pipe = diffusers.StableDiffusionPipeline.from_pretrained(
            ensure_tiny_random(), local_files_only=True
        )
        pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(
            pipe.scheduler.config, timestep_spacing="trailing"
        )
        self.txt, self.img = pipe, diffusers.AutoPipelineForImage2Image.from_pipe(pipe)
        for p in (self.txt, self.img):
            p.set_progress_bar_config(disable=True)
        self.stages: list[tuple[float, float]] = []
        with torch.inference_mode():
            embeds, _ = pipe.encode_prompt(PROMPT, pipe._execution_device, 1, False)
        self.args = {**PIPE_ARGS, "prompt_embeds": embeds}

    def _run(self, pipe: Any, encoding: Any, **args: Any) -> bytes:
        import torch

        t0 = time.perf_counter()
        generator = [torch.Generator("cpu").manual_seed(SEED)]
        with torch.inference_mode():
            out = pipe(**self.args, generator=generator, **args)
        t1 = time.perf_counter()
        data = codec.encode(codec.to_uint8(out.images[0]), encoding).data
        self.stages.append(((t1 - t0) * 1000.0, (time.perf_counter() - t1) * 1000.0))
        return data

    def txt2img(self, size: int, steps: int) -> bytes:
        return self._run(self.txt, Encoding.PNG, num_inference_steps=steps, width=size, height=size)

    def img2img_raw(self, rgba: Any) -> bytes:
        h, w = rgba.shape[:2]  # the daemon's raw decode, then its resize (to the same size here)
        image = (
            Image.fromarray(rgba, "RGBA").convert("RGB").resize((w, h), Image.Resampling.LANCZOS)
        )
        kw = dict(image=image, strength=1.0, num_inference_steps=1)
        return self._run(self.img, Encoding.RAW_RGBA8, **kw)


def pixels(data: bytes) -> Any:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def daemon_arms(
    clients: dict[str, Any], steps: int, kw: dict[str, Any]
) -> tuple[dict[str, Callable[[], bytes]], dict[str, list[dict[str, float]]]]:
    """One arm per client (label -> a client with ``generate``): the same request through each
    transport, returning the image's bytes; each result's timings are kept by label."""
    timings: dict[str, list[dict[str, float]]] = {label: [] for label in clients}

    def arm(label: str) -> Callable[[], bytes]:
        def call() -> bytes:
            result = clients[label].generate(
                PROMPT, model=MODEL, steps=steps, seed=SEED, guidance_scale=0.0, **kw
            )
            timings[label].append(result.timings)
            return bytes(result.image.data)

        return call

    return {label: arm(label) for label in clients}, timings


def check_pixels(
    name: str, arms: dict[str, Callable[[], bytes]], expected: bytes, raw: bool
) -> None:
    """Correctness, once: each arm's pixels equal the in-process ones (raw bytes as they are,
    encoded images decoded)."""
    for label, arm in arms.items():
        got = arm()
        equal = got == expected if raw else np.array_equal(pixels(got), pixels(expected))
        if not equal:
            raise SystemExit(f"{name}: pixels from {label} differ from the in-process ones")


def run_block(
    case: tuple, runs: int, local: InProcess, clients: dict[str, Any], gap_s: float = 0.0
) -> dict:
    """One case, in-process vs one daemon through each of ``clients`` (label -> a client with
    ``generate``), interleaved: the transports of one daemon meet the same process's model (a
    second arm running torch in this process would slow the in-process arm instead: its thread
    pool competes for the cores)."""
    name, size, steps, _, _, goal = case
    rgba = np.random.default_rng(0).integers(0, 256, (size, size, 4), dtype=np.uint8)
    raw_enc = pb.ENCODING_RAW_RGBA8
    init = pb.Image(data=rgba.tobytes(), encoding=raw_enc, width=size, height=size)
    raw = goal is None
    kw = dict(init_image=init, strength=1.0, output_encoding="raw") if raw else {"size": size}

    def local_arm() -> bytes:
        return local.img2img_raw(rgba) if raw else local.txt2img(size, steps)

    daemon, timings = daemon_arms(clients, steps, kw)
    arms = {LOCAL: local_arm, **daemon}
    check_pixels(name, daemon, local_arm(), raw)
    bench.interleave(arms, 2)  # warm-up, untimed
    local.stages.clear()
    for kept in timings.values():
        kept.clear()
    times = bench.interleave(arms, runs, gap_s)
    out = dict(name=name, size=size, steps=steps, runs=runs, goal_ratio=goal)
    out.update(daemon=next(iter(clients)), gap_ms=gap_s * 1000.0, pixels_equal=True)
    out["arms"] = bench.compare(times, LOCAL)
    model, encode = zip(*local.stages, strict=True)
    out["arms"][LOCAL]["stages_median_ms"] = {
        "model_ms": bench.percentile(model, 50),
        "encode_ms": bench.percentile(encode, 50),
    }
    for label, kept in timings.items():
        server = {k: bench.percentile([t[k] for t in kept], 50) for k in kept[0]}
        outside = [v - t["total_ms"] for v, t in zip(times[label], kept, strict=True)]
        server["outside_server_ms"] = bench.percentile(outside, 50)
        out["arms"][label]["stages_median_ms"] = server
    return out


async def _echo_server(port: int) -> Any:
    """A started grpc.aio server echoing ``pixelkiln.v1.Image`` (built on the running loop)."""

    async def echo(request: Any, context: Any) -> Any:
        return request

    handler = grpc.unary_unary_rpc_method_handler(
        echo, pb.Image.FromString, pb.Image.SerializeToString
    )
    server = grpc.aio.server(options=grpc_options(64 * MIB))
    generic = grpc.method_handlers_generic_handler("pixelkiln.bench.Echo", {"Echo": handler})
    server.add_generic_rpc_handlers((generic,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server


def _echo_child(port: int) -> None:
    async def serve() -> None:
        await (await _echo_server(port)).wait_for_termination()

    asyncio.run(serve())


def run_transport(calls: int) -> dict[str, Any]:
    ports = {"thread": bench.free_port(), "child": bench.free_port()}
    loop = bench.LoopThread("bench-echo")
    server = loop.run(_echo_server(ports["thread"]))
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_echo_child, args=(ports["child"],), daemon=True)
    child.start()
    payload = pb.Image(data=os.urandom(MIB), encoding=pb.ENCODING_RAW_RGBA8, width=512, height=512)
    channels = {
        k: grpc.insecure_channel(f"127.0.0.1:{p}", channel_options()) for k, p in ports.items()
    }
    stubs = {}
    for key, ch in channels.items():
        grpc.channel_ready_future(ch).result(timeout=60)
        stubs[key] = ch.unary_unary(ECHO, pb.Image.SerializeToString, pb.Image.FromString)
    if stubs["child"](payload).data != payload.data:
        raise SystemExit("echo server returned different bytes")
    arms = {
        "echo 1 MiB, server in a child process": lambda: stubs["child"](payload),
        "echo 1 MiB, server in a thread": lambda: stubs["thread"](payload),
        "echo empty Image, child process": lambda: stubs["child"](pb.Image()),
    }
    bench.interleave(arms, 20)
    times = bench.interleave(arms, calls)
    for ch in channels.values():
        ch.close()
    loop.run(server.stop(0))
    loop.close()
    child.terminate()
    child.join(10)
    return {label: bench.summarize(values) for label, values in times.items()}


def report(env: dict, cases: list[dict], transport: dict, args: argparse.Namespace) -> None:
    rows, stage_rows, goals = [], [], []
    for case in sorted(cases, key=lambda c: c["name"]):  # stable: child block first
        for label, arm in case["arms"].items():
            shown = label if label != LOCAL else f"{LOCAL} (vs {SHORT[case['daemon']]})"
            ms, ratio, goal = arm["ms"], arm.get("ratio_median", NAN), case["goal_ratio"]
            mark = bench.verdict(ratio, goal) if goal and label != LOCAL else ""
            d = arm.get("paired_diff_ms", {})
            stats = [ms[k] for k in ("n", "median", "p95", "p99")]
            diff = [d.get("median", NAN), d.get("p99", NAN)]
            lo, hi = arm.get("ratio_90", (NAN, NAN))
            spread = "" if label == LOCAL else f"{lo:.3f}-{hi:.3f}"
            row = [case["name"], shown, *stats, ratio, spread, *diff, mark and f"<= {goal}", mark]
            rows.append(row)
            if mark and label in (HEADLINE, WEBSOCKET):
                over = " over WebSocket" if label == WEBSOCKET else ""
                name = f"{case['name']}: daemon{over}/in-process median (90% interval {spread})"
                goals.append((name, ratio, goal))
            s = arm["stages_median_ms"]
            keys = ("queue_ms", "model_ms", "encode_ms", "total_ms", "outside_server_ms")
            stage_rows.append([case["name"], shown, ms["median"], *(s.get(k, NAN) for k in keys)])
    for label, ms in transport.items():
        full = "1 MiB" in label
        per_mib = ms["median"] / 2 if full else NAN
        mark = bench.verdict(per_mib, GOAL_MS_PER_MIB) if full else ""
        stats = [ms[k] for k in ("n", "median", "p95", "p99")]
        goal = mark and f"<= {GOAL_MS_PER_MIB} ms/MiB"
        row = ["transport: " + label, "grpc.aio echo", *stats, NAN, "", per_mib, NAN, goal, mark]
        rows.append(row)
        if full and "child" in label:
            goals.append(("transport p50 ms per MiB each way (RTT/2)", per_mib, GOAL_MS_PER_MIB))
    print()
    heads = ["case", "arm", "n", "median ms", "p95 ms", "p99 ms", "ratio", "ratio 90%"]
    bench.print_table([*heads, "diff p50", "diff p99", "goal", ""], rows)
    print("\nratio = arm median / in-process median (90%: bootstrap interval over the rounds); "
          "diff = paired (daemon - in-process) ms per round; for transport rows 'diff p50' is "
          "RTT p50 / 2 = ms per MiB each way")  # fmt: skip
    print("\nstages, medians in ms (daemon: result.timings; outside = client wall - server total)")
    heads = ["case", "arm", "client wall", "queue", "model", "encode", "server total", "outside"]
    bench.print_table(heads, stage_rows)
    pause = f"{args.gap_ms:g} ms pause before each call" if args.gap_ms else "back to back"
    print(f"\ngoals (headline: {HEADLINE}, {pause}; transport: echo server in a child process)")
    goal_rows = bench.print_goals(goals)
    env["loadavg_1m_after"] = bench.load_average()
    env["gap_ms"] = args.gap_ms
    print(bench.env_line(env))
    data = {"benchmark": "overhead", "quick": args.quick, "environment": env, "cases": cases}
    data.update(transport_ms=transport, goals=goal_rows)
    print(f"wrote {bench.write_json(args.out, data)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~5 runs per case (CI smoke)")
    parser.add_argument("--out", type=Path, default=bench.RESULTS_DIR / "overhead.json")
    parser.add_argument("--threads", type=int, default=0, help="torch threads, every arm")
    parser.add_argument("--skip-thread", action="store_true", help="no in-thread daemon arm")
    parser.add_argument(
        "--omp-passive", action="store_true", help="OMP_WAIT_POLICY=PASSIVE in every arm"
    )
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=0.0,
        help="untimed pause before each call (every arm): each request meets an idle machine, "
        "not the other arm's still-spinning threads (default 0: back to back)",
    )
    args = parser.parse_args()
    threads = bench.pin_threads(args.threads, args.omp_passive)  # before torch loads
    import torch

    from pixelkiln import Client

    torch.set_num_threads(threads)
    env = bench.environment()
    print(bench.env_line(env), flush=True)
    local, cases, t0 = InProcess(), [], time.perf_counter()
    # One daemon alive at a time: the thread daemon (a server, its loop and worker threads in
    # this process) starts only after the headline blocks, so it cannot weigh on them.
    # The headline daemon serves both transports: gRPC (the Python client) and the WebSocket
    # carrier (Envelopes, as the engines' clients send them), interleaved in the same blocks.
    variants: list[tuple[Callable[[], Any], Callable[[Any], dict[str, Any]]]] = [
        (
            lambda: bench.ChildDaemon(threads=threads, ws=True),
            lambda d: {HEADLINE: Client(d.address), WEBSOCKET: bench.WsClient(d.ws_url)},
        ),
        (
            lambda: bench.ChildDaemon("--runner", "thread", threads=threads),
            lambda d: {THREAD_RUNNER: Client(d.address)},
        ),
    ]
    if not args.skip_thread:
        # ServerConfig's default model is the shipped one: this arm served pixelkiln-textures
        # while the in-process arm ran tiny-random, and stopped on "pixels differ".
        variants.append(
            (lambda: bench.ThreadDaemon(default_model=MODEL), lambda d: {THREAD: Client(d.address)})
        )
    for start, connect in variants:
        with start() as daemon, contextlib.ExitStack() as stack:
            clients = {k: stack.enter_context(c) for k, c in connect(daemon).items()}
            for case in CASES:
                runs = case[4] if args.quick else case[3]
                cases.append(run_block(case, runs, local, clients, args.gap_ms / 1000.0))
                label = " + ".join(SHORT[k] for k in clients)
                print(f"{label}, {case[0]}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    report(env, cases, run_transport(200), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
