"""Models by name: the catalogue plus what is loaded. Loading and unloading are serialised
with generation by one lock, so a model is never unloaded under a running job. Loading makes
room under the memory budget first (``memory.py``: least recently used out, never one in use,
the default model last)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..backends import registry as backends
from ..backends.base import LoadedModel, LoadOptions
from ..catalogue import (
    PRESETS,
    TINY_RANDOM_SOURCE,
    ModelSpec,
    lookup,
    spec_for_source,
)
from ..errors import InvalidArgument, ResourceExhausted
from ..model_options import ModelOptions
from ..types import LoadedModelStatus, ModelInfo, UnloadResult
from .memory import GIB, MemoryTracker, default_vram_budget, gib, pick_victims

# Backends that apply ModelOptions (the tiny ones load through the diffusers backend).
OPTION_BACKENDS = frozenset(
    {"diffusers", "tiny-random", "tiny-sdxl", "tiny-flux", "tiny-z-image", "tiny-flux2-klein"}
)

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
    def __init__(
        self,
        options: LoadOptions,
        extra_models: dict[str, str] | None = None,
        *,
        model_options: dict[str, ModelOptions] | None = None,
        default_model: str = "",
        memory_budget_bytes: int | None = None,
        vram_budget_bytes: int | None = None,
        in_use: Callable[[], set[str]] | None = None,
    ) -> None:
        """``model_options``: speed/memory options by model name (others get the defaults).
        ``in_use``: names of models that running jobs use (never unloaded to make room)."""
        self.options = options
        self._extra = {
            name: spec_for_source(name, src) for name, src in (extra_models or {}).items()
        }
        self._model_options = dict(model_options or {})
        self._loaded: dict[str, LoadedModel] = {}
        self.lock = threading.RLock()
        self.default_model = default_model
        self._memory_budget = memory_budget_bytes
        self._vram_budget = vram_budget_bytes
        self._budget_resolved = False
        self._budget_flag = "--memory-budget-gb"
        self.memory = MemoryTracker()
        self._in_use = in_use or set

    def spec(self, name: str) -> ModelSpec:
        """The spec for a name (preset, registered, folder, file or hub id); NotFound if none.
        It carries the model's options."""
        spec = lookup(name, self._extra)
        options = self._model_options.get(spec.name)
        if options is not None and spec.options != options:
            spec = replace(spec, options=options)
        return spec

    def register(self, spec: ModelSpec) -> None:
        self._extra[spec.name] = spec

    def known(self, name: str) -> bool:
        """Registered under this exact name: at start, loaded before, or by in-process code."""
        return name in self._extra

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

    def statuses(self) -> list[LoadedModelStatus]:
        return [
            LoadedModelStatus(
                name=name,
                device=model.device,
                dtype=model.dtype,
                memory_bytes=self.memory.size(name),
                options=model.active_options(),
                last_used_unix_ms=self.memory.last_used_unix_ms(name),
            )
            for name, model in list(self._loaded.items())
        ]

    @property
    def budget_bytes(self) -> int | None:
        """The memory budget; None: unlimited (or not known before the first load)."""
        return self.memory.budget_bytes

    def get(self, spec: ModelSpec) -> LoadedModel:
        """The loaded model for ``spec``, loading it first if needed (blocking), unloading
        least recently used models when it needs room."""
        with self.lock:
            model = self._loaded.get(spec.name)
            if model is None:
                model = self._load(spec)
            self.memory.touch(spec.name)
            return model

    def _load(self, spec: ModelSpec) -> LoadedModel:
        # The runtime applies where it can (auto: diffusers models on the CPU), like a default.
        options = replace(spec.options, runtime=ModelOptions().runtime)
        if options != ModelOptions() and spec.backend not in OPTION_BACKENDS:
            raise InvalidArgument(
                "options", f"speed/memory options apply to diffusers models, not {spec.backend}"
            )
        self._resolve_budget()
        protected = {spec.name} | self._in_use()
        # Room for what the model held last time (or its catalogue size on a GPU), best effort:
        # the measured size after the load decides.
        estimate = self.memory.size(spec.name)
        if not estimate and spec.memory_gb and self._budget_flag == "--vram-budget-gb":
            estimate = int(spec.memory_gb * GIB)
        if estimate:
            self._make_room(spec.name, estimate, protected, strict=False)
        model = backends.get(spec.backend).load(spec, self.options)
        self._loaded[spec.name] = model
        self.memory.record(spec.name, model.memory_bytes())
        if spec.name not in PRESETS:
            self._extra.setdefault(spec.name, replace(spec))
        log.info(
            "loaded %s on %s (%s, %s)",
            spec.name,
            model.device,
            model.dtype,
            gib(self.memory.size(spec.name)),
        )
        try:
            self._make_room(spec.name, 0, protected, strict=True)
        except ResourceExhausted:
            self._release(spec.name)
            raise
        return model

    def _resolve_budget(self) -> None:
        if self._budget_resolved:
            return
        from ..backends.diffusers_load import device_total_memory, pick_device

        device = pick_device(self.options.device)
        if device.startswith("cuda"):
            self._budget_flag = "--vram-budget-gb"
            budget = self._vram_budget
            if budget is None:
                total = device_total_memory(device)
                budget = default_vram_budget(total) if total else None
        else:
            budget = self._memory_budget
        self.memory.budget_bytes = budget
        self._budget_resolved = True
        if budget is not None:
            log.info("memory budget for models: %s (%s)", gib(budget), self._budget_flag)

    def _make_room(self, incoming: str, needed: int, protected: set[str], strict: bool) -> None:
        budget = self.memory.budget_bytes
        resident = self.memory.resident(list(self._loaded))
        victims = pick_victims(resident, needed, budget, protected, self.default_model)
        if victims is None:
            if strict:
                assert budget is not None
                held = [r for r in resident if r.name in protected]
                raise ResourceExhausted(
                    f"model {incoming!r} does not fit the memory budget of {gib(budget)} "
                    f"({self._budget_flag}): {gib(sum(r.bytes for r in held))} held by "
                    f"{', '.join(r.name for r in held)}, which cannot be unloaded now"
                )
            victims = [r.name for r in resident if r.name not in protected]
        for name in victims:
            log.info("unloading %s (least recently used) to make room for %s", name, incoming)
            self._release(name)

    def _release(self, name: str) -> int:
        freed = self._loaded.pop(name).release()
        self.memory.forget(name)
        log.info("unloaded %s (freed %s)", name, gib(freed))
        return freed

    def unload(self, name: str) -> UnloadResult:
        with self.lock:
            if name not in self._loaded:
                return UnloadResult(unloaded=False)
            return UnloadResult(unloaded=True, freed_bytes=self._release(name))
