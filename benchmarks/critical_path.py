"""Where one request's milliseconds go: the client, gRPC, the front, the runner port, the model.

    python benchmarks/critical_path.py [--runs N] [--size PX] [--steps K] [--runner thread]
                                       [--transport ws] [--threads N] [--gap-ms MS] [--out PATH]

Runs ``pixelkiln serve`` (tiny-random, its runner in a child process unless ``--runner
thread``) with ``PIXELKILN_TRACE_DIR`` set, so the front and the runner mark each point of a
request's path (server/pixelkiln_server/tracepoints.py) on the machine's one monotonic clock;
this script marks the client's start and end around ``Client.generate`` (``--transport ws``:
around one Generate Envelope and its Result over the WebSocket carrier, as the engines send
it). Requests go one at a time with a pause (``--gap-ms``, default 5 ms), and each stage's
median is printed with its share of the client's wall time. Marks cost a few microseconds
each (a write to a file), so the stages are an upper bound on the daemon's own costs;
overhead.py measures the whole without them. It also prints the CPU time each process (the
front, the runner child, this client) used per request, where the platform shows it (Linux).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as bench  # the script's folder is on sys.path
import _handoff as handoff

from pixelkiln_server import tracepoints

# What happens between each two consecutive marks of tracepoints.PATH.
WHAT = (
    "client builds and sends; to the front",
    "front: convert, validate, admit, queue",
    "front: place on a runner",
    "port: the request reaches the runner",
    "runner: read the request, prepare the call",
    "model (the backend's generate_batch)",
    "runner: encode PNG, recipe, pack",
    "port: the result reaches the front, decoded",
    "front: deliver, convert to protobuf",
    "to the client; client converts",
)
PATH = tracepoints.PATH
STAGES = dict(zip(zip(PATH, PATH[1:], strict=False), WHAT, strict=True))


def measure(
    runs: int,
    size: int,
    steps: int,
    extra: tuple[str, ...],
    threads: int,
    transport: str,
    gap_s: float,
) -> Any:
    from pixelkiln import Client

    ws = transport == "ws"
    with tempfile.TemporaryDirectory(prefix="pixelkiln-trace-") as folder:
        tracepoints.enable(folder)  # this process and, through the environment, the daemon
        try:
            with (
                bench.ChildDaemon(*extra, threads=threads, ws=ws) as daemon,
                bench.WsClient(daemon.ws_url) if ws else Client(daemon.address) as client,
            ):
                kw = dict(model="tiny-random", steps=steps, seed=7, guidance_scale=0.0, size=size)
                for _ in range(5):  # warm-up, before the marks that count
                    client.generate("mossy cobblestone", **kw)
                time.sleep(0.2)
                procs = {"front": daemon.proc.pid, "runner": _runner_pid(daemon.address)}
                before = {k: bench.cpu_ms(pid) for k, pid in procs.items() if pid}
                own = time.process_time()
                first = time.monotonic_ns()
                for _ in range(runs):
                    tracepoints.mark("client.start")
                    client.generate("mossy cobblestone", **kw)
                    tracepoints.mark("client.end")
                    time.sleep(gap_s)  # the runner's heartbeat and the stream's end settle
                cpu = {k: (bench.cpu_ms(procs[k]) - v) / runs for k, v in before.items()}
                cpu["client"] = (time.process_time() - own) * 1000.0 / runs
        finally:
            tracepoints.enable(None)
        marks = [m for m in tracepoints.read(folder) if m[0] >= first]
    return tracepoints.rounds(marks), cpu


def _runner_pid(address: str) -> int | None:
    """The runner child's pid (None for a runner on a thread of the front)."""
    from pixelkiln import Client

    with Client(address) as client:
        return client.status().runners[0].pid or None


def report(
    rounds: list[dict[str, tuple[int, int]]], cpu: dict[str, float], args: argparse.Namespace
) -> dict:
    def ms(r: dict[str, tuple[int, int]], a: str, b: str) -> float:
        return (r[b][0] - r[a][0]) / 1e6

    walls = [ms(r, "client.start", "client.end") for r in rounds]
    wall = statistics.median(walls)
    rows, stages, medians = [], [], {}
    for (a, b), what in STAGES.items():
        values = [ms(r, a, b) for r in rounds]
        median = medians[a, b] = statistics.median(values)
        stages.append({"from": a, "to": b, "what": what, **bench.summarize(values)})
        rows.append([f"{a} -> {b}", what, median, bench.percentile(values, 90), median / wall])
    model = medians["runner.model_start", "runner.model_end"]
    pids = {tag: pid for tag, (_, pid) in rounds[0].items()}
    runner_apart = pids["runner.received"] != pids["front.received"]
    print()
    bench.print_table(["stage", "what", "median ms", "p90 ms", "share of wall"], rows)
    print(
        f"\n{len(rounds)} complete rounds of {args.runs}; client wall median {wall:.3f} ms, "
        f"model {model:.3f} ms, the rest {wall - model:.3f} ms (medians; the stages' medians "
        f"need not add up to the wall's); runner in "
        f"{'a child process' if runner_apart else 'the front process'}"
    )
    shown = ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
    print(f"CPU per request, ms (user + system; traced, so a little high): {shown}")
    out = {"wall_ms": bench.summarize(walls), "stages": stages, "runner_apart": runner_apart}
    return {**out, "cpu_ms_per_request": cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--runner", choices=("process", "thread"), default="process")
    parser.add_argument(
        "--transport",
        choices=("grpc", "ws"),
        default="grpc",
        help="gRPC (the Python client) "
        "or the WebSocket carrier (Envelopes, as the engines' clients send them)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads in the runner")
    parser.add_argument(
        "--gap-ms", type=float, default=5.0, help="pause after each request (default 5)"
    )
    parser.add_argument("--out", type=Path, default=bench.RESULTS_DIR / "critical_path.json")
    args = parser.parse_args()
    threads = bench.pin_threads(args.threads)
    env = bench.environment()
    print(bench.env_line(env), flush=True)
    extra = ("--runner", "thread") if args.runner == "thread" else ()
    rounds, cpu = measure(
        args.runs, args.size, args.steps, extra, threads, args.transport, args.gap_ms / 1000.0
    )
    if not rounds:
        raise SystemExit("no complete round was traced")
    data = {"benchmark": "critical_path", "environment": env, **vars(args), "out": str(args.out)}
    data.update(report(rounds, cpu, args))
    data["hand_off_us"] = hand_off = handoff.hand_off_us((0.0, args.gap_ms))
    print(handoff.hand_off_line(hand_off))
    print(f"wrote {bench.write_json(args.out, data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
