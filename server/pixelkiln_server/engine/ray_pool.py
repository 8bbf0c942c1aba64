"""The Ray runner, the front's side: the runners are the replicas of a Ray Serve application
(``runners/ray_replica.py``), reached through deployment handles.

The front keeps what it keeps with local runners (the queue with its priorities and fairness,
live sessions, tokens, both carriers) and hands jobs out as replicas can take them: one job is
one streamed call of the replica's ``run`` with ``multiplexed_model_id`` = its model, so Serve
sends it to a replica that holds the model. A live session's later frames carry the id of the
replica that served its first (``@name``, which each replica holds from its start), so they
stay there while it lives and is not busy with another client's job.
Cancel is ``cancel()`` on that call's response: the replica's generator gets
``CancelledError`` and the job stops at its next step.

A replica that dies (killed, its node removed) ends its jobs with UNAVAILABLE naming the
replica and the cause, retry-safe; a job the replica never started goes back to the front of
the queue (full or not), once. Serve starts a replacement, which takes the dead one's place in
Status: its restarts (+1, and +1 for each replacement that failed to start meanwhile) and why
it went. While no replica serves and Serve reports that replicas fail to start (a default
model that cannot load), the waiting jobs fail with UNAVAILABLE naming the start's error and
new ones are refused (``down_reason``) until one serves. A replica that holds a job and sends
nothing (not even its heartbeat) for ``hang_timeout_s`` loses it; a job waiting in Serve's
queue while replicas serve (busy) waits on. Every other await on Ray has a deadline.

The first front deploys the application; a front that finds it running attaches to it, so
several fronts (on several ports or machines) share one pool of replicas. Status lists the
replicas as runners, from a ``state`` broadcast every POLL_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..catalogue import ModelSpec
from ..config import RayOptions
from ..errors import Cancelled, PixelKilnError, Unavailable
from ..runners import port
from ..runners.host import HostConfig
from ..types import Failed, UnloadResult
from . import ray_deploy, ray_head
from .jobs import Job
from .pool import deliver
from .ray_deploy import ray_cause
from .ray_replicas import Replacements, ReplicaView, deployment_messages, start_failure
from .runner_client import READY, run_message
from .scheduler import Scheduler

log = logging.getLogger(__name__)

POLL_S = 1.0
STARTUP_S = 300.0  # connect, deploy, replicas built and warmed up
CALL_S = 120.0  # a load (a model can take a minute to load on a GPU)
STATE_S = 5.0
LOST_AFTER_POLLS = 3  # failed state broadcasts in a row: no replica is listed (NOT_SERVING)


class _Stream:
    """One job's call: what ``Engine.cancel_job`` reaches through ``runner_of``."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.response: Any = None
        self.replica: ReplicaView | None = None
        # The result (or error), held until the call has ended: a client that sends its next
        # request on the result must find the replica free again in Serve's count, or Serve
        # sends that request to another replica (the model's holder would look busy).
        self.outcome: port.Message | None = None
        self.sent = time.perf_counter()

    def cancel(self, job_id: str, reason: str) -> None:
        if self.response is not None:
            self.response.cancel()


