"""Running out of accelerator memory, as torch says it on each device.

CUDA raises ``torch.cuda.OutOfMemoryError``. Apple's MPS raises a plain ``RuntimeError``
("MPS backend out of memory (MPS allocated: ...)": torch's MPSAllocator fails a TORCH_CHECK),
which an ``except torch.cuda.OutOfMemoryError`` misses: on a Mac a request too large became
INTERNAL with a traceback instead of RESOURCE_EXHAUSTED with its advice. Torch is imported
only when asked.
"""

from __future__ import annotations

from typing import Any

MPS_OUT_OF_MEMORY = "MPS backend out of memory"


def errors() -> tuple[type[BaseException], ...]:
    """The exception classes to catch; :func:`exhausted` tells which ones are memory."""
    import torch

    return (torch.cuda.OutOfMemoryError, RuntimeError)


def exhausted(exc: BaseException) -> bool:
    """``exc`` says the accelerator's memory ran out (CUDA or MPS)."""
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and str(exc).startswith(MPS_OUT_OF_MEMORY)


def empty_caches(device: Any = None) -> None:
    """Hand the caching allocators' free blocks back (CUDA, MPS), after a failure or unload."""
    import torch

    kind = getattr(device, "type", str(device or ""))
    if torch.cuda.is_available() and kind in ("", "cuda"):
        torch.cuda.empty_cache()
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available() and kind in ("", "mps"):
        torch.mps.empty_cache()
