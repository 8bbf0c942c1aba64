"""Turbo models at full size on one GPU: per stage and end to end, beside the compute floors.

    python benchmarks/gpu_turbo.py [--models sd-turbo,...] [--variants eager,onnx,compile,fp8]
    python benchmarks/gpu_turbo.py --cpu-smoke --out /tmp/x.json   # tiny configs, CI

Nothing is downloaded: SD-Turbo (SD 2.1 UNet, OpenCLIP-H, 512), SDXL-Turbo (UNet 2.6B, CLIP-L +
bigG, 512), FLUX.1-schnell (12B, T5-XXL + CLIP-L, 1024, 4 steps) and Z-Image-Turbo (6B,
Qwen3-4B, 1024, 8 steps) are built from configs written here with random weights (latency does
not depend on them) and tokenizers built in code (real sequence lengths). Stages: text
encoder(s), one denoiser step (its inputs captured from a pipeline call), VAE decode, tiny AE
decode (AutoencoderTiny); ``in_process`` (the daemon's model call) and ``end_to_end`` (a request
over loopback to an in-process daemon, raw RGBA8 out). Variants: eager, ``onnx`` (SD family;
onnxruntime with CUDA), ``compile`` (torch.compile of the denoiser), ``fp8`` (torchao float8
dynamic quantization, then compiled; compute capability 8.9+); each unavailable one is a row
with its reason. Optional variants share ``--budget-s`` per model (one 10-minute call).
Measured, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

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


# CLIP text encoders: hidden, layers, heads, activation, projection.
CLIP = {"L": (768, 12, 12, "quick_gelu", 768), "H": (1024, 23, 16, "gelu", 512),
        "bigG": (1280, 32, 20, "gelu", 1280)}  # fmt: skip
SDXL_UNET = dict(
    sample_size=64, block_out_channels=(320, 640, 1280), transformer_layers_per_block=(1, 2, 10),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(5, 10, 20), cross_attention_dim=2048, use_linear_projection=True,
    addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)  # fmt: skip
FLUX = dict(
    in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
    num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
    guidance_embeds=False, axes_dims_rope=(16, 56, 56),
)  # fmt: skip
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              feed_forward_proj="gated-gelu", relative_attention_num_buckets=32)  # fmt: skip
QWEN3_4B = dict(
    vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
    num_attention_heads=32, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
)  # fmt: skip
FLUX_VAE = dict(scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
                use_post_quant_conv=False)  # fmt: skip


@contextlib.contextmanager
def host() -> Iterator[None]:
    """Schedulers and tokenizers: on the CPU in float32, whatever the models are built in."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        with torch.device("cpu"):
            yield
    finally:
        torch.set_default_dtype(previous)


def _clip(kind: str, tokenizer: Any, projection: bool = False) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    hidden, layers, heads, act, proj = CLIP[kind]
    config = CLIPTextConfig(
        vocab_size=49408, hidden_size=hidden, intermediate_size=hidden * 4,
        num_hidden_layers=layers, num_attention_heads=heads, hidden_act=act, projection_dim=proj,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _kl_vae(latent_channels: int, **config: Any) -> Any:
    from diffusers import AutoencoderKL

    blocks = {"down_block_types": ("DownEncoderBlock2D",) * 4}
    blocks["up_block_types"] = ("UpDecoderBlock2D",) * 4
    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                         latent_channels=latent_channels, **blocks, **config)  # fmt: skip


