"""A whole run of the recipe (data, VAE, text, UNet, save) and the continuation of a finished
model's UNet."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from .data import make_pool
from .recipe import Clock, Recipe, Report, log, setup_torch
from .save import folder_size, save_pipeline, write_grid
from .text import build_tokenizer, train_text
from .unet import encode_pool, fit_preview_factors, train_unet
from .vae import load_vae, train_vae


def train(
    r: Recipe,
    out: Path,
    minutes: float | None,
    grid: bool = True,
    vae_from: Path | None = None,
) -> dict[str, Any]:
    torch = setup_torch(r.threads)
    clock = Clock(minutes)
    report = Report()
    started = time.perf_counter()
    log(f"recipe: {json.dumps(r.to_dict())}")

    t = time.perf_counter()
    pool = make_pool(r.seed, r.pool, r.size)
    gen_s = time.perf_counter() - t
    log(f"data: {r.pool} images of {r.size}px in {gen_s:.1f} s ({r.pool / gen_s:.0f}/s)")
    report.add("data", 1, r.pool, gen_s, 0.0)

    if vae_from is None:
        log("stage 1: VAE")
        vae = train_vae(r, pool, report, clock.stage_deadline(0.42))
    else:
        log(f"stage 1: VAE taken from {vae_from} (not trained)")
        vae = load_vae(vae_from)
    log("stage 2: tokenizer + text encoder")
    tokenizer = build_tokenizer(r.max_tokens)
    text_encoder = train_text(r, pool, tokenizer, report, clock.stage_deadline(0.02))
    log("stage 3: UNet")
    t = time.perf_counter()
    lat = encode_pool(vae, pool)
    log(
        f"  encoded {r.pool} images in {time.perf_counter() - t:.1f} s; latents "
        f"{tuple(lat.mean.shape[1:])}, scaling factor {lat.scaling_factor:.4f}"
    )
    vae.register_to_config(scaling_factor=lat.scaling_factor)
    preview = fit_preview_factors(vae, pool, lat)
    pool.images = pool.images[:0]  # the UNet trains on latents only
    unet = train_unet(r, pool, lat, tokenizer, text_encoder, report, clock.stage_deadline(0.97))

    folder = save_pipeline(
        out,
        r,
        vae,
        text_encoder,
        tokenizer,
        unet,
        {
            "training": {**report.stages, "cut_short": report.cut_short},
            "preview_factors": preview,
            "torch": torch.__version__,
            "threads": r.threads,
            "train_seconds": round(time.perf_counter() - started, 1),
            "vae_from": str(vae_from) if vae_from else None,
        },
    )
    size_mb = folder_size(folder) / 1e6
    params = {
        name: sum(p.numel() for p in m.parameters())
        for name, m in (("vae", vae), ("text_encoder", text_encoder), ("unet", unet))
    }
    log(f"saved {folder} ({size_mb:.1f} MB; params {params})")
    if grid:
        write_grid(folder, r)
    summary = {
        "folder": str(folder),
        "size_mb": round(size_mb, 2),
        "params": params,
        "stages": report.stages,
        "cut_short": report.cut_short,
        "seconds": round(time.perf_counter() - started, 1),
    }
    log(json.dumps(summary, indent=2))
    return summary


CONTINUE_LR_SCALE = 0.5  # a continuation restarts the cosine at half the recipe's peak
CONTINUE_WARMUP = 100
CONTINUE_STREAM = 4


def continue_training(folder: Path, out: Path, steps: int, grid: bool) -> dict[str, Any]:
    """More UNet steps on a finished model (the text encoder fine-tuned alongside, VAE kept):
    the same data, new batches, a fresh optimiser, a warm restart of the learning rate. The
    result records what it continued from, so the two runs together are its recipe."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    prev = json.loads((folder / "pixelkiln.json").read_text())
    fields: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in prev["recipe"].items()
    }
    r = Recipe(**fields)
    setup_torch(r.threads)
    report = Report()
    started = time.perf_counter()
    pool = make_pool(r.seed, r.pool, r.size)
    log(f"data: {r.pool} images in {time.perf_counter() - started:.1f} s")
    vae = load_vae(folder)
    tokenizer = build_tokenizer(r.max_tokens)
    text_encoder = CLIPTextModel.from_pretrained(
        folder / "text_encoder", dtype=torch.float32, local_files_only=True
    )
    unet = UNet2DConditionModel.from_pretrained(
        folder / "unet", torch_dtype=torch.float32, local_files_only=True
    )
    # The UNet learnt latents at the saved scaling factor: keep it, do not re-measure.
    lat = encode_pool(vae, pool, scale=float(vae.config.scaling_factor))
    pool.images = pool.images[:0]
    more = dataclasses.replace(
        r,
        unet_steps=steps,
        unet_lr=r.unet_lr * CONTINUE_LR_SCALE,
        unet_text_lr=r.unet_text_lr * CONTINUE_LR_SCALE,
        unet_warmup=CONTINUE_WARMUP,
    )
    log(f"continuing the UNet of {folder} for {steps} steps")
    unet = train_unet(
        more, pool, lat, tokenizer, text_encoder, report, None, init=unet, stream=CONTINUE_STREAM
    )
    seconds = time.perf_counter() - started
    extra = {k: prev[k] for k in ("training", "preview_factors", "vae_from") if k in prev}
    extra.update(
        torch=torch.__version__,
        threads=r.threads,
        train_seconds=round(float(prev.get("train_seconds", 0.0)) + seconds, 1),
        continued=[
            *prev.get("continued", []),
            {
                "steps": steps,
                "lr_scale": CONTINUE_LR_SCALE,
                "warmup": CONTINUE_WARMUP,
                "stream": CONTINUE_STREAM,
                "unet": report.stages["unet"],
                "seconds": round(seconds, 1),
            },
        ],
    )
    saved = save_pipeline(out, r, vae, text_encoder, tokenizer, unet, extra)
    log(f"saved {saved} ({folder_size(saved) / 1e6:.1f} MB) in {seconds / 60:.1f} min")
    if grid:
        write_grid(saved, r)
    return extra
