"""What a runner's finished job becomes: its encoded images (or atlas), its recipe, and the
Result fields a backend noted while it ran (which live options it applied, how many frames it
holds, how many model calls recorded graphs served)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from .. import assets
from .. import recipe as recipes
from ..backends.base import LoadedModel
from ..imaging import codec
from ..types import Encoding, GenerationRequest, Result, Timings

_LIVE_OPTIONS = ("lean", "stream_batch", "tiny_autoencoder")


def build(
    request: GenerationRequest,
    model: LoadedModel,
    images: list[np.ndarray],
    batch_images: int,
    notes: dict[str, str],
    shas: tuple[str, str],
) -> Result:
    """The Result of one job: ``shas`` are the hashes of the inputs its images answer."""
    runtime = notes.get("runtime") or ("onnx" if model.spec.backend == "onnx" else "torch")
    recipe = recipes.make_recipe(
        request, model.spec.revision, model.device, model.dtype, batch_images, runtime
    )
    recipe = replace(recipe, init_image_sha256=shas[0], mask_sha256=shas[1])
    # The recipe rides in PNG text chunks only (results and atlases), not raw/JPEG frames.
    png = request.output_encoding is Encoding.PNG or request.atlas
    recipe_json = recipes.to_json(recipe)
    text = {codec.RECIPE_PNG_KEY: recipe_json} if png else {}
    wraps = bool(getattr(model, "wraps", False))  # diffusers and ONNX models of a wrapping UNet
    outputs, atlas = assets.build_outputs(request, images, text, wraps)
    result = Result(
        images=outputs, recipe=recipe, timings=Timings(), atlas=atlas, recipe_json=recipe_json
    )
    return replace(result, **noted(request, notes))


def noted(request: GenerationRequest, notes: dict[str, str]) -> dict[str, Any]:
    """Result fields from the backend's notes (``StepHooks.on_note``): which live options were
    applied, a warning for one asked for but not applied ("not applied: why"), which input a
    stream-batch image answers ("answers": its client_request_id), how many are held, and how
    many model calls recorded graphs served ("graph_calls")."""
    asked = {"stream_batch": request.stream_batch, "tiny_autoencoder": request.tiny_autoencoder}
    applied = tuple(k for k in _LIVE_OPTIONS if notes.get(k) == "applied")
    warnings = tuple(
        f"{k} {notes[k]}"
        for k in _LIVE_OPTIONS
        if asked.get(k) and k in notes and notes[k] != "applied"
    )
    return {
        "applied": applied,
        "warnings": warnings,
        "answers": notes.get("answers", ""),
        "held": _count(notes, "held"),
        "graph_calls": _count(notes, "graph_calls"),
    }


def _count(notes: dict[str, str], key: str) -> int:
    """A count a backend noted as text ("held", "graph_calls"); 0 when absent or not one."""
    value = notes.get(key, "0")
    return int(value) if value.isdigit() else 0
