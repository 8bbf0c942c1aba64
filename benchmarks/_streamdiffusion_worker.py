"""StreamDiffusion 0.1.1 in-process, driven by benchmarks/peer_streamdiffusion.py.

Runs with the python of .cache/venv-streamdiffusion (diffusers 0.24; it never imports
PixelKiln). One JSON command per line on stdin, one JSON answer per line on the original
stdout (everything the libraries print goes to stderr):

    {"op": "load", "folder": ..., "tokenizer": ..., "threads": N}
        -> {"ok": true, "checksums": {component: sha256}, "versions": {...}}
    {"op": "prepare", "size": 64, "timesteps": [499, 249], "batch": true, "prompt": ...,
     "seed": 1}                                          -> {"ok": true}
    {"op": "frame", "png": base64}                       -> {"ok": true, "ms": ..., "sha": ...}

What was needed on a CPU-only torch (issue #19): StreamDiffusion times each call with
``torch.cuda.Event`` (replaced by a no-op here; the frame is timed with perf_counter); the
tiny tokenizer's vocab.json/merges.txt are written by the caller (transformers 5 saved only
tokenizer.json); the text encoder's weights are loaded under ``text_model.`` (transformers 5
saves them without the prefix). The denoising timesteps are given (the same ones the
PixelKiln pipeline runs for its steps and strength), CFG is off (``cfg_type="none"``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


class _NoEvent:
    """Stand-in for torch.cuda.Event on a CPU-only torch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.t = 0.0

    def record(self, *args: Any) -> None:
        self.t = time.perf_counter()

    def elapsed_time(self, end: _NoEvent) -> float:
        return (end.t - self.t) * 1000.0


def state_checksum(module: Any, strip: str = "") -> str:
    """sha256 over the module's tensors (float32 bytes), by name sorted, ``strip`` removed
    from the names: the same in both venvs for the same weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        key = name[len(strip) :] if strip and name.startswith(strip) else name
        if "position_ids" in key:  # a buffer transformers 4 keeps and 5 drops
            continue
        h.update(key.encode())
        h.update(tensor.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


class Worker:
    def __init__(self) -> None:
        self.pipe: Any = None
        self.streams: dict[str, Any] = {}

    def load(self, folder: str, tokenizer: str, threads: int) -> dict[str, Any]:
        import diffusers
        import streamdiffusion
        import torch
        import transformers
        from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
        from safetensors.torch import load_file
        from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

        if threads:
            torch.set_num_threads(threads)
        torch.cuda.Event = _NoEvent  # type: ignore[misc,assignment]
        torch.cuda.synchronize = lambda *a, **k: None  # type: ignore[assignment]
        root = Path(folder)
        unet = UNet2DConditionModel.from_pretrained(root / "unet", use_safetensors=True)
        vae = AutoencoderKL.from_pretrained(root / "vae", use_safetensors=True)
        text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(root / "text_encoder"))
        weights = load_file(str(root / "text_encoder" / "model.safetensors"))
        weights = {k if k.startswith("text_model.") else f"text_model.{k}": v
                   for k, v in weights.items()}  # fmt: skip
        missing, unexpected = text_encoder.load_state_dict(weights, strict=False)
        missing = [k for k in missing if "position_ids" not in k]
        if missing or unexpected:
            raise RuntimeError(f"text encoder keys: missing {missing}, unexpected {unexpected}")
        tok = CLIPTokenizer(
            str(Path(tokenizer) / "vocab.json"),
            str(Path(tokenizer) / "merges.txt"),
            model_max_length=77,
        )
        scheduler = diffusers.EulerDiscreteScheduler.from_pretrained(root / "scheduler")
        for module in (unet, vae, text_encoder):
            module.eval()
        self.pipe = StableDiffusionPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tok,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        self.pipe.set_progress_bar_config(disable=True)
        return {
            "checksums": {
                "unet": state_checksum(unet),
                "vae": state_checksum(vae),
                "text_encoder": state_checksum(text_encoder, "text_model."),
            },
            "versions": {
                "streamdiffusion": "0.1.1",
                "diffusers": diffusers.__version__,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "module": streamdiffusion.__name__,
            },
        }

    def prepare(
        self, name: str, size: int, timesteps: list[int], batch: bool, prompt: str, seed: int
    ) -> dict[str, Any]:
        """A StreamDiffusion object ``name`` (several may be held; each keeps its buffers)."""
        import torch
        from streamdiffusion import StreamDiffusion

        stream = StreamDiffusion(
            self.pipe,
            t_index_list=list(range(len(timesteps))),
            torch_dtype=torch.float32,
            width=size,
            height=size,
            use_denoising_batch=batch,
            cfg_type="none",
        )
        # The same timesteps as the PixelKiln pipeline (StreamDiffusion picks them from an LCM
        # schedule by index; given exactly here, its prepare() reads them back).
        set_timesteps = stream.scheduler.set_timesteps
        stream.scheduler.set_timesteps = lambda n, device=None: set_timesteps(
            timesteps=list(timesteps), device=device
        )
        stream.prepare(prompt, num_inference_steps=len(timesteps), guidance_scale=1.0, seed=seed)
        got = [int(t) for t in stream.sub_timesteps]
        if got != [int(t) for t in timesteps]:
            raise RuntimeError(f"StreamDiffusion runs timesteps {got}, not {timesteps}")
        self.streams[name] = stream
        return {"timesteps": got}

    def frame(self, name: str, png: str) -> dict[str, Any]:
        import numpy as np
        import torch
        from PIL import Image

        t0 = time.perf_counter()
        image = Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB")
        with torch.inference_mode():
            out = self.streams[name](image)  # (1, 3, H, W) in [-1, 1]
            pixels = ((out[0] / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        array = np.ascontiguousarray(pixels.permute(1, 2, 0).numpy())
        ms = (time.perf_counter() - t0) * 1000.0
        return {"ms": ms, "shape": list(array.shape), "sha": hashlib.sha1(array).hexdigest()}


def main() -> int:
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what the libraries print goes to stderr; answers to ``out`` only
    import warnings

    warnings.filterwarnings("ignore")
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    worker = Worker()
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        op = command.pop("op")
        try:
            if op == "quit":
                break
            answer = {"ok": True, **getattr(worker, op)(**command)}
        except Exception as exc:  # noqa: BLE001 - reported to the benchmark, which stops with it
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
