"""Which models a client may name, decided once on the front before a request is accepted.

Clients may name catalogue presets, models registered at start (``--model``, ``--add-model``)
and folders or files under a ``--model-root``. A path is resolved (``/m/x``, ``/m/./x``,
``/m//x`` and a symlink to it are one model, loaded once). Anything else is refused with
PERMISSION_DENIED and one message whatever the name is, so a refusal never tells whether a path
exists. A hub id (or a preset not yet downloaded) would download: only models named on the
command line may, or admin clients when ``--allow-downloads`` is set. Pickle-based weights
(``.ckpt``, ``.pt``, ``.pth``, ``.bin``, ``.pkl``) are refused unless ``--allow-pickle``:
loading them runs code from the file. The policy refuses them before anything loads, saying
what to do; the loader (backends/diffusers_load.py) also passes ``use_safetensors=True``,
which diffusers 0.42 hands on to every component (0.30 did not: diffusers issue #11601).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from ..auth import Scope
from ..catalogue import ONNX_MANIFEST, PRESETS, check_model_name
from ..config import ServerConfig
from ..errors import NotFound, PermissionDenied

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
# owner/name on a model hub (huggingface_hub's repo id characters)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_path(name: str) -> Path:
    """A path as one spelling: user expanded, absolute, symlinks and ``.``/``..`` resolved."""
    return Path(os.path.realpath(os.path.expanduser(name)))


def pickle_weights(path: Path) -> str:
    """The first pickle-based weights file that loading ``path`` would read, or ""."""
    if path.is_file():
        return path.name if path.suffix.lower() in PICKLE_SUFFIXES else ""
    if not path.is_dir() or (path / ONNX_MANIFEST).is_file():
        return ""  # ONNX exports hold no pickle (their external data is raw tensors)
    for folder in (path, *sorted(p for p in path.iterdir() if p.is_dir())):
        names = [p.name for p in folder.iterdir() if p.is_file()]
        pickled = sorted(n for n in names if n.lower().endswith(PICKLE_SUFFIXES))
        if pickled and not any(n.endswith(".safetensors") for n in names):
            return str((folder / pickled[0]).relative_to(path))
    return ""


class ModelPolicy:
    """Turns a name a client sent into the name the engine loads, or refuses it."""

    def __init__(
        self,
        roots: Iterable[Path | str] = (),
        registered: dict[str, str] | None = None,
        *,
        allow_downloads: bool = False,
        allow_pickle: bool = False,
        known: Callable[[str], bool] | None = None,
    ) -> None:
        """``registered``: names given at start -> their sources (hub id, folder or file).
        ``known``: names registered since (models loaded through this policy before, or
        registered by code running in the daemon's process), admitted as they are."""
        self.roots = tuple(resolve_path(str(r)) for r in roots)
        self.registered = dict(registered or {})
        self.allow_downloads = allow_downloads
        self.allow_pickle = allow_pickle
        self.known = known or (lambda name: False)
        # A registered folder or file named by its path is the registered model, not a copy.
        self._by_path = {
            resolve_path(src): name
            for name, src in self.registered.items()
            if src not in PRESETS and not HUB_ID.match(src) and not src.startswith("builtin:")
        }

    @classmethod
    def from_config(
        cls, config: ServerConfig, known: Callable[[str], bool] | None = None
    ) -> ModelPolicy:
        registered = {**config.extra_models, config.default_model: config.default_model}
        return cls(
            config.model_roots,
            registered,
            allow_downloads=config.allow_downloads,
            allow_pickle=config.allow_pickle,
            known=known,
        )

    def admit(self, name: str, scope: Scope) -> str:
        """The canonical name for ``name``; PermissionDenied when the caller may not use it."""
        check_model_name(name)  # names no model can have: INVALID_ARGUMENT before any rule
        if name in self.registered or (name not in PRESETS and self.known(name)):
            return name
        if name in PRESETS:
            self._check_download(name, PRESETS[name].source, scope)
            return name
        if HUB_ID.match(name) and not Path(name).expanduser().exists():
            # owner/name that is no local path: a hub id (as the catalogue reads it), never a
            # path relative to the daemon's working directory.
            if self._may_download(name, scope):
                return name
            raise self._refusal(name)
        path = resolve_path(name)
        if path in self._by_path:
            return self._by_path[path]
        if self._under_root(path):
            self._check_pickle(name, path)
            return str(path)
        if not name.startswith((".", "~")) and "/" not in name and "\\" not in name:
            # A bare name is a model name, never looked up on the disk outside the roots.
            raise NotFound(
                f"unknown model {name!r}: not a preset ({', '.join(sorted(PRESETS))}) or a "
                "model registered at start (Models.List shows them)"
            )
        # A hub id not cached would download. Refused with the same message as a path outside
        # the roots, so the answer never depends on whether a local path of that shape exists.
        if (
            HUB_ID.match(name)
            and self._may_download(name, scope)
            and not Path(name).expanduser().exists()
        ):
            return name
        raise self._refusal(name)

    def canonical(self, name: str) -> str:
        """The loaded name of ``name`` without checks (Unload: nothing is read or loaded)."""
        if name in self.registered or name in PRESETS or HUB_ID.match(name):
            return name
        path = resolve_path(name)
        return self._by_path.get(path, str(path))

    def check_registered(self) -> None:
        """Models named on the command line obey the pickle rule too (checked at start)."""
        for name, source in self.registered.items():
            if not HUB_ID.match(source) and not source.startswith("builtin:"):
                self._check_pickle(name, resolve_path(source))

    def _under_root(self, path: Path) -> bool:
        return any(path == root or path.is_relative_to(root) for root in self.roots)

    def _check_download(self, name: str, source: str, scope: Scope) -> None:
        if source.startswith("builtin:") or not HUB_ID.match(source):
            return  # built in code, or shipped in the package
        if self._may_download(source, scope):
            return
        raise PermissionDenied(
            f"model {name!r} is not downloaded and this client may not download it: downloads "
            "happen only for models named on the command line (--model, --add-model), or for "
            "admin clients when the daemon runs with --allow-downloads"
        )

    def _may_download(self, source: str, scope: Scope) -> bool:
        return (self.allow_downloads and scope is Scope.ADMIN) or _cached(source)

    def _check_pickle(self, name: str, path: Path) -> None:
        if self.allow_pickle:
            return
        found = pickle_weights(path)
        if found:
            raise PermissionDenied(
                f"model {name!r} holds pickle-based weights ({found}), which can run code when "
                "loaded; convert them to .safetensors (diffusers: pipe.save_pretrained(folder, "
                "safe_serialization=True)) or start the daemon with --allow-pickle"
            )

    def _refusal(self, name: str) -> PermissionDenied:
        shown = name if len(name) <= 200 else name[:200] + "..."
        return PermissionDenied(
            f"model {shown!r} may not be loaded by clients: name a preset, a model registered at "
            "start (--add-model), or a folder or file under a --model-root of the daemon; hub "
            "downloads need an admin token and --allow-downloads"
        )


def _cached(hub_id: str) -> bool:
    """Whether a hub model is in the local cache (loading it needs no download)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        found = try_to_load_from_cache(hub_id, "model_index.json")
    except ValueError:
        return False
    return isinstance(found, str)
