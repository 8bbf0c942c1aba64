"""The ``tiny-random`` model: a Stable-Diffusion-shaped pipeline with random weights.

Built entirely in code from a fixed seed (tokenizer included, nothing is downloaded), saved once
to a cache folder and loaded from there like any diffusers model folder::

    folder = ensure_tiny_random()  # $PIXELKILN_HOME/models/tiny-random-v1-seed0
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
    image = pipe("a brick wall", num_inference_steps=1, guidance_scale=0.0).images[0]

Same seed, same weights, bit for bit. It exercises every code path of a real SD 1.x/Turbo
model (CLIP tokenizer and text encoder, cross-attention UNet, KL VAE with a scale factor of 8,
Euler "trailing" scheduler) at a size that runs in milliseconds on a CPU.

torch, diffusers and transformers are imported inside the functions: importing this module
costs nothing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import renames
from ..catalogue import ModelSpec
from ..config import default_home
from .base import LoadedModel, LoadOptions

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline

# Bump whenever the architecture or the way weights are drawn changes: it is part of the
# cache folder's name, so an old folder is never mistaken for the new model.
TINY_RANDOM_VERSION = "1"

NAME = "tiny-random"
MODEL_MAX_LENGTH = 77

# A few merges of common English pairs, so that the BPE path is exercised. Each one adds a
# token; with 256 byte symbols, their 256 end-of-word variants and the two specials, the vocab
# has 519 entries.
_MERGES: tuple[tuple[str, str], ...] = (
    ("t", "h"),
    ("th", "e</w>"),
    ("a", "n"),
    ("i", "n"),
    ("e", "r</w>"),
)
_BOS = "<|startoftext|>"
_EOS = "<|endoftext|>"

# A folder being built is named ".<target>.tmp-<random>"; one older than this was left by a
# builder that died, and is removed.
_STALE_TMP_S = 3600.0


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's map from the 256 byte values to printable unicode symbols."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = list(bs)
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


def _tokenizer_vocab() -> dict[str, int]:
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in _MERGES]
    tokens += [_BOS, _EOS]
    return {tok: i for i, tok in enumerate(tokens)}


def build_tiny_tokenizer() -> Any:
    """A byte-level CLIP tokenizer (519 tokens) that encodes any unicode text; offline."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="pixelkiln-tok-") as tmp:
        folder = Path(tmp)
        (folder / "vocab.json").write_text(
            json.dumps(_tokenizer_vocab(), ensure_ascii=False), encoding="utf-8"
        )
        merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in _MERGES)
        (folder / "merges.txt").write_text(merges, encoding="utf-8")
        # Loading through from_pretrained (rather than the constructor) works the same on
        # transformers 4 (vocab_file, merges_file) and 5 (vocab dict, merges as tuples).
        tokenizer = CLIPTokenizer.from_pretrained(
            str(folder),
            model_max_length=MODEL_MAX_LENGTH,
            local_files_only=True,
        )
    return tokenizer


def build_tiny_sd_pipeline(seed: int = 0) -> StableDiffusionPipeline:
    """Build the tiny SD pipeline in memory, weights drawn from ``seed``.

    Each component is created right after ``torch.manual_seed(seed)``, in a fixed order, on
    the CPU in float32; the global RNG of the caller is left as it was.
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=(2, 4),
            norm_num_groups=32,
        )
        torch.manual_seed(seed)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(8, 16, 16, 16),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=8,
            sample_size=64,
            scaling_factor=0.18215,
        )
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=37,
                projection_dim=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=MODEL_MAX_LENGTH,
                hidden_act="quick_gelu",
                layer_norm_eps=1e-5,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        timestep_spacing="trailing",
        steps_offset=1,
    )
    modules: tuple[Any, ...] = (unet, vae, text_encoder)
    for module in modules:
        module.eval()
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def default_cache_dir() -> Path:
    """``$PIXELKILN_HOME/models``, or ``~/.cache/pixelkiln/models``."""
    return default_home() / "models"


def folder_name(seed: int = 0) -> str:
    return f"{NAME}-v{TINY_RANDOM_VERSION}-seed{seed}"


def _is_complete(folder: Path) -> bool:
    return (folder / "model_index.json").is_file()


def _remove_stale_tmp(cache_dir: Path, target_name: str) -> None:
    now = time.time()
    for path in cache_dir.glob(f".{target_name}.tmp-*"):
        try:
            if now - path.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def ensure_tiny_random(cache_dir: Path | None = None, seed: int = 0) -> Path:
    """Return the folder of the saved tiny-random pipeline, building it on first use.

    The folder is built beside its final place and renamed into it, so it is either complete
    or absent: a crash never leaves a half-written model behind, and of two concurrent
    builders the second one throws its copy away.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return save_pipeline_atomically(
        cache_dir / folder_name(seed), lambda: build_tiny_sd_pipeline(seed)
    )


def save_pipeline_atomically(target: Path, build: Callable[[], Any]) -> Path:
    """``target`` if it holds a complete pipeline folder, else ``build()`` saved there: into a
    temporary folder beside it first, then renamed into place (never half-written)."""
    if _is_complete(target):
        return target
    cache_dir = target.parent
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(cache_dir, target.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=cache_dir))
    try:
        build().save_pretrained(tmp, safe_serialization=True)
        try:
            # Replaces an empty leftover folder; fails when a complete one appeared meanwhile.
            renames.replace(tmp, target)
        except OSError:
            if not _is_complete(target):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


class TinyRandomBackend:
    """Backend ``tiny-random``: builds the folder on first use, then loads it like any diffusers
    folder through the diffusers backend (so every code path of a real model runs)."""

    name = NAME

    def load(self, spec: ModelSpec, options: LoadOptions) -> LoadedModel:
        from dataclasses import replace

        from .diffusers_backend import DiffusersBackend

        folder = ensure_tiny_random(Path(options.home) / "models")
        return DiffusersBackend().load(replace(spec, source=str(folder)), options)
