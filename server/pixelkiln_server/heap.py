"""Keep Python's full garbage collections off the hot path.

A model runner holds hundreds of thousands of Python objects once a diffusers pipeline is
loaded (500 000 for tiny-random, measured). CPython's oldest-generation collection walks every
one of them: 200 to 250 ms here, and it fell inside a live frame (the 100th of a session,
every session: benchmarks/peer_streamdiffusion.py's p99). ``gc.freeze()`` moves what exists
into a permanent generation that collections skip; refcounting still frees those objects.
So :func:`settle` runs after the set of loaded models changes (and the front calls it once
it is ready), and :func:`release` first thaws everything, so that reference cycles of an
unloaded model's objects are collected rather than kept for good.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect now, then freeze what survives out of later collections."""
    gc.collect()
    gc.freeze()


def release() -> None:
    """After an unload: thaw, collect (cycles included), freeze again."""
    gc.unfreeze()
    settle()
