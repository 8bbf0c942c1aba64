"""The runner pool: placement, dispatch, crash recovery and the hang watchdog.

Jobs wait in the front's scheduler; whenever a runner is ready and idle, the pool takes the
next job in service order that it may place and hands it (with compatible companions, when
micro-batching is on) to a runner: one that already holds the job's model, else the least
loaded. A live session's jobs stay on the runner that served its first frame.

A runner that dies ends its in-flight jobs with UNAVAILABLE (retry-safe) and is started
again, warmed up (its default model loaded, one generation run) before it takes work: at
once, then with backoff while it keeps failing (a start that fails, or a death soon after it
became ready). Jobs still queued never left the front, and jobs it had not started go back to
the front of the queue, so none is lost. A runner that sends nothing (not even its heartbeat,
which its own thread sends whether it works, loads or waits) for ``hang_timeout_s`` is killed;
a runner just started has at least ``FIRST_MESSAGE_S`` for its first message.

At the daemon's start a runner that dies is restarted the same way; the first start fails
(the daemon exits) only when every runner failed to load or warm up the default model with an
error of its own (NOT_FOUND, INVALID_ARGUMENT, ...), not a death: such a model fails on every
runner. It succeeds as soon as one runner is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from ..errors import Cancelled, PixelKilnError, Unavailable
from ..runners import port
from ..types import EncodedImage, Failed, Preview, Progress, Timings
from .jobs import Job
from .runner_client import DEAD, READY, STARTING, STOPPED, RunnerClient
from .scheduler import Scheduler

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 10.0
# A runner that dies within this many seconds of becoming ready goes on with its backoff; one
# that served longer is started again at once.
STABLE_S = 60.0
# How long a just-started runner may stay silent before its first message (its first
# heartbeat comes once Python has started and imported the runner's modules); after that,
# ``hang_timeout_s`` applies in every state.
FIRST_MESSAGE_S = 120.0
# How long the pool waits for a runner it killed to be gone before it starts another.
KILL_WAIT_S = 10.0


def backoff_s(failures: int) -> float:
    """The wait before the next start after ``failures`` failures in a row: none after a
    death, then 0.5 s, doubling, at most ``MAX_BACKOFF_S``."""
    return 0.0 if failures <= 0 else min(MAX_BACKOFF_S, 0.25 * 2**failures)


def batch_key(job: Job) -> tuple[object, ...] | None:
    """Jobs with equal keys can share one pipeline call; None: this one runs alone."""
    req = job.request
    if req.mode != "txt2img":
        return None
    return (job.spec.name, req.width, req.height, req.steps, req.guidance_scale, req.tiling)


def deliver(job: Job, message: port.Message, batch_started: float) -> None:
    """One of a runner's events about ``job`` (progress, preview, result, error) as the
    job's event; ``batch_started``: when its batch went to the runner (for queue_ms)."""
    ev = message.get("ev")
    if ev == "progress":
        job.emit(
            Progress(step=message["step"], total=message["total"],
                     elapsed_ms=message["elapsed_ms"])
        )  # fmt: skip
    elif ev == "preview":
        images = port.build(list[EncodedImage], message["images"])
        job.emit(Preview(step=message["step"], images=images))
    elif ev == "result":
        result = port.result_from_wire(message["result"])
        now = time.perf_counter()
        timings = Timings(
            queue_ms=(batch_started - job.submitted_at) * 1000.0,
            model_ms=float(message.get("model_ms", 0.0)),
            encode_ms=float(message.get("encode_ms", 0.0)),
            total_ms=(now - job.submitted_at) * 1000.0,
        )
        # The front's advice first, then the runner's own (e.g. a live option not applied).
        warnings = job.warnings + result.warnings
        job.finish(replace(result, timings=timings, warnings=warnings))
    elif ev == "error":
        job.finish(Failed(port.error_from_wire(message.get("error") or {})))


