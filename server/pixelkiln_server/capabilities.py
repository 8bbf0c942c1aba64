"""What a model can serve, declared per backend and checked before a request is accepted.

Each backend in ``backends/registry.py`` has a declaration here, as plain data: validation
(the admission check, before ``Accepted``) reads it from the model's spec without loading the
model or importing torch, and a runner in another process can send it across a msgpack
boundary (:meth:`Capabilities.to_dict`). ``tests/test_capabilities.py`` runs every registered
backend against its declaration, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from .errors import NotFound

if TYPE_CHECKING:
    from .catalogue import ModelSpec

TILING_METHODS = ("circular", "offset-inpaint")


@dataclass(frozen=True)
class Capabilities:
    """What one model can do. Sizes: a side is a multiple of ``side_multiple`` between
    ``min_side`` and ``max_side`` (0: only the daemon's own limit applies).

    ``tiling``: the methods it tiles with (``circular`` padding, ``offset-inpaint`` of the seam
    cross); empty when it cannot tile. ``batching``: several requests share one model call
    (else they run one after another). ``lora``: it takes LoRA adapters."""

    img2img: bool = True
    inpainting: bool = True
    tiling: tuple[str, ...] = ("circular",)
    lora: bool = False
    batching: bool = False
    min_side: int = 64
    max_side: int = 0
    side_multiple: int = 8

    def __post_init__(self) -> None:
        unknown = [m for m in self.tiling if m not in TILING_METHODS]
        if unknown:
            raise ValueError(f"unknown tiling method {unknown[0]!r}; known: {TILING_METHODS}")
        if self.side_multiple < 1 or self.min_side < self.side_multiple:
            raise ValueError("side_multiple must be >= 1 and min_side >= side_multiple")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for msgpack or JSON (tuples as lists)."""
        out = asdict(self)
        out["tiling"] = list(self.tiling)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Capabilities:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "tiling" in values:
            values["tiling"] = tuple(values["tiling"])
        return cls(**values)


def _diffusers(spec: ModelSpec) -> Capabilities:
    """diffusers pipelines (and the tiny random ones built in code): every mode, inpainting by
    latent blending where the UNet has no mask inputs; FLUX and Z-Image patchify 2x2 latent
    cells, so their sides are multiples of 16 (FLUX silently shrank 72 to 64, Z-Image refused
    it after Accepted)."""
    from .catalogue import DIT_FAMILIES

    if spec.family == "flux2":
        # FLUX.2 [klein] edits from reference images, not by img2img strength: not wired yet.
        return Capabilities(
            img2img=False, inpainting=False, tiling=(), lora=False, batching=True, side_multiple=16
        )
    return Capabilities(
        tiling=(spec.tiling_method,),
        lora=True,
        batching=True,
        side_multiple=16 if spec.family in DIT_FAMILIES else 8,
    )


def _onnx(spec: ModelSpec) -> Capabilities:
    """ONNX Runtime exports: the padding is fixed in the graph (no tiling, except for an
    export of a model that wraps, whose manifest says ``tiling: circular``), no adapters;
    inpainting by latent blending; requests run one by one. The exported UNet cannot resize a
    skip connection as diffusers does for odd latent sizes, so each side must halve cleanly
    through every down block: a multiple of 64 for SD's four (tiny-random's export failed at
    72 with an ONNX Runtime Concat error after Accepted)."""
    wraps = spec.tiling == "circular"
    return Capabilities(
        tiling=("circular",) if wraps else (), lora=False, batching=False, side_multiple=64
    )


DECLARATIONS: dict[str, Callable[[ModelSpec], Capabilities]] = {
    "diffusers": _diffusers,
    "tiny-random": _diffusers,
    "tiny-sdxl": _diffusers,
    "tiny-flux": _diffusers,
    "tiny-z-image": _diffusers,
    "tiny-flux2-klein": _diffusers,
    "onnx": _onnx,
    # Tests (backends/fake.py): text-to-image only.
    "fake": lambda spec: Capabilities(img2img=False, inpainting=False, tiling=()),
}


def declared(spec: ModelSpec) -> Capabilities:
    """The capabilities of a model of ``spec``, from its backend's declaration. A backend
    registered at run time (``backends.registry``) adds its declaration to DECLARATIONS."""
    declare = DECLARATIONS.get(spec.backend)
    if declare is None:
        known = ", ".join(sorted(DECLARATIONS))
        raise NotFound(f"no backend named {spec.backend!r} declares capabilities; known: {known}")
    return declare(spec)
