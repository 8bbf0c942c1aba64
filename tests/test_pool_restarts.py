"""The runner pool's restarts: a runner that dies while the daemon first warms up is restarted
(the daemon exits only when no runner can load its default model), every restart is counted,
a runner that keeps dying soon after it is ready backs off, a failed restart keeps its own
error, jobs it never started go back to the front of a full queue, and the hang watchdog
measures silence in every state.

Runners are child processes on the fake model (no torch); kills and stops are real signals.
A test reaches a runner's start through the pool's warm-up hook (``pool._warm_up``), called
right after each start of a runner process, before its default model is loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from pixelkiln import AsyncClient
from pixelkiln import PixelKilnError as ClientError
from pixelkiln_server.app import Daemon
from pixelkiln_server.backends.fake import FAKE_SPEC
from pixelkiln_server.engine import pool as pool_module
from pixelkiln_server.engine.jobs import Job
from pixelkiln_server.engine.pool import RunnerPool
from pixelkiln_server.engine.runner_client import READY, STOPPED, RunnerClient
from pixelkiln_server.engine.scheduler import Scheduler
from pixelkiln_server.errors import NotFound, PixelKilnError
from pixelkiln_server.types import GenerationRequest, Priority

from .conftest import make_config
from .test_runners import fake_config, runner, wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")

POOL_LOG = "pixelkiln_server.engine.pool"
WarmUp = Callable[[RunnerClient], Awaitable[None]]


@contextlib.asynccontextmanager
async def started_daemon(
    hook: Callable[[RunnerClient, int, WarmUp], Awaitable[None]] | None = None,
    **overrides: object,
) -> AsyncIterator[Daemon]:
    """A started daemon (not waited for) on the fake model; ``hook(runner, n, warm_up)`` runs
    in place of the pool's warm-up of a runner's ``n``-th process (1 for its first)."""
    d = Daemon(make_config(**fake_config(**overrides)))
    for spec in (FAKE_SPEC, replace(FAKE_SPEC, name="fake-b")):
        d.engine.registry.register(spec)
    if hook is not None:
        pool = d.engine.pool
        assert isinstance(pool, RunnerPool)
        original = pool._warm_up
        assert original is not None
        starts: Counter[str] = Counter()

        async def hooked(runner: RunnerClient) -> None:
            starts[runner.name] += 1
            await hook(runner, starts[runner.name], original)

        pool._warm_up = hooked
    await d.start()
    try:
        yield d
    finally:
        await d.stop(0)


async def ready(d: Daemon, timeout: float = 60.0) -> None:
    """The first start succeeds (well before a hung runner's 120 s would have passed)."""
    await asyncio.wait_for(d.wait_ready(), timeout)


def kill(r: RunnerClient, sig: str = "SIGKILL") -> None:
    assert r.pid is not None
    os.kill(r.pid, getattr(signal, sig))


def next_start_delays(caplog: pytest.LogCaptureFixture, name: str) -> list[float]:
    """The waits the pool logged before starting ``name`` again (its backoff)."""
    prefix = f"runner {name}: next start in "
    return [
        float(r.getMessage()[len(prefix) :].split(" ")[0])
        for r in caplog.records
        if r.name == POOL_LOG and r.getMessage().startswith(prefix)
    ]


# -- 1. a runner dying in the first warm-up ------------------------------------------------


def kill_during_load(r: RunnerClient) -> None:
    kill(r)


def exit_during_load(r: RunnerClient) -> None:
    r.send({"op": "fault", "point": "load", "action": "exit"})


def die_in_warm_up_generation(r: RunnerClient) -> None:
    """Killed as its warm-up generation is handed to it, before it can say "started"."""
    send_run = r.run

    def run_and_die(jobs: list[Job]) -> None:
        del r.run  # the instance's patch: later starts run normally
        send_run(jobs)
        kill(r)

    r.run = run_and_die  # type: ignore[method-assign]


@pytest.mark.parametrize("devices", ["cpu", "cpu,cpu"])
@pytest.mark.parametrize(
    "death",
    [kill_during_load, exit_during_load, die_in_warm_up_generation],
    ids=lambda f: f.__name__,
)
async def test_a_runner_that_dies_in_the_first_warm_up_is_restarted_and_the_daemon_serves(
    devices: str, death: Callable[[RunnerClient], None]
) -> None:
    died = asyncio.Event()

    async def dies_once(r: RunnerClient, n: int, warm_up: WarmUp) -> None:
        if r.name == "cpu#0" and n == 1:
            death(r)
            try:
                await warm_up(r)
            finally:
                died.set()
        if r.name == "cpu#1" and n == 1:  # the other warms up once cpu#0's death is known
            await asyncio.wait_for(died.wait(), 60)
        await warm_up(r)

    async with started_daemon(dies_once, devices=devices) as d:
        await ready(d)
        await wait_for(lambda: all(r.state == READY for r in d.engine.runners), 60)
        first = runner(d)
        assert first.restarts == 1
        assert ("SIGKILL" in first.last_error) or ("status 3" in first.last_error)
        assert all(r.restarts == 0 for r in d.engine.runners[1:])
        assert d.engine.scheduler.depth == 0  # the warm-up job was not queued as a request
        async with AsyncClient(d.address, timeout=60) as client:
            assert (await client.generate("after", seed=3)).image.data


async def test_a_default_model_that_loads_nowhere_fails_the_first_start(tmp_path: Path) -> None:
    """The daemon exits (wait_ready raises, `pixelkiln serve` returns 1) with the load's own
    error once every runner has had it, instead of retrying for ever."""
    missing = tmp_path / "removed-model"
    async with started_daemon(devices="cpu,cpu", default_model=str(missing)) as d:
        with pytest.raises(PixelKilnError) as info:
            await ready(d)
        assert info.value.code.value == "NOT_FOUND"
        await wait_for(lambda: all(r.state == STOPPED for r in d.engine.runners))
        assert all("NOT_FOUND" in r.last_error for r in d.engine.runners)


async def test_a_runner_that_cannot_load_at_first_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One runner's load error (here the runner's own: an exception in its load) while the
    other comes up: the daemon serves, and the failed runner is retried with backoff."""

    async def fails_once(r: RunnerClient, n: int, warm_up: WarmUp) -> None:
        if r.name == "cpu#0" and n == 1:
            r.send({"op": "fault", "point": "load", "action": "raise"})
        await warm_up(r)

    caplog.set_level(logging.INFO, logger=POOL_LOG)
    async with started_daemon(fails_once, devices="cpu,cpu") as d:
        await ready(d)
        await wait_for(lambda: runner(d).state == READY, 60)
        assert runner(d).restarts == 1 and runner(d, 1).restarts == 0
        assert "INTERNAL" in runner(d).last_error and "(load)" in runner(d).last_error
        assert next_start_delays(caplog, "cpu#0") == [0.5]


# -- 2. every restart counted ------------------------------------------------------------


async def test_every_restart_is_counted_also_those_that_die_before_they_are_ready() -> None:
    """A crash loop: the runner dies, and each of its next two processes dies in its warm-up;
    the fourth comes up. Three processes were started in place of dead ones."""

    async def dies_in_restarts(r: RunnerClient, n: int, warm_up: WarmUp) -> None:
        if n in (2, 3):
            kill(r)
        await warm_up(r)

    async with started_daemon(dies_in_restarts) as d:
        await ready(d)
        r = runner(d)
        kill(r)
        await wait_for(lambda: r.restarts == 3 and r.state == READY, 60)
        async with AsyncClient(d.address, timeout=60) as client:
            (shown,) = (await client.status()).runners
        assert shown.restarts == 3 and "SIGKILL" in shown.last_error


# -- 3. backoff for a runner that dies soon after it is ready ------------------------------


async def test_a_runner_killed_each_time_it_is_ready_backs_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=POOL_LOG)
    async with started_daemon() as d:
        await ready(d)
        r = runner(d)
        for restarts in (1, 2, 3):
            kill(r)
            await wait_for(lambda: r.restarts == restarts and r.state == READY, 60)  # noqa: B023
        # The first restart is at once; each death soon after a restart waits longer.
        assert next_start_delays(caplog, "cpu#0") == [0.5, 1.0]


async def test_a_runner_that_served_a_while_is_restarted_at_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(pool_module, "STABLE_S", 0.5)
    caplog.set_level(logging.INFO, logger=POOL_LOG)
    async with started_daemon() as d:
        await ready(d)
        r = runner(d)
        for restarts in (1, 2, 3):
            await asyncio.sleep(1.0)  # longer than STABLE_S: it served "a while"
            kill(r)
            await wait_for(lambda: r.restarts == restarts and r.state == READY, 60)  # noqa: B023
        assert next_start_delays(caplog, "cpu#0") == []


# -- 4. a failed restart keeps its own error -----------------------------------------------


async def remove_folder(r: RunnerClient, n: int, warm_up: WarmUp) -> None:
    if n == 2:  # the first restart: as if the model's folder was removed meanwhile
        raise NotFound("model folder /models/gone was removed")
    await warm_up(r)


async def runner_load_raises(r: RunnerClient, n: int, warm_up: WarmUp) -> None:
    if n == 2:
        r.send({"op": "fault", "point": "load", "action": "raise"})
    await warm_up(r)


@pytest.mark.parametrize(
    ("hook", "cause"),
    [(remove_folder, "NOT_FOUND: model folder /models/gone"), (runner_load_raises, "INTERNAL")],
    ids=["front", "runner"],
)
async def test_a_restart_whose_load_fails_keeps_that_error_not_the_pools_kill(
    hook: Callable[[RunnerClient, int, WarmUp], Awaitable[None]],
    cause: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=POOL_LOG)
    async with started_daemon(hook) as d:
        await ready(d)
        r = runner(d)
        kill(r)
        await wait_for(lambda: "start failed" in r.last_error, 60)
        await wait_for(lambda: r.state == READY, 60)
        assert cause in r.last_error and "SIGKILL" not in r.last_error
        async with AsyncClient(d.address, timeout=60) as client:
            (shown,) = (await client.status()).runners
        assert cause in shown.last_error and shown.restarts == 2
        lines = [rec.getMessage() for rec in caplog.records if rec.name == POOL_LOG]
        (stopped,) = [m for m in lines if "the pool killed it because its start failed" in m]
        assert cause in stopped
        # One SIGKILL in the log: the test's own kill, not the pool's.
        assert sum("stopped: killed by signal SIGKILL" in m for m in lines) == 1


# -- 5. jobs a runner never started go back to the front -----------------------------------


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
@pytest.mark.parametrize("queue_size", [2, 8], ids=["full", "not-full"])
async def test_a_job_the_runner_never_started_goes_back_to_the_front(queue_size: int) -> None:
    async with started_daemon(queue_size=queue_size) as d:
        await ready(d)
        r = runner(d)
        await wait_for(lambda: r.state == READY and not r.busy)
        kill(r, "SIGSTOP")  # frozen: it takes the next job and never starts it
        done: list[int] = []
        async with AsyncClient(d.address, timeout=60) as client:

            async def generate(seed: int) -> None:
                await client.generate("x", seed=seed)
                done.append(seed)

            tasks = [asyncio.ensure_future(generate(0))]
            await wait_for(lambda: len(r.inflight) == 1 and d.engine.scheduler.depth == 0)
            tasks += [asyncio.ensure_future(generate(s)) for s in (1, 2)]
            await wait_for(lambda: d.engine.scheduler.depth == 2)
            kill(r)
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
        assert done == [0, 1, 2]


def test_put_back_is_at_the_front_of_its_class_even_when_full() -> None:
    queue = Scheduler(capacity=2)

    def job(client: str, priority: Priority = Priority.INTERACTIVE) -> Job:
        request = GenerationRequest(prompt="x", priority=priority)
        return Job(request, None, FAKE_SPEC, lambda e: None, client_id=client)  # type: ignore[arg-type]

    first, second, third = job("a"), job("b"), job("a")
    queue.put(first)
    queue.put(second)
    (taken,) = queue.take_compatible(lambda j: True, 1)
    assert taken is first
    queue.put(third)
    queue.put_back(first)  # over capacity: it was admitted once
    assert queue.depth == 3
    assert queue.take_compatible(lambda j: True, 3) == [first, second, third]
    live = job("c", Priority.LIVE)
    queue.put(live)
    queue.put(second)
    (taken,) = queue.take_compatible(lambda j: j is second, 1)
    queue.put_back(second)
    assert queue.take_compatible(lambda j: True, 2) == [live, second]  # its class comes first


# -- 6. the hang watchdog ------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
async def test_a_runner_frozen_while_warming_up_is_killed_after_the_hang_timeout() -> None:
    """Its heartbeat thread beats while it loads: once it has spoken, silence is a hang in
    any state, not only while it runs a job."""

    async def freezes(r: RunnerClient, n: int, warm_up: WarmUp) -> None:
        if n == 1:
            await wait_for(lambda: r.has_spoken, 60)
            kill(r, "SIGSTOP")
        await warm_up(r)

    async with started_daemon(freezes, runner_hang_timeout_s=2.0) as d:
        await ready(d)
        r = runner(d)
        assert "stopped answering" in r.last_error and "the limit is 2 s" in r.last_error
        assert r.restarts == 1


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
async def test_an_idle_frozen_runner_is_killed_after_the_hang_timeout() -> None:
    async with started_daemon(runner_hang_timeout_s=1.0) as d:
        await ready(d)
        r = runner(d)
        kill(r, "SIGSTOP")
        await wait_for(lambda: r.restarts == 1 and r.state == READY, 60)
        assert "stopped answering" in r.last_error and "the limit is 1 s" in r.last_error


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
async def test_a_runner_gets_longer_for_its_first_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Frozen at once after its start (before Python has even started): the first message's
    allowance (FIRST_MESSAGE_S, 120 s unless patched), not the hang timeout, applies."""
    monkeypatch.setattr(pool_module, "FIRST_MESSAGE_S", 4.0)

    async def freezes_at_once(r: RunnerClient, n: int, warm_up: WarmUp) -> None:
        if n == 1:
            assert not r.has_spoken
            kill(r, "SIGSTOP")
        await warm_up(r)

    async with started_daemon(freezes_at_once, runner_hang_timeout_s=1.0) as d:
        await ready(d)
        assert "the limit is 4 s" in runner(d).last_error


