"""Model runners: images/s with one vs two CPU runners, and recovery from a runner kill.

    python benchmarks/runners.py [--requests N] [--clients N] [--rounds N] [--out PATH]

Throughput: `pixelkiln serve --devices cpu` against `--devices cpu,cpu` (the two runners split
the cores), tiny-random at 64x64, ``--clients`` concurrent clients each sending requests;
the arms alternate for ``--rounds`` rounds (noisy machines), images/s per round and the ratio.

Recovery: SIGKILL the runner of a one-runner daemon while it is idle and time how long the
next request (sent at once) takes to be served, against the time a runner takes to start and
warm up (measured as a daemon's start to health SERVING, which includes the front's own
start, so it is an upper bound of the runner's). Goal: recovery <= warm-up + 1 s.
Port: a 1 MiB image array through the runner port's framing (msgpack) to a spawn child and
back, p50 per direction, as the daemon's transport carries it (a connection each way; on
POSIX the child's frames read by the event loop, runners/frames.py) beside one duplex
`multiprocessing` pipe read with ``recv_bytes`` (the transport before). Goal: <= 1 ms.
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


def _echo(conn_in: Any, conn_out: Any, framed: bool) -> None:
    from pixelkiln_server.runners import port
    from pixelkiln_server.runners.frames import frame_writer

    send = frame_writer(conn_out.fileno()) if framed else conn_out.send_bytes
    while data := conn_in.recv_bytes():
        send(port.pack(port.unpack(data)))


def port_round_trips(runs: int = 200) -> dict[str, list[float]]:
    """Milliseconds per round trip of a 1 MiB array message through a spawned child: the
    daemon's transport and a duplex pipe, interleaved."""
    import asyncio
    import multiprocessing

    import numpy as np

    from pixelkiln_server.runners import port
    from pixelkiln_server.runners.frames import LoopReader
    from pixelkiln_server.runners.transports import FRAMED

    ctx = multiprocessing.get_context("spawn")
    image = np.random.default_rng(0).integers(0, 255, (512, 512, 4), dtype=np.uint8)
    data = port.pack({"op": "run", "inputs": {"init_rgb": image}})
    loop = asyncio.new_event_loop()
    duplex, duplex_child = ctx.Pipe(duplex=True)
    from_child, child_out = ctx.Pipe()  # as ProcessTransport: one connection each way
    child_in, to_child = ctx.Pipe()
    children = [
        ctx.Process(target=_echo, args=(duplex_child, duplex_child, False), daemon=True),
        ctx.Process(target=_echo, args=(child_in, child_out, FRAMED), daemon=True),
    ]
    for child in children:
        child.start()
    arrived: asyncio.Queue[bytearray] = asyncio.Queue()
    if FRAMED:
        fd = os.dup(from_child.fileno())
        from_child.close()
        LoopReader(fd, loop, arrived.put_nowait, lambda: None)

    async def through_transport() -> None:
        to_child.send_bytes(data)  # the front's send: a blocking write on the loop's thread
        if FRAMED:
            port.unpack(await arrived.get())
        else:
            port.unpack(await asyncio.to_thread(from_child.recv_bytes))

    def through_duplex() -> None:
        duplex.send_bytes(data)
        port.unpack(duplex.recv_bytes())

    arms = {
        "runner transport (frames read by the event loop)": lambda: loop.run_until_complete(
            through_transport()
        ),
        "duplex multiprocessing Pipe, recv_bytes": through_duplex,
    }
    if not FRAMED:
        arms = {"runner transport (recv_bytes)": arms.popitem()[1], **arms}
    bench.interleave(arms, 10)
    times = bench.interleave(arms, runs)
    duplex.send_bytes(b"")
    to_child.send_bytes(b"")
    for child in children:
        child.join(10)
    loop.close()
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
    trips = port_round_trips()
    rows = []
    for arm, values in trips.items():
        values = sorted(values)
        per_way = statistics.median(values) / 2
        verdict = "PASS" if per_way <= 1.0 else "MISS"
        rows.append([arm, f"{per_way:.3f}", f"{values[int(len(values) * 0.9)]:.3f}", verdict])
    print("\nport: 1 MiB array through msgpack to a spawn child and back, interleaved")
    bench.print_table(["arm", "p50 ms per direction", "p90 ms round trip", "goal"], rows)
    env["loadavg_1m_after"] = bench.load_average()
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
