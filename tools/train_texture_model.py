"""Train PixelKiln's own offline texture-and-sprite model from scratch, on generated data only.

    python tools/train_texture_model.py --out shipped              # the full recipe, ~1 h
    python tools/train_texture_model.py --smoke --out /tmp/kiln-smoke   # seconds

``shipped`` names the model folder inside the package,
``server/pixelkiln_server/weights/pixelkiln-textures``.

Three stages, all from one fixed seed, on the CPU, with deterministic torch settings and a
fixed thread count (the same machine, torch version and ``--threads`` give the same bytes):

1. **VAE** (``AutoencoderKL``, 8x down, 8 latent channels): L1 + image-gradient L1 +
   spectrum L1 (against blur) + a weak KL term, on 64x64 images from ``tools/texgen``.
2. **Tokenizer + text encoder**: a byte-level BPE CLIP tokenizer whose merges are learnt from
   every caption word texgen can produce (each becomes one token; any other text still
   encodes byte by byte), and a 2-layer ``CLIPTextModel`` pre-trained for a few seconds to
   name the subject, colour and key colour of a caption.
3. **UNet** (``UNet2DConditionModel`` with circular padding on every convolution,
   v-prediction, min-SNR weighting, 10% caption dropout for classifier-free guidance, EMA),
   trained on the VAE's latents (rolled at random: textures tile), with the text encoder
   fine-tuned alongside at a lower learning rate.

The result is a standard diffusers ``StableDiffusionPipeline`` folder (safetensors, fp16
weights, Euler "trailing" scheduler) written atomically, plus ``pixelkiln.json`` (recipe,
measured speeds, recommended steps/guidance, the preview latent->RGB factors) and the model
card. The model was trained with circular padding: apply it on load (see the model card).

``--vae-from FOLDER`` reuses the VAE of an earlier run (to iterate on stages 2-3 alone).
``--smoke`` runs every stage for a handful of steps (seconds) so the tooling can be tested;
``--minutes`` caps the wall time of a run (stages stop early; the steps actually done are
recorded, and only a run that was not cut short reproduces the recipe).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))

import texgen  # noqa: E402

from pixelkiln_server.backends.tiling import set_circular  # noqa: E402
from pixelkiln_server.catalogue import SHIPPED_FOLDER as SHIPPED  # noqa: E402
from pixelkiln_server.imaging.matte import KEY_NAMES  # noqa: E402

MODEL_CARD = SHIPPED / "README.md"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- the recipe


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
    unet_steps: int = 4_000
    unet_batch: int = 64
    unet_lr: float = 3e-4
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


# --------------------------------------------------------------------------- data


@dataclass
class Pool:
    images: np.ndarray  # (N, H, W, 3) uint8
    captions: list[str]
    subjects: list[str]
    colours: list[str]
    keys: list[str]  # key colour name for sprites, "" for textures
    tileable: np.ndarray  # (N,) bool


def make_pool(seed: int, n: int, size: int) -> Pool:
    images = np.empty((n, size, size, 3), np.uint8)
    captions, subjects, colours, keys = [], [], [], []
    tileable = np.zeros(n, bool)
    for i, s in enumerate(texgen.dataset(seed, n, size)):
        images[i] = s.image
        captions.append(s.caption)
        subjects.append(s.subject)
        colours.append(s.colour)
        keys.append(KEY_NAMES.get(s.key, "other") if s.key else "")
        tileable[i] = s.kind == "texture"
    return Pool(images, captions, subjects, colours, keys, tileable)


def to_tensor(images: np.ndarray) -> Any:
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def batches(rng: np.random.Generator, n: int, batch: int) -> Iterator[np.ndarray]:
    """Endless shuffled epochs of indices."""
    while True:
        order = rng.permutation(n)
        for i in range(0, n - batch + 1, batch):
            yield order[i : i + batch]


def roll_images(images: np.ndarray, tileable: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = images.copy()
    for i in np.flatnonzero(tileable):
        dy, dx = rng.integers(0, images.shape[1], 2)
        out[i] = np.roll(images[i], (int(dy), int(dx)), axis=(0, 1))
    return out


# --------------------------------------------------------------------------- stage 1: VAE


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


# --------------------------------------------------------------------------- stage 2: text


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's map from the 256 byte values to printable unicode symbols."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    cs = list(bs)
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


def learn_merges(counts: Counter[str]) -> list[tuple[str, str]]:
    """Byte-pair merges learnt from word counts until every word is a single token.

    Ties go to the lexicographically larger pair, so the result is deterministic."""
    enc = _bytes_to_unicode()
    words: dict[tuple[str, ...], int] = {}
    for word, count in counts.items():
        chars = [enc[b] for b in word.encode("utf-8")]
        chars[-1] += "</w>"
        key = tuple(chars)
        words[key] = words.get(key, 0) + count
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, count in words.items():
            for a, b in zip(symbols, symbols[1:]):  # noqa: B905
                pairs[(a, b)] += count
        if not pairs:
            return merges
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        merged: dict[tuple[str, ...], int] = {}
        for symbols, count in words.items():
            out: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + count
        words = merged


def tokenizer_files() -> dict[str, str]:
    """vocab.json and merges.txt of the tokenizer (deterministic): every byte symbol, its
    end-of-word form, the learnt merges and the two specials."""
    merges = learn_merges(texgen.word_counts())
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    seen = set(tokens)
    for a, b in merges:
        if a + b not in seen:
            tokens.append(a + b)
            seen.add(a + b)
    tokens += [BOS, EOS]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return {
        "vocab.json": json.dumps(vocab, ensure_ascii=False),
        "merges.txt": "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
    }


def build_tokenizer(max_tokens: int) -> Any:
    """A CLIP tokenizer (byte-level BPE) whose merges make every caption word one token."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="pixelkiln-tok-") as tmp:
        for name, text in tokenizer_files().items():
            (Path(tmp) / name).write_text(text, "utf-8")
        return CLIPTokenizer.from_pretrained(
            tmp, model_max_length=max_tokens, local_files_only=True
        )


