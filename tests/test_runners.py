"""Runners in child processes: placement, live affinity, crash isolation, restart, the hang
watchdog and health, on the fake model (no torch: a runner starts in well under a second).

Faults are asked for through the runner port (``fault`` messages, accepted only with
``runner_faults=True``); kills and stops are real signals to the child process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import replace

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pixelkiln import Accepted, AsyncClient, PixelKilnError, Progress, Queued
from pixelkiln_server.app import Daemon
from pixelkiln_server.backends.fake import FAKE_SPEC, fake_image
from pixelkiln_server.engine.runner_client import READY, RunnerClient

from .conftest import decode, make_config, running_daemon

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")


def fake_config(**overrides: object) -> dict[str, object]:
    """A daemon on the fake model (and "fake-b") in child processes that take fault orders."""
    values: dict[str, object] = {
        "default_model": "fake",
        "runner": "process",
        "runner_faults": True,
        "ws_port": None,
    }
    values.update(overrides)
    return values


def fake_daemon(**overrides: object) -> contextlib.AbstractAsyncContextManager[Daemon]:
    specs = (FAKE_SPEC, replace(FAKE_SPEC, name="fake-b"))
    return running_daemon(register=specs, **fake_config(**overrides))


async def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def runner(d: Daemon, index: int = 0) -> RunnerClient:
    return d.engine.runners[index]  # type: ignore[return-value]


async def test_generates_through_a_child_process() -> None:
    async with fake_daemon() as d:
        pid = runner(d).pid
        assert pid is not None and pid != os.getpid()
        async with AsyncClient(d.address, timeout=30) as client:
            result = await client.generate("anything", seed=11, width=128, height=64)
        expected = (fake_image(11, 128, 64) * 255.0 + 0.5).astype(np.uint8)
        assert np.abs(decode(result.image.data).astype(int) - expected).max() <= 1
        assert result.recipe["request"]["seed"] == 11


async def test_a_batch_ends_with_its_last_result_and_the_runner_is_free_as_it_arrives() -> None:
    async with fake_daemon() as d:
        r = runner(d)
        seen: list[dict[str, object]] = []
        free_on_result: list[bool] = []
        deliver = r.on_message

        def spy(rc: RunnerClient, message: dict[str, object]) -> None:
            seen.append(dict(message))
            deliver(rc, message)
            if message.get("ev") == "result":
                free_on_result.append(not rc.busy)

        r.on_message = spy  # type: ignore[assignment]
        async with AsyncClient(d.address, timeout=30) as client:
            for seed in range(3):
                events = [e async for e in client.stream("anything", seed=seed)]
                assert not [e for e in events if isinstance(e, Queued)]
        # One message per batch end: the result carries done and the runner's state.
        ends = [m for m in seen if m.get("ev") == "result"]
        assert len(ends) == 3 and all(m.get("done") is True for m in ends)
        assert all([s["name"] for s in m["models"]] == ["fake"] for m in ends)  # type: ignore[index,union-attr]
        assert not [m for m in seen if m.get("ev") in ("done", "state")]
        assert free_on_result == [True, True, True]
        # On POSIX the event loop reads the runner's pipe itself, not a reader thread.
        assert (r._reader is not None) == (os.name == "posix")


async def test_two_runners_work_at_once_and_a_held_model_goes_to_its_holder() -> None:
    async with fake_daemon(devices="cpu,cpu") as d:
        assert [r.name for r in d.engine.runners] == ["cpu#0", "cpu#1"]
        async with AsyncClient(d.address, timeout=30) as client:
            slow = [
                asyncio.ensure_future(client.generate("step_ms=200", seed=i, steps=3))
                for i in range(2)
            ]
            await wait_for(lambda: all(r.busy for r in d.engine.runners))
            await asyncio.gather(*slow)
            # fake-b is loaded on exactly one runner; its requests go there.
            await client.load("fake-b")
            holders = [r for r in d.engine.runners if r.loaded("fake-b")]
            assert len(holders) == 1
            before = holders[0].jobs_run
            for seed in range(3):
                await client.generate("x", model="fake-b", seed=seed)
            assert holders[0].jobs_run == before + 3
            assert sum(1 for r in d.engine.runners if r.loaded("fake-b")) == 1


async def test_a_live_session_stays_on_one_runner() -> None:
    async with fake_daemon(devices="cpu,cpu") as d:
        await wait_for(lambda: all(r.state == READY for r in d.engine.runners))
        before = [r.jobs_run for r in d.engine.runners]
        async with (
            AsyncClient(d.address, timeout=30) as client,
            client.live(prompt="live", strength=1.0, seed=1) as session,
        ):
            frames = session.__aiter__()
            for i in range(6):
                await session.send(prompt=f"live {i}")
                frame = await frames.__anext__()
                assert frame.image is not None
        ran = [r.jobs_run - b for r, b in zip(d.engine.runners, before, strict=True)]
        assert sorted(ran) == [0, 6]


@pytest.mark.parametrize("action", ["exit", "segfault"])
@pytest.mark.parametrize("point", ["step", "decode", "encode"])
async def test_a_runner_dying_mid_job_fails_that_job_unavailable_and_is_replaced(
    point: str, action: str
) -> None:
    async with fake_daemon() as d:
        first_pid = runner(d).pid
        runner(d).send({"op": "fault", "point": point, "action": action})
        async with AsyncClient(d.address, timeout=30) as client:
            with pytest.raises(PixelKilnError) as info:
                await client.generate("doomed", seed=1, steps=3)
            assert info.value.code is grpc.StatusCode.UNAVAILABLE
            assert "cpu#0" in info.value.message and "retry" in info.value.message
            cause = "SIGSEGV" if action == "segfault" else "status 3"
            assert cause in info.value.message
            # The next request waits for the restarted, warmed-up runner and is served.
            result = await client.generate("next", seed=2)
            assert result.image.data
        assert runner(d).pid != first_pid and runner(d).restarts == 1


async def test_a_runner_that_sends_an_unreadable_message_is_killed_and_replaced() -> None:
    async with fake_daemon() as d:
        first_pid = runner(d).pid
        runner(d).send({"op": "fault", "point": "step", "action": "garble"})
        async with AsyncClient(d.address, timeout=30) as client:
            with pytest.raises(PixelKilnError) as info:
                await client.generate("doomed", seed=1, steps=3)
            assert info.value.code is grpc.StatusCode.UNAVAILABLE
            assert "SIGKILL" in info.value.message
            assert (await client.generate("next", seed=2)).image.data
        assert runner(d).pid != first_pid and runner(d).restarts == 1


async def test_a_runner_dying_while_loading_answers_the_load_unavailable() -> None:
    async with fake_daemon() as d:
        runner(d).send({"op": "fault", "point": "load", "action": "exit"})
        async with AsyncClient(d.address, timeout=30) as client:
            with pytest.raises(PixelKilnError) as info:
                await client.load("fake-b")
            assert info.value.code is grpc.StatusCode.UNAVAILABLE
            await wait_for(lambda: runner(d).state == READY)
            assert (await client.load("fake-b")).loaded


async def test_killed_idle_runner_is_restarted_and_queued_jobs_are_not_lost() -> None:
    async with fake_daemon() as d:
        async with AsyncClient(d.address, timeout=30) as client:
            running = asyncio.ensure_future(client.generate("step_ms=500", seed=1, steps=40))
            await wait_for(lambda: any(j.heard for j in runner(d).inflight.values()))
            queued = [asyncio.ensure_future(client.generate("q", seed=s)) for s in range(3)]
            await wait_for(lambda: d.engine.scheduler.depth == 3)
            os.kill(runner(d).pid or 0, signal.SIGKILL)
            with pytest.raises(PixelKilnError) as info:
                await running
            assert info.value.code is grpc.StatusCode.UNAVAILABLE
            assert "SIGKILL" in info.value.message
            results = await asyncio.gather(*queued)
            assert [r.recipe["request"]["seed"] for r in results] == [0, 1, 2]
            # Killed while idle: the next request is served too.
            await wait_for(lambda: runner(d).state == READY and not runner(d).busy)
            os.kill(runner(d).pid or 0, signal.SIGKILL)
            assert (await client.generate("after", seed=5)).image.data
            status = await client.status()
        (shown,) = status.runners
        assert (shown.name, shown.device, shown.state) == ("cpu#0", "cpu", "ready")
        assert shown.restarts == 2 and "SIGKILL" in shown.last_error
        assert shown.pid == runner(d).pid and shown.pid != os.getpid()
        assert list(shown.loaded_models) == ["fake"] and shown.jobs_run >= 5


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
async def test_a_runner_that_stops_answering_is_killed_and_replaced() -> None:
    async with (
        fake_daemon(runner_hang_timeout_s=1.0) as d,
        AsyncClient(d.address, timeout=30) as client,
    ):
        with pytest.raises(PixelKilnError) as info:
            async for event in client.stream("step_ms=500", seed=1, steps=6):
                if isinstance(event, Progress) and event.step == 1:
                    os.kill(runner(d).pid or 0, signal.SIGSTOP)  # frozen mid-job
        assert info.value.code is grpc.StatusCode.UNAVAILABLE
        assert "stopped answering" in info.value.message
        assert (await client.generate("next", seed=2)).image.data


async def test_health_is_not_serving_while_no_runner_serves() -> None:
    async with fake_daemon() as d:
        seen: list[int] = []
        async with grpc.aio.insecure_channel(d.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)

            async def check() -> int:
                resp = await stub.Check(health_pb2.HealthCheckRequest(service=""))
                seen.append(resp.status)
                return int(resp.status)

            assert await check() == health_pb2.HealthCheckResponse.SERVING
            os.kill(runner(d).pid or 0, signal.SIGKILL)
            await wait_for(lambda: runner(d).state != READY)
            await asyncio.sleep(0.05)
            assert await check() == health_pb2.HealthCheckResponse.NOT_SERVING
            await wait_for(lambda: runner(d).state == READY)
            await asyncio.sleep(0.05)
            assert await check() == health_pb2.HealthCheckResponse.SERVING


async def test_cancel_reaches_a_job_in_a_child_process() -> None:
    async with fake_daemon() as d, AsyncClient(d.address, timeout=30) as client:
        steps = 0
        request_id = ""
        with pytest.raises(PixelKilnError) as info:
            async for event in client.stream("step_ms=100", seed=1, steps=50):
                if isinstance(event, Accepted):
                    request_id = event.request_id
                if isinstance(event, Progress):
                    steps += 1
                    if steps == 2:
                        assert await client.cancel(request_id)
        assert info.value.code is grpc.StatusCode.CANCELLED
        assert steps < 10
        await wait_for(lambda: not runner(d).busy, 5)


async def test_a_request_during_warm_up_is_told_it_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Accepted, then seconds of silence while the runner loaded and warmed up its model: the
    job now gets a Queued event at once (the CLI prints 'waiting for the model runner')."""
    import threading

    from pixelkiln_server.backends import fake

    loading = threading.Event()
    original = fake.FakeBackend.load

    def slow_load(self: object, spec: object, options: object) -> object:
        loading.wait(30)
        return original(self, spec, options)  # type: ignore[arg-type]

    monkeypatch.setattr(fake.FakeBackend, "load", slow_load)
    d = Daemon(make_config(default_model="fake"))
    d.engine.registry.register(FAKE_SPEC)
    await d.start()
    try:
        async with AsyncClient(d.address, timeout=30) as client:
            events = client.stream("step_ms=0", steps=1)
            first = await anext(events)
            assert isinstance(first, Accepted)
            second = await asyncio.wait_for(anext(events), 10)
            assert isinstance(second, Queued) and second.position == 0
            loading.set()
            async for _ in events:
                pass
        await d.wait_ready()
    finally:
        loading.set()
        await d.stop(0)
