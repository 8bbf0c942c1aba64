"""The recipe (every number that decides the weights), what a run measured, the ``--minutes``
clock, and the deterministic torch set-up."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any


class RecipeError(ValueError):
    """A recipe field out of its limits; ``field`` names it (the CLI says its flag)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field, self.message = field, message


@dataclass
class Recipe:
    """Every number that decides the weights. ``full()`` is the shipped model's recipe."""

    seed: int = 0
    threads: int = 2
    size: int = 64
    pool: int = 24_000  # generated images kept in memory (textures roll, so each is many)
    # stage 1: VAE
    vae_channels: tuple[int, ...] = (16, 32, 64, 64)
    vae_latent_channels: int = 8
    vae_layers: int = 1
    vae_steps: int = 6_000
    vae_batch: int = 16
    vae_lr: float = 3e-4  # 1e-3 and 4e-3 learnt slower in a 150-step overfit test
    vae_grad_weight: float = 0.5
    vae_spectrum_weight: float = 0.05
    vae_kl_weight: float = 1e-6
    # bf16 autocast for the VAE's convolutions (fp32 weights and loss): 1.8x faster on CPUs
    # with AMX/AVX512-BF16 (measured here); the UNet gains nothing from it (small matmuls).
    vae_bf16: bool = True
    # stage 2: tokenizer + text encoder
    max_tokens: int = 32
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_ffn: int = 256
    text_steps: int = 300
    text_batch: int = 64
    text_lr: float = 2e-3
    # stage 3: UNet
    unet_channels: tuple[int, ...] = (64, 128, 160)
    unet_layers: int = 1
    unet_heads: tuple[int, ...] = (4, 8, 8)
    # levels from the top (the full latent resolution down) without attention; 0 = attention
    # at every level (1.2x the cost per step here)
    unet_plain_levels: int = 1
    unet_steps: int = 4_000
    unet_batch: int = 64
    unet_lr: float = 1e-3
    unet_text_lr: float = 1e-4
    unet_warmup: int = 200
    cfg_dropout: float = 0.1
    min_snr_gamma: float = 5.0
    ema_decay: float = 0.999
    # inference defaults written next to the weights
    default_steps: int = 8
    default_guidance: float = 4.0

    @classmethod
    def full(cls) -> Recipe:
        return cls()

    @classmethod
    def smoke(cls) -> Recipe:
        return cls(
            pool=48,
            vae_channels=(8, 16, 16, 16),
            vae_steps=3,
            vae_batch=4,
            text_hidden=32,
            text_ffn=64,
            text_steps=3,
            text_batch=8,
            unet_channels=(32, 32, 32),
            unet_heads=(2, 2, 2),
            unet_steps=3,
            unet_batch=4,
            unet_warmup=1,
        )

    def check(self) -> None:
        """Refuse a recipe the stages cannot build, naming the field and its limit."""
        levels = len(self.unet_channels)
        if not 0 <= self.unet_plain_levels <= levels:
            raise RecipeError(
                "unet_plain_levels",
                f"must be 0..{levels} (the UNet's levels), got {self.unet_plain_levels}",
            )
        least = {"seed": 0, "threads": 1, "vae_steps": 0, "text_steps": 0, "unet_steps": 0}
        for name, low in least.items():
            if getattr(self, name) < low:
                raise RecipeError(name, f"must be >= {low}, got {getattr(self, name)}")
        batch = max(self.vae_batch, self.text_batch, self.unet_batch)
        if self.pool < batch:  # an epoch of fewer images than a batch never yields one
            raise RecipeError("pool", f"must be >= {batch} (the largest batch), got {self.pool}")
        for name in ("vae_lr", "text_lr", "unet_lr", "unet_text_lr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise RecipeError(name, f"must be a number > 0, got {value}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Report:
    """What a run measured; saved in pixelkiln.json and printed at the end."""

    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    cut_short: bool = False

    def add(self, stage: str, steps: int, samples: int, seconds: float, loss: float) -> None:
        self.stages[stage] = {
            "steps": steps,
            "samples": samples,
            "seconds": round(seconds, 2),
            "samples_per_s": round(samples / max(seconds, 1e-9), 1),
            "final_loss": round(loss, 5),
        }


class Clock:
    """The ``--minutes`` cap: each stage may use its share of what is left."""

    def __init__(self, minutes: float | None) -> None:
        self.deadline = None if minutes is None else time.monotonic() + 60.0 * minutes

    def stage_deadline(self, share: float) -> float | None:
        if self.deadline is None:
            return None
        now = time.monotonic()
        return now + max(0.0, self.deadline - now) * share


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- torch setup


def setup_torch(threads: int) -> Any:
    import torch

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    # Deterministic mode would also fill every new tensor with NaN (a debugging aid that costs
    # ~15% here); CPU kernels are deterministic for a fixed thread count without it.
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    torch.backends.cudnn.benchmark = False
    return torch


def bf16_supported() -> bool:
    """Whether oneDNN runs bf16 natively here (AVX512-BF16 or AMX); emulated bf16 is slower."""
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cosine_lr(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))
