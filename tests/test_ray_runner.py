"""The Ray runner (``--runner ray``): a local Ray cluster of three nodes on loopback (a head
and two one-CPU nodes, ``ray.cluster_utils.Cluster`` started by a process of its own:
ray_cluster.py) with a Serve application of two
replicas, one per node, serving the fake model (and tiny-random for one end-to-end check).

The daemons here are real fronts in this process, reached over gRPC; the replicas are Ray
worker processes. Faults are real: ``ray.kill`` of a replica's actor, removal of a node.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio

pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'pixelkiln[ray]'")

import ray  # noqa: E402
from ray import serve  # noqa: E402

from pixelkiln import AsyncClient, Client, PixelKilnError, Progress  # noqa: E402
from pixelkiln_server.app import Daemon  # noqa: E402
from pixelkiln_server.backends.fake import FAKE_SPEC, fake_image  # noqa: E402
from pixelkiln_server.config import RayOptions  # noqa: E402
from pixelkiln_server.engine.ray_deploy import private_head_auth  # noqa: E402

from .conftest import decode, png_bytes, running_daemon, start_served  # noqa: E402
from .ray_cluster import ChildCluster  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Ray's cluster_utils")

APP = "pixelkiln-runners-test"
SPECS = (FAKE_SPEC, replace(FAKE_SPEC, name="fake-b"))


@pytest.fixture(scope="module")
def cluster() -> Iterator[ChildCluster]:
    c = ChildCluster()
    try:
        ray.init(address=c.address, log_to_driver=False, configure_logging=False)
        yield c
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()
    finally:
        c.shutdown()


def ray_front(
    cluster: ChildCluster, **overrides: object
) -> contextlib.AbstractAsyncContextManager[Daemon]:
    values: dict[str, object] = {
        "default_model": "fake",
        "runner": "ray",
        "ray": RayOptions(address=cluster.address, app=APP, replicas=2),
        "ws_port": None,
    }
    values.update(overrides)
    return running_daemon(register=SPECS, **values)


@pytest_asyncio.fixture(scope="module")
async def front(cluster: ChildCluster) -> AsyncIterator[Daemon]:
    async with ray_front(cluster) as d:
        await wait_for(lambda: len(d.engine.runners) == 2)
        yield d


async def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def replica_running(d: Daemon) -> Any:
    """The replica running a job the front has heard start: a replica killed before its
    "started" reaches the front has its job placed again (by design, served elsewhere), so a
    test that expects UNAVAILABLE must wait for it (a CI flake on a loaded machine)."""
    return next((r for r in d.engine.runners if any(j.heard for j in r.inflight.values())), None)


def serve_config(*argv: str) -> Any:
    import argparse

    from pixelkiln_server.cli import add_serve_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)))


def test_serve_flags_make_the_ray_options() -> None:
    config = serve_config(
        "--runner", "ray", "--ray-address", "10.0.0.5:6379", "--ray-app", "studio",
        "--ray-min-replicas", "1", "--ray-max-replicas", "4", "--ray-gpus-per-replica", "0.5",
    )  # fmt: skip
    assert config.runner == "ray"
    assert config.ray == RayOptions(
        address="10.0.0.5:6379", app="studio", min_replicas=1, max_replicas=4,
        gpus_per_replica=0.5,
    )  # fmt: skip
    assert serve_config().runner == "process"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--ray-replicas", "0"], "--ray-replicas: must be >= 1; got 0"),
        (["--ray-gpus-per-replica", "-1"], "--ray-gpus-per-replica: must be >= 0"),
        (
            ["--ray-min-replicas", "3", "--ray-max-replicas", "2"],
            "--ray-min-replicas: must be <= --ray-max-replicas (2); got 3",
        ),
    ],
)
def test_bad_ray_flags_name_the_flag(argv: list[str], expected: str) -> None:
    with pytest.raises(SystemExit) as info:
        serve_config("--runner", "ray", *argv)
    assert expected in str(info.value)


def test_a_refused_token_says_how_to_connect() -> None:
    from pixelkiln_server.engine.ray_deploy import auth_hint

    try:
        try:
            raise ray.exceptions.AuthenticationError("InvalidAuthToken")
        except Exception as auth:
            raise ConnectionError("Failed to connect to Ray cluster") from auth
    except ConnectionError as exc:
        assert "RAY_AUTH_MODE=token" in auth_hint(exc)
        assert auth_hint(ConnectionError("refused")) == ""


def test_a_private_head_gets_a_token_of_its_own_unless_one_is_named() -> None:
    env: dict[str, str] = {}
    private_head_auth(env)
    first = env["RAY_AUTH_TOKEN"]
    assert env["RAY_AUTH_MODE"] == "token" and len(first) == 64
    private_head_auth(again := {})
    assert again["RAY_AUTH_TOKEN"] != first  # a fresh secret per daemon
    for named in ({"RAY_AUTH_TOKEN": "mine"}, {"RAY_AUTH_TOKEN_PATH": "/etc/ray/token"}):
        private_head_auth(env := dict(named))
        assert env == {**named, "RAY_AUTH_MODE": "token"}  # the user's token source is kept
    private_head_auth(env := {"RAY_AUTH_MODE": "disabled"})
    assert env == {"RAY_AUTH_MODE": "disabled"}


@pytest.mark.timeout(300)
def test_serve_with_a_private_ray_in_a_child_process(tmp_path: Path) -> None:
    """`pixelkiln serve --runner ray --ray-address local`: its own Ray, one replica; it stops
    on SIGTERM without Ray's stack dump. HOME is empty, as on a machine that never ran Ray
    (no ~/.ray/auth_token: the first CI run on a fresh machine failed there), and stays so."""
    home = {"HOME": str(tmp_path), "USERPROFILE": str(tmp_path)}
    proc, address = start_served("--runner", "ray", "--ray-address", "local", env=home)
    try:
        with Client(address, timeout=60) as client:
            assert client.generate("x", seed=3, model="tiny-random", steps=1).image.data
            (runner,) = client.status().runners
            assert runner.name.startswith("ray:") and "tiny-random" in runner.loaded_models
    finally:
        proc.terminate()
        out = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert proc.returncode == 0, out[-3000:]
    assert "SIGTERM received" not in out and "Traceback" not in out, out[-3000:]
    assert not (tmp_path / ".ray" / "auth_token").exists()  # the secret was never written


def test_a_private_head_ends_when_its_daemon_goes() -> None:
    """`--ray-address local`'s head is a process of its own that ends when the daemon's pipe
    to it closes (the daemon killed outright), taking Ray's processes with it."""
    from pixelkiln_server.engine import ray_head

    head = ray_head.start()
    try:
        host, port = head.address.rsplit(":", 1)
        socket.create_connection((host, int(port)), timeout=5).close()  # its GCS is up
        assert head.process.stdin is not None
        head.process.stdin.close()  # all that a SIGKILLed daemon leaves behind
        assert head.process.wait(120) is not None
    finally:
        head.stop()
        head.log.unlink(missing_ok=True)
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=5).close()


