"""Model runners: images/s with one vs two CPU runners, and recovery from a runner kill.

    python benchmarks/runners.py [--requests N] [--clients N] [--rounds N] [--out PATH]

Throughput: `pixelkiln serve --devices cpu` against `--devices cpu,cpu` (the two runners split
the cores), tiny-random at 64x64, ``--clients`` concurrent clients each sending requests;
the arms alternate for ``--rounds`` rounds (noisy machines), images/s per round and the ratio.

Recovery: SIGKILL the runner of a one-runner daemon while it is idle and time how long the
next request (sent at once) takes to be served, against the time a runner takes to start and
warm up (measured as a daemon's start to health SERVING, which includes the front's own
start, so it is an upper bound of the runner's). Goal: recovery <= warm-up + 1 s.
Port: a 1 MiB image array through the runner port's framing (msgpack) and a spawn child's
`multiprocessing` pipe and back, p50 per direction. Goal: <= 1 ms.
Measured, never asserted.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import _common as bench  # the script's folder is on sys.path

from pixelkiln import Client


def throughput(devices: str, clients: int, requests: int) -> float:
    with bench.ChildDaemon("--devices", devices) as daemon:
        with Client(daemon.address, timeout=300) as warm:  # both runners warm and loaded
            for seed in range(4):
                warm.generate("warm", seed=seed, steps=4)

        def one_client(index: int) -> int:
            with Client(daemon.address, timeout=300) as client:
                for i in range(requests):
                    client.generate("mossy cobblestone", seed=index * 1000 + i, steps=4)
            return requests

        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            done = sum(pool.map(one_client, range(clients)))
        return done / (time.perf_counter() - t0)


def recovery() -> tuple[float, float]:
    t0 = time.perf_counter()
    with bench.ChildDaemon("--devices", "cpu") as daemon, Client(daemon.address) as client:
        warm_up = time.perf_counter() - t0
        client.generate("warm", seed=1, steps=1)
        pid = client.status().runners[0].pid
        t1 = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        client.generate("after the crash", seed=2, steps=1)
        return warm_up, time.perf_counter() - t1


def _echo(conn: Any) -> None:
    from pixelkiln_server.runners import port

    while data := conn.recv_bytes():
        conn.send_bytes(port.pack(port.unpack(data)))


def port_round_trip(runs: int = 200) -> list[float]:
    """Milliseconds per round trip of a 1 MiB array message through a spawned child."""
    import multiprocessing

    import numpy as np

    from pixelkiln_server.runners import port

    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe(duplex=True)
    child = ctx.Process(target=_echo, args=(there,), daemon=True)
    child.start()
    image = np.random.default_rng(0).integers(0, 255, (512, 512, 4), dtype=np.uint8)
    message = {"op": "run", "inputs": {"init_rgb": image}}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        here.send_bytes(port.pack(message))
        port.unpack(here.recv_bytes())
        times.append((time.perf_counter() - t0) * 1000.0)
    here.send_bytes(b"")
    child.join(10)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=12, help="per client and round")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=bench.RESULTS_DIR / "runners.json")
    args = parser.parse_args()
    env = bench.environment()
    print(bench.env_line(env), flush=True)
    arms: dict[str, list[float]] = {"1 runner (cpu)": [], "2 runners (cpu,cpu)": []}
    for _ in range(args.rounds):
        for arm, devices in zip(arms, ("cpu", "cpu,cpu"), strict=True):
            arms[arm].append(throughput(devices, args.clients, args.requests))
            print(f"{arm}: {arms[arm][-1]:.2f} images/s", file=sys.stderr, flush=True)
    one, two = (statistics.median(v) for v in arms.values())
    rows = [[arm, " ".join(f"{v:.2f}" for v in values), f"{statistics.median(values):.2f}"]
            for arm, values in arms.items()]  # fmt: skip
    rows.append(["ratio 2/1", "", f"{two / one:.2f}x"])
    print(f"\ntiny-random 64x64, 4 steps, {args.clients} clients x {args.requests} requests")
    bench.print_table(["arm", "images/s per round", "median"], rows)
    recoveries = []
    if hasattr(signal, "SIGKILL"):
        recoveries = [recovery() for _ in range(args.rounds)]
        rows = [[f"{w:.2f}", f"{r:.2f}", "PASS" if r <= w + 1.0 else "MISS"] for w, r in recoveries]
        print("\nrecovery: SIGKILL of an idle runner -> next request served (s)")
        bench.print_table(["start to SERVING (warm-up bound)", "kill to next result", "goal"], rows)
    trips = sorted(port_round_trip())
    per_way = statistics.median(trips) / 2
    print("\nport: 1 MiB array through msgpack + a spawn child's pipe, and back")
    bench.print_table(
        ["p50 ms per direction", "p90 ms round trip", "goal"],
        [[f"{per_way:.3f}", f"{trips[int(len(trips) * 0.9)]:.3f}",
          "PASS" if per_way <= 1.0 else "MISS"]],
    )  # fmt: skip
    env["loadavg_1m_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    data = {
        "benchmark": "runners",
        "environment": env,
        "images_per_s": arms,
        "ratio_two_over_one": two / one,
        "recovery_s": [{"warm_up": w, "kill_to_result": r} for w, r in recoveries],
        "port_ms_per_direction_p50": per_way,
    }
    print(f"wrote {bench.write_json(args.out, data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
