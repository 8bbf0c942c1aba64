"""Stage 1: the VAE (``AutoencoderKL``, 8x down), trained on pool images under bf16 autocast
where the CPU runs bf16 natively."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from pixelkiln_server.backends.tiling import set_circular

from .data import Pool, batches, roll_images, to_tensor
from .recipe import Recipe, Report, bf16_supported, cosine_lr, log


def build_vae(r: Recipe) -> Any:
    import torch
    from diffusers import AutoencoderKL

    n = len(r.vae_channels)
    vae: Any = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=r.vae_channels,
        layers_per_block=r.vae_layers,
        latent_channels=r.vae_latent_channels,
        norm_num_groups=min(8, r.vae_channels[0]),
        sample_size=r.size,
        mid_block_add_attention=False,
        scaling_factor=1.0,
    )
    # Start the posterior narrow (std ~0.02 instead of 1): unit noise on the small initial
    # means would drown them, and the decoder would learn to ignore the latent.
    with torch.no_grad():
        vae.quant_conv.bias[r.vae_latent_channels :] = -8.0
    return vae


def load_vae(folder: Path) -> Any:
    """The VAE of an existing model folder (fp32, circular padding), to skip stage 1."""
    import torch
    from diffusers import AutoencoderKL

    vae: Any = AutoencoderKL.from_pretrained(
        folder / "vae", torch_dtype=torch.float32, local_files_only=True
    )
    set_circular(vae)
    return vae.eval()


def vae_loss(r: Recipe, x: Any, y: Any, mean: Any, logvar: Any) -> Any:
    import torch

    rec = (y - x).abs().mean()
    grad = sum((torch.diff(y, dim=d) - torch.diff(x, dim=d)).abs().mean() for d in (2, 3))
    spec = (torch.fft.rfft2(y).abs() - torch.fft.rfft2(x).abs()).abs().mean() / x.shape[-1]
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
    return rec + r.vae_grad_weight * grad + r.vae_spectrum_weight * spec + r.vae_kl_weight * kl


def train_vae(r: Recipe, pool: Pool, report: Report, deadline: float | None) -> Any:
    import torch

    torch.manual_seed(r.seed)
    vae = build_vae(r)
    set_circular(vae)
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=r.vae_lr, weight_decay=0.0)
    rng = np.random.default_rng([r.seed, 1])
    order = batches(rng, len(pool.captions), r.vae_batch)
    t0, done, loss_value = time.perf_counter(), 0, float("nan")
    bf16 = r.vae_bf16 and bf16_supported()
    for step in range(r.vae_steps):
        if deadline is not None and time.monotonic() > deadline:
            report.cut_short = True
            break
        for group in opt.param_groups:
            group["lr"] = r.vae_lr * cosine_lr(step, r.vae_steps, min(100, r.vae_steps // 10 + 1))
        idx = next(order)
        x = to_tensor(roll_images(pool.images[idx], pool.tileable[idx], rng))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            post = vae.encode(x).latent_dist
            z = post.mean + post.std * torch.randn(post.mean.shape, generator=None)
            y = vae.decode(z).sample
        loss = vae_loss(r, x, y.float(), post.mean.float(), post.logvar.float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        loss_value = loss.item()
        done = step + 1
        if step % 100 == 0 or step == r.vae_steps - 1:
            rate = (step + 1) * r.vae_batch / (time.perf_counter() - t0)
            log(f"  vae step {step:5d}/{r.vae_steps}  loss {loss_value:.4f}  {rate:6.1f} img/s")
    report.add("vae", done, done * r.vae_batch, time.perf_counter() - t0, loss_value)
    report.stages["vae"]["bf16_autocast"] = float(bf16)
    vae.eval()
    return vae
