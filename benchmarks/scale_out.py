"""Scale-out with the Ray runner: images/s with 1 and 2 replicas, and what the Ray runner adds
to a request's latency over the local process runner, side by side in one run.

    python benchmarks/scale_out.py [--requests N] [--clients N] [--runs N] [--out PATH]

Starts a private Ray on loopback in this process (`ray.init`, 4 logical CPUs, dashboard off)
and three daemons: `--runner process` (the default local runner), and two `--runner ray`
fronts with their own Serve applications on that Ray: one replica ("ray x1") and two
("ray x2"), one CPU each. Every runner has one torch thread (the process runner by
OMP_NUM_THREADS=1, a replica of one CPU by Ray), so the arms differ only in how they run.

- throughput: tiny-random 64x64, 4 steps, ``--clients`` clients each sending ``--requests``,
  for process, ray x1 and ray x2, alternated for ``--rounds`` rounds;
- latency: a 64x64 1-step txt2img and an img2img with a 1 MiB raw RGBA8 init image (512x512,
  raw output), process against ray x1, interleaved (``--runs`` each);
- cost: Ray's start time, the RSS of Ray's processes, a Ray front's start to SERVING (app
  deployment and replicas warmed up), the installed size of the ray package.

Measured, never asserted. The machine is noisy: read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import _common as bench  # the script's folder is on sys.path
import numpy as np

from pixelkiln import Client
from pixelkiln.v1 import image_pb2 as pb

PROMPT, SEED, MODEL = "mossy cobblestone", 1234, "tiny-random"


def start_ray() -> tuple[str, float]:
    """A private Ray on loopback, owned by this process (ray.shutdown() ends it, and only it):
    4 logical CPUs, dashboard off, Ray's token auth off (loopback; the fronts inherit it)."""
    import ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    t0 = time.perf_counter()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    return ray.get_runtime_context().gcs_address, time.perf_counter() - t0


def ray_rss_mb() -> float:
    """Resident memory of Ray's own processes (GCS, raylet, agents, workers, replicas)."""
    out = subprocess.run(["ps", "-eo", "rss=,args="], capture_output=True, text=True).stdout
    total = 0
    for line in out.splitlines():
        rss, _, args = line.strip().partition(" ")
        if ("ray" in args and "scale_out.py" not in args and "pixelkiln.cli" not in args) or (
            "ray::" in args
        ):
            total += int(rss)
    return total / 1024


def ray_front(address: str, app: str, replicas: int) -> bench.ChildDaemon:
    """One CPU per replica: Ray gives each one torch thread."""
    return bench.ChildDaemon(
        "--runner", "ray", "--ray-address", address, "--ray-app", app,
        "--ray-replicas", str(replicas), "--ray-cpus-per-replica", "1",
    )  # fmt: skip


def throughput(address: str, clients: int, requests: int) -> float:
    with Client(address, timeout=300) as warm:  # every replica warm
        for seed in range(4):
            warm.generate("warm", seed=seed, steps=4)

    def one_client(index: int) -> int:
        with Client(address, timeout=300) as client:
            for i in range(requests):
                client.generate(PROMPT, seed=index * 1000 + i, steps=4)
        return requests

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = sum(pool.map(one_client, range(clients)))
    return done / (time.perf_counter() - t0)


