"""Turbo models at full size on one GPU: per stage and end to end, beside the compute floors.

    python benchmarks/gpu_turbo.py [--models sd-turbo,...] [--variants eager,onnx,compile,fp8]
    python benchmarks/gpu_turbo.py --cpu-smoke --out /tmp/x.json   # tiny configs, CI
    python benchmarks/gpu_turbo.py --models flux.1-schnell --variants eager,compile \
        --rows-jsonl rows.jsonl          # each row appended as measured (survives a kill)
    python benchmarks/gpu_turbo.py --table rows.jsonl --out all.json   # the table of those

Nothing is downloaded: SD-Turbo (SD 2.1 UNet, OpenCLIP-H, 512), SDXL-Turbo (UNet 2.6B, CLIP-L +
bigG, 512), FLUX.1-schnell (12B, T5-XXL + CLIP-L, 1024, 4 steps) and Z-Image-Turbo (6B,
Qwen3-4B, 1024, 8 steps) are built from configs written here with random weights (latency does
not depend on them) and tokenizers built in code (real sequence lengths). Stages: text
encoder(s), one denoiser step (its inputs captured from a pipeline call), VAE decode, tiny AE
decode (AutoencoderTiny); ``in_process`` (the daemon's model call) and ``end_to_end`` (a request
over loopback to an in-process daemon, raw RGBA8 out). Variants: eager, ``onnx`` (SD family;
onnxruntime with CUDA), ``compile`` (torch.compile of the denoiser), ``fp8`` (torchao float8
dynamic quantization, then compiled; compute capability 8.9+); each unavailable one is a row
with its reason. Optional variants share ``--budget-s`` per model (one 10-minute call);
``benchmarks/gpu_device_run.sh`` runs it on a lent GPU, one capped process per row group.
Measured, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402
from turbo_archs import build_full, build_tiny, tiny_autoencoder  # noqa: E402

MODELS = ("sd-turbo", "sdxl-turbo", "flux.1-schnell", "z-image-turbo")
VARIANTS = ("eager", "onnx", "compile", "fp8")
# The compute floors for the whole request, in ms, and what each covers.
FLOORS = {
    "sd-turbo": (1.1, "512 img2img 1 step, tiny AE"),
    "sdxl-turbo": (4.0, "512 txt2img 1 step"),
    "flux.1-schnell": (300.0, "1024 txt2img 4 steps"),
    "z-image-turbo": (470.0, "1024 txt2img 8 steps"),
}
# Rough seconds an optional variant needs on an H100 (compile, quantize + compile, export).
COST_S = {"onnx": 180, "compile": 90, "fp8": 120}
_PIPES: dict[str, Any] = {}  # served by MemoryBackend, by spec name
MEMORY = "bench-memory"


class MemoryBackend:
    """Serves a pipeline built in this process through the diffusers backend's model class
    (registered as ``__main__:MemoryBackend``: the daemon runs in this process)."""

    name = MEMORY

    def load(self, spec: Any, options: Any) -> Any:
        from pixelkiln_server.backends.diffusers_backend import DiffusersModel

        pipe = _PIPES[spec.name]
        return DiffusersModel(spec, pipe, str(pipe.device), pipe.dtype)


class Bench:
    def __init__(self, args: argparse.Namespace, daemon: Any) -> None:
        import torch

        self.args, self.smoke, self.daemon = args, args.cpu_smoke, daemon
        self.cuda = torch.cuda.is_available() and not self.smoke
        self.device = "cuda" if self.cuda else "cpu"
        self.deadline = time.monotonic() + args.budget_s
        self.models_left = len(args.models)
        self.rows: list[dict[str, Any]] = []
        self.stage_runs, self.e2e_runs = (1, 1) if self.smoke else (20, 5)

    def timed(self, fn: Callable[[], Any], runs: int) -> float:
        """Median ms over ``runs`` after one warm-up call (none in smoke mode)."""
        import torch

        sync = torch.cuda.synchronize if self.cuda else (lambda: None)
        times = []
        for _ in range(runs + (0 if self.smoke else 1)):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times.append((time.perf_counter() - t0) * 1000.0)
        return common.percentile(times[-runs:], 50)

    def row(self, model: str, variant: str, stage: str, ms: float | None, **extra: Any) -> None:
        floor, covers = FLOORS[model]
        extra |= {"floor_ms": floor, "floor_covers": covers}
        self.rows.append(dict(model=model, variant=variant, stage=stage, ms=ms, **extra))
        append_jsonl(self.args.rows_jsonl, self.rows[-1])
        if ms is None:
            print(f"  {model} {variant}: skipped ({extra.get('skipped')})")

    def run_model(self, model: str) -> None:
        import torch

        from pixelkiln_server.catalogue import PRESETS

        spec = PRESETS[model]
        dtype = torch.bfloat16 if spec.family in ("flux", "z-image") else torch.float16
        dtype = dtype if self.cuda else torch.float32
        t0, previous = time.monotonic(), torch.get_default_dtype()
        torch.set_default_dtype(dtype)  # built in place: no fp32 copy, no host round trip
        try:
            with torch.device(self.device):
                pipe = build_tiny(model) if self.smoke else build_full(model)
                tiny_ae = tiny_autoencoder(pipe.vae.config.latent_channels, self.smoke)
        finally:
            torch.set_default_dtype(previous)
        pipe.set_progress_bar_config(disable=True)
        size = 64 if self.smoke else spec.native_width
        module = pipe.unet if hasattr(pipe, "unet") else pipe.transformer
        gb = sum(p.numel() * p.element_size() for p in module.parameters()) / 1e9
        print(f"{model}: built in {time.monotonic() - t0:.1f} s (denoiser {gb:.1f} GB)")
        calls = capture(pipe, size)
        # Eager always runs; optional variants share what is left of this model's part of the
        # budget (time a model does not use passes on to the next ones).
        model_deadline = time.monotonic() + (self.deadline - time.monotonic()) / self.models_left
        try:
            # fp8 quantizes the denoiser in place: it runs after the variants that need it intact
            for variant in sorted(self.args.variants, key=lambda v: v == "fp8"):
                left = model_deadline - time.monotonic()
                reason = self.unavailable(variant, spec.family)
                if not reason and variant != "eager" and not self.smoke and left < COST_S[variant]:
                    reason = f"time budget ({left:.0f} s left for {model}; try --models)"
                if reason:
                    self.row(model, variant, "-", None, skipped=reason)
                    continue
                try:
                    if variant == "onnx":
                        self.run_onnx(model, pipe, spec, size)
                        continue
                    denoiser = prepare(variant, module)
                    self.stages(model, variant, pipe, calls, denoiser, tiny_ae, size)
                    self.end_to_end(model, variant, pipe, spec, denoiser, tiny_ae, size)
                except Exception as exc:  # noqa: BLE001 - one failed variant must not end the run
                    if self.smoke:
                        raise
                    self.row(model, variant, "-", None, skipped=f"failed: {exc!r}"[:300])
        finally:
            self.models_left -= 1
            _PIPES.clear()
            del pipe, calls, tiny_ae, module
            torch._dynamo.reset()  # compiled graphs hold the weights
            gc.collect()
            if self.cuda:
                torch.cuda.empty_cache()

    def unavailable(self, variant: str, family: str) -> str:
        """Why ``variant`` cannot run here; "" when it can."""
        if variant == "onnx":
            try:
                import onnxruntime as ort
            except ImportError:
                return "onnxruntime is not installed"
            if family != "sd":
                return "the ONNX export handles the SD family only"
            if self.cuda and "CUDAExecutionProvider" not in ort.get_available_providers():
                return "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"
        elif variant != "eager" and not self.cuda:
            return "needs CUDA" + (" (--cpu-smoke)" if self.smoke else "")
        elif variant == "fp8":
            import importlib.util

            import torch

            if torch.cuda.get_device_capability() < (8, 9):
                return "float8 needs compute capability 8.9+ (Ada, Hopper)"
            if importlib.util.find_spec("torchao") is None:
                return "torchao is not installed"
        return ""

    def stages(self, model: str, variant: str, pipe: Any, calls: dict[str, list[Any]],
               denoiser: Any, tiny_ae: Any, size: int) -> None:  # fmt: skip
        import torch

        args, kwargs = calls["unet" if "unet" in calls else "transformer"][0]
        t0 = time.monotonic()
        with torch.inference_mode():
            step = self.timed(lambda: denoiser(*args, **kwargs), self.stage_runs)
            self.row(model, variant, "denoise_step", step, first_call_s=time.monotonic() - t0)
            if variant != "eager":
                return
            encoders = [(getattr(pipe, n), c) for n, c in calls.items() if n.startswith("text")]
            encode = lambda: [m(*a, **k) for m, c in encoders for a, k in c]  # noqa: E731
            self.row(model, variant, "text_encoder", self.timed(encode, self.stage_runs))
            shape = (1, pipe.vae.config.latent_channels, size // 8, size // 8)
            z = torch.randn(shape, device=self.device, dtype=pipe.vae.dtype)
            for stage, decoder in (
                ("vae_decode", pipe.vae.decode),
                ("tiny_ae_decode", tiny_ae.decode),
            ):
                self.row(model, variant, stage, self.timed(partial(decoder, z), self.stage_runs))

    def end_to_end(self, model: str, variant: str, pipe: Any, spec: Any, denoiser: Any,
                   tiny_ae: Any, size: int) -> None:  # fmt: skip
        """The daemon's model call in process, then a request over loopback; for SD-Turbo
        also img2img with the tiny autoencoder (the floor's case)."""
        attr = "unet" if hasattr(pipe, "unet") else "transformer"
        original = getattr(pipe, attr)
        setattr(pipe, attr, denoiser)
        cases: list[tuple[str, Any, dict[str, Any]]] = [("", pipe, {})]
        if model == "sd-turbo":
            taesd = type(pipe)(**{**pipe.components, "vae": tiny_ae}, requires_safety_checker=False)
            taesd.set_progress_bar_config(disable=True)
            cases.append(("+taesd img2img", taesd, {"strength": 0.5, "steps": 2}))
        try:
            for suffix, served, options in cases:
                name = f"{model}/{variant}{suffix}"
                _PIPES[name] = served
                memory = replace(spec, name=name, source=f"memory:{name}", backend=MEMORY)
                memory = replace(memory, native_width=size, native_height=size)
                self.serve(memory, model, variant, suffix, options)
        finally:
            setattr(pipe, attr, original)

    def serve(self, spec: Any, model: str, variant: str, suffix: str, options: dict[str, Any]):
        """``in_process``: the loaded model's generate, as the worker calls it; ``end_to_end``:
        a request to the daemon over loopback (raw RGBA8 out, no PNG encode)."""
        import numpy as np

        from pixelkiln import Client
        from pixelkiln._request import build_request
        from pixelkiln_server.convert import request_from_pb
        from pixelkiln_server.validation import resolve

        engine, size = self.daemon.daemon.engine, spec.native_width
        if options:
            init = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
            options = {**options, "init_image": init}
        options |= {"model": spec.name, "seed": 1, "output_encoding": "raw_rgba8"}
        engine.registry.register(spec)
        loaded = self.daemon.runner_registry.get(spec)
        request = request_from_pb(build_request("mossy cobblestone", **options))
        resolved, inputs = resolve(request, spec, engine.config.limits)
        hooks = SimpleNamespace(on_step=lambda step, total: False)
        local = self.timed(lambda: loaded.generate(resolved, inputs, hooks), self.e2e_runs)
        self.row(model, variant, f"in_process{suffix}", local)
        with Client(self.daemon.address, timeout=600) as client:
            remote = partial(client.generate, "mossy cobblestone", **options)
            self.row(model, variant, f"end_to_end{suffix}", self.timed(remote, self.e2e_runs))
            client.unload(spec.name)

    def run_onnx(self, model: str, pipe: Any, spec: Any, size: int) -> None:
        import torch

        from pixelkiln_server.backends.base import LoadOptions
        from pixelkiln_server.backends.onnx_backend import OnnxBackend
        from pixelkiln_server.catalogue import lookup
        from pixelkiln_server.onnx_export import export_onnx

        device, dtype = pipe.device, pipe.unet.dtype
        with tempfile.TemporaryDirectory(prefix="pixelkiln-onnx-") as tmp:
            t0 = time.monotonic()
            sized = replace(spec, native_width=size, native_height=size)
            export_onnx(pipe, Path(tmp), fp16=self.cuda, spec=sized)  # leaves it on the CPU
            pipe.to(device, dtype)
            spec = replace(lookup(tmp), name=f"{model}/onnx")
            onnx: Any = OnnxBackend().load(spec, LoadOptions(device=self.device))
            print(f"  onnx: export + load {time.monotonic() - t0:.1f} s, {onnx.providers[0]}")
            hidden = onnx.encode("x", 1)
            z = torch.randn(1, 4, size // 8, size // 8)
            t = torch.tensor([999.0])
            graphs = {
                "text_encoder": lambda: onnx.encode("mossy cobblestone", 1),
                "denoise_step": lambda: onnx.graphs["unet"](
                    tuple(z.shape), sample=z, timestep=t, encoder_hidden_states=hidden
                ),
                "vae_decode": lambda: onnx.graphs["vae_decoder"]((1, 3, size, size), latents=z),
            }
            for stage, fn in graphs.items():
                self.row(model, "onnx", stage, self.timed(fn, self.stage_runs))
            registry = self.daemon.runner_registry
            registry._loaded[spec.name] = onnx  # these sessions, not a second load
            self.serve(spec, model, "onnx", "", {})
            onnx.unload()


def capture(pipe: Any, size: int) -> dict[str, list[Any]]:
    """The (args, kwargs) of each text encoder and of the denoiser during one pipeline call."""
    calls: dict[str, list[Any]] = {}
    handles = []
    for name in ("text_encoder", "text_encoder_2", "unet", "transformer"):
        module = getattr(pipe, name, None)
        if module is not None:
            calls[name] = []
            hook = lambda _m, a, k, n=name: calls[n].append((a, k))  # noqa: E731
            handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        pipe("mossy cobblestone", num_inference_steps=1, guidance_scale=0.0, height=size,
             width=size, output_type="latent")  # fmt: skip
    finally:
        for handle in handles:
            handle.remove()
    return calls


def prepare(variant: str, module: Any) -> Any:
    """The denoiser for a variant: as is, compiled, or float8-quantized in place and compiled."""
    import torch

    if variant == "fp8":
        from torchao import quantization as q

        config = getattr(q, "Float8DynamicActivationFloat8WeightConfig", None)
        q.quantize_(module, config() if config else q.float8_dynamic_activation_float8_weight())
    return module if variant == "eager" else torch.compile(module)


def append_jsonl(path: Path | None, record: dict[str, Any]) -> None:
    """One JSON object per line, flushed at once: what a killed run measured stays."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record, default=str) + "\n")


def print_rows(rows: list[dict[str, Any]], env: dict[str, Any], smoke: bool) -> None:
    table = [
        [r["model"], r["variant"], r["stage"], r["ms"] if r["ms"] is not None else
         f"skipped: {r.get('skipped')}", r.get("floor_ms"), r.get("floor_covers")] for r in rows
    ]  # fmt: skip
    print(f"\nmedians in ms on {env.get('gpu', 'the CPU')}{' (cpu smoke)' if smoke else ''}")
    common.print_table(
        ["model", "variant", "stage", "median ms", "floor ms", "floor covers"], table
    )


def table_from_jsonl(path: Path, out: Path) -> int:
    """The table of the rows in ``path`` (lines with ``env`` describe a process), as measured
    by every process that appended to it; all of it as one JSON file in ``out``."""
    envs: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            (envs if "env" in record else rows).append(record)
    for row in rows:  # rows the device wrapper wrote (a cap, the budget) carry no floor
        floor, covers = FLOORS.get(row["model"], (None, None))
        row.setdefault("floor_ms", floor)
        row.setdefault("floor_covers", covers)
    env = envs[-1]["env"] if envs else {}
    smoke = bool(envs) and all(e.get("cpu_smoke") for e in envs)
    print_rows(rows, env, smoke)
    data = {"env": env, "cpu_smoke": smoke, "floors_ms": FLOORS, "rows": rows, "runs": envs}
    print(f"wrote {common.write_json(out, data)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny configs, one run each")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--budget-s", type=float, default=540.0, help="optional variants stop")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "gpu_turbo.json")
    parser.add_argument("--rows-jsonl", type=Path, help="append each row here as measured")
    parser.add_argument("--table", type=Path, metavar="JSONL", help="only print/merge these rows")
    args = parser.parse_args()
    if args.table:
        return table_from_jsonl(args.table, args.out)
    args.models = [m for m in args.models.split(",") if m]
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = set(args.models) - set(MODELS) | set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown models/variants: {', '.join(sorted(unknown))}")
    import torch

    from pixelkiln_server import capabilities
    from pixelkiln_server.backends import registry
    from pixelkiln_server.config import default_home

    registry._BACKENDS[MEMORY] = "__main__:MemoryBackend"
    # It serves DiffusersModel: the diffusers backend's capabilities (checked at admission).
    capabilities.DECLARATIONS[MEMORY] = capabilities.DECLARATIONS["diffusers"]
    env = common.environment()
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
    print(common.env_line(env), env.get("gpu", ""))
    run = {"models": args.models, "variants": args.variants, "cpu_smoke": args.cpu_smoke}
    append_jsonl(args.rows_jsonl, {"env": env, **run})
    device = "cuda" if torch.cuda.is_available() and not args.cpu_smoke else "cpu"
    with common.ThreadDaemon(home=default_home(), device=device, ws_port=None) as daemon:
        bench = Bench(args, daemon)
        for model in args.models:
            bench.run_model(model)
    print_rows(bench.rows, env, bench.smoke)
    data = {"env": env, "cpu_smoke": bench.smoke, "floors_ms": FLOORS, "rows": bench.rows}
    print(f"wrote {common.write_json(args.out, data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
