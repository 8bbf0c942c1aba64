"""The Ray runner's faults, as the process runner's (test_pool_restarts.py): a replica that
cannot start (its default model's folder removed) fails the waiting requests with UNAVAILABLE
naming the cause, and new ones are refused until a replica serves again; a replaced replica
counts as a restart (Status, ``pixelkiln_runner_restarts_total``) and says why; a job that a
dying replica never started goes back to the front of a full queue; a job waiting in Serve's
queue for a busy replica is no hang; shutdown ends a running job with UNAVAILABLE and stops it
on its replica.

One local cluster for the module (ray_cluster.py: a head and two one-CPU nodes); faults are
real (``ray.kill`` of a replica's actor, a model folder removed).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'pixelkiln[ray]'")

import ray  # noqa: E402
from ray import serve  # noqa: E402

from pixelkiln import AsyncClient, PixelKilnError  # noqa: E402
from pixelkiln_server.app import Daemon  # noqa: E402
from pixelkiln_server.config import RayOptions  # noqa: E402
from pixelkiln_server.engine.ray_pool import RayPool  # noqa: E402
from pixelkiln_server.engine.ray_replicas import ReplicaView  # noqa: E402
from pixelkiln_server.metrics import EngineCollector  # noqa: E402

from .ray_cluster import ChildCluster  # noqa: E402
from .test_ray_runner import cluster, ray_front, wait_for  # noqa: E402

__all__ = ["cluster"]  # the fixture (one cluster per module), imported for its use below

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="Ray's cluster_utils"),
    pytest.mark.timeout(300),
]

APP = "pixelkiln-faults-test"


@pytest_asyncio.fixture(scope="module")
async def front(cluster: ChildCluster) -> AsyncIterator[Daemon]:
    """Two replicas (one per node) of the fake model; a queue of one."""
    options = RayOptions(address=cluster.address, app=APP, replicas=2)
    async with ray_front(cluster, ray=options, queue_size=1) as d:
        await wait_for(lambda: len(d.engine.runners) == 2)
        yield d


def pool_of(d: Daemon) -> RayPool:
    assert isinstance(d.engine.pool, RayPool)
    return d.engine.pool


def kill(view: object) -> None:
    assert isinstance(view, ReplicaView)
    ray.kill(ray.get_actor(view.actor, namespace="serve"), no_restart=True)


def restarts_metric(d: Daemon) -> dict[str, float]:
    (family,) = [m for m in EngineCollector(d.engine).collect() if m.name.endswith("restarts")]
    return {s.labels["runner"]: s.value for s in family.samples if s.name.endswith("_total")}


async def settled(d: Daemon, replicas: int = 2) -> None:
    """Every replica listed and idle (a test before may have killed one)."""
    pool = pool_of(d)

    async def idle() -> bool:
        await pool._poll()
        runners = d.engine.runners
        return len(runners) == replicas and not any(r.busy or r.inflight for r in runners)

    deadline = time.monotonic() + 90
    while not await idle():
        assert time.monotonic() < deadline, "the replicas did not settle"
        await asyncio.sleep(0.2)


async def test_a_replaced_replica_counts_a_restart_and_says_why(front: Daemon) -> None:
    await settled(front)
    async with AsyncClient(front.address, timeout=60) as client:
        doomed = asyncio.ensure_future(client.generate("step_ms=300", seed=1, steps=40))
        await wait_for(
            lambda: any(j.heard for r in front.engine.runners for j in r.inflight.values())
        )
        (victim,) = [r for r in front.engine.runners if r.inflight]
        others = {r.name for r in front.engine.runners} - {victim.name}
        kill(victim)
        with pytest.raises(PixelKilnError) as info:
            await doomed
        assert info.value.code is grpc.StatusCode.UNAVAILABLE
        assert victim.name in info.value.message and "retrying it is safe" in info.value.message
        await wait_for(
            lambda: (
                len(front.engine.runners) == 2
                and victim.name not in {r.name for r in front.engine.runners}
            )
        )
        status = await client.status()
    (new,) = [r for r in status.runners if r.name not in others]
    assert new.restarts == 1
    assert victim.name in new.last_error and "Died" in new.last_error, new.last_error
    assert restarts_metric(front)[new.name] == 1
    assert all(restarts_metric(front)[name] == 0 for name in others)


async def test_a_job_a_dying_replica_never_started_goes_back_to_a_full_queue(
    front: Daemon,
) -> None:
    """A's replica dies while it loads A's model (before A starts): A goes back to the front
    of the queue, which C fills (not failed for the full queue), and runs."""
    await settled(front)
    pool = pool_of(front)
    async with AsyncClient(front.address, timeout=120) as client:
        order: list[str] = []

        async def generate(name: str, prompt: str, **options: Any) -> None:
            await client.generate(prompt, **{"seed": 1, "steps": 2, **options})
            order.append(name)

        a = asyncio.ensure_future(generate("A", "a", model="tiny-random"))
        await wait_for(lambda: any(s.replica is not None for s in pool._streams.values()))
        b = asyncio.ensure_future(generate("B", "step_ms=1000 b", steps=4))
        await wait_for(lambda: len(pool._streams) == 2)
        c = asyncio.ensure_future(generate("C", "c"))
        await wait_for(lambda: front.engine.scheduler.depth == 1)  # the queue is full
        (stream,) = [s for s in pool._streams.values() if s.job.request.model == "tiny-random"]
        assert stream.replica is not None and not stream.job.heard  # loading, not started
        kill(stream.replica)
        await asyncio.gather(a, b, c)
    assert sorted(order) == ["A", "B", "C"]  # A was not failed for the full queue


async def test_a_job_waiting_for_a_busy_replica_is_no_hang(
    cluster: ChildCluster, front: Daemon
) -> None:
    """A second front's job waits in Serve's queue while the first front's jobs hold both
    replicas for longer than the second's hang timeout: it is served after them."""
    await settled(front)
    options = RayOptions(address=cluster.address, app=APP, replicas=2)
    async with (
        ray_front(cluster, ray=options, runner_hang_timeout_s=1.0) as second,
        AsyncClient(front.address, timeout=60) as one,
        AsyncClient(second.address, timeout=60) as two,
    ):
        await wait_for(lambda: len(second.engine.runners) == 2)
        busy = [
            asyncio.ensure_future(one.generate("step_ms=500", seed=i, steps=8)) for i in range(2)
        ]
        await wait_for(lambda: sum(len(r.inflight) for r in front.engine.runners) == 2)
        started = time.monotonic()
        result = await two.generate("waited", seed=3)
        assert result.image.data and time.monotonic() - started > 2.0
        await asyncio.gather(*busy)


