"""What is wrong with a local diffusers folder that failed to load, named for the client.

A local diffusers folder that cannot be loaded is ``NOT_FOUND`` with a message naming the
folder and what is wrong with it (:func:`folder_failure`): gone since it was registered, no or
unreadable ``model_index.json``, a component without its folder, config or weights file, a
weights file that is no whole safetensors file. Never the hub's advice (``hf download``,
``--offline``, load_errors.py): neither helps a folder. The files are looked at only after a
load failed; safetensors files only as far as their header. Messages carry the folder and its
files (the client or the operator named the folder), never a traceback. Nothing here imports
torch or diffusers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..catalogue import ModelSpec
from ..errors import NotFound


def is_local_path(source: str) -> bool:
    """Whether ``source`` names a place on this machine, whether or not it exists: an absolute
    or ``.``/``~`` path, a Windows path, or more parts than a hub id's ``owner/name``. (A
    relative ``a/b`` that no longer exists cannot be told from a hub id.)"""
    return (
        os.path.isabs(source)
        or source.startswith((".", "~"))
        or "\\" in source
        or ":" in source
        or source.count("/") > 1
    )


# Pipeline components that are no torch module and so have no weights file.
_NO_WEIGHTS = ("Scheduler", "Tokenizer", "Processor", "FeatureExtractor")
# The weights file each library looks for (its sharded form adds ``.index.json``).
_WEIGHT_NAMES = {
    "diffusers": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "transformers": ("model.safetensors", "pytorch_model.bin"),
}
_PICKLED = (".bin", ".pt", ".pth", ".ckpt")


def _json_problem(path: Path) -> tuple[str, Any]:
    """("", the parsed JSON) or (what is wrong with the file, None)."""
    try:
        return "", json.loads(path.read_bytes())
    except OSError as exc:
        return f"cannot be read ({type(exc).__name__}: {exc.strerror or exc})", None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        return f"is not valid JSON ({exc})", None


def safetensors_problem(path: Path) -> str:
    """What keeps ``path`` from being read as a safetensors file ("" when nothing does): it is
    checked as safetensors checks it (an 8-byte header length, a JSON header, tensor data
    that ends exactly at the end of the file), reading only the header."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return f"{size} bytes: too short for a safetensors file"
            length = int.from_bytes(head, "little")
            if length > size - 8:
                return (
                    f"its header says {length} bytes and the file has {size}: truncated or "
                    "not a safetensors file"
                )
            header = json.loads(f.read(length))
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    except ValueError:
        return "its header is not valid JSON: not a safetensors file"
    try:
        end = max(
            (int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"),
            default=0,
        )
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return "its header is no safetensors header"
    need = 8 + length + end
    if need > size:
        return f"truncated: its tensors need {need} bytes and the file has {size}"
    if need < size:
        return f"{size - need} bytes after its last tensor: not a whole safetensors file"
    return ""


def _component_problem(folder: Path, key: str, library: str, cls: str, pickle: bool) -> str:
    sub = folder / key
    if not sub.is_dir():
        return f"component {key!r} ({cls}) has no folder {sub}"
    if any(part in cls for part in _NO_WEIGHTS):
        return ""
    config = sub / "config.json"
    if not config.is_file():
        return f"component {key!r} has no {config}"
    problem, _ = _json_problem(config)
    if problem:
        return f"file {config} {problem}"
    names = [n for n in _WEIGHT_NAMES.get(library, ()) if pickle or not n.endswith(_PICKLED)]
    sharded = [sub / f"{n}.index.json" for n in names if (sub / f"{n}.index.json").is_file()]
    for index in sharded:
        problem, data = _json_problem(index)
        if problem:
            return f"file {index} {problem}"
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        parts = weight_map.values() if isinstance(weight_map, dict) else ()
        shards = sorted({s for s in parts if isinstance(s, str)})
        missing = [s for s in shards if not (sub / s).is_file()]
        if missing:
            return f"component {key!r} lacks {sub / missing[0]}, a part named in {index.name}"
    files = sorted(
        p for p in sub.iterdir() if p.is_file() and p.suffix in (".safetensors", *_PICKLED)
    )
    present = [sub / n for n in names if (sub / n).is_file()] if names else files
    if not present and not sharded:
        looked = " or ".join(str(sub / n) for n in names) if names else f"*.safetensors in {sub}"
        text = f"component {key!r} has no weights file (looked for {looked})"
        if files:
            text += "; it has " + ", ".join(p.name for p in files[:3])
            if not pickle and any(p.suffix in _PICKLED for p in files):
                text += (
                    " (pickle-based: convert it to .safetensors or start the daemon with "
                    "--allow-pickle)"
                )
        return text
    for weights in files:
        if weights.suffix == ".safetensors":
            problem = safetensors_problem(weights)
            if problem:
                return f"file {weights} cannot be read ({problem})"
    return ""


def folder_problem(folder: Path, allow_pickle: bool = False) -> str:
    """What is wrong with the diffusers folder ``folder``; "" when no check finds a fault."""
    if not folder.exists():
        return "no longer exists"
    if not folder.is_dir():
        return "is no folder"
    index = folder / "model_index.json"
    if not index.is_file():
        return f"has no model_index.json: not a diffusers folder ({index})"
    problem, data = _json_problem(index)
    if problem:
        return f"model_index.json {problem}"
    if not isinstance(data, dict):
        return "model_index.json is no JSON object"
    for key, value in data.items():
        if key.startswith("_") or not isinstance(value, list) or len(value) != 2:
            continue
        library, cls = value
        if not (isinstance(library, str) and isinstance(cls, str)):
            continue  # [null, null]: a component the pipeline goes without
        problem = _component_problem(folder, key, library, cls, allow_pickle)
        if problem:
            return problem
    return ""


def folder_failure(
    spec: ModelSpec, exc: BaseException | None, allow_pickle: bool = False
) -> NotFound:
    """The error for the local diffusers folder of ``spec`` that failed to load with ``exc``
    (None: not tried, the folder is gone): the folder and what is wrong with it, found by
    looking at its files; else diffusers' own first line."""
    folder = Path(spec.source)
    prefix = f"model {spec.name!r}: " if spec.name != spec.source else ""
    if not folder.exists():
        return NotFound(
            f"{prefix}model folder {folder} no longer exists (moved or deleted since it was "
            "registered): put it back, or load the model from where it is now"
        )
    problem = folder_problem(folder, allow_pickle)
    if problem:
        sep = " " if problem.startswith(("has ", "is ")) else ": "
        return NotFound(
            f"{prefix}model folder {folder}{sep}{problem}; save the model there again "
            "(save_pretrained) or copy the folder again"
        )
    detail = str(exc).strip().splitlines()[0][:300] if exc is not None and str(exc).strip() else ""
    what = type(exc).__name__ if exc is not None else "unknown error"
    return NotFound(
        f"{prefix}model folder {folder} cannot be loaded as a diffusers pipeline "
        f"({what}{': ' + detail if detail else ''})"
    )
