"""The Ray runner's model side: a Ray Serve replica that hosts one :class:`RunnerHost`.

Each replica owns its models the way a runner process does (the host's registry, memory
budget and LRU) and does one request on them at a time; the front reaches it only through a
deployment handle with port messages packed as msgpack ``bytes`` both ways, never pickled
domain objects. The methods:

    run(request)   an async generator per job: ``{"op": "run", "jobs": [job]}`` in, the
                   job's port events out (``replica`` first, then started, progress, preview,
                   result or error with ``done`` and the host's state; ``alive`` every
                   HEARTBEAT_S while it waits for the model or runs). Called with
                   ``multiplexed_model_id`` = the model, so Serve sends a model's jobs to a
                   replica that holds it; or ``@name``, the replica's own id, which only
                   that replica holds from its start (a live session's frames after its
                   first).
    call(request)  load / unload / status: the host's ``reply`` message.
    state()        what the replica holds (``state`` fields) and who it is (``replica``
                   fields); the front broadcasts it to list the replicas as runners.

The model work runs on a thread, off the replica's event loop. When the front calls
``cancel()`` on a job's response, the generator gets ``asyncio.CancelledError`` and tells
the host, whose step hook stops the job at its next step (no VAE decode).

This module imports Ray; only the Ray runner (``--runner ray``) imports it.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import ray
from ray import serve

from . import port
from .host import HostConfig, RunnerHost

# Model ids Serve keeps as routing hints per replica; the host's own budget and LRU decide
# what stays loaded (a hint for an evicted model only costs a reload).
MAX_MODEL_HINTS = 64

_ALIVE = port.pack({"ev": "alive", "busy": True})


class _LoadFailed(Exception):
    def __init__(self, reply: port.Message) -> None:
        super().__init__(str(reply.get("error")))
        self.reply = reply


def _drop(data: bytes) -> None:
    pass


class RunnerReplica:
    """The deployment's class (``serve.deployment`` is applied by the front, with its
    replicas, CPUs and GPUs). ``warm``: port messages run once before the replica takes
    work (load the default model, one generation); a failure fails the replica's start."""

    async def __init__(self, config: dict[str, Any], warm: list[bytes]) -> None:  # type: ignore[misc]
        # Serve awaits an async constructor: the warm-up's load goes through the multiplexed
        # loader, so Serve knows from the start that this replica holds the default model.
        context = serve.get_replica_context()
        self.name = f"ray:{context.replica_id.unique_id}"
        host_config = HostConfig(**{**config, "name": self.name})
        self._lock = threading.Lock()  # one request on the models at a time
        self._sink: Callable[[bytes], None] = _drop
        self.host = RunnerHost(host_config, self._send, own_process=True)
        self._loads: dict[str, port.Message] = {}
        self.jobs_run = 0
        runtime = ray.get_runtime_context()
        self.identity = {
            "name": self.name,
            "device": host_config.device,
            "pid": os.getpid(),
            "node": runtime.get_node_id(),
            "actor": runtime.get_actor_name() or "",
        }
        for data in warm:
            message = port.unpack(data)
            if message.get("op") == "load":
                replies = [await self._ensure(message["spec"])]
            else:
                replies = await asyncio.to_thread(self._exchange, message)
            for reply in replies:
                error = reply.get("error")
                if reply.get("ev") in ("error", "reply") and error:
                    raise RuntimeError(f"warm-up failed: {error.get('message')}")
        # Its own id, so the front can send a call to this replica (Serve routes by ids).
        self._loads[f"@{self.name}"] = {"op": "status", "call": 0}
        await self._model(f"@{self.name}")

    def _send(self, data: bytes) -> None:
        self._sink(data)

    def _exchange(self, message: port.Message) -> list[port.Message]:
        """Carry out one request on this thread; what the host sent meanwhile."""
        out: list[bytes] = []
        self._work(message, out.append)
        return [port.unpack(data) for data in out]

    def _work(self, message: port.Message, sink: Callable[[bytes], None]) -> None:
        with self._lock:
            self._sink = sink
            try:
                self.host.handle(message)
            finally:
                self._sink = _drop

    @serve.multiplexed(max_num_models_per_replica=MAX_MODEL_HINTS)
    async def _model(self, key: str) -> str:
        """Load the model of ``key`` (Serve then routes calls with that id here; a call for
        another replica's id lands here only when that one is gone or busy, and runs). Raises
        on failure, so Serve does not take the replica for a holder of what it could not load."""
        replies = await asyncio.to_thread(self._exchange, self._loads[key])
        reply = next(m for m in replies if m.get("ev") == "reply")
        if not reply.get("ok"):
            raise _LoadFailed(reply)
        return key

    async def _ensure(self, spec: dict[str, Any]) -> port.Message:
        # The call's multiplexed id: the model's name, or a replica's own id.
        key = serve.get_multiplexed_model_id() or str(spec["name"])
        self._loads[key] = {"op": "load", "call": 0, "spec": spec}
        try:
            await self._model(key)
        except _LoadFailed as failed:
            return failed.reply
        return {"ev": "reply", "call": 0, "ok": True, "value": {}}

    async def run(self, request: bytes) -> AsyncIterator[bytes]:
        message = port.unpack(request)
        job_id = str(message["jobs"][0]["id"])
        yield port.pack({"ev": "replica", **self.identity})
        loaded = await self._ensure(message["jobs"][0]["spec"])
        if not loaded.get("ok"):
            yield port.pack({"ev": "error", "job": job_id, "error": loaded.get("error")})
            return
        self.jobs_run += 1
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        def sink(data: bytes | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, data)

        def work() -> None:
            try:
                self._work(message, sink)
            finally:
                sink(None)

        task = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            while True:
                try:
                    data = await asyncio.wait_for(queue.get(), port.HEARTBEAT_S)
                except TimeoutError:
                    yield _ALIVE
                    continue
                if data is None:
                    return
                yield data
        finally:
            # Cancelled by the front (CancelledError) or the stream closed: stop the job at
            # its next step; the worker thread finishes on its own.
            if not task.done():
                self.host.cancel(job_id, "cancelled by the client")

    async def call(self, request: bytes) -> bytes:
        message = port.unpack(request)
        if message.get("op") == "load":
            reply = await self._ensure(message["spec"])
        if message.get("op") != "load" or reply.get("ok"):
            # A load again, too: Serve's hint may name a model the host's LRU let go.
            replies = await asyncio.to_thread(self._exchange, message)
            reply = next(m for m in replies if m.get("ev") == "reply")
        return port.pack(reply)

    async def state(self) -> bytes:
        return port.pack(
            {
                **self.host.state(),
                **self.identity,
                "busy": self._lock.locked(),
                "jobs_run": self.jobs_run,
            }
        )
