"""PixelKiln's live mode through the daemon against StreamDiffusion in-process (issue #19).

    python benchmarks/peer_streamdiffusion.py [--rounds 40] [--sizes 64,128] [--evals 1,2]
                                              [--threads N] [--quick] [--no-onnx]
                                              [--out PATH]

The peer: StreamDiffusion 0.1.1 from PyPI in its own venv (.cache/venv-streamdiffusion, made by
tools/setup_streamdiffusion_venv.sh, run here first; it needs diffusers 0.24), driven as a
worker process (benchmarks/_streamdiffusion_worker.py) that times each frame itself, in
process: PNG bytes in, uint8 RGB pixels out. Both arms of the peer: stream batch (its
denoising batch: each UNet call carries every step, one per frame in flight) and sequential.

PixelKiln: a live session through ``pixelkiln serve`` (a child process, its model runner in a
child process of its own: the default) over loopback gRPC, timed by the client from sending
an input to receiving its frame (PNG; more arms when the daemon has them: raw RGBA8 frames,
stream batch). PixelKiln on ONNX Runtime (unless --no-onnx): the same tiny-random weights
exported once with ``pixelkiln export-onnx`` ($PIXELKILN_HOME/onnx/tiny-random) and served by a
second daemon from that folder, raw frames (the product's other runtime, not a torch arm; no
stream batch or lean path there). Plain diffusers: the img2img pipeline called in this
process (diffusers of the project's venv) with the prompt embeddings computed once, PNG in,
uint8 pixels out.

Same work in every arm: the tiny-random weights (the project's builder; the worker's loaded
tensors are checksummed against this process's), CFG off, and for E UNet evaluations the
PixelKiln settings steps=2E, strength=0.5, whose timesteps (Euler, trailing) are handed to
StreamDiffusion exactly. Arms interleaved round by round (order rotated); each round's input
is a new sketch (nothing skipped as a repeat). Ratios of p50 and p99, never asserted.
Goal (issue #19): PixelKiln / StreamDiffusion <= 1.0 at p50 in every row (stretch <= 0.85
with stream batch), p99 no worse.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _common as bench  # the script's folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent
SD_VENV = ROOT / ".cache" / "venv-streamdiffusion"
WORKER = Path(__file__).resolve().parent / "_streamdiffusion_worker.py"
PROMPT, SEED, STRENGTH = "red brick wall", 1, 0.5
SD_BATCH, SD_SEQ, DIFFUSERS = (
    "StreamDiffusion (stream batch)",
    "StreamDiffusion (sequential)",
    ("plain diffusers in-process"),
)
PK = "PixelKiln (PNG frames)"
PK_RAW = "PixelKiln (raw frames)"
PK_BATCH = "PixelKiln (raw frames, stream batch)"
# The same weights exported with `pixelkiln export-onnx` and served from that folder by a
# second daemon: what a PixelKiln user gets on this CPU with ONNX Runtime (not a torch arm).
PK_ORT = "PixelKiln on ONNX Runtime (raw frames)"
FRAME_TIMEOUT_S = 60.0


def sketches(n: int, size: int) -> list[bytes]:
    """``n`` different sketches (a stroke that moves), as PNG."""
    import numpy as np
    from PIL import Image

    out = []
    for i in range(n):
        img = np.full((size, size, 3), 235, np.uint8)
        x = (i * 7) % max(size - 12, 1)
        img[size // 3 : size // 3 + size // 8, : x + 12] = (120, 60, 30)
        img[:, x : x + 4] = (40, 40, 40)
        img[(i * 5) % size, :] = (200, 30, 30)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", compress_level=1)
        out.append(buf.getvalue())
    return out


class Peer:
    """The StreamDiffusion worker process: JSON lines in and out."""

    def __init__(self, python: Path, log: Any) -> None:
        self.proc = subprocess.Popen(
            [str(python), str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"},
        )

    def call(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"StreamDiffusion worker exited ({self.proc.wait()}); see its log")
        answer: dict[str, Any] = json.loads(line)
        if not answer.pop("ok"):
            raise SystemExit(f"StreamDiffusion worker: {command['op']}: {answer['error']}")
        return answer

    def close(self) -> None:
        with contextlib.suppress(SystemExit, OSError, ValueError):
            self.call(op="quit")
        self.proc.wait(30)


class Plain:
    """The diffusers img2img pipeline of this venv, called per frame."""

    def __init__(self, folder: Path) -> None:
        import diffusers
        import torch

        self.pipe = diffusers.AutoPipelineForImage2Image.from_pretrained(
            folder, local_files_only=True
        )
        self.pipe.set_progress_bar_config(disable=True)
        with torch.inference_mode():
            self.embeds, _ = self.pipe.encode_prompt(PROMPT, "cpu", 1, False)

    def frame(self, png: bytes, steps: int) -> float:
        import numpy as np
        import torch
        from PIL import Image

        t0 = time.perf_counter()
        image = Image.open(io.BytesIO(png)).convert("RGB")
        with torch.inference_mode():
            out = self.pipe(
                image=image,
                prompt_embeds=self.embeds,
                strength=STRENGTH,
                num_inference_steps=steps,
                guidance_scale=0.0,
                generator=torch.Generator("cpu").manual_seed(SEED),
                output_type="np",
            ).images[0]
        np.ascontiguousarray((out * 255).round().clip(0, 255).astype(np.uint8))
        return (time.perf_counter() - t0) * 1000.0


class LiveArm:
    """One live session held open through a block: send an input, wait for the next frame.
    With stream batch a frame answers an earlier input; the time is still from this send to
    the next frame that arrives."""

    def __init__(self, client: Any, settings: dict[str, Any]) -> None:
        self.session = client.live(**settings)
        self.lagged = bool(settings.get("stream_batch"))
        self.frames: queue.Queue[Any] = queue.Queue()
        self.lags: list[int] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for frame in self.session:
                self.frames.put(frame)
        except Exception as exc:  # noqa: BLE001 - surfaced by frame()
            self.frames.put(exc)

    def frame(self, png: bytes, first: bool = False) -> float:
        t0 = time.perf_counter()
        seq = self.session.send(png)
        try:
            got = self.frames.get(timeout=15.0 if first and self.lagged else FRAME_TIMEOUT_S)
        except queue.Empty:
            if first and self.lagged:  # the first input's frame comes with the next input
                return float("nan")
            raise SystemExit("no live frame within a minute") from None
        if isinstance(got, Exception):
            raise SystemExit(f"live session failed: {got}")
        if got.image is None:
            raise SystemExit(f"live frame for input {got.seq} has no image (skipped?)")
        self.lags.append(seq - got.seq)
        return (time.perf_counter() - t0) * 1000.0

    def close(self) -> None:
        self.session.cancel()


def pixelkiln_timesteps(folder: Path, steps: int) -> list[int]:
    """The timesteps PixelKiln's img2img runs for ``steps`` at STRENGTH (diffusers' rule:
    the last int(steps * strength) of the scheduler's schedule)."""
    import diffusers

    scheduler = diffusers.EulerDiscreteScheduler.from_pretrained(folder / "scheduler")
    scheduler.set_timesteps(steps)
    run = min(int(steps * STRENGTH), steps)
    return [int(t) for t in scheduler.timesteps[steps - run :]]


