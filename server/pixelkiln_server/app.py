"""Server wiring: the gRPC services, health, reflection, limits, start-up and shutdown."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import socket
import sys
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pixelkiln.v1 import generator_pb2, generator_pb2_grpc, models_pb2, models_pb2_grpc

from . import heap
from .config import ServerConfig
from .engine.core import Engine
from .logsetup import make_formatter
from .metrics import Metrics, MetricsServer
from .security import check_binding, load_tls, load_tokens, ws_ssl_context
from .services.decoding import DecodeGuard
from .services.generator import GeneratorService
from .services.identity import Gatekeeper, TokenInterceptor
from .services.models import ModelsService
from .services.operations import Operations
from .services.websocket import WebSocketCarrier
from .shutdown import ShutdownSignals, say, watch_stdin

log = logging.getLogger(__name__)

# At shutdown, after the grace: how long the requests then ended get to carry their UNAVAILABLE
# to their clients, and how long a runner gets to exit before it is killed.
FINAL_WORD_S = 1.0
RUNNER_STOP_S = 2.0

SERVICE_NAMES = (
    generator_pb2.DESCRIPTOR.services_by_name["Generator"].full_name,
    models_pb2.DESCRIPTOR.services_by_name["Models"].full_name,
)


MAX_STREAMS_PER_CONNECTION = 64  # calls open at once on one connection (16 jobs + 4 live...)
IDLE_CONNECTION_MS = 10 * 60 * 1000  # a connection with no call for this long is closed


def grpc_options(max_message_bytes: int) -> list[tuple[str, int]]:
    """Channel options shared by the server and the clients: message limits on purpose."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 address in brackets (``[::1]:50051``): unbracketed, gRPC would
    read ``::1:50051`` as a host name."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _bind_problem(host: str, port: int) -> OSError | None:
    """What binding a plain socket to ``host:port`` says: its error, or None when it binds."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            if sys.platform != "win32":  # as gRPC does; on Windows it would share a taken port
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:  # socket.gaierror included
        return exc
    return None


def _why_not_allowed(port: int) -> str:
    if sys.platform == "win32":  # Hyper-V, WSL2 and Docker reserve ranges (50051 among them)
        return (
            "Windows reserves this port for Hyper-V, WSL or Docker; `netsh interface ipv4 show "
            "excludedportrange protocol=tcp` lists the ranges: pick a --port outside them"
        )
    return "a port below 1024 needs privileges" if port < 1024 else "the system refuses it"


def listen_error(host: str, port: int, carrier: str, cause: OSError | None = None) -> OSError:
    """Why ``carrier`` (gRPC, WebSocket) could not listen on ``host:port``, as an OSError whose
    errno is EADDRINUSE only when another program holds the port. Which it is, gRPC does not
    say: a plain socket bound to the same address tells a taken port from a bad --host."""
    where = f"cannot listen on {host_port(host, port)} ({carrier})"
    problem = _bind_problem(host, port)
    if problem is not None and problem.errno == errno.EADDRINUSE:
        error = OSError(f"{where}: in use by another program")
    elif problem is not None and problem.errno == errno.EACCES:
        error = OSError(f"{where}: not allowed ({_why_not_allowed(port)})")
    else:
        try:
            mapped = getattr(ipaddress.ip_address(host.strip("[]")), "ipv4_mapped", None)
        except ValueError:
            mapped = None
        if mapped is not None:
            reason = f"an IPv4-mapped address; give the IPv4 address {mapped} instead"
        elif problem is not None:
            reason = problem.strerror or str(problem)
        else:  # a plain socket binds it: the carrier's own reason, if it gave one
            reason = (cause.strerror if cause is not None else None) or "the cause is unknown"
        error = OSError(f"--host {host}: {where}: {reason}")
    error.errno = problem.errno if problem is not None else None
    return error


class Daemon:
    """One daemon: an engine and the gRPC server in front of it.

    daemon = Daemon(ServerConfig(port=0))
    await daemon.start()          # listening; health NOT_SERVING until warm
    await daemon.wait_ready()     # default model loaded and warmed up
    ...
    await daemon.stop()
    """

    def __init__(self, config: ServerConfig) -> None:
        """Raises security.SecurityConfigError for a token file, TLS files or a host that the
        binding rule refuses (README "Running on a studio network")."""
        self.config = config
        tokens = load_tokens(config)
        self.tls = load_tls(config)
        check_binding(config, tokens is not None, self.tls is not None)
        self.engine = Engine(config)
        self.ops = Operations(self.engine)
        # Prometheus metrics (--metrics-port): a registry of this daemon's own.
        self.metrics: Metrics | None = None
        self.metrics_server: MetricsServer | None = None
        if config.metrics_port is not None:
            self.metrics = Metrics(self.engine)
            self.ops.request_listeners.append(self.metrics.request_done)
            self.ops.frame_listeners.append(self.metrics.live_frame)
            self.metrics_server = MetricsServer(
                self.metrics.registry,
                config.host,
                config.metrics_port,
                ws_ssl_context(config),
                tokens,
            )
        self.gate = Gatekeeper(tokens, config.ws_allowed_origins)
        self.health = health.aio.HealthServicer()
        self.server = grpc.aio.server(
            # Without SO_REUSEPORT a second daemon on the same port fails to start instead of
            # silently sharing the port's connections with the first.
            options=[
                *grpc_options(config.max_message_bytes),
                ("grpc.so_reuseport", 0),
                # A peer's streams and idle connections are bounded: each holds memory and a
                # file descriptor (a client's channel reconnects by itself after the idle close).
                ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
                ("grpc.max_connection_idle_ms", IDLE_CONNECTION_MS),
            ],
            # DecodeGuard: bytes that are not the method's message answer INVALID_ARGUMENT.
            interceptors=[DecodeGuard(), *(() if tokens is None else [TokenInterceptor(tokens)])],
        )
        self.port = 0
        self.websocket = (
            WebSocketCarrier(
                self.ops,
                config.host,
                config.ws_port,
                config.max_message_bytes,
                self.gate,
                ws_ssl_context(config),
                config.ws_send_stall_s,
            )
            if config.ws_port is not None
            else None
        )
        self._warm_up: asyncio.Task[None] | None = None
        self._stopping = False
        self._health_tasks: set[asyncio.Task[None]] = set()
        self.engine.health_listeners.append(self._runners_serving)

    def _runners_serving(self, serving: bool) -> None:
        """Health follows the runners once warm: NOT_SERVING while none serves."""
        if self._stopping or not self.engine.ready:
            return
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        task = asyncio.ensure_future(self._set_health(status))
        self._health_tasks.add(task)
        task.add_done_callback(self._health_tasks.discard)

    @property
    def address(self) -> str:
        return host_port(self.config.host, self.port)

    @property
    def metrics_url(self) -> str:
        assert self.metrics_server is not None, "the metrics are off (--metrics-port)"
        m = self.metrics_server
        return f"{m.scheme}://{host_port(self.config.host, m.port)}/metrics"

    @property
    def ws_url(self) -> str:
        assert self.websocket is not None, "the WebSocket carrier is off"
        scheme = "wss" if self.tls is not None else "ws"
        return f"{scheme}://{host_port(self.config.host, self.websocket.port)}/v1"

    async def start(self) -> None:
        generator_pb2_grpc.add_GeneratorServicer_to_server(
            GeneratorService(self.ops, self.gate), self.server
        )
        models_pb2_grpc.add_ModelsServicer_to_server(
            ModelsService(self.ops, self.gate), self.server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        host = self.config.host
        bind = host_port(host, self.config.port)
        try:
            if self.tls is not None:
                self.port = self.server.add_secure_port(bind, self.tls.grpc_credentials())
            else:
                self.port = self.server.add_insecure_port(bind)
        except RuntimeError:  # grpcio's "Failed to bind to address"
            self.port = 0
        if self.port == 0:
            raise listen_error(host, self.config.port, "gRPC")
        await self.server.start()
        if self.websocket is not None:
            try:
                await self.websocket.start()
            except OSError as exc:
                raise listen_error(host, self.websocket.port, "WebSocket", exc) from None
        if self.metrics_server is not None:
            self.metrics_server.start()
        self.engine.start()
        log.debug("listening on %s (health NOT_SERVING until warm)", self.address)  # say()s it
        self._warm_up = asyncio.create_task(self._warm())

    async def _warm(self) -> None:
        if self.config.warm_up:
            await self.engine.warm_up()
        else:
            self.engine.ready = True
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("ready: %s warmed up, health SERVING", self.config.default_model)

    async def wait_ready(self) -> None:
        """Wait for warm-up; re-raises its error (e.g. the default model cannot be loaded)."""
        assert self._warm_up is not None, "start() first"
        await self._warm_up

    async def _set_health(self, status: int) -> None:
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, give in-flight requests ``grace`` seconds, cancel the rest."""
        grace = self.config.shutdown_grace_s if grace is None else grace
        self._stopping = True
        self.ops.drain()  # both carriers refuse new work from here on
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._warm_up is not None and not self._warm_up.done():
            self._warm_up.cancel()
        # In-flight requests get the grace on both carriers, which keep listening meanwhile (a
        # new request is refused with UNAVAILABLE "shutting down", not met by a closed port).
        # Then what is left ends with UNAVAILABLE, said on its own stream, before the carriers
        # close and cut whatever still has not ended.
        if not await self.ops.wait_idle(grace):
            self.ops.end_all()
            await self.ops.wait_idle(FINAL_WORD_S)
        carriers = [self.server.stop(0)]
        if self.websocket is not None:
            carriers.append(self.websocket.stop(0))
        await asyncio.gather(*carriers)
        await self.engine.shutdown(RUNNER_STOP_S)
        if self.metrics_server is not None:
            await asyncio.to_thread(self.metrics_server.stop)
        log.info("stopped")


