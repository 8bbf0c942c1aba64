"""Memory: a budget for the loaded models, their measured sizes, least-recently-used eviction.

A model's size is measured by its backend after it loads (``LoadedModel.memory_bytes``): on
CUDA the allocator's growth over the load (weights, compile warm-up), elsewhere the bytes of
its weights and buffers. The budget (``--vram-budget-gb`` on CUDA, default the card's total
minus a margin of max(2 GiB, 10%); ``--memory-budget-gb`` elsewhere, default unlimited) counts
those sizes. When a model needs room, the least recently used models are unloaded first;
a model in use (a running job) never is; the default model only when unloading every other
one is not enough. The policy is :func:`pick_victims`; the registry applies it.

No torch here: backends measure, the registry decides.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

GIB = 1024**3
MIN_VRAM_MARGIN = 2 * GIB


def default_vram_budget(total_bytes: int) -> int:
    """The card's memory less a margin for activations, the CUDA context and other processes."""
    return max(0, total_bytes - max(MIN_VRAM_MARGIN, total_bytes // 10))


def physical_memory_bytes() -> int | None:
    """The machine's memory (None where it cannot be read): sysconf on Linux and macOS,
    GlobalMemoryStatusEx on Windows."""
    if sys.platform == "win32":
        import ctypes

        class _Status(ctypes.Structure):
            _fields_ = [
                ("length", ctypes.c_ulong),
                ("load", ctypes.c_ulong),
                ("total_phys", ctypes.c_ulonglong),
                ("rest", ctypes.c_ulonglong * 6),
            ]

        status = _Status()
        status.length = ctypes.sizeof(_Status)
        ok = ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status))  # type: ignore[attr-defined]
        return int(status.total_phys) if ok else None
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def default_cpu_budget(total_bytes: int | None, runners: int = 1) -> int | None:
    """Half the machine's memory for the models' weights, shared by the CPU runners: one
    client cannot make the daemon load models until the machine swaps (activations, the
    front and other programs need the rest). None (unlimited) when the total is unknown."""
    if not total_bytes:
        return None
    return total_bytes // 2 // max(1, runners)


def gib(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB // 100 else f"{n / 2**20:.1f} MiB"


@dataclass(frozen=True)
class Resident:
    name: str
    bytes: int
    last_used: float


def pick_victims(
    resident: list[Resident],
    needed: int,
    budget: int | None,
    protected: set[str],
    default: str,
) -> list[str] | None:
    """Models to unload, in order, so that the resident bytes plus ``needed`` fit ``budget``:
    least recently used first, the default model last, ``protected`` ones never. ``[]`` when
    it fits already; None when even unloading every unprotected model is not enough."""
    if budget is None:
        return []
    total = sum(r.bytes for r in resident)
    if total + needed <= budget:
        return []
    candidates = sorted(
        (r for r in resident if r.name not in protected),
        key=lambda r: (r.name == default, r.last_used),
    )
    victims: list[str] = []
    for r in candidates:
        victims.append(r.name)
        total -= r.bytes
        if total + needed <= budget:
            return victims
    return None


class MemoryTracker:
    """Sizes and last use of loaded models. A size is kept after its model unloads: it is the
    estimate that makes room before the same model loads again."""

    def __init__(self, budget_bytes: int | None = None) -> None:
        self.budget_bytes = budget_bytes
        self._sizes: dict[str, int] = {}
        self._last_used: dict[str, float] = {}

    def touch(self, name: str) -> None:
        # Wall-clock for Status; strictly increasing so that order is exact within a tick.
        now = time.time()
        latest = max(self._last_used.values(), default=0.0)
        self._last_used[name] = now if now > latest else latest + 1e-6

    def record(self, name: str, size: int) -> None:
        self._sizes[name] = size
        self.touch(name)

    def forget(self, name: str) -> None:
        self._last_used.pop(name, None)

    def size(self, name: str) -> int:
        return self._sizes.get(name, 0)

    def last_used_unix_ms(self, name: str) -> int:
        return int(self._last_used.get(name, 0.0) * 1000)

    def resident(self, names: list[str]) -> list[Resident]:
        return [Resident(n, self.size(n), self._last_used.get(n, 0.0)) for n in names]
