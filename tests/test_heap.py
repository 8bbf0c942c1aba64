"""heap.py: full garbage collections kept off the hot path by freezing after a load, and an
unloaded model's reference cycles still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from pixelkiln_server import heap
from pixelkiln_server.backends.fake import FAKE_SPEC
from pixelkiln_server.runners import port
from pixelkiln_server.runners.host import HostConfig, RunnerHost


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    """Each test starts and ends with nothing frozen (this is a shared test process)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


class Node:
    def __init__(self) -> None:
        self.other: Any = self


def test_settle_freezes_what_exists_and_release_collects_frozen_cycles() -> None:
    cycle = Node()
    alive = weakref.ref(cycle)
    heap.settle()
    assert gc.get_freeze_count() > 0
    del cycle
    gc.collect()
    assert alive() is not None  # frozen: a collection skips it (why release exists)
    heap.release()
    assert alive() is None
    assert gc.get_freeze_count() > 0  # and what survives is frozen again


def messages(host_out: list[bytes]) -> list[dict[str, Any]]:
    return [port.unpack(m) for m in host_out]


@pytest.mark.parametrize("own_process", [True, False])
def test_a_runner_alone_in_its_process_freezes_after_a_load_and_thaws_on_unload(
    own_process: bool,
) -> None:
    out: list[bytes] = []
    host = RunnerHost(HostConfig(name="heap-test", device="cpu"), out.append, own_process)
    spec = port.pack({"spec": FAKE_SPEC})
    host.handle({"op": "load", "call": 1, "spec": port.unpack(spec)["spec"]})
    assert messages(out)[-1]["ok"] is True
    # Only a runner that owns its process touches the heap: a thread runner shares the
    # daemon's (and this test's) process.
    assert (gc.get_freeze_count() > 0) is own_process
    model = host.registry.loaded()[0]
    gone = weakref.ref(model)
    gc.unfreeze()
    heap.settle()  # the model is frozen now, as after a real load
    del model
    host.handle({"op": "unload", "call": 2, "name": FAKE_SPEC.name})
    assert messages(out)[-1]["ok"] is True
    if own_process:  # release() thawed and collected: nothing of the model stays behind
        assert gone() is None