async def test_generates_through_a_replica(front: Daemon) -> None:
    async with AsyncClient(front.address, timeout=60) as client:
        result = await client.generate("anything", seed=11, width=128, height=64)
        status = await client.status()
    expected = (fake_image(11, 128, 64) * 255.0 + 0.5).astype(np.uint8)
    assert np.abs(decode(result.image.data).astype(int) - expected).max() <= 1
    assert result.recipe["request"]["seed"] == 11
    names = [r.name for r in status.runners]
    assert len(names) == 2 and all(n.startswith("ray:") for n in names)
    assert all(r.state == "ready" and "fake" in r.loaded_models for r in status.runners)
    assert {r.device for r in status.runners} == {"cpu"}  # "auto" as it turned out there


async def jobs_by_replica(d: Daemon) -> dict[str, int]:
    await d.engine.pool._poll()  # type: ignore[union-attr]
    return {r.name: r.jobs_run for r in d.engine.runners}


async def test_cancel_reaches_the_replica_at_the_next_step(front: Daemon) -> None:
    async with AsyncClient(front.address, timeout=60) as client:
        with pytest.raises(PixelKilnError) as info:
            async for event in client.stream("step_ms=2000", seed=1, steps=50):
                if isinstance(event, Progress) and event.step == 2:
                    assert await client.cancel(event.request_id)
        assert info.value.code is grpc.StatusCode.CANCELLED
        # The replica stopped at its next step: it is idle long before the 100 s job's end.
        await wait_for(lambda: not front.engine.running)
        await front.engine.pool._poll()  # type: ignore[union-attr]
        await wait_for(lambda: not any(r.busy for r in front.engine.runners), timeout=20)
        assert (await client.generate("next", seed=2)).image.data


