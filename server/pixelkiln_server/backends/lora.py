"""LoRA adapters: loaded by path with their model, scaled per request.

``pixelkiln serve --lora NAME=PATH[:SCALE]`` loads an adapter into the served model when it
loads (diffusers' PEFT integration: ``pipe.load_lora_weights``; needs ``peft``). A request
chooses scales by name (``GenerateRequest.loras``); adapters it does not name keep their load
scale. The resolved request lists every adapter of the model with its scale, so the recipe
records them and a replay sets the same scales (it fails on a daemon without those adapters).
Scale 0 is the base model exactly (the adapter adds zeros).

Device-independent helpers (:func:`parse_cli`, :func:`resolve_scales`) import nothing heavy;
torch, diffusers and peft are imported inside the functions that need them.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..model_options import MAX_LORA_SCALE, LoraAdapter

log = logging.getLogger(__name__)
# The most characters of a caller's adapter name an error message repeats.
SHOWN_NAME_CHARS = 64


def shown_name(name: str) -> str:
    """``name`` quoted for a message, cut to :data:`SHOWN_NAME_CHARS` characters."""
    if len(name) <= SHOWN_NAME_CHARS:
        return repr(name)
    return f"{name[:SHOWN_NAME_CHARS]!r}…({len(name)} chars)"


def parse_cli(item: str) -> LoraAdapter:
    """``NAME=PATH[:SCALE]``; a trailing ``:SCALE`` is taken only when it is a number, so a
    path may contain colons."""
    name, sep, rest = item.partition("=")
    if not sep or not name or not rest:
        raise InvalidArgument("lora", f"wants NAME=PATH[:SCALE], got {item!r}")
    path, colon, tail = rest.rpartition(":")
    scale = 1.0
    if colon and path:
        try:
            scale = float(tail)
        except ValueError:
            path = rest
    else:
        path = rest
    return LoraAdapter(name=name, path=path, scale=scale)


def resolve_scales(
    requested: tuple[tuple[str, float], ...], adapters: tuple[LoraAdapter, ...], model: str
) -> tuple[tuple[str, float], ...]:
    """Every adapter of the model with its scale for this request, sorted by name: requested
    scales override the load scales. InvalidArgument for unknown names or bad scales."""
    known = {a.name: a.scale for a in adapters}
    for name, scale in requested:
        if name not in known:
            loaded = ", ".join(sorted(known)) or "none"
            raise InvalidArgument(
                "loras",
                f"model {model!r} has no LoRA adapter {shown_name(name)} (loaded: {loaded})",
            )
        if not math.isfinite(scale) or abs(scale) > MAX_LORA_SCALE:
            raise InvalidArgument(
                "loras",
                f"scale of {shown_name(name)} must be within "
                f"-{MAX_LORA_SCALE:g}..{MAX_LORA_SCALE:g}; got {scale}",
            )
    known.update(dict(requested))
    return tuple(sorted(known.items()))


def check_available() -> None:
    try:
        import peft  # noqa: F401
    except ImportError:
        raise FailedPrecondition(
            "lora: LoRA adapters need peft (pip install 'pixelkiln[server]' or pip install peft)"
        ) from None


def load_adapters(pipe: Any, adapters: tuple[LoraAdapter, ...]) -> None:
    """Load each adapter by path (a .safetensors file or a folder holding one) under its name,
    then activate all of them at their load scales."""
    if not adapters:
        return
    check_available()
    for adapter in adapters:
        path = Path(adapter.path).expanduser()
        if not path.exists():
            raise NotFound(f"lora {adapter.name!r}: no file or folder at {adapter.path}")
        kwargs: dict[str, Any] = {"adapter_name": adapter.name}
        source = path
        if path.is_file():
            source, kwargs["weight_name"] = path.parent, path.name
        try:
            pipe.load_lora_weights(str(source), local_files_only=True, **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidArgument(
                "lora", f"cannot load {adapter.name!r} from {adapter.path}: {exc}"
            ) from exc
        log.info("loaded LoRA %s from %s (scale %g)", adapter.name, path, adapter.scale)
    pipe.set_adapters([a.name for a in adapters], adapter_weights=[a.scale for a in adapters])


class LoraScales:
    """The scales last set on a pipeline; :meth:`apply` touches the modules only on change."""

    def __init__(self, adapters: tuple[LoraAdapter, ...]) -> None:
        self.current: tuple[tuple[str, float], ...] = tuple(
            sorted((a.name, a.scale) for a in adapters)
        )

    def apply(self, pipe: Any, scales: tuple[tuple[str, float], ...]) -> None:
        if not scales or scales == self.current:
            return
        names, weights = zip(*scales, strict=True)
        pipe.set_adapters(list(names), adapter_weights=list(weights))
        self.current = scales