def _say_json(text: str) -> None:
    say(make_formatter("json").format(logging.makeLogRecord({"name": "pixelkiln", "msg": text})))


async def serve(config: ServerConfig, stop_on_stdin_close: bool = False) -> int:
    """Run until SIGINT/SIGTERM (SIGBREAK on Windows), or standard input closes when
    ``stop_on_stdin_close``; returns the exit status. See shutdown.py for each OS."""
    daemon = Daemon(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    ShutdownSignals(loop, stop.set).install()
    if stop_on_stdin_close:
        watch_stdin(loop, stop.set)
    started = time.monotonic()
    try:
        await daemon.start()
    except OSError as exc:  # a port in use or a bad --host: say which, no traceback
        await daemon.server.stop(None)  # gRPC may be up when the WebSocket port is taken
        if daemon.websocket is not None:
            await daemon.websocket.stop()
        if exc.errno != errno.EADDRINUSE:
            raise SystemExit(f"pixelkiln serve: {exc}") from None
        raise SystemExit(
            f"pixelkiln serve: {exc}; choose free ports with --port/--ws-port or stop the "
            "daemon already running there"
        ) from None
    ws = f", WebSocket {daemon.ws_url}" if daemon.websocket is not None else ""
    if daemon.metrics_server is not None:
        ws += f", metrics {daemon.metrics_url}"
    json_lines = os.environ.get("PIXELKILN_LOG_FORMAT") == "json"  # logsetup's --log-format
    tell = _say_json if json_lines else say  # then stdout's own lines are JSON too
    tell(f"pixelkiln: listening on {daemon.address} (gRPC){ws}; warming up {config.default_model}")
    ready = asyncio.ensure_future(daemon.wait_ready())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({ready, stopper}, return_when=asyncio.FIRST_COMPLETED)
    status = 0
    if not ready.done():
        ready.cancel()
    elif ready.exception() is not None:
        log.error("warm-up of %s failed: %s", config.default_model, ready.exception())
        status = 1
    else:
        took = time.monotonic() - started
        heap.settle()  # the front's start-up objects out of later full collections
        tell(f"pixelkiln: ready ({config.default_model}) in {took:.1f} s, health SERVING")
        await stopper
    tell("pixelkiln: shutting down")
    await daemon.stop()
    return status