# -- requests wait for no runner that cannot start --------------------------------------------


async def remove_folder_for_good(r: RunnerClient, n: int, warm_up: WarmUp) -> None:
    if n >= 2:  # every restart: the model's folder is gone
        raise NotFound("model folder /models/gone was removed")
    await warm_up(r)


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
async def test_requests_waiting_for_a_runner_that_cannot_start_fail_with_its_cause() -> None:
    """A queued request waited for as long as the restarts failed (forever, for a removed
    model folder), and new ones were accepted into that queue; now both are answered with
    UNAVAILABLE naming the failed start, until a runner serves again."""
    async with started_daemon(remove_folder_for_good) as d:
        await ready(d)
        r = runner(d)
        await wait_for(lambda: r.state == READY and not r.busy)
        kill(r, "SIGSTOP")  # busy with nothing: the next request waits in the queue
        async with AsyncClient(d.address, timeout=60) as client:
            first = asyncio.ensure_future(client.generate("x", seed=1))
            await wait_for(lambda: bool(r.inflight))
            queued = asyncio.ensure_future(client.generate("x", seed=2))
            await wait_for(lambda: d.engine.scheduler.depth == 1)
            kill(r)
            with pytest.raises(ClientError) as waited:
                await asyncio.wait_for(queued, 60)
            assert waited.value.code is grpc.StatusCode.UNAVAILABLE
            assert "no model runner can serve" in waited.value.message
            assert "NOT_FOUND: model folder /models/gone" in waited.value.message
            with pytest.raises(ClientError) as refused:
                await client.generate("x", seed=3)
            assert "no model runner can serve" in refused.value.message
            with contextlib.suppress(ClientError):
                await first
