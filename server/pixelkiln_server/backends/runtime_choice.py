"""Torch or ONNX Runtime for a diffusers model on the CPU, chosen by measurement.

``ModelOptions.runtime`` (``pixelkiln serve --runtime``, ``auto`` by default for the served
model): ``torch`` serves with the diffusers pipeline only. ``onnx`` exports the loaded weights
to ONNX (``onnx_export.py``, cached under ``$PIXELKILN_HOME/onnx-cache``, keyed by a hash of
the weights, the padding and the torch version) and serves every request ONNX Runtime can
serve from that export (``onnx_backend.OnnxModel``); the rest stays on torch. ``auto`` does the
same export, then times both runtimes on this machine on two requests at the model's native
size: a txt2img at its default steps and guidance, and a 2-step img2img live frame (torch's
lean path). ONNX Runtime is chosen when the geometric mean of its time ratios is at most
:data:`FASTER`. The measurement is cached beside the export, keyed by the CPU, the thread count
and the torch and ONNX Runtime versions; delete ``measured-*.json`` there to measure again.

One runtime serves every routed request of a model (txt2img, img2img, live frames), so a live
frame's recipe replays through Generate on the same runtime. What stays on torch, always: inpainting
(torch decodes it with the init image's GroupNorm statistics, inpaint.decode_like, which the
exported decoder cannot; without them colours shift outside the mask), stream-batch live frames and
tiny-autoencoder ones of a model that has a tiny autoencoder (torch's lean path has them, the export
does not), sizes the exported UNet cannot halve cleanly, tiling on a model whose export does not
wrap, and large calls (:func:`onnx_fits`: ONNX Runtime's attention memory grows with the square of
the pixels; 2048x2048 took 21.7 GB). Models that cannot be routed at all (noted in Status and the
log): non-SD families, CUDA and MPS devices (export on the GPU is ``pixelkiln export-onnx``'s job),
half precision, LoRA adapters, compile, quantize or offload, schedulers other than Euler discrete,
UNets with inpainting inputs; ``auto`` also leaves models above :data:`AUTO_MAX_BYTES` of weights on
torch (exporting them at start would take minutes).

The two runtimes agree to float tolerance, not bit for bit (tests/test_runtime_choice.py
measures it); on one machine the choice is cached, so the same recipe gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import renames
from ..errors import FailedPrecondition, PixelKilnError
from ..types import DecodedInputs, EncodedImage, Encoding, GenerationRequest, Priority, Tiling
from . import export_cache
from .base import LoadedModel, NoHooks, StepHooks

log = logging.getLogger(__name__)

# ONNX Runtime is chosen when it takes at most this share of torch's time.
FASTER = 0.9
# ``auto`` exports models up to this many bytes of weights at load (the shipped one: 38 MB).
AUTO_MAX_BYTES = 300 * 2**20
REPEATS = 3
WARMUP = 2
# A measurement is kept only when the probes' ratios agree within this factor and it took at
# most MEASURE_BUDGET_S: on a machine busy with other programs torch's threads suffer far more
# than ONNX Runtime's (one start measured 0.03x, torch at 8.6 s a call, and kept it for good).
STEADY_SPREAD = 2.5
MEASURE_BUDGET_S = 30.0
# Bumped when what the probes time changes (2: the torch live frame's recorded graphs), so a
# measurement cached by an older PixelKiln is taken again.
PROBES_VERSION = 2
CACHE_DIR = "onnx-cache"
EXPORT_FORMAT = 1  # bump when the export's layout or the cache key changes


@dataclass(frozen=True)
class Choice:
    runtime: str  # "torch" or "onnx"
    why: str
    # Median milliseconds per measured request kind and runtime ("txt2img/torch": 203.0).
    timings: dict[str, float]
    # The probes agreed (kept for later starts); False: other programs were busy, it is used
    # for this run only and measured again at the next start.
    steady: bool = True


def why_not(model: Any, runtime: str) -> str | None:
    """Why ``model`` (a DiffusersModel) cannot be served from an export, or None."""
    import importlib.util

    spec = model.spec
    pipe = model.pipe
    if spec.family != "sd":
        return f"the ONNX export handles SD-family models; {spec.name} is {spec.family}"
    if model.device != "cpu":
        return f"runs on {model.device}; export with `pixelkiln export-onnx` and serve the folder"
    if model.dtype != "fp32":
        return f"ONNX Runtime on the CPU runs float32; this model loaded in {model.dtype}"
    torch_only = spec.options.torch_only
    if torch_only:
        return f"{', '.join(torch_only)} apply to torch"
    if type(pipe.scheduler).__name__ != "EulerDiscreteScheduler":
        return f"the export steps with Euler discrete, not {type(pipe.scheduler).__name__}"
    if int(pipe.unet.config.in_channels) != int(pipe.vae.config.latent_channels):
        return "the UNet has inpainting inputs (mask and masked image channels)"
    if importlib.util.find_spec("onnxruntime") is None:
        return "ONNX Runtime is not installed (pip install 'pixelkiln[cpu]')"
    if runtime == "auto" and model.memory_bytes() > AUTO_MAX_BYTES:
        return (
            f"weights above {AUTO_MAX_BYTES // 2**20} MiB are not exported at load; "
            "use --runtime onnx or `pixelkiln export-onnx`"
        )
    return None


def weights_key(model: Any) -> str:
    """Hash of everything the export depends on: the weights, the padding, the scheduler's
    config and the folder's pixelkiln.json (both copied into the export), torch, the format."""
    import torch

    from ..folder_meta import META_FILE
    from ..onnx_export import OPSET

    digest = hashlib.sha256(f"{EXPORT_FORMAT}/{OPSET}/{torch.__version__}".encode())
    pipe = model.pipe
    digest.update(json.dumps(dict(pipe.scheduler.config), sort_keys=True, default=str).encode())
    meta = Path(model.spec.source) / META_FILE
    if meta.is_file():
        digest.update(meta.read_bytes())
    for component in (pipe.text_encoder, pipe.unet, pipe.vae):
        for name, tensor in component.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().contiguous().numpy().tobytes())
        padding = [getattr(m, "padding_mode", "") for m in component.modules()]
        digest.update(",".join(padding).encode())
    return digest.hexdigest()[:16]


