"""Models by name: the catalogue plus what is loaded. Loading and unloading are serialised
with generation by one lock, so a model is never unloaded under a running job."""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path

from ..backends import registry as backends
from ..backends.base import LoadedModel, LoadOptions
from ..catalogue import PRESETS, TINY_RANDOM_SOURCE, ModelSpec, lookup, spec_for_source
from ..types import ModelInfo

log = logging.getLogger(__name__)


def _available_locally(spec: ModelSpec, home: Path) -> bool:
    if spec.source == TINY_RANDOM_SOURCE or spec.source.startswith("builtin:"):
        return True  # built in code on first use
    path = Path(spec.source).expanduser()
    if path.exists():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        found = try_to_load_from_cache(spec.source, "model_index.json")
    except ValueError:  # not a valid hub id (huggingface_hub's validation errors)
        return False
    return isinstance(found, str)


class ModelRegistry:
    def __init__(self, options: LoadOptions, extra_models: dict[str, str] | None = None) -> None:
        self.options = options
        self._extra = {
            name: spec_for_source(name, src) for name, src in (extra_models or {}).items()
        }
        self._loaded: dict[str, LoadedModel] = {}
        self.lock = threading.RLock()

    def spec(self, name: str) -> ModelSpec:
        """The spec for a name (preset, registered, folder, file or hub id); NotFound if none."""
        return lookup(name, self._extra)

    def register(self, spec: ModelSpec) -> None:
        self._extra[spec.name] = spec

    def infos(self) -> list[ModelInfo]:
        specs = {**PRESETS, **self._extra}
        for name in self._loaded:
            specs.setdefault(name, self._loaded[name].spec)
        return [self.info(spec) for spec in specs.values()]

    def info(self, spec: ModelSpec) -> ModelInfo:
        return ModelInfo(
            name=spec.name,
            family=spec.family,
            backend=spec.backend,
            source=spec.source,
            native_width=spec.native_width,
            native_height=spec.native_height,
            default_steps=spec.default_steps,
            default_guidance=spec.default_guidance,
            max_steps=spec.max_steps,
            loaded=spec.name in self._loaded,
            available_locally=_available_locally(spec, self.options.home),
            revision=spec.revision,
        )

    def loaded(self) -> list[LoadedModel]:
        return list(self._loaded.values())

    def get(self, spec: ModelSpec) -> LoadedModel:
        """The loaded model for ``spec``, loading it first if needed (blocking)."""
        with self.lock:
            model = self._loaded.get(spec.name)
            if model is None:
                model = backends.get(spec.backend).load(spec, self.options)
                self._loaded[spec.name] = model
                if spec.name not in PRESETS:
                    self._extra.setdefault(spec.name, replace(spec))
                log.info("loaded %s on %s (%s)", spec.name, model.device, model.dtype)
            return model

    def unload(self, name: str) -> bool:
        with self.lock:
            model = self._loaded.pop(name, None)
            if model is None:
                return False
            model.unload()
            log.info("unloaded %s", name)
            return True
