"""The Ray runner's connection and deployment: join the Ray cluster, then attach to the
runners' Serve application when it runs, or deploy it (``runners/ray_replica.py``) with the
replicas, resources and autoscaling bounds of ``--ray-*``. Imports Ray only when called."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, MutableMapping
from dataclasses import asdict
from typing import Any

from ..config import RayOptions
from ..runners.host import HostConfig
from . import ray_head

log = logging.getLogger(__name__)


def connect(
    options: RayOptions, host: HostConfig, warm: list[bytes]
) -> tuple[Any, Callable[[], None] | None]:
    """On a thread: the application's handle, and what ends this process's part in Ray at
    the daemon's stop (None when it joined nothing: Ray was already initialised here).
    ``local`` starts a private head as its own process first (``ray_head``)."""
    # Before Ray loads: its core would answer the daemon's stop signal with a stack dump.
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    if options.address == "local":
        private_head_auth(os.environ)
    import ray
    from ray import serve

    release: Callable[[], None] | None = None
    if not ray.is_initialized():
        head = None
        address = options.address
        if address == "local":
            head = ray_head.start()
            address = head.address
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except BaseException:
            if head is not None:
                head.stop()
            raise
        release = ray.shutdown if head is None else _leave_and_stop(ray, head)
    app = options.app
    found = serve.status().applications.get(app)
    state = str(getattr(found, "status", ""))
    if state.rpartition(".")[2] in ("RUNNING", "DEPLOYING"):
        log.info("Ray runner: attaching to the running application %s", app)
    else:
        from ..runners.ray_replica import RunnerReplica

        log.info("Ray runner: deploying %s", app)
        serve.start(proxy_location="Disabled", http_options={"host": "127.0.0.1"})
        serve.run(application(serve, RunnerReplica, options, host, warm), name=app,
                  route_prefix=f"/{app}")  # fmt: skip
    return serve.get_app_handle(app), release


def private_head_auth(env: MutableMapping[str, str]) -> None:
    """``--ray-address local``: the private head (which inherits this environment) and its
    driver, this process, both with Ray's token authentication, read when Ray loads. The
    token is a fresh secret of this daemon's unless the user named one (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH``): ``ray start`` never makes one, and refuses to start in token
    mode without one, so a machine that never ran Ray had no ``~/.ray/auth_token`` to fall
    back on. An explicit ``RAY_AUTH_MODE`` of the user's is kept for both."""
    env.setdefault("RAY_AUTH_MODE", "token")
    named = env.get("RAY_AUTH_TOKEN") or env.get("RAY_AUTH_TOKEN_PATH")
    if env["RAY_AUTH_MODE"].lower() == "token" and not named:
        env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


def _leave_and_stop(ray: Any, head: ray_head.LocalHead) -> Callable[[], None]:
    def release() -> None:
        try:
            ray.shutdown()
        finally:
            head.stop()
        head.log.unlink(missing_ok=True)  # a clean end; a failed start keeps it and names it

    return release


def application(
    serve: Any, cls: type, options: RayOptions, host: HostConfig, warm: list[bytes]
) -> Any:
    actor = {"num_cpus": options.cpus_per_replica, "num_gpus": options.gpus_per_replica}
    scaling: dict[str, Any] = {"num_replicas": options.replicas}
    if options.max_replicas > 0:
        scaling = {
            "autoscaling_config": {
                "min_replicas": options.min_replicas,
                "max_replicas": options.max_replicas,
                "target_ongoing_requests": 1,
            }
        }
    deployment = serve.deployment(cls, name="runner").options(
        ray_actor_options=actor,
        # One job (or load) at a time: a busy holder of a model makes Serve send the next job
        # to another replica. Broadcasts (state, unload) are not limited.
        max_ongoing_requests=1,
        health_check_period_s=2,
        health_check_timeout_s=10,
        **scaling,
    )
    return deployment.bind(asdict(host), warm)


def ray_cause(exc: BaseException) -> str:
    """A Ray error in one line: its type and the first line of its text."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def auth_hint(exc: BaseException) -> str:
    """Ray 2.60's `ray start` turns token authentication on; a driver connects with it only
    when told (its own default is off), and then says only that it could not connect."""
    chain: list[str] = []
    cause = exc.__cause__ or exc.__context__
    while cause is not None and len(chain) < 5:
        chain.append(type(cause).__name__ + str(cause))
        cause = cause.__cause__ or cause.__context__
    if any("Auth" in text for text in chain) and "RAY_AUTH_MODE" not in os.environ:
        return (
            "; the cluster wants Ray's token authentication: set RAY_AUTH_MODE=token for "
            "pixelkiln serve (the token: ~/.ray/auth_token or RAY_AUTH_TOKEN)"
        )
    return ""