async def test_models_list_load_unload_and_img2img_through_the_replicas(front: Daemon) -> None:
    """tiny-random (a real diffusers pipeline, torch in the replica) loaded on one replica,
    an img2img there, then unloaded from every replica."""
    sketch = png_bytes(np.full((64, 64, 3), 200, np.uint8))
    async with AsyncClient(front.address, timeout=120) as client:
        assert (await client.load("tiny-random")).loaded
        assert "tiny-random" in {m.name for m in await client.models() if m.loaded}
        status = await client.status()
        holders = [r.name for r in status.runners if "tiny-random" in r.loaded_models]
        assert len(holders) == 1
        result = await client.generate(
            "a brick wall", model="tiny-random", init_image=sketch, strength=0.5, steps=2,
            seed=3,
        )  # fmt: skip
        assert decode(result.image.data).shape == (64, 64, 3)
        assert result.recipe["request"]["model"] == "tiny-random"
        assert await client.unload("tiny-random")
        assert not any("tiny-random" in r.loaded_models for r in (await client.status()).runners)
        assert not await client.unload("tiny-random")


async def test_a_held_model_stays_on_its_replica(front: Daemon) -> None:
    async with AsyncClient(front.address, timeout=60) as client:
        await client.load("fake-b")
        (holder,) = [r.name for r in front.engine.runners if r.loaded("fake-b")]
        before = await jobs_by_replica(front)
        for seed in range(4):
            await client.generate("x", model="fake-b", seed=seed)
        after = await jobs_by_replica(front)
        assert after[holder] - before[holder] == 4
        assert sum(after.values()) - sum(before.values()) == 4


async def test_requests_spread_across_replicas(front: Daemon) -> None:
    async with AsyncClient(front.address, timeout=60) as client:
        slow = [
            asyncio.ensure_future(client.generate("step_ms=300", seed=i, steps=4)) for i in range(2)
        ]
        await wait_for(lambda: len({r.name for r in front.engine.runners if r.inflight}) == 2)
        await asyncio.gather(*slow)


async def test_a_live_session_stays_on_one_replica(front: Daemon) -> None:
    before = await jobs_by_replica(front)
    async with (
        AsyncClient(front.address, timeout=60) as client,
        client.live(prompt="live", strength=1.0, seed=1) as session,
    ):
        frames = session.__aiter__()
        for i in range(5):
            await session.send(prompt=f"live {i}")
            frame = await frames.__anext__()
            assert frame.image is not None
    after = await jobs_by_replica(front)
    assert sorted(after[n] - before.get(n, 0) for n in after) == [0, 5]


@pytest.mark.parametrize(
    ("options", "code", "field"),
    [
        ({"width": 100}, grpc.StatusCode.INVALID_ARGUMENT, "width"),
        ({"steps": 51}, grpc.StatusCode.INVALID_ARGUMENT, "steps"),
        ({"model": "no-such-model"}, grpc.StatusCode.NOT_FOUND, "no-such-model"),
    ],
)
async def test_bad_input_is_refused_as_with_local_runners(
    front: Daemon, options: dict[str, Any], code: grpc.StatusCode, field: str
) -> None:
    async with AsyncClient(front.address, timeout=60) as client:
        with pytest.raises(PixelKilnError) as info:
            await client.generate("bad", **options)
    assert info.value.code is code and field in info.value.message