class RayPool:
    """Used by the Engine like RunnerPool: start, wait_ready, wake, runner_of, stop; plus
    load and unload, which Serve places (a model's holder first) or broadcasts."""

    def __init__(
        self,
        scheduler: Scheduler,
        options: RayOptions,
        host: HostConfig,
        warm: Callable[[], list[port.Message]],
        *,
        hang_timeout_s: float = 60.0,
        on_health: Callable[[bool], None] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.options = options
        self.host = host
        self._warm = warm
        self.hang_timeout_s = hang_timeout_s
        self.on_health = on_health
        self._replicas: dict[str, ReplicaView] = {}
        self._streams: dict[str, _Stream] = {}
        self._pins: dict[str, str] = {}  # live session -> the replica of its first frame
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._first: asyncio.Future[None] | None = None
        self._handle: Any = None
        self._release_ray: Callable[[], None] | None = None  # set when this front joined Ray
        self._closing = False
        self._serving = False
        self._failed_polls = 0
        # Replicas that left (Serve replaces them) and the replacements that take their place.
        self._replacements = Replacements(autoscaling=options.max_replicas > 0)
        # Set while no replica serves and Serve reports that replicas fail to start (say, the
        # default model's folder is gone): the jobs waiting fail with it, new ones are refused
        # (Engine.submit) until a replica serves again; else they would wait for one forever.
        self.down_reason: str | None = None

    # -- life cycle ----------------------------------------------------------------------

    @property
    def runners(self) -> list[ReplicaView]:
        return sorted(self._replicas.values(), key=lambda r: r.name)

    @property
    def serving(self) -> bool:
        return any(r.state == READY for r in self._replicas.values())

    def start(self) -> None:
        self._first = asyncio.get_running_loop().create_future()
        self._spawn(self._bring_up())

    async def wait_ready(self) -> None:
        assert self._first is not None, "start() first"
        await asyncio.shield(self._first)

    async def _bring_up(self) -> None:
        assert self._first is not None
        try:
            warm = [port.pack(m) for m in self._warm()]
            connect = asyncio.to_thread(ray_deploy.connect, self.options, self.host, warm)
            self._handle, self._release_ray = await asyncio.wait_for(connect, STARTUP_S)
            deadline = time.monotonic() + STARTUP_S
            while not self.serving:
                if time.monotonic() > deadline:
                    raise Unavailable(f"no Ray replica of {self.options.app} came up")
                await self._poll()
                await asyncio.sleep(0.2)
        except Exception as exc:  # noqa: BLE001 - reported to wait_ready, the daemon exits
            if not isinstance(exc, PixelKilnError):
                log.exception("the Ray runner could not start")
                exc = Unavailable(
                    f"the Ray runner could not start (--ray-address {self.options.address}): "
                    f"{ray_cause(exc)}{ray_deploy.auth_hint(exc)}"
                )
            if not self._first.done():
                self._first.set_exception(exc)
            return
        self._first.set_result(None)
        self._health_changed()
        self._spawn(self._dispatch_loop())
        self._spawn(self._poll_loop())
        self._wake.set()

    async def stop(self, timeout: float) -> None:
        """End this front's jobs; the application stays for the other fronts."""
        self._closing = True
        for stream in list(self._streams.values()):
            stream.job.cancel("the daemon is shutting down")
            stream.cancel(stream.job.id, "the daemon is shutting down")
            stream.job.finish(Failed(Unavailable("the daemon is shutting down")))
        for task in list(self._tasks):
            task.cancel()
        if self._release_ray is not None:
            # Ray's own shutdown, then a private head's stop (terminate, then kill if it lingers)
            budget = timeout + 5 + ray_head.STOP_TIMEOUT_S
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.to_thread(self._release_ray), budget)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _health_changed(self) -> None:
        if self.serving != self._serving:
            self._serving = self.serving
            if self.on_health is not None:
                self.on_health(self._serving)

    # -- replicas --------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            await self._poll()

    async def _poll(self) -> None:
        """Ask every replica what it holds; the replicas that answer are the runners."""
        try:
            answers = await self._handle.broadcast("state").results_async(
                timeout_s=STATE_S, return_exceptions=True
            )
        except Exception as exc:  # noqa: BLE001 - the next poll tries again
            self._failed_polls += 1
            level = (
                logging.WARNING if self._failed_polls in (1, LOST_AFTER_POLLS) else logging.DEBUG
            )
            log.log(level, "Ray runner: no replica answered (%s)", ray_cause(exc))
            if self._failed_polls >= LOST_AFTER_POLLS:  # no replica, the cluster or the app gone
                for view in self._replicas.values():
                    if not view.inflight:
                        self._replacements.left(view)
                self._replicas = {n: v for n, v in self._replicas.items() if v.inflight}
                self._health_changed()
            if not self.serving:
                await self._check_starts()
            return
        self._failed_polls = 0
        seen = {}
        for answer in answers:
            if isinstance(answer, bytes):
                message = port.unpack(answer)
                view = self._view(message["name"])
                view.heard(message)
                seen[view.name] = view
        # Replicas with jobs of this front stay listed until those end.
        for name, view in self._replicas.items():
            if name not in seen:
                if view.inflight:
                    seen[name] = view
                else:
                    self._replacements.left(view)
        self._replicas = seen
        self._health_changed()
        if self.serving:
            if self.down_reason is not None:
                log.info("Ray runner: a replica of %s serves again", self.options.app)
            self.down_reason = None
            self._replacements.serving()
        else:
            await self._check_starts()
        self._wake.set()

    def _view(self, name: str) -> ReplicaView:
        """The replica ``name``; a new one after the first start is Serve's replacement of
        one that left (ray_replicas.Replacements)."""
        view = self._replicas.get(name)
        if view is None:
            started = self._first is not None and self._first.done()
            view = self._replacements.arrived(name) if started else ReplicaView(name)
        return view

    async def _check_starts(self) -> None:
        """No replica serves: when Serve says that replicas fail to start, the requests
        waiting for one fail now, naming the cause, and new ones are refused meanwhile."""
        try:
            found = await asyncio.wait_for(
                asyncio.to_thread(deployment_messages, self.options.app), STATE_S
            )
        except Exception as exc:  # noqa: BLE001 - the next poll asks again
            log.warning("Ray runner: Serve's status did not come (%s)", ray_cause(exc))
            return
        message = next(
            (m for status, m in found if "failed to start" in m or "DEPLOY_FAILED" in status), ""
        )
        if not message:
            return
        self._replacements.failed_start(message)
        reason = (
            f"no replica of the Ray application {self.options.app} can serve: a replica's start "
            f"failed ({start_failure(message)}); Serve starts it again: retry later"
        )
        if reason != self.down_reason:
            log.error("Ray runner: %s", reason)
        self.down_reason = reason
        self._fail_waiting(reason)

    def _fail_waiting(self, reason: str) -> None:
        """The jobs queued here, and those sent that no replica has taken yet, end with
        UNAVAILABLE ``reason``."""
        error = Unavailable(reason)
        jobs = self.scheduler.take_compatible(lambda job: True, self.scheduler.capacity)
        for stream in list(self._streams.values()):
            if stream.replica is None and not stream.job.finished:
                stream.cancel(stream.job.id, reason)
                jobs.append(stream.job)
        for job in jobs:
            job.finish(Failed(error))
        if jobs:
            log.warning("%d waiting requests failed: %s", len(jobs), reason)

    def _capacity(self) -> int:
        """Jobs out at once: one per replica; twice that under autoscaling, so that Serve
        sees the demand and adds replicas."""
        ready = sum(1 for r in self._replicas.values() if r.state == READY)
        return max(1, ready) * (2 if self.options.max_replicas > 0 else 1)

    # -- dispatch ------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def release_pin(self, affinity: str) -> None:
        self._pins.pop(affinity, None)

    def runner_of(self, job: Job) -> _Stream | None:
        return self._streams.get(job.id)

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while not self._closing and len(self._streams) < self._capacity():
                taken = self.scheduler.take_compatible(lambda j: True, 1)
                if not taken:
                    break
                job = taken[0]
                if job.cancelled:
                    job.finish(Failed(Cancelled(job.cancel_reason or "cancelled")))
                    continue
                if self.down_reason is not None:  # put back meanwhile: none can take it
                    job.finish(Failed(Unavailable(self.down_reason)))
                    continue
                stream = _Stream(job)
                self._streams[job.id] = stream
                self._spawn(self._run(stream))
            self.scheduler.busy = len(self._streams) >= self._capacity()

    async def _run(self, stream: _Stream) -> None:
        job = stream.job
        job.dispatches += 1
        job.heard = False
        try:
            pin = self._pins.get(job.affinity) if job.affinity else None
            key = f"@{pin}" if pin in self._replicas else job.spec.name
            handle = self._handle.options(stream=True, method_name="run", multiplexed_model_id=key)
            stream.response = handle.remote(port.pack(run_message([job])))
            if job.cancelled:
                stream.response.cancel()
            events = stream.response.__aiter__()
            while (data := await self._next(stream, events)) is not None:
                self._heard(stream, port.unpack(data))
            self._lost(stream, "it ended the job's stream without a result")
        except asyncio.CancelledError:
            self._lost(stream, "cancelled")
            if self._closing:
                raise
        except TimeoutError:
            stream.response.cancel()
            self._lost(stream, f"it sent nothing for {self.hang_timeout_s:g} s")
        except Exception as exc:  # noqa: BLE001 - whatever Ray raises for a dead replica
            self._lost(stream, ray_cause(exc))
        finally:
            del self._streams[job.id]
            if stream.replica is not None:
                stream.replica.inflight.pop(job.id, None)
            self._wake.set()

    async def _next(self, stream: _Stream, events: Any) -> bytes | None:
        """The call's next event; None at its end. A replica that holds the job sends one at
        least every HEARTBEAT_S, so ``hang_timeout_s`` of silence means a frozen one
        (TimeoutError). Before one takes it, the call waits in Serve's queue: as long as
        replicas serve (busy with jobs, this front's or another's) it waits on, as in the
        front's own queue; with none, for ``hang_timeout_s``. The wait is never cancelled on
        the way (that would cancel the call's assignment to a replica)."""
        pending = asyncio.ensure_future(events.__anext__())
        try:
            while True:
                done, _ = await asyncio.wait({pending}, timeout=self.hang_timeout_s)
                if done:
                    try:
                        data: bytes = pending.result()
                    except StopAsyncIteration:
                        return None
                    return data
                if stream.replica is not None or not self.serving:
                    raise TimeoutError
        finally:
            if not pending.done():
                pending.cancel()

    def _heard(self, stream: _Stream, message: port.Message) -> None:
        ev = message.get("ev")
        job = stream.job
        if ev == "replica":
            view = self._replicas[message["name"]] = self._view(message["name"])
            view.heard(message)
            view.inflight[job.id] = job
            stream.replica = view
            if job.affinity:
                self._pins[job.affinity] = view.name
        elif "models" in message and stream.replica is not None:  # the replica's state
            stream.replica.heard(message)
        if ev == "started":
            job.heard = True
        elif ev in ("progress", "preview"):
            deliver(job, message, stream.sent)
        elif ev in ("result", "error"):
            stream.outcome = message

    def _lost(self, stream: _Stream, cause: str) -> None:
        job = stream.job
        if stream.outcome is not None:  # the call ended (or broke) after the job did
            deliver(job, stream.outcome, stream.sent)
        if job.finished:
            return
        if job.cancelled:
            job.finish(Failed(Cancelled(job.cancel_reason or "cancelled")))
            return
        name = stream.replica.name if stream.replica else self.options.app
        if stream.replica is not None:
            stream.replica.last_error = cause
        log.error("Ray replica %s lost request %s: %s", name, job.id, cause)
        if not job.heard and job.dispatches < 2 and not self._closing:
            # Never started: back to the front of the queue, full or not (it was admitted).
            with contextlib.suppress(PixelKilnError):
                self.scheduler.put_back(job)
                log.info("request %s goes back to the queue", job.id)
                return
        if stream.replica is None:
            text = f"no replica of the Ray application {self.options.app} took the request"
        else:
            text = f"Ray replica {name} stopped"
        job.finish(
            Failed(
                Unavailable(
                    f"{text}: {cause}; the request was not completed and retrying it is safe"
                )
            )
        )

    # -- models ------------------------------------------------------------------------

    async def _call(self, message: port.Message, model: str = "") -> Any:
        if self._handle is None:
            raise Unavailable("the Ray runner is not connected yet; retry shortly")
        handle = self._handle.options(method_name="call", multiplexed_model_id=model)
        try:
            data = await asyncio.wait_for(handle.remote(port.pack(message)), CALL_S)
        except TimeoutError:
            raise Unavailable(f"no Ray replica answered {message['op']} in {CALL_S:g} s") from None
        except Exception as exc:  # noqa: BLE001 - a replica died under the call
            raise Unavailable(
                f"a Ray replica stopped during {message['op']}: {ray_cause(exc)}; "
                "retrying it is safe"
            ) from None
        reply = port.unpack(data)
        if not reply.get("ok"):
            raise port.error_from_wire(reply.get("error") or {})
        return reply.get("value")

    async def load(self, spec: ModelSpec) -> None:
        """On a replica that holds it already, else one Serve picks."""
        await self._call({"op": "load", "call": 0, "spec": spec}, model=spec.name)
        await self._poll()

    async def unload(self, name: str) -> UnloadResult:
        """From every replica."""
        message = port.pack({"op": "unload", "call": 0, "name": name})
        if self._handle is None:
            raise Unavailable("the Ray runner is not connected yet; retry shortly")
        try:
            answers = await self._handle.broadcast("call", message).results_async(
                timeout_s=CALL_S, return_exceptions=True
            )
        except TimeoutError:
            raise Unavailable(f"the Ray replicas did not answer unload in {CALL_S:g} s") from None
        unloaded, freed = False, 0
        for answer in answers:
            reply = port.unpack(answer) if isinstance(answer, bytes) else {"error": answer}
            if not reply.get("ok"):
                log.warning("Ray runner: a replica did not unload %s: %s", name, reply["error"])
                continue
            result = port.build(UnloadResult, reply.get("value"))
            unloaded = unloaded or result.unloaded
            freed += result.freed_bytes
        await self._poll()
        return UnloadResult(unloaded=unloaded, freed_bytes=freed)