def build_text_encoder(r: Recipe, tokenizer: Any) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=r.text_hidden,
            intermediate_size=r.text_ffn,
            projection_dim=r.text_hidden,
            num_hidden_layers=r.text_layers,
            num_attention_heads=r.text_heads,
            max_position_embeddings=r.max_tokens,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def tokenize(tokenizer: Any, captions: list[str]) -> Any:
    return tokenizer(
        captions,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def train_text(
    r: Recipe, pool: Pool, tokenizer: Any, report: Report, deadline: float | None
) -> Any:
    """Pre-train the text encoder to name a caption's subject, colour and key colour (from the
    mean of its token states), so the UNet starts from informative embeddings."""
    import torch

    torch.manual_seed(r.seed + 2)
    encoder = build_text_encoder(r, tokenizer)
    names = {
        "subject": list(texgen.SUBJECTS),
        "colour": list(texgen.COLOUR_NAMES),
        "key": ["", "green", "magenta", "blue", "other"],
    }
    heads = torch.nn.ModuleDict(
        {k: torch.nn.Linear(r.text_hidden, len(v)) for k, v in names.items()}
    )
    params = list(encoder.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=r.text_lr, weight_decay=0.01)
    ids = tokenize(tokenizer, pool.captions)
    targets = {
        "subject": torch.tensor([names["subject"].index(s) for s in pool.subjects]),
        "colour": torch.tensor([names["colour"].index(c) for c in pool.colours]),
        "key": torch.tensor([names["key"].index(k) for k in pool.keys]),
    }
    rng = np.random.default_rng([r.seed, 2])
    order = batches(rng, len(pool.captions), min(r.text_batch, len(pool.captions)))
    t0, done, loss_value = time.perf_counter(), 0, float("nan")
    for step in range(r.text_steps):
        if deadline is not None and time.monotonic() > deadline:
            report.cut_short = True
            break
        idx = torch.from_numpy(next(order))
        states = encoder(ids[idx]).last_hidden_state
        mask = (ids[idx] != tokenizer.pad_token_id).float()
        mask[:, 0] = 1.0
        pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        loss = torch.stack(
            [torch.nn.functional.cross_entropy(heads[k](pooled), targets[k][idx]) for k in names]
        ).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = loss.item()
        done = step + 1
    report.add("text", done, done * r.text_batch, time.perf_counter() - t0, loss_value)
    log(f"  text encoder: {done} steps, loss {loss_value:.4f}")
    return encoder


# --------------------------------------------------------------------------- stage 3: UNet


def build_unet(r: Recipe) -> Any:
    from diffusers import UNet2DConditionModel

    f = 2 ** (len(r.vae_channels) - 1)
    n = len(r.unet_channels)
    return UNet2DConditionModel(
        sample_size=r.size // f,
        in_channels=r.vae_latent_channels,
        out_channels=r.vae_latent_channels,
        block_out_channels=r.unet_channels,
        layers_per_block=r.unet_layers,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
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
    return {"matrix": sol[:-1].tolist(), "bias": sol[-1].tolist()}


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
    r = Recipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in prev["recipe"].items()})
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


# --------------------------------------------------------------------------- saving


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


# --------------------------------------------------------------------------- main


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


def shipped_or_path(value: str) -> Path:
    return SHIPPED if value == "shipped" else Path(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out",
        type=shipped_or_path,
        required=True,
        help="model folder to write ('shipped': the package's pixelkiln-textures folder)",
    )
    parser.add_argument("--smoke", action="store_true", help="a handful of steps (seconds)")
    parser.add_argument("--minutes", type=float, default=None, help="wall-time cap for the run")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--pool", type=int, default=None, help="generated images in memory")
    parser.add_argument("--vae-steps", type=int, default=None)
    parser.add_argument("--text-steps", type=int, default=None)
    parser.add_argument("--unet-steps", type=int, default=None)
    parser.add_argument("--no-grid", action="store_true", help="skip the sample grid")
    parser.add_argument(
        "--vae-from",
        type=Path,
        default=None,
        help="skip stage 1: reuse the (fp16) VAE of this model folder; the result is then not "
        "the recipe's bytes, and pixelkiln.json says so",
    )
    parser.add_argument(
        "--continue-from",
        type=shipped_or_path,
        default=None,
        help="train the UNet of this finished model folder for --unet-steps more steps "
        "(VAE kept); pixelkiln.json records the continuation",
    )
    args = parser.parse_args(argv)
    if args.continue_from is not None:
        if not args.unet_steps:
            parser.error("--continue-from needs --unet-steps")
        continue_training(args.continue_from, args.out, args.unet_steps, not args.no_grid)
        return 0
    recipe = Recipe.smoke() if args.smoke else Recipe.full()
    overrides = {
        "seed": args.seed,
        "threads": args.threads,
        "pool": args.pool,
        "vae_steps": args.vae_steps,
        "text_steps": args.text_steps,
        "unet_steps": args.unet_steps,
    }
    recipe = dataclasses.replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    train(recipe, args.out, args.minutes, grid=not args.no_grid, vae_from=args.vae_from)
    return 0


if __name__ == "__main__":
    sys.exit(main())
