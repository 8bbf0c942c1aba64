"""The front's handle on one runner: sends port messages, turns what comes back into job
events, and notices when the runner is gone.

Everything here runs on the event loop, which reads a child runner's messages itself where the
platform allows (runners/frames.py); elsewhere one reader thread per runner hands each message
to the loop. The front keeps only what the runner told it (its loaded models, its budget,
when it last spoke); it never touches the runner's objects.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..catalogue import ModelSpec
from ..errors import Unavailable
from ..logsetup import write_runner_lines
from ..runners import port
from ..runners.frames import GarbledFrame, LoopReader
from ..runners.transports import Transport
from ..tracepoints import mark
from ..types import LoadedModelStatus
from .jobs import Job

log = logging.getLogger(__name__)

STARTING, READY, DEAD, STOPPED = "starting", "ready", "dead", "stopped"


class RunnerClient:
    def __init__(
        self,
        name: str,
        device: str,
        make_transport: Callable[[], Transport],
    ) -> None:
        self.name = name
        self.device = device
        self._make_transport = make_transport
        # Set by the pool that owns this runner: job events, and the runner's end with its cause.
        self.on_message: Callable[[RunnerClient, port.Message], None] = _no_pool
        self.on_exit: Callable[[RunnerClient, str], None] = _no_pool
        self.transport: Transport = make_transport()
        self.state = STOPPED
        self.inflight: dict[str, Job] = {}
        self.batch_open = False
        self.batch_started = 0.0
        self.models: list[LoadedModelStatus] = []
        self.budget_bytes = 0
        # Processes started in place of one that died or was stopped (every start after the
        # first, whether or not it then warmed up): a crash loop shows.
        self.restarts = 0
        self.jobs_run = 0
        self.last_seen = time.monotonic()
        # Whether this start's runner has sent anything yet (its first heartbeat, at least).
        self.has_spoken = False
        # Why it last stopped or failed to start; the pool that owns it sets it.
        self.last_error = ""
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._call_ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0
        self._reader: LoopReader | None = None
        self._end_task: asyncio.Future[None] | None = None

    @property
    def busy(self) -> bool:
        """A batch is out: from ``run`` until the runner says ``done`` (its last result can
        arrive before it has finished with the batch)."""
        return self.batch_open or bool(self.inflight)

    @property
    def pid(self) -> int | None:
        return self.transport.pid

    def loaded(self, name: str) -> bool:
        return any(m.name == name for m in self.models)

    def start(self) -> None:
        """Start the transport (a fresh one, counted in ``restarts``, for every start after
        the first) and its reader."""
        self._loop = asyncio.get_running_loop()
        if self._generation:
            self.transport = self._make_transport()
            self.restarts += 1
        self._generation += 1
        self.state = STARTING
        self.last_seen = time.monotonic()
        self.has_spoken = False
        self.transport.start()
        generation, transport = self._generation, self.transport
        fd = transport.take_fd()
        if fd is not None:
            self._reader = LoopReader(
                fd,
                self._loop,
                lambda data: self._frame(transport, generation, data),
                lambda: self._spawn_end(transport, generation),
            )
            return
        threading.Thread(
            target=self._read, args=(transport, generation), name=f"{self.name}-reader",
            daemon=True,
        ).start()  # fmt: skip

    def _decode(self, transport: Transport, data: bytes | bytearray) -> port.Message | None:
        """A runner's message, or None for one the front cannot read: that ends the runner
        (it is killed), not the front."""
        try:
            return port.unpack(data)
        except Exception:  # noqa: BLE001
            log.exception("runner %s sent a message the front cannot read", self.name)
            transport.kill()
            return None

    def _frame(self, transport: Transport, generation: int, data: bytearray) -> None:
        """One message read by the event loop (see ``start``)."""
        message = self._decode(transport, data)
        if message is None:
            raise GarbledFrame("unreadable message")  # the reader stops; the exit follows
        self._received(generation, message)

    def _spawn_end(self, transport: Transport, generation: int) -> None:
        """The runner's pipe ended: find out why off the loop (``cause`` waits for the exit)."""

        async def ended() -> None:
            self._ended(generation, await asyncio.to_thread(transport.cause))

        self._end_task = asyncio.ensure_future(ended())

    def _read(self, transport: Transport, generation: int) -> None:
        loop = self._loop
        assert loop is not None
        while (data := transport.recv()) is not None:
            message = self._decode(transport, data)
            if message is None:
                continue  # read on until the killed runner's end of file
            if not _call_soon(loop, self._received, generation, message):
                return
        _call_soon(loop, self._ended, generation, transport.cause())

    def _received(self, generation: int, message: port.Message) -> None:
        if generation != self._generation:
            return
        self.last_seen = time.monotonic()
        self.has_spoken = True
        if "models" in message:  # the runner's state, on a batch's end and on replies
            self.models, self.budget_bytes = port.state_from_wire(message)
        ev = message.get("ev")
        if ev == "reply":
            future = self._calls.pop(int(message.get("call") or 0), None)
            if future is not None and not future.done():
                if message.get("ok"):
                    future.set_result(message.get("value"))
                else:
                    future.set_exception(port.error_from_wire(message.get("error") or {}))
        elif ev == "log":
            write_runner_lines(str(message.get("text", "")))
        elif ev != "alive":
            if message.get("done"):
                mark("front.from_runner")
            self.on_message(self, message)

    def _ended(self, generation: int, cause: str) -> None:
        if generation != self._generation:
            return
        self.batch_open = False
        was = self.state
        self.state = DEAD if was != STOPPED else STOPPED
        self.models = []
        error = Unavailable(
            f"model runner {self.name} ({self.device}) stopped: {cause}; "
            "the request was not completed and retrying it is safe"
        )
        for future in self._calls.values():
            if not future.done():
                future.set_exception(error)
        self._calls.clear()
        self.on_exit(self, cause)

    def send(self, message: port.Message) -> None:
        try:
            self.transport.send(port.pack(message))
        except (OSError, ValueError, BrokenPipeError) as exc:
            log.warning("runner %s: cannot send (%s)", self.name, exc)

    async def call(self, op: str, **fields: Any) -> Any:
        """A request that the runner answers with a reply (load, unload, status)."""
        if self.state in (DEAD, STOPPED):
            raise Unavailable(f"model runner {self.name} ({self.device}) is not running")
        call_id = next(self._call_ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        self.send({"op": op, "call": call_id, **fields})
        return await future

    async def load(self, spec: ModelSpec) -> None:
        await self.call("load", spec=spec)

    def run(self, jobs: list[Job]) -> None:
        """Hand one batch to the runner; its events come back through ``on_message``."""
        self.batch_started = time.perf_counter()
        self.batch_open = True
        self.jobs_run += len(jobs)
        for job in jobs:
            job.dispatches += 1
            job.heard = False
            self.inflight[job.id] = job
        mark("front.to_runner")
        self.send(run_message(jobs))

    def cancel(self, job_id: str, reason: str) -> None:
        self.send({"op": "cancel", "job": job_id, "reason": reason})

    def kill(self) -> None:
        self.transport.kill()

    async def stop(self, timeout: float) -> None:
        self.state = STOPPED
        await asyncio.to_thread(self.transport.close, timeout)
        if self._reader is not None:  # the child is gone; its pipe's end may not be read yet
            self._reader.close()


def run_message(jobs: list[Job]) -> port.Message:
    """The port's ``run`` request for one batch."""
    return {"op": "run", "jobs": [_job_to_wire(job) for job in jobs]}


def _job_to_wire(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "request": port.request_to_wire(job.request),
        "spec": job.spec,
        "inputs": {"init_rgb": job.inputs.init_rgb, "mask": job.inputs.mask},
        "shas": list(job.input_shas),
    }


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> bool:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: the daemon is gone
        return False
    return True


def _no_pool(*args: object) -> None:
    raise AssertionError("a RunnerClient reports to the RunnerPool that owns it")
