"""Writing a model folder atomically (fp16 safetensors, tokenizer files, model card,
``pixelkiln.json``) and its grid of samples."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import texgen
from texgen.captions import word_counts

from pixelkiln_server.backends.tiling import set_circular
from pixelkiln_server.catalogue import SHIPPED_FOLDER

from .recipe import Recipe
from .text import tokenizer_files
from .unet import build_scheduler

MODEL_CARD = SHIPPED_FOLDER / "README.md"
FORMAT_VERSION = 1


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def save_pipeline(
    out: Path,
    r: Recipe,
    vae: Any,
    text_encoder: Any,
    tokenizer: Any,
    unet: Any,
    extra: dict[str, Any],
) -> Path:
    """Write the pipeline folder beside ``out`` and rename it into place: ``out`` is either the
    complete new model or what it was before (an existing folder is replaced only at the end)."""
    import torch
    from diffusers import StableDiffusionPipeline

    pipe: Any = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=build_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    # UNet and VAE in fp16 (size). The text encoder stays fp32 (0.6 MB): transformers 5 loads
    # a model in its saved dtype while diffusers loads fp32 unless told otherwise, so an fp16
    # text encoder would break a plain ``from_pretrained(folder)`` on the CPU.
    unet.to(torch.float16)
    vae.to(torch.float16)
    text_encoder.to(torch.float32)
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    try:
        pipe.save_pretrained(tmp, safe_serialization=True)
        # transformers 5 saves only tokenizer.json; the slow CLIPTokenizer of transformers 4
        # needs these two.
        for name, text in tokenizer_files().items():
            (tmp / "tokenizer" / name).write_text(text, "utf-8")
        if MODEL_CARD.is_file():
            shutil.copyfile(MODEL_CARD, tmp / "README.md")
        meta = {
            "format": FORMAT_VERSION,
            "name": "pixelkiln-textures",
            "native_size": r.size,
            "default_steps": r.default_steps,
            "default_guidance": r.default_guidance,
            "padding": "circular",
            "dtype": {"unet": "float16", "vae": "float16", "text_encoder": "float32"},
            # The captions' words: the daemon warns about prompt words outside them.
            "vocabulary": sorted(w for w in word_counts() if w.isalpha()),
            "recipe": r.to_dict(),
            **extra,
        }
        meta["size_bytes"] = folder_size(tmp)
        (tmp / "pixelkiln.json").write_text(json.dumps(meta, indent=2) + "\n", "utf-8")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


def sample_grid(folder: Path, prompts: list[str], steps: int, guidance: float, seed: int) -> Any:
    """Generate one 64x64 image per prompt with the saved pipeline (fp32, circular), sprites
    rolled to the centre as the daemon serves them (the model cannot know where it is)."""
    import torch
    from diffusers import StableDiffusionPipeline

    from pixelkiln_server.imaging import torus

    pipe = StableDiffusionPipeline.from_pretrained(
        folder, local_files_only=True, torch_dtype=torch.float32
    )
    pipe.set_progress_bar_config(disable=True)
    set_circular(pipe.unet, pipe.vae)
    size = int(json.loads((folder / "pixelkiln.json").read_text())["native_size"])
    images = []
    for i, prompt in enumerate(prompts):
        gen = torch.Generator().manual_seed(seed + i)
        out = pipe(
            prompt,
            height=size,
            width=size,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=gen,
            output_type="np",
        )
        image = (np.clip(out.images[0], 0, 1) * 255).round().astype(np.uint8)
        images.append(torus.center_subject(image))
    return texgen.grid_image(images, cols=min(len(images), 10))


def write_grid(folder: Path, r: Recipe) -> None:
    """samples.png: the 12 patterns, then 2 more textures and 8 sprites on their key colours."""
    from PIL import Image

    colours = texgen.COLOUR_NAMES
    prompts = [
        texgen.canonical_caption(p, colours[i % 10]) for i, p in enumerate(texgen.PATTERN_NAMES)
    ]
    prompts += [
        texgen.transparent_prompt(texgen.canonical_caption(s, colours[(i + 3) % 10]))
        for i, s in enumerate(texgen.SPRITE_NAMES[:8])
    ]
    grid = sample_grid(folder, prompts, r.default_steps, r.default_guidance, 1000)
    big = Image.fromarray(grid)
    big.resize((big.width * 2, big.height * 2), Image.Resampling.NEAREST).save(
        folder / "samples.png"
    )
