"""Throughput of 8 concurrent clients, micro-batched vs one by one, in one run.

    python benchmarks/batching.py [--clients 8] [--requests 6] [--quick] [--out ...]

Two tiny-random daemons in child processes, --max-batch 1 and --max-batch 8, measured in
alternating rounds. Each client sends its requests one after another (same size and steps,
distinct seeds), so compatible requests pile up in the queue. On these CPUs batching may not
help (the cores are busy either way); the GPU script of the real-models issue measures it
where it matters. Measured, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS_DIR,
    ChildDaemon,
    env_line,
    environment,
    free_port,
    percentile,
    print_table,
    write_json,
)


async def round_trip(address: str, clients: int, requests: int, size: int, steps: int) -> float:
    """Seconds for ``clients`` x ``requests`` generations; returns images per second."""
    from pixelkiln import AsyncClient

    async def one(c: int) -> None:
        async with AsyncClient(address, timeout=600) as client:
            for r in range(requests):
                await client.generate("stone", seed=c * 1000 + r, size=size, steps=steps)

    start = time.perf_counter()
    await asyncio.gather(*(one(c) for c in range(clients)))
    return clients * requests / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "batching.json")
    args = parser.parse_args()
    rounds, requests = (1, 2) if args.quick else (args.rounds, args.requests)
    env = environment()
    print(env_line(env))
    arms = {"one by one": "1", "batched (max 8)": "8"}
    rates: dict[str, list[float]] = {name: [] for name in arms}
    daemons = {
        name: ChildDaemon("--max-batch", n, "--ws-port", str(free_port()))
        for name, n in arms.items()
    }
    for d in daemons.values():
        d.__enter__()
    try:
        for _ in range(rounds):
            for name, d in daemons.items():
                rate = asyncio.run(
                    round_trip(d.address, args.clients, requests, args.size, args.steps)
                )
                rates[name].append(rate)
    finally:
        for d in daemons.values():
            d.__exit__()
    base = percentile(rates["one by one"], 50)
    rows = [[name, percentile(v, 50), percentile(v, 50) / base] for name, v in rates.items()]
    print(
        f"\n{args.clients} clients x {requests} requests, "
        f"{args.size}x{args.size}, {args.steps} steps"
    )
    print_table(["arm", "images/s (median)", "ratio"], rows)
    results: dict[str, Any] = {
        "environment": env,
        "rates": rates,
        "args": vars(args) | {"out": str(args.out)},
    }
    print(f"\nwrote {write_json(args.out, results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