def live_fields() -> set[str]:
    from pixelkiln.v1 import generator_pb2 as gen_pb

    return set(gen_pb.LiveSettings.DESCRIPTOR.fields_by_name)


def run_block(
    size: int,
    evals: int,
    rounds: int,
    warmup: int,
    peer: Peer,
    plain: Plain,
    client: Any,
    folder: Path,
    ort_client: Any = None,
) -> dict[str, Any]:
    steps = 2 * evals
    timesteps = pixelkiln_timesteps(folder, steps)
    assert len(timesteps) == evals, timesteps
    common = dict(prompt=PROMPT, strength=STRENGTH, steps=steps, seed=SEED, size=size,
                  guidance_scale=0.0)  # fmt: skip
    fields = live_fields()
    live_arms = {PK: LiveArm(client, common)}
    if "output_encoding" in fields:
        live_arms[PK_RAW] = LiveArm(client, {**common, "output_encoding": "raw"})
    if "stream_batch" in fields:
        live_arms[PK_BATCH] = LiveArm(
            client, {**common, "output_encoding": "raw", "stream_batch": True}
        )
    if ort_client is not None:
        live_arms[PK_ORT] = LiveArm(ort_client, {**common, "output_encoding": "raw"})
    for name, batch in ((SD_BATCH, True), (SD_SEQ, False)):
        peer.call(op="prepare", name=name, size=size, timesteps=timesteps, batch=batch,
                  prompt=PROMPT, seed=SEED)  # fmt: skip
    pngs = sketches(warmup + rounds, size)
    b64 = [base64.b64encode(p).decode() for p in pngs]

    def arm(name: str, i: int) -> float:
        if name in (SD_BATCH, SD_SEQ):
            return float(peer.call(op="frame", name=name, png=b64[i])["ms"])
        if name == DIFFUSERS:
            return plain.frame(pngs[i], steps)
        return float(live_arms[name].frame(pngs[i], first=i == 0))

    names = [SD_BATCH, SD_SEQ, DIFFUSERS, *live_arms]
    for i in range(warmup):
        for name in names:
            arm(name, i)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(arm(name, warmup + r))
    lags = {n: sorted(set(a.lags[warmup:])) for n, a in live_arms.items()}
    for a in live_arms.values():
        a.close()
    return {
        "size": size,
        "unet_evaluations": evals,
        "pixelkiln_steps": steps,
        "strength": STRENGTH,
        "timesteps": timesteps,
        "rounds": rounds,
        "ms": {n: bench.summarize(v) for n, v in times.items()},
        "frame_lag_inputs": lags,
    }


