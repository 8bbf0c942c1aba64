"""The event loop ``pixelkiln serve`` runs on (``--event-loop``).

``auto`` (the default) is uvloop where it is installed (the ``server`` extra installs it on
Linux and macOS; it does not exist for Windows) and asyncio's own loop elsewhere. The front
spends its time in the loop's callbacks (gRPC's completion queue, the runners' frames, the
WebSocket carrier); on uvloop a 64x64 request took 0.25-0.32 ms less, side by side in
alternating blocks (benchmarks/overhead.py's setting). ``asyncio`` is the way back if a
library misbehaves on uvloop.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any

LOOPS = ("auto", "uvloop", "asyncio")

Runner = Callable[[Coroutine[Any, Any, int]], int]


def choose(choice: str) -> tuple[str, Runner]:
    """(name, run) for ``--event-loop choice``; ``run(main())`` runs ``main`` to its end on a
    new loop, as ``asyncio.run`` does. Raises SystemExit when uvloop is asked for by name and
    is not installed."""
    if choice not in LOOPS:
        raise SystemExit(f"pixelkiln serve: --event-loop: unknown {choice!r}; allowed: {LOOPS}")
    if choice != "asyncio":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            if choice == "uvloop":
                raise SystemExit(
                    "pixelkiln serve: --event-loop uvloop needs uvloop (pip install uvloop; "
                    "Linux and macOS only)"
                ) from None
        else:
            return "uvloop", uvloop.run
    return "asyncio", asyncio.run
