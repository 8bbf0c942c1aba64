"""Export an SD-family diffusers pipeline to ONNX for the ``onnx`` backend.

``pixelkiln export-onnx MODEL DIR`` (or :func:`export_onnx`) writes::

    DIR/pixelkiln_onnx.json        manifest: family, VAE scaling, scheduler config, spec defaults
    DIR/text_encoder/model.onnx    input_ids (B, 77) int64 -> last_hidden_state (B, 77, D)
    DIR/unet/model.onnx            sample (B, 4, h, w), timestep (B,), encoder_hidden_states
    DIR/vae_decoder/model.onnx     latents (B, 4, h, w), already divided by the scaling factor
    DIR/vae_encoder/model.onnx     image (B, 3, H, W) in [-1, 1] -> moments (B, 8, h, w)
    DIR/tokenizer/                 the CLIP tokenizer, loaded offline
    DIR/pixelkiln.json             the source folder's own, when it has one (vocabulary, ...)

Batch and spatial axes are dynamic; opset 17; the TorchScript-based exporter
(``dynamo=False``), which needs neither ``onnxscript`` nor a symbolic shape pass. The graphs
are traced in float32; with ``fp16`` each is then converted by ONNX Runtime's float16 converter
(weights and compute in float16, inputs and outputs kept float32: for CUDA, as the CPU provider
runs fp32 faster). Tracing a float16 module directly gave graphs that ONNX Runtime refuses
(LayerNormalization bound to float and float16). A folder holding the manifest is served by the
onnx backend: ``pixelkiln serve --model DIR``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import renames
from .catalogue import ONNX_MANIFEST, ModelSpec
from .folder_meta import META_FILE

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
OPSET = 17
COMPONENTS = ("text_encoder", "unet", "vae_decoder", "vae_encoder")
_EXTERNAL_DATA_BYTES = 1_500_000_000
# The spec fields an exported folder keeps, so it serves with the source model's defaults.
_SPEC_FIELDS = (
    "native_width",
    "native_height",
    "default_steps",
    "default_guidance",
    "max_steps",
    "scheduler",
    "revision",
    "variation_mirror",
    "variation_low_freq",
)


def _wrappers() -> dict[str, Any]:
    """torch modules with plain tensor signatures, one per exported graph."""
    import torch

    class TextEncoder(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any) -> Any:
            return self.model(input_ids, return_dict=False)[0]

    class UNet(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, sample: Any, timestep: Any, encoder_hidden_states: Any) -> Any:
            return self.model(sample, timestep, encoder_hidden_states, return_dict=False)[0]

    class VaeDecoder(torch.nn.Module):
        def __init__(self, vae: Any) -> None:
            super().__init__()
            self.vae = vae

        def forward(self, latents: Any) -> Any:
            return self.vae.decode(latents, return_dict=False)[0]

    class VaeEncoder(torch.nn.Module):
        def __init__(self, vae: Any) -> None:
            super().__init__()
            self.vae = vae

        def forward(self, image: Any) -> Any:
            moments = self.vae.encoder(image)
            if self.vae.quant_conv is not None:
                moments = self.vae.quant_conv(moments)
            return moments

    return {"text_encoder": TextEncoder, "unet": UNet, "vae_decoder": VaeDecoder, "vae": VaeEncoder}


def _export(
    module: Any, args: tuple[Any, ...], path: Path, names: dict[str, dict[int, str]]
) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    *inputs, output = names
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        # Tracing notes on Python-side shape checks and Slice folding: expected, not actionable.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        torch.onnx.export(
            module.eval(),
            args,
            str(path),
            dynamo=False,
            input_names=inputs,
            output_names=[output],
            dynamic_axes=names,
            opset_version=OPSET,
            do_constant_folding=True,
        )


def export_onnx(
    pipe: Any, out_dir: Path, fp16: bool = False, spec: ModelSpec | None = None
) -> Path:
    """Export ``pipe`` (a StableDiffusionPipeline: CLIP text encoder, UNet, KL VAE) to
    ``out_dir``; returns the manifest's path. ``spec`` adds the source's serving defaults."""
    import torch

    if not all(hasattr(pipe, c) for c in ("text_encoder", "unet", "vae", "tokenizer")) or hasattr(
        pipe, "text_encoder_2"
    ):
        raise ValueError(
            f"export_onnx handles SD-family pipelines (one CLIP text encoder, a UNet, a KL VAE); "
            f"got {type(pipe).__name__}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = torch.float32
    # In place (no copy of a multi-GB model): a pipeline elsewhere ends up in float32 on the CPU.
    text_encoder, unet, vae = (
        m if (m.device.type, m.dtype) == ("cpu", dtype) else m.to("cpu", dtype)
        for m in (pipe.text_encoder, pipe.unet, pipe.vae)
    )
    wrap = _wrappers()
    seq = int(pipe.tokenizer.model_max_length)
    hidden = int(text_encoder.config.hidden_size)
    channels = int(unet.config.in_channels)
    latent_channels = int(vae.config.latent_channels)
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    h = w = 8
    batch = {0: "batch"}
    spatial = {0: "batch", 2: "height", 3: "width"}
    _export(
        wrap["text_encoder"](text_encoder),
        (torch.zeros(1, seq, dtype=torch.int64),),
        out_dir / "text_encoder" / "model.onnx",
        {"input_ids": batch, "last_hidden_state": batch},
    )
    _export(
        wrap["unet"](unet),
        (
            torch.randn(2, channels, h, w, dtype=dtype),
            torch.tensor([999.0, 999.0]),  # float32 always: the UNet upcasts it
            torch.randn(2, seq, hidden, dtype=dtype),
        ),
        out_dir / "unet" / "model.onnx",
        {
            "sample": spatial,
            "timestep": batch,
            "encoder_hidden_states": batch,
            "out_sample": spatial,
        },
    )
    _export(
        wrap["vae_decoder"](vae),
        (torch.randn(1, latent_channels, h, w, dtype=dtype),),
        out_dir / "vae_decoder" / "model.onnx",
        {"latents": spatial, "image": spatial},
    )
    _export(
        wrap["vae"](vae),
        (torch.randn(1, 3, h * scale, w * scale, dtype=dtype),),
        out_dir / "vae_encoder" / "model.onnx",
        {"image": spatial, "moments": spatial},
    )
    if fp16:
        for component in COMPONENTS:
            to_fp16(out_dir / component / "model.onnx")
    pipe.tokenizer.save_pretrained(out_dir / "tokenizer")
    meta = Path(spec.source) / META_FILE if spec else None
    if meta is not None and meta.is_file():  # vocabulary, preview factors, defaults
        shutil.copyfile(meta, out_dir / META_FILE)
    # Circular padding set on the source's convolutions is traced into the graphs: the export
    # wraps on both axes, as the source does (its tiled and untiled requests alike).
    wraps = any(
        getattr(m, "padding_mode", "") == "circular" for c in (unet, vae) for m in c.modules()
    )
    spec_fields = {k: v for k, v in asdict(spec).items() if k in _SPEC_FIELDS} if spec else {}
    if wraps:
        spec_fields["tiling"] = "circular"
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "family": spec.family if spec else "sd",
        "source": spec.source if spec else "",
        "pipeline": type(pipe).__name__,
        "fp16": fp16,
        "opset": OPSET,
        "scaling_factor": float(vae.config.scaling_factor),
        "vae_scale_factor": scale,
        "latent_channels": latent_channels,
        "max_length": seq,
        "scheduler_class": type(pipe.scheduler).__name__,
        "scheduler": dict(pipe.scheduler.config),
        "tokenizer": "tokenizer",
        "components": {c: f"{c}/model.onnx" for c in COMPONENTS},
        "padding": "circular" if wraps else "",
        "spec": spec_fields,
    }
    path = out_dir / ONNX_MANIFEST
    path.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return path


def to_fp16(path: Path) -> None:
    """Convert one exported graph to float16 in place (inputs and outputs stay float32)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(path))
    weight_bytes = sum(len(t.raw_data) for t in model.graph.initializer)
    large = weight_bytes > _EXTERNAL_DATA_BYTES  # protobuf's 2 GB limit, with room
    converted = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=large)
    for stale in path.parent.iterdir():
        stale.unlink()
    onnx.save(
        converted,
        str(path),
        save_as_external_data=large,
        all_tensors_to_one_file=True,
        location=f"{path.name}.data",
    )


