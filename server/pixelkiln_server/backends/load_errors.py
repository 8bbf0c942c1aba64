"""What went wrong loading a real model, as a status code and a message naming the fix.

diffusers turns most hub failures into a bare ``OSError`` whose ``__context__`` (or
``__cause__``) holds huggingface_hub's own exception; :func:`hub_failure` walks that chain and
answers by the first exception it knows:

- a gated repo without an accepted licence or a token -> ``PERMISSION_DENIED`` naming
  ``HF_TOKEN``, ``hf auth login`` and the model page;
- a repo or revision that does not exist (or is private) -> ``NOT_FOUND``;
- no network (connection refused, DNS, timeout: huggingface_hub says
  ``LocalEntryNotFoundError`` when the file is not cached either) -> ``UNAVAILABLE``;
- a file missing from the repo -> ``NOT_FOUND``;
- the hub's own 5xx -> ``UNAVAILABLE``.

A model too large for the GPU is ``RESOURCE_EXHAUSTED``, checked before loading against the
free memory (:func:`check_fits`) and again when CUDA runs out (:func:`too_large`); both name
the options that exist (``--offload``, ``--quantize``, ``--dtype``) and the smaller presets.

A local diffusers folder that cannot be loaded is folder_faults.py's.

Messages carry the model's name and hub id, exception type names and the options; never a
path on the daemon's machine or a traceback. Nothing here imports torch or diffusers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..catalogue import PRESETS, ModelSpec
from ..errors import NotFound, PermissionDenied, PixelKilnError, ResourceExhausted, Unavailable

HUB_PAGE = "https://huggingface.co/"
GIB = 1024**3


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _http_status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    try:
        return int(getattr(response, "status_code", 0) or 0)
    except (TypeError, ValueError):
        return 0


def _is_connection_error(exc: BaseException) -> bool:
    """No route to the hub: the builtin ConnectionError and TimeoutError, and httpx's and
    requests' transport errors (recognised by module, so neither needs to be installed)."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    module = type(exc).__module__.split(".")[0]
    names = {k.__name__ for k in type(exc).__mro__}
    if module in ("httpx", "httpx2"):  # huggingface_hub 1.x uses httpx, 2.x httpx2
        return bool(names & {"TransportError", "TimeoutException"})
    if module in ("requests", "urllib3"):
        return bool(names & {"ConnectionError", "Timeout", "NewConnectionError"})
    return False


def hub_failure(spec: ModelSpec, exc: BaseException) -> PixelKilnError:
    """The client's error for a failed download of ``spec`` (a hub id) from ``exc``."""
    from huggingface_hub import errors as hf

    repo = spec.source
    page = HUB_PAGE + repo
    name = f"model {spec.name!r}" + (f" ({repo})" if repo != spec.name else "")
    chain = list(_chain(exc))

    def find(*types: type[BaseException]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, types)), None)

    if find(hf.GatedRepoError) is not None or any(_http_status(e) in (401, 403) for e in chain):
        return PermissionDenied(
            f"{name} is gated: accept its licence on {page} while logged in, then give the "
            "daemon a token of that account: set HF_TOKEN in its environment, or run "
            "`hf auth login` (older huggingface_hub: `huggingface-cli login`) as the user "
            "that runs the daemon, and start it again"
        )
    if find(hf.RevisionNotFoundError) is not None:
        return NotFound(
            f"{name}: revision {spec.revision!r} does not exist on the hub; see the "
            f"revisions on {page}"
        )
    if find(hf.RepositoryNotFoundError, hf.DisabledRepoError) is not None:
        return NotFound(
            f"{name} is not on the model hub: check the hub id's spelling (owner/name) on "
            f"{page}; for a private model set the daemon's HF_TOKEN; for a mirror, HF_ENDPOINT"
        )
    if find(hf.OfflineModeIsEnabled) is not None:
        return not_cached_offline(spec)
    if find(hf.LocalEntryNotFoundError) is not None or any(_is_connection_error(e) for e in chain):
        return Unavailable(
            f"{name} is not downloaded and the model hub cannot be reached from the daemon's "
            "machine (no network, a proxy, or HF_ENDPOINT): connect it and try again, or "
            f"download it elsewhere (`hf download {repo}`) and copy the Hugging Face cache "
            "(HF_HOME) here; `pixelkiln serve` with no --model serves the shipped model offline"
        )
    missing = find(hf.EntryNotFoundError)
    if missing is not None:
        return NotFound(
            f"{name}: a file is missing from the hub repo ({type(missing).__name__}); it "
            "needs diffusers weights (model_index.json and safetensors per component), see "
            f"{page}"
        )
    if any(500 <= _http_status(e) < 600 for e in chain):
        return Unavailable(f"{name}: the model hub answered with a server error; try again later")
    return NotFound(
        f"{name}: cannot get {repo!r} from the model hub ({type(exc).__name__}); check the "
        "hub id's spelling (owner/name), that the model exists and has diffusers weights "
        "(model_index.json), that this machine can reach the hub (HF_ENDPOINT), and for a "
        "gated or private model the daemon's HF_TOKEN"
    )