def build_full(model: str) -> Any:
    """The full-size architecture of ``model`` with random weights (the real configs)."""
    import diffusers as d
    from transformers import Qwen3Config, Qwen3Model, T5Config, T5EncoderModel

    from pixelkiln_server.backends.tiny_families import build_qwen_tokenizer, build_t5_tokenizer
    from pixelkiln_server.backends.tiny_random import build_tiny_tokenizer

    with host():
        tok = build_tiny_tokenizer()
        euler = d.EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085,
                                         beta_end=0.012, steps_offset=1)  # fmt: skip
        flow = [d.FlowMatchEulerDiscreteScheduler(shift=s, use_dynamic_shifting=False)
                for s in (1.0, 3.0)]  # fmt: skip
    if model == "sd-turbo":  # the SD 2.1 UNet at 512 (sample size 64)
        unet = d.UNet2DConditionModel(sample_size=64, cross_attention_dim=1024,
                                      attention_head_dim=(5, 10, 20, 20),
                                      use_linear_projection=True)  # fmt: skip
        vae = _kl_vae(4, scaling_factor=0.18215)
        return d.StableDiffusionPipeline(vae, _clip("H", tok), tok, unet, euler, None, None, None,
                                         requires_safety_checker=False)  # fmt: skip
    if model == "sdxl-turbo":
        return d.StableDiffusionXLPipeline(
            _kl_vae(4, scaling_factor=0.13025), _clip("L", tok), _clip("bigG", tok, True), tok,
            build_tiny_tokenizer(), d.UNet2DConditionModel(**SDXL_UNET), euler,
        )  # fmt: skip
    if model == "flux.1-schnell":
        return d.FluxPipeline(
            flow[0], _kl_vae(16, **FLUX_VAE), _clip("L", tok), tok,
            T5EncoderModel(T5Config(**T5_XXL)), build_t5_tokenizer(),
            d.FluxTransformer2DModel(**FLUX),
        )  # fmt: skip
    return d.ZImagePipeline(
        flow[1], _kl_vae(16, **FLUX_VAE), Qwen3Model(Qwen3Config(**QWEN3_4B)),
        build_qwen_tokenizer(), d.ZImageTransformer2DModel(),  # its defaults: the 6B config
    )  # fmt: skip


def build_tiny(model: str) -> Any:
    from pixelkiln_server.backends.tiny_families import build_tiny_family
    from pixelkiln_server.backends.tiny_random import build_tiny_sd_pipeline

    if model == "sd-turbo":
        return build_tiny_sd_pipeline()
    return build_tiny_family({"sdxl-turbo": "sdxl", "flux.1-schnell": "flux"}.get(model, "z-image"))


def tiny_autoencoder(latent_channels: int, smoke: bool) -> Any:
    """TAESD's shape (TAEF1's with 16 channels); a smaller one for the CPU smoke run."""
    from diffusers import AutoencoderTiny

    if not smoke:
        return AutoencoderTiny(latent_channels=latent_channels)
    small = dict(encoder_block_out_channels=(8,) * 4, decoder_block_out_channels=(8,) * 4)
    blocks = dict(num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1))
    return AutoencoderTiny(latent_channels=latent_channels, **small, **blocks)


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
            for variant in self.args.variants:
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
        loaded = engine.registry.get(spec)
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
            onnx = OnnxBackend().load(spec, LoadOptions(device=self.device))
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
            registry = self.daemon.daemon.engine.registry
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny configs, one run each")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--budget-s", type=float, default=540.0, help="optional variants stop")
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR / "gpu_turbo.json")
    args = parser.parse_args()
    args.models = [m for m in args.models.split(",") if m]
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = set(args.models) - set(MODELS) | set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown models/variants: {', '.join(sorted(unknown))}")
    import torch

    from pixelkiln_server.backends import registry
    from pixelkiln_server.config import default_home

    registry._BACKENDS[MEMORY] = "__main__:MemoryBackend"
    env = common.environment()
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
    print(common.env_line(env), env.get("gpu", ""))
    device = "cuda" if torch.cuda.is_available() and not args.cpu_smoke else "cpu"
    with common.ThreadDaemon(home=default_home(), device=device, ws_port=None) as daemon:
        bench = Bench(args, daemon)
        for model in args.models:
            bench.run_model(model)
    rows = [
        [r["model"], r["variant"], r["stage"], r["ms"] if r["ms"] is not None else
         f"skipped: {r['skipped']}", r["floor_ms"], r["floor_covers"]] for r in bench.rows
    ]  # fmt: skip
    print(f"\nmedians in ms on {env.get('gpu', 'the CPU')}{' (cpu smoke)' if bench.smoke else ''}")
    common.print_table(["model", "variant", "stage", "median ms", "floor ms", "floor covers"], rows)
    data = {"env": env, "cpu_smoke": bench.smoke, "floors_ms": FLOORS, "rows": bench.rows}
    print(f"wrote {common.write_json(args.out, data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