def latency(clients: dict[str, Client], runs: int) -> dict[str, Any]:
    rgba = np.random.default_rng(0).integers(0, 256, (512, 512, 4), dtype=np.uint8)
    init = pb.Image(data=rgba.tobytes(), encoding=pb.ENCODING_RAW_RGBA8, width=512, height=512)
    cases = {
        "txt2img 64x64, 1 step": dict(size=64, steps=1),
        "img2img 1 MiB raw in+out, 1 step": dict(
            init_image=init, strength=1.0, steps=1, output_encoding="raw"
        ),
    }
    out = {}
    for case, kw in cases.items():

        def arm(client: Client, kw: dict[str, Any] = kw) -> bytes:
            result = client.generate(PROMPT, model=MODEL, seed=SEED, guidance_scale=0.0, **kw)
            return bytes(result.image.data)

        first = {name: arm(c) for name, c in clients.items()}
        if len(set(first.values())) != 1 and "raw" in case:
            print(f"warning: {case}: the runners' pixels differ", file=sys.stderr)
        arms = {name: (lambda c=c: arm(c)) for name, c in clients.items()}
        bench.interleave(arms, 2)  # warm-up, untimed
        out[case] = bench.compare(bench.interleave(arms, runs), "process")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8, help="per client and round")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30, help="latency runs per arm")
    parser.add_argument("--out", type=Path, default=bench.RESULTS_DIR / "scale_out.json")
    args = parser.parse_args()
    if importlib.util.find_spec("ray") is None:
        raise SystemExit("needs the ray extra: pip install -c constraints.txt -e '.[ray]'")
    bench.pin_threads(1)  # as a replica of one CPU: one torch thread, here and in every child
    env = bench.environment()
    print(bench.env_line(env), flush=True)
    address, head_s = start_ray()
    cost: dict[str, Any] = {"ray_start_s": head_s, "ray_rss_mb_idle": ray_rss_mb()}
    try:
        t0 = time.perf_counter()
        with (
            bench.ChildDaemon("--runner", "process") as local,
            ray_front(address, "bench-x1", 1) as one,
        ):
            cost["ray_front_start_to_serving_s"] = time.perf_counter() - t0
            with ray_front(address, "bench-x2", 2) as two:
                cost["ray_rss_mb_with_3_replicas"] = ray_rss_mb()
                fronts = {"process": local, "ray x1": one, "ray x2": two}
                rates: dict[str, list[float]] = {name: [] for name in fronts}
                for _ in range(args.rounds):
                    for name, daemon in fronts.items():
                        rates[name].append(throughput(daemon.address, args.clients, args.requests))
                        print(
                            f"{name}: {rates[name][-1]:.2f} images/s", file=sys.stderr, flush=True
                        )
            with Client(local.address, timeout=300) as a, Client(one.address, timeout=300) as b:
                lat = latency({"process": a, "ray x1": b}, args.runs)
    finally:
        import ray

        ray.shutdown()
    median = {name: statistics.median(v) for name, v in rates.items()}
    print(f"\nthroughput: tiny-random 64x64, 4 steps, {args.clients} clients x {args.requests}")
    rows = [[name, " ".join(f"{v:.2f}" for v in values), f"{median[name]:.2f}"]
            for name, values in rates.items()]  # fmt: skip
    rows.append(["ratio ray x2 / ray x1", "", f"{median['ray x2'] / median['ray x1']:.2f}x"])
    rows.append(["ratio ray x1 / process", "", f"{median['ray x1'] / median['process']:.2f}x"])
    bench.print_table(["runner", "images/s per round", "median"], rows)
    print("\nlatency (ms), interleaved: the Ray runner (1 replica) against the process runner")
    rows = []
    for case, arms in lat.items():
        ray_arm = arms["ray x1"]
        rows.append([
            case, f"{arms['process']['ms']['median']:.1f}", f"{ray_arm['ms']['median']:.1f}",
            f"{ray_arm['paired_diff_ms']['median']:+.1f}", f"{ray_arm['ratio_median']:.2f}x",
        ])  # fmt: skip
    bench.print_table(["case", "process p50", "ray p50", "added p50 (paired)", "ratio"], rows)
    ray_dir = Path(importlib.util.find_spec("ray").origin or "").parent  # type: ignore[union-attr]
    cost["ray_package_mb"] = sum(f.stat().st_size for f in ray_dir.rglob("*") if f.is_file()) / 1e6
    print("\ncost")
    bench.print_table(["what", "value"], [[k, f"{v:.1f}"] for k, v in cost.items()])
    env["loadavg_1m_after"] = bench.load_average()
    data = {
        "benchmark": "scale_out",
        "environment": env,
        "images_per_s": rates,
        "ratio_x2_over_x1": median["ray x2"] / median["ray x1"],
        "latency": lat,
        "cost": cost,
    }
    print(f"wrote {bench.write_json(args.out, data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
