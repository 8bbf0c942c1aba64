"""Backends by name. Each lives in its own module and is imported only when first used, so
the daemon starts (and ``--help`` answers) without importing torch."""

from __future__ import annotations

import importlib

from ..errors import NotFound
from .base import Backend

_BACKENDS: dict[str, str] = {
    "diffusers": "pixelkiln_server.backends.diffusers_backend:DiffusersBackend",
    "tiny-random": "pixelkiln_server.backends.tiny_random:TinyRandomBackend",
    "tiny-sdxl": "pixelkiln_server.backends.tiny_families:TinySDXLBackend",
    "tiny-flux": "pixelkiln_server.backends.tiny_families:TinyFluxBackend",
    "tiny-z-image": "pixelkiln_server.backends.tiny_families:TinyZImageBackend",
    "tiny-flux2-klein": "pixelkiln_server.backends.tiny_families:TinyFlux2KleinBackend",
    "onnx": "pixelkiln_server.backends.onnx_backend:OnnxBackend",
    # Tests: deterministic, no torch (scheduling, placement, crash and restart in milliseconds).
    "fake": "pixelkiln_server.backends.fake:FakeBackend",
}


def names() -> list[str]:
    return sorted(_BACKENDS)


def get(name: str) -> Backend:
    try:
        target = _BACKENDS[name]
    except KeyError:
        raise NotFound(f"no backend named {name!r}; known: {', '.join(names())}") from None
    module_name, _, attr = target.partition(":")
    backend: Backend = getattr(importlib.import_module(module_name), attr)()
    return backend