def load_torch_pipeline(name: str, home: Path, offline: bool) -> tuple[Any, ModelSpec]:
    """The fp32 CPU pipeline of a preset, folder, file or hub id, loaded like the daemon does."""
    from .backends import registry
    from .backends.base import LoadOptions
    from .catalogue import lookup

    spec = lookup(name)
    options = LoadOptions(device="cpu", dtype="fp32", offline=offline, home=home)
    model = registry.get(spec.backend).load(spec, options)
    return model._pipes["txt2img"], spec  # type: ignore[attr-defined]


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a preset (tiny-random, sd-turbo), a diffusers folder or id")
    parser.add_argument("dir", type=Path, help="output folder (serve it with --model DIR)")
    parser.add_argument("--fp16", action="store_true", help="float16 weights (for CUDA)")
    parser.add_argument("--home", type=Path, default=None, help="cache folder for built models")
    parser.add_argument("--offline", action="store_true", help="never touch the network")


def run_export(args: argparse.Namespace) -> int:
    """``pixelkiln export-onnx``: export into a sibling temporary folder, then rename, so
    ``dir`` is either a complete export or untouched."""
    from .catalogue import lookup
    from .config import default_home
    from .errors import PixelKilnError

    logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.dir)
    if out.exists() and any(out.iterdir()):
        print(f"error: {out} exists and is not empty")
        return 2
    try:
        spec = lookup(args.model)
        if spec.family != "sd":
            raise ValueError(f"{args.model} is {spec.family}; the ONNX export handles SD only")
        pipe, spec = load_torch_pipeline(args.model, args.home or default_home(), args.offline)
    except (PixelKilnError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        export_onnx(pipe, tmp, fp16=args.fp16, spec=spec)
        if out.exists():
            out.rmdir()
        renames.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{out}: {spec.name} exported to ONNX ({'fp16' if args.fp16 else 'fp32'})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pixelkiln export-onnx", description=__doc__)
    add_export_arguments(parser)
    return run_export(parser.parse_args(argv))
