"""Daemon overhead pooled over fresh processes, so one process's luck cannot decide the ratio.

    python benchmarks/overhead_pool.py [--pairs N] [--gaps 0,20] [--quick] [--threads N]
                                       [--env KEY=VALUE ...] [--out PATH]

overhead.py times one daemon against the pipeline in its own process. The model's own speed
moves from one process to the next by more than the goals' margins (its in-process median moved
between 66 and 78 ms across the blocks of one run), so one run's ratio carries that luck. Here
each of ``--pairs`` pairs starts a fresh daemon (``pixelkiln serve``, its runner in a child
process: the default) and a fresh in-process worker (a spawned process that loads the same
pipeline and times its own call, as overhead.py's in-process arm: pipeline call, to_uint8,
PNG), interleaves the three arms (in-process, the daemon through the Python gRPC client and
through its WebSocket carrier) for each case at each pause in ``--gaps``, and stops both.
Ratios are of medians pooled over every pair; their 90% interval resamples whole pairs, so the
spread from one process to the next is inside it; each pair's own ratio is printed as well.
Prints PASS/MISS against overhead.py's goals and never fails on timings (only on differing
pixels).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as bench  # the script's folder is on sys.path (in the spawned worker too)
import _handoff as handoff
from overhead import (
    CASES,
    HEADLINE,
    LOCAL,
    SHORT,
    WEBSOCKET,
    InProcess,
    check_pixels,
    daemon_arms,
)

PAIRS, QUICK_PAIRS = 8, 2
RUNS = {64: 30, 256: 10}  # rounds per pair, per case and pause; --quick: 3
TIMED_CASES = [case for case in CASES if case[5] is not None]  # those with a goal


def _worker(conn: Any, threads: int) -> None:
    """The in-process arm in a process of its own: (size, steps) in, (ms, model ms, PNG) out."""
    os.environ.update(TRANSFORMERS_VERBOSITY="error", DIFFUSERS_VERBOSITY="error")
    import diffusers
    import torch

    diffusers.utils.logging.disable_progress_bar()
    torch.set_num_threads(threads)
    local = InProcess()
    conn.send("ready")
    while (job := conn.recv()) is not None:
        t0 = time.perf_counter()
        data = local.txt2img(*job)
        took = (time.perf_counter() - t0) * 1000.0
        conn.send((took, local.stages[-1][0], data))


class Worker:
    def __init__(self, threads: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, threads), daemon=True)
        self.proc.start()
        child.close()
        self.model_ms: list[float] = []

    def ready(self, timeout: float = 300.0) -> None:
        if not self.conn.poll(timeout) or self.conn.recv() != "ready":
            raise SystemExit("the in-process worker did not start")

    def txt2img(self, size: int, steps: int) -> tuple[float, bytes]:
        self.conn.send((size, steps))
        took, model_ms, data = self.conn.recv()
        self.model_ms.append(model_ms)
        return took, data

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


def measure_pair(
    worker: Worker, clients: dict[str, Any], runs: dict[int, int], gaps: list[float]
) -> list[dict[str, Any]]:
    """Every (case, pause) block of one pair."""
    return [b for case in TIMED_CASES for b in measure_case(worker, clients, case, runs, gaps)]


def measure_case(
    worker: Worker, clients: dict[str, Any], case: tuple, runs: dict[int, int], gaps: list[float]
) -> list[dict[str, Any]]:
    """One case at each pause: times per arm and each side's model medians."""
    name, size, steps, *_ = case
    daemon, timings = daemon_arms(clients, steps, {"size": size})
    arms: dict[str, Callable[[], Any]] = {LOCAL: lambda: worker.txt2img(size, steps)[0], **daemon}
    check_pixels(name, daemon, worker.txt2img(size, steps)[1], raw=False)  # once per pair
    bench.interleave(arms, 2, self_timed=[LOCAL])  # warm-up, untimed
    out = []
    for gap_ms in gaps:
        worker.model_ms.clear()
        for kept in timings.values():
            kept.clear()
        times = bench.interleave(arms, runs[size], gap_ms / 1000.0, self_timed=[LOCAL])
        models = {LOCAL: bench.percentile(worker.model_ms, 50)}
        for label, kept in timings.items():
            models[label] = bench.percentile([t["model_ms"] for t in kept], 50)
        out.append(dict(name=name, gap_ms=gap_ms, times=times, model_ms=models))
    return out