async def test_shutdown_ends_a_running_job_unavailable_and_stops_it_on_its_replica(
    cluster: ChildCluster, front: Daemon
) -> None:
    await settled(front)
    options = RayOptions(address=cluster.address, app=APP, replicas=2)
    async with ray_front(cluster, ray=options) as second:
        async with AsyncClient(second.address, timeout=60) as client:
            job = asyncio.ensure_future(client.generate("step_ms=1000", seed=1, steps=50))
            await wait_for(
                lambda: any(j.heard for r in second.engine.runners for j in r.inflight.values())
            )
            started = time.monotonic()
            await asyncio.wait_for(second.stop(0), 30)
            with pytest.raises(PixelKilnError) as info:
                await job
        assert time.monotonic() - started < 20
    assert info.value.code is grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in info.value.message
    await settled(front)  # the 50 s job stopped at its next step on its replica


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pixelkiln_server.backends.tiny_random import build_tiny_sd_pipeline

    folder = tmp_path_factory.mktemp("saved") / "tiny"
    pipeline: Any = build_tiny_sd_pipeline(seed=0)
    pipeline.save_pretrained(folder)
    return folder


async def test_a_replica_that_cannot_load_its_model_fails_the_waiting_requests(
    cluster: ChildCluster, saved: Path
) -> None:
    """The default model's folder is removed and the replica dies: its replacements fail to
    load it. A request waiting for one ends with UNAVAILABLE naming the load error (not after
    twice the hang timeout, naming silence), new ones are refused at once, health is
    NOT_SERVING; once the folder is back a replacement serves, counted as a restart."""
    folder = saved.parent / "default-model"
    shutil.copytree(saved, folder)
    app = "pixelkiln-faults-missing"
    options = RayOptions(address=cluster.address, app=app, replicas=1, cpus_per_replica=0)
    async with (
        ray_front(cluster, ray=options, default_model=str(folder)) as d,
        AsyncClient(d.address, timeout=120) as client,
    ):
        pool = pool_of(d)
        (victim,) = d.engine.runners
        shutil.rmtree(folder)
        kill(victim)
        started = time.monotonic()
        with pytest.raises(PixelKilnError) as info:
            await client.generate("waits", model="fake", seed=1)
        assert time.monotonic() - started < d.config.runner_hang_timeout_s
        assert info.value.code is grpc.StatusCode.UNAVAILABLE
        message = info.value.message
        assert f"no replica of the Ray application {app} can serve" in message, message
        assert "warm-up failed" in message and "retry later" in message, message
        assert await client.health() == "NOT_SERVING"
        with pytest.raises(PixelKilnError) as refused:
            await client.generate("refused", model="fake", seed=1)
        assert refused.value.code is grpc.StatusCode.UNAVAILABLE
        assert "can serve" in refused.value.message
        shutil.copytree(saved, folder)
        await wait_for(lambda: pool.serving, timeout=120)
        assert pool.down_reason is None
        assert (await client.generate("back", model="fake", seed=1)).image.data
        (new,) = (await client.status()).runners
        assert new.restarts >= 2  # its failed starts and itself
        assert victim.name in new.last_error or "failed to start" in new.last_error
        assert await client.health() == "SERVING"
    await asyncio.to_thread(serve.delete, app)
