"""Warnings a result carries: what the model will not do as the request hopes.

A model folder's ``pixelkiln.json`` may list its ``vocabulary`` (the words of its training
captions); prompt words outside it have no reliable effect, and the result says which. A size
above the model's trained size repeats its detail at the trained scale instead of adding
detail; the result says that too, and that a negative prompt does nothing where classifier-free
guidance is off (guidance_scale 1 or less on SD and SDXL). Warnings never refuse a request.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from .catalogue import ModelSpec
from .folder_meta import read_meta
from .types import GenerationRequest

_WORD = re.compile(r"[a-z]+")
# Families whose negative prompt works through classifier-free guidance (diffusers' SD and
# SDXL pipelines use it only when guidance_scale > 1).
CFG_FAMILIES = ("sd", "sdxl")


@functools.lru_cache(maxsize=64)
def vocabulary(source: str) -> frozenset[str] | None:
    """The model's known words (lower case), from its folder's pixelkiln.json; None if none."""
    folder = Path(source)
    if not folder.is_dir():
        return None
    try:
        meta = read_meta(folder)
    except ValueError:
        return None  # the loader reports a malformed file; a warning is not the place
    if meta is None or not meta.vocabulary:
        return None
    return frozenset(w.lower() for w in meta.vocabulary if _WORD.fullmatch(w.lower()))


def unknown_words(prompt: str, known: frozenset[str]) -> list[str]:
    seen: dict[str, None] = {}
    for word in _WORD.findall(prompt.lower()):
        if word not in known:
            seen.setdefault(word)
    return list(seen)


def request_warnings(spec: ModelSpec, request: GenerationRequest) -> tuple[str, ...]:
    """Warnings for a resolved request on ``spec`` (empty when there is nothing to say)."""
    out = []
    known = vocabulary(spec.source)
    if known is not None and request.prompt:
        unknown = unknown_words(request.prompt, known)
        if unknown:
            words = ", ".join(repr(w) for w in unknown)
            out.append(
                f"prompt: {spec.name} does not know {words} (not in the vocabulary of its "
                "pixelkiln.json); those words have no reliable effect"
            )
    guidance = spec.default_guidance if request.guidance_scale is None else request.guidance_scale
    if request.negative_prompt.strip() and spec.family in CFG_FAMILIES and guidance <= 1.0:
        out.append(
            f"negative_prompt: has no effect at guidance_scale {guidance:g} on {spec.name}: "
            "classifier-free guidance, which uses it, runs only above 1 (turbo models default "
            "to 0); raise guidance_scale to use it"
        )
    native_w, native_h = spec.native_width, spec.native_height
    if request.width > native_w or request.height > native_h:
        out.append(
            f"size: {request.width}x{request.height} is above {spec.name}'s trained size "
            f"{native_w}x{native_h}: expect its detail at the trained scale, repeated, not "
            "more detail"
        )
    return tuple(out)
