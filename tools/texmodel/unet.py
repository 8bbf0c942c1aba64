"""Stage 3: the UNet (circular padding, v-prediction, min-SNR weighting, caption dropout, EMA),
trained on the VAE's latents with the text encoder fine-tuned alongside."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixelkiln_server.backends.tiling import set_circular

from .data import Pool, batches, to_tensor
from .recipe import Recipe, Report, cosine_lr, log
from .text import tokenize


def build_unet(r: Recipe) -> Any:
    from diffusers import UNet2DConditionModel

    f = 2 ** (len(r.vae_channels) - 1)
    n = len(r.unet_channels)
    r.check()
    plain = r.unet_plain_levels
    return UNet2DConditionModel(
        sample_size=r.size // f,
        in_channels=r.vae_latent_channels,
        out_channels=r.vae_latent_channels,
        block_out_channels=r.unet_channels,
        layers_per_block=r.unet_layers,
        down_block_types=("DownBlock2D",) * plain + ("CrossAttnDownBlock2D",) * (n - plain),
        up_block_types=("CrossAttnUpBlock2D",) * (n - plain) + ("UpBlock2D",) * plain,
        cross_attention_dim=r.text_hidden,
        attention_head_dim=r.unet_heads,
        norm_num_groups=min(16, r.unet_channels[0]),
        # The pooled caption also conditions every ResNet block through the time embedding:
        # colour and subject are global properties of these images.
        addition_embed_type="text",
        addition_embed_type_num_heads=r.text_heads,
    )


def build_scheduler() -> Any:
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        timestep_spacing="trailing",
        steps_offset=1,
    )


PREVIEW_DIGITS = 6  # decimals kept of the latent->RGB preview factors


@dataclass
class Latents:
    mean: Any  # (N, C, h, w) float32, already multiplied by the scaling factor
    std: Any
    scaling_factor: float


def encode_pool(vae: Any, pool: Pool, batch: int = 64, scale: float | None = None) -> Latents:
    import torch

    means, stds = [], []
    with torch.no_grad():
        for i in range(0, len(pool.captions), batch):
            post = vae.encode(to_tensor(pool.images[i : i + batch])).latent_dist
            means.append(post.mean)
            stds.append(post.std)
    mean, std = torch.cat(means), torch.cat(stds)
    if scale is None:
        scale = float(1.0 / mean.std())
    return Latents(mean * scale, std * scale, scale)


def fit_preview_factors(vae: Any, pool: Pool, lat: Latents, n: int = 512) -> dict[str, Any]:
    """Least-squares latent -> RGB map (the daemon's step previews): each latent pixel
    against the mean colour of the image patch it covers, RGB in [-1, 1]."""
    import torch

    n = min(n, len(pool.captions))
    z = lat.mean[:n]
    f = pool.images.shape[1] // z.shape[-1]
    img = to_tensor(pool.images[:n])
    patches = torch.nn.functional.avg_pool2d(img, f)
    a = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).double()
    a = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype)], 1)
    b = patches.permute(0, 2, 3, 1).reshape(-1, 3).double()
    sol = torch.linalg.lstsq(a, b).solution
    # Rounded: the last bits of a float64 least-squares solve vary with the load on the machine
    # (seen between two smoke runs), and a preview needs no more than a few digits.
    rounded = [[round(float(v), PREVIEW_DIGITS) for v in row] for row in sol.tolist()]
    return {"matrix": rounded[:-1], "bias": rounded[-1]}


def train_unet(
    r: Recipe,
    pool: Pool,
    lat: Latents,
    tokenizer: Any,
    text_encoder: Any,
    report: Report,
    deadline: float | None,
    init: Any = None,
    stream: int = 3,
) -> Any:
    """Train (or, with ``init``, continue training) the UNet; returns its EMA copy. ``stream``
    picks the random streams (data order, noise), so a continuation sees new batches."""
    import copy

    import torch

    torch.manual_seed(r.seed + stream)
    unet = build_unet(r) if init is None else init
    set_circular(unet)
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    unet.train()
    text_encoder.train()
    opt = torch.optim.AdamW(
        [
            {"params": list(unet.parameters()), "lr": r.unet_lr, "base": r.unet_lr},
            {
                "params": list(text_encoder.parameters()),
                "lr": r.unet_text_lr,
                "base": r.unet_text_lr,
            },
        ],
        weight_decay=0.01,
    )
    # The scheduler's "scaled_linear" betas (as in build_scheduler), cumulated.
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas = torch.cumprod(1.0 - betas, 0).float()
    snr = alphas / (1.0 - alphas)
    weight = torch.clamp(snr, max=r.min_snr_gamma) / (snr + 1.0)  # min-SNR for v-prediction
    ids = tokenize(tokenizer, pool.captions)
    empty = tokenize(tokenizer, [""])[0]
    rng = np.random.default_rng([r.seed, stream])
    gen = torch.Generator().manual_seed(r.seed + stream)
    order = batches(rng, len(pool.captions), min(r.unet_batch, len(pool.captions)))
    h = lat.mean.shape[-1]
    t0, done, loss_value, smooth = time.perf_counter(), 0, float("nan"), float("nan")
    ema_params = list(ema.parameters())
    live_params = list(unet.parameters())
    for step in range(r.unet_steps):
        if deadline is not None and time.monotonic() > deadline:
            report.cut_short = True
            break
        scale = cosine_lr(step, r.unet_steps, r.unet_warmup)
        for group in opt.param_groups:
            group["lr"] = group["base"] * scale
        idx_np = next(order)
        idx = torch.from_numpy(idx_np)
        z0 = lat.mean[idx] + lat.std[idx] * torch.randn(lat.mean[idx].shape, generator=gen)
        shifts = rng.integers(0, h, (len(idx_np), 2))
        rolled = [
            torch.roll(z0[i], (int(dy), int(dx)), dims=(1, 2)) if pool.tileable[j] else z0[i]
            for i, (j, (dy, dx)) in enumerate(zip(idx_np, shifts, strict=True))
        ]
        z0 = torch.stack(rolled)
        tokens = ids[idx].clone()
        drop = torch.from_numpy(rng.random(len(idx_np)) < r.cfg_dropout)
        tokens[drop] = empty
        t = torch.randint(0, 1000, (len(idx_np),), generator=gen)
        eps = torch.randn(z0.shape, generator=gen)
        a = alphas[t].sqrt()[:, None, None, None]
        s = (1.0 - alphas[t]).sqrt()[:, None, None, None]
        zt = a * z0 + s * eps
        target = a * eps - s * z0
        cond = text_encoder(tokens).last_hidden_state
        pred = unet(zt, t, cond).sample
        per = (pred - target).pow(2).mean(dim=(1, 2, 3))
        loss = (per * weight[t]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(live_params, 1.0)
        opt.step()
        decay = min(r.ema_decay, (1.0 + step) / (10.0 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, live_params, 1.0 - decay)
        loss_value = loss.item()
        done = step + 1
        smooth = loss_value if math.isnan(smooth) else 0.98 * smooth + 0.02 * loss_value
        if step % 50 == 0 or step == r.unet_steps - 1:
            rate = (step + 1) * r.unet_batch / (time.perf_counter() - t0)
            log(f"  unet step {step:5d}/{r.unet_steps}  loss {smooth:.4f}  {rate:6.1f} samples/s")
    report.add("unet", done, done * r.unet_batch, time.perf_counter() - t0, smooth)
    text_encoder.eval()
    return ema