class RunnerPool:
    def __init__(
        self,
        runners: list[RunnerClient],
        scheduler: Scheduler,
        warm_up: Callable[[RunnerClient], Awaitable[None]] | None,
        *,
        max_batch: int = 1,
        batch_wait_s: float = 0.0,
        hang_timeout_s: float = 60.0,
        on_health: Callable[[bool], None] | None = None,
    ) -> None:
        self.runners = runners
        for runner in runners:
            runner.on_message = self._message
            runner.on_exit = self._exited
        self.scheduler = scheduler
        # No runner is ready before the first has warmed up: a job that comes meanwhile is
        # told it waits (Queued), instead of seconds of silence after Accepted.
        scheduler.busy = True
        self._warm_up = warm_up
        self.max_batch = max(1, max_batch)
        self.batch_wait_s = batch_wait_s
        self.hang_timeout_s = hang_timeout_s
        self.on_health = on_health
        self._wake = asyncio.Event()
        self._batch_over = asyncio.Event()  # a runner finished a batch or ended
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pins: dict[str, str] = {}
        self._closing = False
        self._first: asyncio.Future[None] | None = None
        self._serving = False
        self._starting: set[str] = set()
        self._kill_reasons: dict[str, str] = {}
        # Runners the pool killed because their start failed (their exit is no crash): why.
        self._start_failed: dict[str, str] = {}
        # Set when a runner's process has ended (its exit was handled).
        self._gone = {runner.name: asyncio.Event() for runner in runners}
        # When each runner last became ready, after how many failures in a row.
        self._ready_since: dict[str, tuple[float, int]] = {}
        # The first start: the runners whose default model failed to load or warm up.
        self._load_errors: dict[str, PixelKilnError] = {}
        # Why no runner can serve, once a start failed while none served (the queue would wait
        # for a runner that may never come): new requests are refused with it meanwhile.
        self.down_reason: str | None = None

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._first = asyncio.get_running_loop().create_future()
        for runner in self.runners:
            self._spawn(self._bring_up(runner, failures=0))
        self._spawn(self._dispatch_loop())
        self._spawn(self._watchdog())

    async def wait_ready(self) -> None:
        """Until one runner serves; raises a load error of the default model once every
        runner has had one (a runner that dies is restarted, not reported)."""
        assert self._first is not None, "start() first"
        await asyncio.shield(self._first)

    async def _bring_up(self, runner: RunnerClient, failures: int) -> None:
        if runner.name in self._starting:
            return
        self._starting.add(runner.name)
        try:
            await self._bring_up_loop(runner, failures)
        finally:
            self._starting.discard(runner.name)

    async def _bring_up_loop(self, runner: RunnerClient, failures: int) -> None:
        """Start ``runner`` and warm it up until it is ready (or the pool closes), after
        ``failures`` failures in a row (its backoff goes on from there)."""
        while not self._closing:
            if failures:
                delay = backoff_s(failures)
                log.warning(
                    "runner %s: next start in %.1f s (failure %d in a row)",
                    runner.name, delay, failures,
                )  # fmt: skip
                await asyncio.sleep(delay)
                if self._closing:
                    return
            self._kill_reasons.pop(runner.name, None)
            self._start_failed.pop(runner.name, None)
            self._gone[runner.name].clear()
            started = False
            try:
                runner.start()
                started = True
                if self._warm_up is not None:
                    await self._warm_up(runner)
            except Exception as caught:  # noqa: BLE001 - any start-up failure is retried
                failures += 1
                if runner.state != STARTING:  # it died (``_exited`` said why): retried
                    self._start_failed_with_none_serving(runner, runner.last_error or "it died")
                    continue
                if isinstance(caught, PixelKilnError):
                    exc = caught
                else:
                    log.exception("runner %s could not start", runner.name)
                    exc = Unavailable(f"model runner {runner.name} could not start: {caught}")
                await self._stop_failed_start(runner, exc, started)
                if self._first_start_failed(runner, exc):
                    return
                self._start_failed_with_none_serving(runner, f"{exc.code.value}: {exc.message}")
                continue
            if runner.state != STARTING:  # died as its warm-up ended
                failures += 1
                continue
            runner.state = READY
            self.down_reason = None
            self._ready_since[runner.name] = (time.monotonic(), failures)
            self._load_errors.pop(runner.name, None)
            log.info("runner %s ready on %s (pid %s)", runner.name, runner.device, runner.pid)
            self._health_changed()
            if self._first is not None and not self._first.done():
                self._first.set_result(None)
            self._wake.set()
            return

    async def _stop_failed_start(
        self, runner: RunnerClient, exc: PixelKilnError, started: bool
    ) -> None:
        """The runner could not start, or lives but could not load or warm up its default
        model: the pool kills it (its exit is no crash) and, when it had ``started``, waits
        for it to be gone before another is started."""
        why = f"{exc.code.value}: {exc.message}"
        runner.last_error = f"its start failed: {why}"
        log.error("runner %s (%s) failed to start: %s", runner.name, runner.device, why)
        self._start_failed[runner.name] = why
        with contextlib.suppress(Exception):
            runner.kill()
        if started:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._gone[runner.name].wait(), KILL_WAIT_S)

    def _start_failed_with_none_serving(self, runner: RunnerClient, why: str) -> None:
        """A start failed and no runner serves: the requests waiting for one fail now, naming
        the cause, and new ones are refused until a runner is ready (they waited for as long
        as the runners kept failing: forever, for a model folder that was removed)."""
        if self.serving or self._closing:
            return
        self.down_reason = (
            f"no model runner can serve: {runner.name}'s start failed ({why}); it is started "
            "again with backoff: retry later"
        )
        waiting = self.scheduler.take_compatible(lambda job: True, self.scheduler.capacity)
        for job in waiting:
            job.finish(Failed(Unavailable(self.down_reason)))
        if waiting:
            log.warning("%d queued requests failed: %s", len(waiting), self.down_reason)

    def _first_start_failed(self, runner: RunnerClient, exc: PixelKilnError) -> bool:
        """During the first start: True (the start fails, the runners stop) once every runner
        has failed to load or warm up the default model, the sign of a model that cannot be
        served (it fails alike on every runner); until then the others may still come up."""
        if self._first is None or self._first.done():
            return False
        self._load_errors[runner.name] = exc
        if len(self._load_errors) < len(self.runners):
            return False
        self._closing = True
        for other in self.runners:
            other.state = STOPPED
            with contextlib.suppress(Exception):
                other.kill()
        self._first.set_exception(exc)
        return True

    async def stop(self, timeout: float) -> None:
        """Cancel what runs, wait up to ``timeout`` for it to end, stop every runner."""
        self._closing = True
        for runner in self.runners:
            for job in list(runner.inflight.values()):
                job.cancel("the daemon is shutting down")
                runner.cancel(job.id, "the daemon is shutting down")
        deadline = time.monotonic() + timeout
        while any(r.busy for r in self.runners) and (left := deadline - time.monotonic()) > 0:
            self._batch_over.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._batch_over.wait(), left)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(r.stop(timeout) for r in self.runners), return_exceptions=True)
        for runner in self.runners:
            self._fail_inflight(runner, Unavailable("the daemon is shutting down"))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def serving(self) -> bool:
        return any(r.state == READY for r in self.runners)

    def _health_changed(self) -> None:
        serving = self.serving
        if serving != self._serving:
            self._serving = serving
            if self.on_health is not None:
                self.on_health(serving)

    # -- dispatch ------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while await self._place_one():
                pass

    def _free(self) -> list[RunnerClient]:
        return [r for r in self.runners if r.state == READY and not r.busy]

    def _allowed(self, job: Job, runner: RunnerClient) -> bool:
        pin = self._pins.get(job.affinity) if job.affinity else None
        return pin is None or pin == runner.name or self._by_name(pin).state == DEAD

    def _by_name(self, name: str) -> RunnerClient:
        return next(r for r in self.runners if r.name == name)

    async def _place_one(self) -> bool:
        free = self._free()
        self.scheduler.busy = not free
        if not free:
            return False
        # A job whose model a busy runner holds waits for it (unless more of them wait than
        # the holders can take): placing it on a free runner loaded a second copy whenever
        # the holder had not yet said "done" for its last batch.
        taken = self.scheduler.take_compatible(lambda j: bool(self._candidates(j, free)), 1)
        if not taken:
            return False
        job = taken[0]
        runner = self._choose(job, self._candidates(job, free))
        if job.affinity:
            self._pins[job.affinity] = runner.name
        if job.cancelled:
            job.finish(Failed(Cancelled(job.cancel_reason or "cancelled")))
            return True
        jobs = [job, *self._companions(job)]
        if self.batch_wait_s > 0 and len(jobs) < self.max_batch and batch_key(job) is not None:
            runner.inflight.update({j.id: j for j in jobs})  # reserve the runner meanwhile
            await asyncio.sleep(self.batch_wait_s)
            jobs += self._companions(job, self.max_batch - len(jobs))
            runner.inflight.clear()
            if runner.state != READY:
                for j in jobs:
                    j.finish(Failed(Unavailable(f"model runner {runner.name} stopped")))
                return True
        runner.run(jobs)
        self.scheduler.busy = not self._free()
        return True

    def _candidates(self, job: Job, free: list[RunnerClient]) -> list[RunnerClient]:
        """Free runners that may take ``job``: its live session's runner; else the runners
        that hold its model (a load costs seconds on a GPU), unless more of its jobs wait
        than the holders can take (then another runner loads a copy); else any."""
        allowed = [r for r in free if self._allowed(job, r)]
        name = job.spec.name
        holders = [r for r in self.runners if r.state == READY and r.loaded(name)]
        if holders and not job.affinity:
            waiting = self.scheduler.count(lambda j: j.spec.name == name)
            if waiting <= len(holders):
                return [r for r in allowed if r in holders]
        return allowed

    def _choose(self, job: Job, free: list[RunnerClient]) -> RunnerClient:
        holders = [r for r in free if r.loaded(job.spec.name)]
        pool = holders or free
        return min(pool, key=lambda r: (sum(m.memory_bytes for m in r.models), len(r.models)))

    def _companions(self, job: Job, room: int | None = None) -> list[Job]:
        key = batch_key(job)
        room = self.max_batch - 1 if room is None else room
        if key is None or room <= 0:
            return []
        return self.scheduler.take_compatible(lambda j: batch_key(j) == key, room)

    def release_pin(self, affinity: str) -> None:
        self._pins.pop(affinity, None)

    def runner_of(self, job: Job) -> RunnerClient | None:
        return next((r for r in self.runners if job.id in r.inflight), None)

    def place_for_load(self, name: str) -> RunnerClient:
        ready = [r for r in self.runners if r.state == READY]
        if not ready:
            raise Unavailable("no model runner is ready; retry shortly")
        holders = [r for r in ready if r.loaded(name)]
        return (holders or sorted(ready, key=lambda r: (r.busy, len(r.models))))[0]

    # -- what runners report -------------------------------------------------------------

    def _message(self, runner: RunnerClient, message: port.Message) -> None:
        job = runner.inflight.get(str(message.get("job")))
        if job is not None:
            job.heard = True
            if message.get("ev") in ("result", "error"):
                del runner.inflight[job.id]
            deliver(job, message, runner.batch_started)
        if message.get("done"):  # the batch is over (on its last job's event, or alone)
            runner.batch_open = False
            self._batch_over.set()
            self._fail_inflight(runner, Unavailable(f"runner {runner.name} dropped the request"))
            self._wake.set()

    def _fail_inflight(self, runner: RunnerClient, error: PixelKilnError) -> None:
        jobs, runner.inflight = list(runner.inflight.values()), {}
        for job in jobs:
            job.finish(Failed(error))

    def _requeue_unstarted(self, runner: RunnerClient) -> None:
        """Jobs the runner never reported on were probably never started (it died before
        reading them): they go back to the front of the queue (full or not), once. A job
        that a runner died on twice may be what kills runners; it fails like the others."""
        for job in list(runner.inflight.values()):
            if job.heard or job.dispatches > 1 or job.cancelled:
                continue
            try:
                self.scheduler.put_back(job)
            except PixelKilnError:
                continue
            del runner.inflight[job.id]
            log.info("request %s goes back to the queue (runner %s died)", job.id, runner.name)

    def _exited(self, runner: RunnerClient, cause: str) -> None:
        self._batch_over.set()
        self._gone[runner.name].set()
        if self._closing or runner.state == STOPPED:
            self._fail_inflight(runner, Unavailable("the daemon is shutting down"))
            return
        why = self._start_failed.pop(runner.name, None)
        if why is not None:  # the pool's own kill: last_error keeps the start's error
            log.info(
                "runner %s (%s) stopped: the pool killed it because its start failed (%s)",
                runner.name, runner.device, why,
            )  # fmt: skip
            return
        cause = self._kill_reasons.pop(runner.name, cause)
        runner.last_error = cause
        log.error("runner %s (%s) stopped: %s", runner.name, runner.device, cause)
        if runner.name not in self._starting:  # a starting runner's only job is its warm-up
            self._requeue_unstarted(runner)
        self._fail_inflight(
            runner,
            Unavailable(
                f"model runner {runner.name} ({runner.device}) stopped: {cause}; the request "
                "was not completed and retrying it is safe"
            ),
        )
        self._health_changed()
        if runner.name not in self._starting:  # else its start-up loop tries again
            self._spawn(self._bring_up(runner, self._failures_before(runner)))

    def _failures_before(self, runner: RunnerClient) -> int:
        """Failures in a row before the restart of a runner that died after it was ready: a
        restarted runner that died within ``STABLE_S`` of becoming ready goes on with its
        backoff; one that served longer (or its first process) starts afresh."""
        ready_at, failures = self._ready_since.pop(runner.name, (float("-inf"), 0))
        if runner.restarts and time.monotonic() - ready_at < STABLE_S:
            return failures + 1
        return 0

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.hang_timeout_s / 4))
            now = time.monotonic()
            for runner in self.runners:
                # Heartbeats come from their own thread whether the runner works, loads a
                # model or waits, so silence means a frozen process. Before its first message
                # a runner gets longer: spawning and imports take seconds on a loaded machine.
                if runner.state not in (STARTING, READY):
                    continue
                limit = self.hang_timeout_s
                if not runner.has_spoken:
                    limit = max(limit, FIRST_MESSAGE_S)
                silent = now - runner.last_seen
                if silent > limit:
                    log.error("runner %s sent nothing for %.0f s: killing it", runner.name, silent)
                    self._kill_reasons[runner.name] = (
                        f"it stopped answering (nothing heard for {silent:.1f} s, "
                        f"the limit is {limit:g} s)"
                    )
                    with contextlib.suppress(Exception):
                        runner.kill()