def report(
    env: dict, pairs: list[list[dict]], hand_off: dict[str, float], args: argparse.Namespace
) -> None:
    blocks: dict[tuple[str, float], list[dict]] = {}
    for pair in pairs:
        for block in pair:
            blocks.setdefault((block["name"], block["gap_ms"]), []).append(block)
    goal_of = {case[0]: case[5] for case in TIMED_CASES}
    per_pair, rows, goals, cases = [], [], [], []
    for (name, gap), group in blocks.items():
        arms = bench.pooled([b["times"] for b in group], LOCAL)
        for i, block in enumerate(group, 1):
            m = block["model_ms"]
            row = [name, f"{gap:g}", i, *(bench.percentile(block["times"][a], 50) for a in arms)]
            row += [arms[a]["group_ratios"][i - 1] for a in (HEADLINE, WEBSOCKET)]
            per_pair.append([*row, m[LOCAL], m[HEADLINE], m[HEADLINE] / m[LOCAL]])
        for label, arm in arms.items():
            ms, goal = arm["ms"], goal_of[name]
            if label == LOCAL:
                rows.append([name, f"{gap:g}", LOCAL, ms["n"], ms["median"], ms["p95"], *[""] * 6])
                continue
            lo, hi = arm["ratio_90"]
            spread = min(arm["group_ratios"]), max(arm["group_ratios"])
            diff, mark = arm["paired_diff_ms"]["median"], bench.verdict(arm["ratio_median"], goal)
            row = [name, f"{gap:g}", SHORT[label], ms["n"], ms["median"], ms["p95"]]
            row += [arm["ratio_median"], f"{lo:.3f}-{hi:.3f}", f"{spread[0]:.3f}-{spread[1]:.3f}"]
            rows.append([*row, diff, f"<= {goal}", mark])
            over = "WebSocket" if label == WEBSOCKET else "gRPC"
            pause = f"{gap:g} ms pause" if gap else "back to back"
            goals.append((f"{name}, {pause}: daemon over {over}/in-process, pooled", arm, goal))
        cases.append(dict(name=name, gap_ms=gap, goal_ratio=goal_of[name], arms=arms))
    print("\neach pair (fresh processes): medians in ms; model = the pipeline call alone")
    heads = ["case", "pause ms", "pair", "in-process", "gRPC", "WebSocket", "ratio gRPC"]
    heads += ["ratio WS", "model in-proc", "model runner", "runner/in-proc"]
    bench.print_table(heads, per_pair)
    print(f"\npooled over {len(pairs)} pairs")
    heads = ["case", "pause ms", "arm", "n", "median ms", "p95 ms", "ratio", "ratio 90%"]
    bench.print_table([*heads, "pair ratios", "diff p50", "goal", ""], rows)
    print("\nratio = pooled arm median / pooled in-process median; 90%: bootstrap over whole "
          "pairs; pair ratios: lowest-highest of the pairs' own ratios; diff = paired "
          "(daemon - in-process) ms per round")  # fmt: skip
    print(f"\ngoals ({HEADLINE} and its WebSocket carrier, pooled over fresh processes)")
    goal_rows = bench.print_goals([(n, a["ratio_median"], g) for n, a, g in goals])
    for row, (_, arm, _) in zip(goal_rows, goals, strict=True):
        row["ratio_90"] = arm["ratio_90"]
    env["loadavg_1m_after"] = bench.load_average()
    print(bench.env_line(env))
    print(handoff.hand_off_line(hand_off))
    data = {"benchmark": "overhead_pool", "quick": args.quick, "pairs": len(pairs)}
    data.update(environment=env, cases=cases, goals=goal_rows, hand_off_us=hand_off)
    print(f"wrote {bench.write_json(args.out, data)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pairs", type=int, default=0, help=f"default {PAIRS} ({QUICK_PAIRS} quick)"
    )
    parser.add_argument("--gaps", default="0,20", help="pauses before each call, ms (default 0,20)")
    parser.add_argument("--quick", action="store_true", help="2 pairs, 3 rounds (CI smoke)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads, every arm")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set in every arm's process, e.g. GOMP_SPINCOUNT=10000 (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=bench.RESULTS_DIR / "overhead_pool.json")
    args = parser.parse_args()
    for item in args.env:  # before torch loads here; the worker and the daemon inherit them
        key, _, value = item.partition("=")
        os.environ[key] = value
    threads = bench.pin_threads(args.threads)  # before torch loads; the children inherit it
    import torch

    from pixelkiln import Client

    torch.set_num_threads(threads)
    env = bench.environment()
    env["set"] = args.env
    print(bench.env_line(env), *(f"set {item}" for item in args.env), flush=True)
    count = args.pairs or (QUICK_PAIRS if args.quick else PAIRS)
    runs = {size: 3 for size in RUNS} if args.quick else RUNS
    gaps = [float(g) for g in args.gaps.split(",") if g.strip()]
    pairs, t0 = [], time.perf_counter()
    for i in range(count):
        worker = Worker(threads)  # loads while the daemon starts
        try:
            with bench.ChildDaemon(threads=threads, ws=True) as daemon, contextlib.ExitStack() as s:
                worker.ready()
                clients = {
                    HEADLINE: s.enter_context(Client(daemon.address)),
                    WEBSOCKET: s.enter_context(bench.WsClient(daemon.ws_url)),
                }
                pairs.append(measure_pair(worker, clients, runs, gaps))
        finally:
            worker.close()
        print(f"pair {i + 1}/{count}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    report(env, pairs, handoff.hand_off_us(gaps), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
