"""Is the model slower in the runner's context? The same pipeline call, timed inside each one.

    python benchmarks/model_context.py [--runs 20] [--runs-large 8] [--threads N] [--passive]

Issue #19 item 3 / #14: the daemon's model time was 1.06x (64x64, 1 step) and 1.16x (256x256,
4 steps) the in-process time. This separates the candidates that do not need a daemon: the
tiny-random txt2img call (prompt embeddings precomputed, as the runner's cache has them) on
this process's main thread (the baseline), through the diffusers backend's ``generate`` (the
runner's wrapper: embedding cache, generators, step callback), on a worker thread of this
process (``--runner thread``), and in a spawned child process on its main thread and on a
worker thread while the main thread blocks reading a pipe (what the runner host does), that
again with the other OpenMP wait policy (PASSIVE if this process's is not). Each
arm times the call where it runs (no transport in the numbers); arms interleaved, the order
rotated each round; the torch thread counts of each context are printed. Never asserted.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

import _common as bench  # the script's folder is on sys.path

PROMPT = "mossy cobblestone"


def load(threads: int) -> tuple[Any, Any]:
    import diffusers
    import torch

    from pixelkiln_server.backends.tiny_random import ensure_tiny_random

    torch.set_num_threads(threads)
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(
        ensure_tiny_random(), local_files_only=True
    )
    pipe.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        embeds, _ = pipe.encode_prompt(PROMPT, "cpu", 1, False)
    return pipe, embeds


def call(pipe: Any, embeds: Any, size: int, steps: int) -> float:
    import torch

    t0 = time.perf_counter()
    with torch.inference_mode():
        pipe(prompt_embeds=embeds, num_inference_steps=steps, width=size, height=size,
             guidance_scale=0.0, output_type="np",
             generator=[torch.Generator("cpu").manual_seed(1)])  # fmt: skip
    return (time.perf_counter() - t0) * 1000.0


def _child(conn: Any, threads: int, on_thread: bool) -> None:
    import torch

    pipe, embeds = load(threads)
    conn.send({"threads": torch.get_num_threads(), "interop": torch.get_num_interop_threads()})
    if not on_thread:
        while (m := conn.recv()) is not None:
            conn.send(call(pipe, embeds, *m))
        return
    work: queue.Queue[Any] = queue.Queue()

    def worker() -> None:
        while (m := work.get()) is not None:
            conn.send(call(pipe, embeds, *m))

    t = threading.Thread(target=worker, name="runner-work")
    t.start()
    while (m := conn.recv()) is not None:  # like RunnerHost.serve: the main thread reads
        work.put(m)
    work.put(None)
    t.join()


class ThreadArm:
    def __init__(self, pipe: Any, embeds: Any) -> None:
        self.ask: queue.Queue[Any] = queue.Queue()
        self.answer: queue.Queue[float] = queue.Queue()

        def worker() -> None:
            while (m := self.ask.get()) is not None:
                self.answer.put(call(pipe, embeds, *m))

        threading.Thread(target=worker, daemon=True).start()

    def __call__(self, size: int, steps: int) -> float:
        self.ask.put((size, steps))
        return self.answer.get()

    def close(self) -> None:
        self.ask.put(None)


class ChildArm:
    def __init__(self, threads: int, on_thread: bool, env: dict[str, str] | None = None) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_child, args=(child, threads, on_thread), daemon=True)
        saved = dict(os.environ)
        os.environ.update(env or {})  # the spawned child starts with this environment
        try:
            self.proc.start()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        self.info = self.conn.recv()

    def __call__(self, size: int, steps: int) -> float:
        self.conn.send((size, steps))
        return float(self.conn.recv())

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="rounds at 64x64, 1 step")
    parser.add_argument("--runs-large", type=int, default=8, help="rounds at 256x256, 4 steps")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--passive", action="store_true", help="OMP_WAIT_POLICY=PASSIVE")
    parser.add_argument("--out", type=Path, default=bench.RESULTS_DIR / "model_context.json")
    args = parser.parse_args()
    threads = bench.pin_threads(args.threads, args.passive)
    import torch

    from pixelkiln_server.backends.base import LoadOptions, NoHooks
    from pixelkiln_server.backends.tiny_random import TinyRandomBackend
    from pixelkiln_server.catalogue import lookup
    from pixelkiln_server.config import default_home
    from pixelkiln_server.types import DecodedInputs, GenerationRequest

    env = bench.environment()
    print(bench.env_line(env), flush=True)
    pipe, embeds = load(threads)
    model = TinyRandomBackend().load(
        lookup("tiny-random"), LoadOptions("cpu", "auto", True, default_home())
    )

    def backend(size: int, steps: int) -> float:
        request = GenerationRequest(prompt=PROMPT, width=size, height=size, steps=steps,
                                    guidance_scale=0.0, seed=1)  # fmt: skip
        t0 = time.perf_counter()
        model.generate(request, DecodedInputs(), NoHooks())
        return (time.perf_counter() - t0) * 1000.0

    closers = [ThreadArm(pipe, embeds), ChildArm(threads, False), ChildArm(threads, True)]
    other = "ACTIVE" if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE" else "PASSIVE"
    closers.append(ChildArm(threads, True, {"OMP_WAIT_POLICY": other}))
    arms = {
        "main thread (baseline)": lambda s, n: call(pipe, embeds, s, n),
        "backend.generate, main thread": backend,
        "worker thread": closers[0],
        "child process, main thread": closers[1],
        "child process, worker thread (runner host)": closers[2],
        f"same, OMP_WAIT_POLICY={other}": closers[3],
    }
    contexts = {"this process": [torch.get_num_threads(), torch.get_num_interop_threads()]}
    for n, arm in enumerate(closers[1:]):
        contexts[f"child {n + 1}"] = arm.info
    print(f"torch threads: {contexts}")
    cases = []
    for size, steps, runs in ((64, 1, args.runs), (256, 4, args.runs_large)):
        names = list(arms)
        for name in names:  # warm-up
            arms[name](size, steps)
        times: dict[str, list[float]] = {n: [] for n in names}
        for r in range(runs):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                times[name].append(arms[name](size, steps))
        cmp = bench.compare(times, names[0])
        cases.append({"size": size, "steps": steps, "runs": runs, "arms": cmp})
        print(f"\n{size}x{size}, {steps} steps, {runs} rounds")
        rows = [[n, c["ms"]["median"], c["ms"]["p95"], c.get("ratio_median", 1.0)]
                for n, c in cmp.items()]  # fmt: skip
        bench.print_table(["context", "p50 ms", "p95 ms", "ratio p50"], rows)
    for arm in closers:
        arm.close()
    env["loadavg_1m_after"] = bench.load_average()
    print(bench.env_line(env))
    data = {"benchmark": "model_context", "environment": env, "torch_threads": contexts}
    print(f"wrote {bench.write_json(args.out, {**data, 'cases': cases})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