async def test_a_model_that_fails_to_load_on_a_replica_answers_its_code(
    front: Daemon, tmp_path: Any
) -> None:
    """The replica's error crosses Ray with its code and text: no INTERNAL, no trace."""
    (tmp_path / "model_index.json").write_text("{not json")
    async with AsyncClient(front.address, timeout=60) as client:
        with pytest.raises(PixelKilnError) as info:
            await client.load(str(tmp_path))
    assert info.value.code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE)
    assert "Traceback" not in info.value.message


async def test_a_second_front_shares_the_application(cluster: ChildCluster, front: Daemon) -> None:
    names = sorted(r.name for r in front.engine.runners)
    async with ray_front(cluster) as second:
        await wait_for(lambda: len(second.engine.runners) == 2)
        assert sorted(r.name for r in second.engine.runners) == names  # attached, not redeployed
        async with (
            AsyncClient(front.address, timeout=60) as one,
            AsyncClient(second.address, timeout=60) as two,
        ):
            results = await asyncio.gather(
                one.generate("from one", seed=5), two.generate("from two", seed=5)
            )
        assert (decode(results[0].image.data) == decode(results[1].image.data)).all()
    assert sorted(r.name for r in front.engine.runners) == names


async def test_health_turns_not_serving_when_the_application_is_gone(cluster: ChildCluster) -> None:
    app = "pixelkiln-runners-doomed"
    options = RayOptions(address=cluster.address, app=app, replicas=1, cpus_per_replica=0)
    async with ray_front(cluster, ray=options) as d, AsyncClient(d.address, timeout=30) as client:
        assert await client.health() == "SERVING"
        await asyncio.to_thread(serve.delete, app)
        await wait_for(lambda: not d.engine.pool.serving)
        assert await client.health() == "NOT_SERVING"
        with pytest.raises(PixelKilnError) as info:
            await client.generate("nobody home", seed=1)
        assert info.value.code is grpc.StatusCode.UNAVAILABLE
        assert f"no replica of the Ray application {app}" in info.value.message


async def test_a_killed_replica_fails_its_job_unavailable_and_the_next_is_served(
    front: Daemon,
) -> None:
    async with AsyncClient(front.address, timeout=60) as client:
        doomed = asyncio.ensure_future(client.generate("step_ms=300", seed=1, steps=40))
        await wait_for(lambda: replica_running(front) is not None)
        victim = replica_running(front)
        ray.kill(ray.get_actor(victim.actor, namespace="serve"), no_restart=True)
        with pytest.raises(PixelKilnError) as info:
            await doomed
        assert info.value.code is grpc.StatusCode.UNAVAILABLE
        assert victim.name in info.value.message and "retry" in info.value.message
        for seed in range(3):
            assert (await client.generate("next", seed=seed)).image.data
        # Serve replaces the replica; the front lists the new one.
        await wait_for(
            lambda: (
                len(front.engine.runners) == 2
                and victim.name not in {r.name for r in front.engine.runners}
            )
        )


async def test_a_removed_node_fails_its_job_unavailable_and_the_next_is_served(
    cluster: ChildCluster, front: Daemon
) -> None:
    async with AsyncClient(front.address, timeout=60) as client:
        doomed = asyncio.ensure_future(client.generate("step_ms=300", seed=1, steps=40))
        await wait_for(lambda: replica_running(front) is not None)
        victim = replica_running(front)
        cluster.remove_node(victim.node)
        with pytest.raises(PixelKilnError) as info:
            await doomed
        assert info.value.code is grpc.StatusCode.UNAVAILABLE
        assert "retry" in info.value.message
        for seed in range(3):
            assert (await client.generate("next", seed=seed)).image.data