def ratio(block: dict[str, Any], arm: str, base: str, stat: str) -> float:
    ms = block["ms"]
    if arm not in ms or base not in ms:
        return float("nan")
    return float(ms[arm][stat] / ms[base][stat])


def report(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    arms = [a for a in (PK, PK_RAW, PK_BATCH, PK_ORT) if any(a in b["ms"] for b in blocks)]
    print("\nper frame, ms (p50 / p99)")
    names = list(blocks[0]["ms"])
    rows = [
        [f"{b['size']}, {b['unet_evaluations']}"]
        + [f"{b['ms'][n]['median']:.1f} / {b['ms'][n]['p99']:.1f}" for n in names]
        for b in blocks
    ]
    bench.print_table(["size, UNet evals", *names], rows)
    goals = []
    for a in arms:
        print(f"\n{a}: ratio to each peer, p50 / p99 (< 1: PixelKiln faster)")
        rows = []
        for b in blocks:
            cells = [f"{b['size']}, {b['unet_evaluations']}"]
            for base in (SD_BATCH, SD_SEQ, DIFFUSERS):
                p50, p99 = ratio(b, a, base, "median"), ratio(b, a, base, "p99")
                cells.append(f"{p50:.2f} / {p99:.2f}")
            rows.append(cells)
            limit = 0.85 if a == PK_BATCH else 1.0
            goals.append(
                (f"{a} / {SD_BATCH} p50, {b['size']}px {b['unet_evaluations']} evals",
                 ratio(b, a, SD_BATCH, "median"), limit)
            )  # fmt: skip
        bench.print_table(
            ["size, UNet evals", f"/ {SD_BATCH}", f"/ {SD_SEQ}", f"/ {DIFFUSERS}"], rows
        )
    print("\ngoals (issue #19: <= 1.0 at p50 in every row; stretch <= 0.85 with stream batch)")
    return bench.print_goals(goals)


def setup_peer() -> Path:
    python = SD_VENV / "bin" / "python"
    script = ROOT / "tools" / "setup_streamdiffusion_venv.sh"
    subprocess.run(["bash", str(script)], check=True, stdout=sys.stderr)
    return python


def write_tokenizer(folder: Path) -> None:
    """The tiny tokenizer as vocab.json + merges.txt (transformers 4's CLIPTokenizer files)."""
    from pixelkiln_server.backends import tiny_random

    (folder / "vocab.json").write_text(
        json.dumps(tiny_random._tokenizer_vocab(), ensure_ascii=False), encoding="utf-8"
    )
    merges = "".join(f"{a} {b}\n" for a, b in tiny_random._MERGES)
    (folder / "merges.txt").write_text("#version: 0.2\n" + merges, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--evals", default="1,2", help="UNet evaluations per frame")
    parser.add_argument("--threads", type=int, default=0, help="torch threads, every arm")
    parser.add_argument("--quick", action="store_true", help="8 rounds, 64 px, 1 eval")
    parser.add_argument(
        "--no-onnx", action="store_true", help="no arm of PixelKiln serving an ONNX export"
    )
    parser.add_argument(
        "--omp-passive",
        action="store_true",
        help="OMP_WAIT_POLICY=PASSIVE in every arm (a loaded machine: spinning OpenMP threads "
        "slowed 2-thread torch 20-60x here at load 10+)",
    )
    parser.add_argument("--out", type=Path, default=bench.RESULTS_DIR / "peer_streamdiffusion.json")
    args = parser.parse_args()
    # Before torch loads; the daemon and the StreamDiffusion worker inherit it.
    threads = bench.pin_threads(args.threads, args.omp_passive)
    if args.quick:
        args.rounds, args.warmup, args.sizes, args.evals = 8, 3, "64", "1"
    python = setup_peer()
    import torch

    from pixelkiln import Client
    from pixelkiln_server.backends.tiny_random import ensure_tiny_random

    torch.set_num_threads(threads)
    env = bench.environment()
    print(bench.env_line(env), flush=True)
    folder = ensure_tiny_random()
    plain = Plain(folder)
    from _streamdiffusion_worker import state_checksum

    ours = {
        "unet": state_checksum(plain.pipe.unet),
        "vae": state_checksum(plain.pipe.vae),
        "text_encoder": state_checksum(plain.pipe.text_encoder, "text_model."),
    }
    blocks = []
    with (
        tempfile.TemporaryDirectory(prefix="pixelkiln-peer-") as tmp,
        open(Path(tmp) / "worker.log", "w+") as log,
    ):
        write_tokenizer(Path(tmp))
        peer = Peer(python, log)
        try:
            loaded = peer.call(op="load", folder=str(folder), tokenizer=tmp, threads=threads)
            if loaded["checksums"] != ours:
                raise SystemExit(f"weights differ: {loaded['checksums']} vs {ours}")
            print(f"peer: {loaded['versions']}; weights' checksums equal", flush=True)
            # A slow arm must not end the others' sessions between two of their inputs.
            daemon = bench.ChildDaemon("--live-idle-timeout", "3600", threads=threads)
            with contextlib.ExitStack() as stack:
                stack.enter_context(daemon)
                client = stack.enter_context(Client(daemon.address))
                ort_client = None
                if not args.no_onnx:
                    from live import onnx_folder  # benchmarks/live.py: exported once, kept

                    exported = str(onnx_folder("tiny-random"))
                    ort = bench.ChildDaemon(
                        "--model", exported, "--live-idle-timeout", "3600", threads=threads
                    )
                    stack.enter_context(ort)
                    ort_client = stack.enter_context(Client(ort.address))
                for size in (int(s) for s in args.sizes.split(",")):
                    for evals in (int(e) for e in args.evals.split(",")):
                        block = run_block(
                            size, evals, args.rounds, args.warmup, peer, plain, client, folder,
                            ort_client,
                        )  # fmt: skip
                        blocks.append(block)
                        print(f"{size}px, {evals} evals: done", file=sys.stderr, flush=True)
        finally:
            peer.close()
            log.seek(0)
            worker_log = log.read()
    goals = report(blocks)
    env["loadavg_1m_after"] = bench.load_average()
    print(bench.env_line(env))
    data = {"benchmark": "peer_streamdiffusion", "environment": env, "peer": loaded["versions"]}
    data.update(checksums=ours, blocks=blocks, goals=goals, worker_log_tail=worker_log[-2000:])
    print(f"wrote {bench.write_json(args.out, data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