def cached_export(model: Any, home: Path) -> Path:
    """The export of ``model``'s weights under ``home``, made first when it is not there
    (into a sibling temporary folder, then renamed: a folder there is always complete);
    older exports of the same model are pruned (``export_cache``)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model.spec.name)[:64]
    folder = Path(home) / CACHE_DIR / f"{safe}-{weights_key(model)}"
    if not folder.is_dir():
        _export(model, folder)
    export_cache.mark_used(folder)
    try:
        export_cache.prune(folder)
    except OSError as exc:  # pruning is housekeeping: it never fails a load
        log.warning("onnx-cache: could not prune beside %s: %s", folder.name, exc)
    return folder


def _export(model: Any, folder: Path) -> None:
    from ..onnx_export import export_onnx

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    started = time.perf_counter()
    try:
        export_onnx(model.pipe, tmp, spec=model.spec)
        try:
            renames.replace(tmp, folder)
        except OSError:  # another daemon finished the same export first
            if not folder.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "exported %s to ONNX in %.1f s: %s", model.spec.name, time.perf_counter() - started, folder
    )


def _probes(model: Any) -> dict[str, tuple[GenerationRequest, DecodedInputs]]:
    """The measured requests: a txt2img at the defaults, a 2-step live img2img frame."""
    spec = model.spec
    size = {"width": spec.native_width, "height": spec.native_height}
    pixels = np.random.default_rng(0).integers(0, 256, (size["height"], size["width"], 3))
    frame = GenerationRequest(
        prompt="measure",
        steps=2,
        guidance_scale=1.0,
        seed=0,
        strength=0.5,
        init_image=EncodedImage(b"", Encoding.RAW_RGBA8),
        priority=Priority.LIVE,
        **size,
    )
    return {
        "txt2img": (
            GenerationRequest(
                prompt="measure",
                steps=spec.default_steps,
                guidance_scale=spec.default_guidance,
                seed=0,
                **size,
            ),
            DecodedInputs(),
        ),
        "live": (frame, DecodedInputs(init_rgb=pixels.astype(np.uint8))),
    }


def _machine_key() -> str:
    import onnxruntime
    import torch

    parts = (
        platform.machine(),
        platform.processor(),
        platform.platform(),
        str(os.cpu_count()),
        str(torch.get_num_threads()),
        torch.__version__,
        onnxruntime.__version__,
        f"probes-{PROBES_VERSION}",
    )
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:12]


def measure(torch_model: Any, onnx_model: LoadedModel) -> Choice:
    """Time both runtimes on the probes, interleaved, after WARMUP calls each (the torch live
    frame records its graphs at its second call: traced.py)."""
    timings: dict[str, float] = {}
    ratios = []
    started_all = time.perf_counter()
    for kind, (request, inputs) in _probes(torch_model).items():
        runs: dict[str, list[float]] = {"torch": [], "onnx": []}
        for rep in range(WARMUP + REPEATS):
            for name, run in (("torch", torch_model.generate), ("onnx", onnx_model.generate)):
                started = time.perf_counter()
                run(request, inputs, NoHooks())
                if rep >= WARMUP:
                    runs[name].append(time.perf_counter() - started)
        for name, values in runs.items():
            timings[f"{kind}/{name}"] = round(statistics.median(values) * 1e3, 2)
        ratios.append(timings[f"{kind}/onnx"] / timings[f"{kind}/torch"])
    ratio = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    runtime = "onnx" if ratio <= FASTER else "torch"
    took = time.perf_counter() - started_all
    steady = max(ratios) / min(ratios) <= STEADY_SPREAD and took <= MEASURE_BUDGET_S
    why = f"measured: ONNX Runtime takes {ratio:.2f}x torch's time"
    if not steady:
        why += f" (unsteady: probes {min(ratios):.2f}x to {max(ratios):.2f}x in {took:.0f} s)"
    return Choice(runtime, why, timings, steady)


def _cached_choice(folder: Path, torch_model: Any, onnx_model: LoadedModel) -> Choice:
    path = folder / f"measured-{_machine_key()}.json"
    try:
        raw = json.loads(path.read_text())
        return Choice(str(raw["runtime"]), str(raw["why"]) + ", cached", dict(raw["timings"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    log.info("measuring ONNX Runtime against torch on this machine, once (about 10 s)")
    choice = measure(torch_model, onnx_model)
    if not choice.steady:
        log.warning(
            "%s: the machine looks busy; used for this run only, measured again at the next start",
            choice.why,
        )
        return choice
    record = {"runtime": choice.runtime, "why": choice.why, "timings": choice.timings}
    record["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    renames.replace(tmp, path)
    return choice


# ONNX Runtime holds each attention layer's whole score matrix, which grows with the square
# of the pixels (torch's CPU attention does not). Measured on the shipped model, one 1-step
# image, the runner's peak memory: 0.64, 0.91, 1.94, 4.32 GB at 256, 512, 768, 1024 px
# square on ONNX Runtime against 0.58, 0.81, 1.11, 1.45 GB on torch; at 2048 px ONNX Runtime
# took 21.7 GB and the kernel killed the runner. A call whose score matrices outgrow those of
# two 512x512 images (a batch, or guidance's doubled one) stays on torch.
ONNX_MAX_SCORES = 2 * (512 * 512) ** 2


def onnx_fits(request: GenerationRequest) -> bool:
    batch = request.num_images * (2 if (request.guidance_scale or 0.0) > 1.0 else 1)
    return batch * (request.width * request.height) ** 2 <= ONNX_MAX_SCORES


class OnnxRoute:
    """The requests of one diffusers model that its ONNX export serves."""

    def __init__(self, onnx_model: Any, choice: Choice, side_multiple: int, has_tiny: bool) -> None:
        self.onnx = onnx_model
        self.choice = choice
        self.side_multiple = side_multiple
        # Whether torch could apply a tiny autoencoder; without one, such a frame is an
        # ordinary frame on either runtime (and the same frame as without the option).
        self.has_tiny = has_tiny

    def serves(self, request: GenerationRequest) -> bool:
        return (
            request.mask is None
            and not request.stream_batch
            and not (request.tiny_autoencoder and self.has_tiny)
            and request.width % self.side_multiple == 0
            and request.height % self.side_multiple == 0
            and (request.tiling is Tiling.NONE or self.onnx.wraps)
            and onnx_fits(request)
        )

    def generate(
        self, request: GenerationRequest, inputs: DecodedInputs, hooks: StepHooks
    ) -> list[np.ndarray]:
        from .live_path import NO_TINY, note

        note(hooks, "runtime", "onnx")  # the recipe says so (host.py)
        if request.priority is Priority.LIVE or request.tiny_autoencoder:
            note(hooks, "lean", "not applied: ONNX Runtime serves this model (runtime)")
            note(hooks, "stream_batch", "not applied: off")
            note(
                hooks,
                "tiny_autoencoder",
                NO_TINY if request.tiny_autoencoder else "not applied: off",
            )
        images: list[np.ndarray] = self.onnx.generate(request, inputs, hooks)
        return images

    def release(self) -> None:
        self.onnx.unload()


def describe(choice: Choice | None, reason: str | None) -> str:
    if choice is None:
        return f"torch ({reason})" if reason else "torch"
    return f"{choice.runtime} ({choice.why})"


def choose(model: Any, home: Path) -> tuple[OnnxRoute | None, str]:
    """:func:`attach`; under ``auto`` any failure of the export or of ONNX Runtime keeps
    torch (logged, and said in Status); under ``onnx`` it refuses the load, naming it."""
    try:
        return attach(model, home)
    except PixelKilnError:
        raise
    except Exception as exc:  # noqa: BLE001 - the exporter's and ONNX Runtime's many errors
        if model.spec.options.runtime == "onnx":
            raise FailedPrecondition(
                f"runtime: exporting {model.spec.name} to ONNX failed ({type(exc).__name__}); "
                "serve with --runtime torch"
            ) from exc
        log.warning("runtime of %s: torch (the ONNX export failed: %r)", model.spec.name, exc)
        return None, f"torch (the ONNX export failed: {type(exc).__name__})"


def attach(model: Any, home: Path) -> tuple[OnnxRoute | None, str]:
    """The ONNX route of ``model`` per its ``runtime`` option, and the Status text saying which
    runtime serves it and why. ``onnx`` on a model that cannot be routed raises
    FailedPrecondition naming the reason; ``auto`` keeps torch and says why."""
    from ..catalogue import ONNX_MANIFEST
    from .onnx_backend import OnnxModel

    runtime = model.spec.options.runtime
    if runtime in ("", "torch"):
        return None, "torch"
    reason = why_not(model, runtime)
    if reason is not None:
        if runtime == "onnx":
            raise FailedPrecondition(f"runtime: cannot serve {model.spec.name} on onnx: {reason}")
        log.info("runtime of %s: torch (%s)", model.spec.name, reason)
        return None, describe(None, reason)
    folder = cached_export(model, home)
    manifest = json.loads((folder / ONNX_MANIFEST).read_text())
    spec = replace(model.spec, backend="onnx", source=str(folder))
    onnx_model = OnnxModel(spec, folder, manifest, "cpu")
    if runtime == "onnx":
        choice = Choice("onnx", "asked for", {})
    else:
        choice = _cached_choice(folder, model, onnx_model)
    log.info("runtime of %s: %s", model.spec.name, describe(choice, None))
    if choice.runtime != "onnx":
        onnx_model.unload()
        return None, describe(choice, None)
    unet = model.pipe.unet.config
    side = model.pipe.vae_scale_factor * 2 ** (len(unet.down_block_types) - 1)
    route = OnnxRoute(onnx_model, choice, side, has_tiny=model.tiny_vae is not None)
    return route, describe(choice, None)
