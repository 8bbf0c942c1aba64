"""``pixelkiln.json``: what a diffusers model folder says about itself beyond diffusers' configs.

PixelKiln's own model (``weights/pixelkiln-textures``, written by
``tools/train_texture_model.py``) carries one; any folder may. diffusers does not save a
convolution's ``padding_mode``, so a model trained with circular padding says so here and the
backend applies it on load. The serving defaults (native size, steps, guidance) and the
latent-to-RGB factors of the step previews come from here too. No torch: the catalogue reads it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

META_FILE = "pixelkiln.json"
PADDINGS = ("", "circular")


@dataclass(frozen=True)
class FolderMeta:
    native_size: int | None = None
    default_steps: int | None = None
    default_guidance: float | None = None
    # "circular": every zero-padded Conv2d of the UNet and the VAE wraps (as trained).
    padding: str = ""
    # Latent channel -> RGB (channels x 3) and a bias; RGB in [-1, 1].
    preview_matrix: tuple[tuple[float, ...], ...] | None = None
    preview_bias: tuple[float, ...] | None = None
    # The words the model was trained on (its captions' words); prompts with other words get
    # a warning in their result. None: unknown (no warning).
    vocabulary: tuple[str, ...] | None = None


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _finite(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _factors(raw: object) -> tuple[tuple[tuple[float, ...], ...], tuple[float, ...]]:
    """(matrix, bias) from ``{"matrix": [[r, g, b], ...], "bias": [r, g, b]}``; ValueError on
    anything else."""
    if not isinstance(raw, dict):
        raise ValueError("preview_factors must be an object")
    matrix = raw.get("matrix")
    bias = raw.get("bias")
    if not isinstance(matrix, list) or not matrix or not isinstance(bias, list):
        raise ValueError("preview_factors needs a matrix and a bias")
    rows: list[tuple[float, ...]] = []
    for row in [*matrix, bias]:
        values = [_finite(v) for v in row] if isinstance(row, list) else []
        numbers = tuple(v for v in values if v is not None)
        if len(numbers) != 3 or len(values) != 3:
            raise ValueError("preview_factors rows must be three finite numbers")
        rows.append(numbers)
    return tuple(rows[:-1]), rows[-1]


def read_meta(folder: Path) -> FolderMeta | None:
    """The folder's ``pixelkiln.json``, or None when it has none. A file that is there but
    unreadable or malformed raises ValueError naming the field: a model must not load with
    its padding silently wrong."""
    path = folder / META_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a JSON object")
    padding = raw.get("padding", "")
    if padding not in PADDINGS:
        raise ValueError(f"{path}: padding must be one of {PADDINGS}; got {padding!r}")
    matrix = bias = None
    if raw.get("preview_factors") is not None:
        try:
            matrix, bias = _factors(raw["preview_factors"])
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    vocabulary = raw.get("vocabulary")
    if vocabulary is not None and (
        not isinstance(vocabulary, list) or not all(isinstance(w, str) for w in vocabulary)
    ):
        raise ValueError(f"{path}: vocabulary must be a list of words")
    return FolderMeta(
        vocabulary=tuple(vocabulary) if vocabulary is not None else None,
        native_size=_positive_int(raw.get("native_size")),
        default_steps=_positive_int(raw.get("default_steps")),
        default_guidance=_finite(raw.get("default_guidance")),
        padding=padding,
        preview_matrix=matrix,
        preview_bias=bias,
    )