def not_cached_offline(spec: ModelSpec) -> NotFound:
    """The error for a hub model that is not cached while the daemon runs offline."""
    name = f"model {spec.name!r}" + (f" ({spec.source})" if spec.source != spec.name else "")
    return NotFound(
        f"{name} is not in the local Hugging Face cache and the daemon runs offline "
        "(--offline or HF_HUB_OFFLINE=1): download it on a machine with network "
        f"(`hf download {spec.source}`) and copy the cache (HF_HOME) here, or start the "
        "daemon once without --offline"
    )


def _fixes(spec: ModelSpec, dtype_name: str, free_gb: float | None) -> str:
    smaller = sorted(
        (p for p in PRESETS.values() if p.memory_gb and p.memory_gb < spec.memory_gb),
        key=lambda p: p.memory_gb,
    )
    if free_gb is not None:
        smaller = [p for p in smaller if p.memory_gb < free_gb] or smaller[:1]
    options = [
        "--offload model (only the running part on the GPU; sequential: least memory, slowest)",
        "--quantize int8-weight or nf4 (the denoiser's weights in 8 or 4 bits)",
    ]
    if dtype_name == "fp32":
        options.append("--dtype fp16 or bf16 (half the memory of fp32)")
    options.append("unloading other models")
    text = "try " + "; ".join(options)
    if smaller:
        text += "; or a smaller preset: " + ", ".join(
            f"{p.name} ({p.memory_gb:g} GB)" for p in smaller
        )
    return text


def weights_gb(spec: ModelSpec, dtype_name: str) -> float:
    """The weights' memory at ``dtype_name``: the catalogue states it at 16 bits."""
    return spec.memory_gb * (2.0 if dtype_name == "fp32" else 1.0)


def check_fits(
    spec: ModelSpec, dtype_name: str, free_bytes: int | None, offload: str, quantize: str
) -> None:
    """ResourceExhausted before any download when the catalogue's weight size of ``spec`` at
    ``dtype_name`` exceeds the GPU's free memory. Skipped when the size is unknown, the device
    is no GPU (``free_bytes`` None), or offload or quantization change what must fit."""
    if free_bytes is None or not spec.memory_gb or offload or quantize:
        return
    need = weights_gb(spec, dtype_name)
    free_gb = free_bytes / GIB
    if need <= free_gb:
        return
    raise ResourceExhausted(
        f"model {spec.name!r} needs about {need:.1f} GB of GPU memory for its weights at "
        f"{dtype_name}, and the GPU has {free_gb:.1f} GB free; " + _fixes(spec, dtype_name, free_gb)
    )


def too_large(spec: ModelSpec, dtype_name: str, free_bytes: Any = None) -> ResourceExhausted:
    """The error for CUDA running out of memory while ``spec`` loads."""
    free_gb = free_bytes / GIB if isinstance(free_bytes, int) else None
    need = f" (about {weights_gb(spec, dtype_name):.1f} GB of weights)" if spec.memory_gb else ""
    return ResourceExhausted(
        f"out of GPU memory loading {spec.name!r}{need} at {dtype_name}; "
        + _fixes(spec, dtype_name, free_gb)
    )
