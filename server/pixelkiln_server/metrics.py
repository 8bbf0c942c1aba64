"""Prometheus metrics of one daemon, served over HTTP (``pixelkiln serve --metrics-port``).

Each :class:`Metrics` has its own ``CollectorRegistry`` (tests run several daemons in one
process). Requests are counted from the operations layer's records (both carriers, one
place); the latency histograms read each result's timings; what the engine and its runners
hold (queue depth per priority, runners' restarts, models and memory) is read when Prometheus
scrapes, by a custom collector, with no polling thread.

The HTTP endpoint binds to the daemon's host and follows its exposure: with TLS on, it serves
HTTPS with the same certificate (and requires client certificates when ``--tls-client-ca`` is
given); with tokens on, a scrape needs ``Authorization: Bearer <token>`` like every RPC.
Bound to a loopback host, it answers only requests whose ``Host`` names a loopback host: a
web page whose own name was made to resolve to 127.0.0.1 (DNS rebinding) is refused (403).
A client gets :data:`HEADER_TIMEOUT` seconds to send its request headers (and finish the TLS
handshake), and at most :data:`MAX_CONNECTIONS` connections are served at once: an idle or
slow client cannot hold threads for ever, token or not.

=========================================  =========  ==========================================
name                                       type       labels
=========================================  =========  ==========================================
``pixelkiln_requests_total``               counter    method, transport (grpc/websocket), code
``pixelkiln_queue_seconds``                histogram  priority (live, interactive, batch)
``pixelkiln_model_seconds``                histogram  priority
``pixelkiln_encode_seconds``               histogram  priority
``pixelkiln_live_frames_total``            counter    outcome (generated, unchanged)
``pixelkiln_live_inputs_skipped_total``    counter
``pixelkiln_queue_depth``                  gauge      priority
``pixelkiln_live_sessions``                gauge
``pixelkiln_runner_up``                    gauge      runner, device (1 while it takes work)
``pixelkiln_runner_restarts_total``        counter    runner, device
``pixelkiln_runner_running_jobs``          gauge      runner, device
``pixelkiln_runner_loaded_models``         gauge      runner, device
``pixelkiln_runner_memory_bytes``          gauge      runner, device
=========================================  =========  ==========================================
"""

from __future__ import annotations

import io
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .auth import AUTH_HEADER
from .errors import Unauthenticated
from .services.access import RequestRecord
from .services.identity import is_loopback_host, one_value
from .types import LiveFrame, Priority, Timings

if TYPE_CHECKING:
    from .auth import TokenStore
    from .engine.core import Engine
    from .engine.jobs import Job

log = logging.getLogger(__name__)

# Seconds: a 1-step 64x64 tiny model takes milliseconds; a big model at 1024 tens of seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
PATHS = ("/metrics", "/")
# Seconds a client has to finish the TLS handshake and send its request line and headers, all
# of them together (a client sending a byte now and then gets no more); then it is dropped.
HEADER_TIMEOUT = 5.0
# Seconds for the rest (writing the answer) once the headers are in.
RESPONSE_TIMEOUT = 30.0
# Connections served at once (one thread each); more are closed as soon as they are accepted.
MAX_CONNECTIONS = 16
# The environ key of the Authorization header's values, one per copy sent (wsgiref's
# HTTP_AUTHORIZATION joins them with commas).
AUTHORIZATION_VALUES = "pixelkiln.authorization"


class Metrics:
    """The daemon's metrics; :meth:`request_done` and :meth:`live_frame` are the operations
    layer's listeners."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "pixelkiln_requests",
            "Requests by method, transport and status code",
            ["method", "transport", "code"],
            registry=r,
        )
        self.queue = Histogram(
            "pixelkiln_queue_seconds",
            "Time from submit to the model starting, per finished generation",
            ["priority"],
            buckets=BUCKETS,
            registry=r,
        )
        self.model = Histogram(
            "pixelkiln_model_seconds",
            "Time in the model (denoising and decode), per finished generation",
            ["priority"],
            buckets=BUCKETS,
            registry=r,
        )
        self.encode = Histogram(
            "pixelkiln_encode_seconds",
            "Time encoding the images (and derived maps), per finished generation",
            ["priority"],
            buckets=BUCKETS,
            registry=r,
        )
        self.live_frames = Counter(
            "pixelkiln_live_frames",
            "Live frames sent: generated, or unchanged (same input, answered for free)",
            ["outcome"],
            registry=r,
        )
        self.live_skipped = Counter(
            "pixelkiln_live_inputs_skipped",
            "Live inputs replaced by a newer one before they were processed",
            registry=r,
        )
        r.register(EngineCollector(engine))

    def request_done(self, record: RequestRecord) -> None:
        self.requests.labels(record.method, record.transport, record.code).inc()
        if record.method == "Generate" and record.code == "OK" and record.timings is not None:
            self._observe(record.priority or Priority.INTERACTIVE.value, record.timings)

    def live_frame(self, frame: LiveFrame) -> None:
        self.live_frames.labels("unchanged" if frame.unchanged else "generated").inc()
        if frame.skipped:
            self.live_skipped.inc(frame.skipped)
        if not frame.unchanged:
            self._observe(Priority.LIVE.value, frame.timings)

    def _observe(self, priority: str, t: Timings) -> None:
        self.queue.labels(priority).observe(t.queue_ms / 1000.0)
        self.model.labels(priority).observe(t.model_ms / 1000.0)
        self.encode.labels(priority).observe(t.encode_ms / 1000.0)


class EngineCollector(Collector):
    """What the engine holds, read at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[Metric]:
        engine = self.engine
        depth = GaugeMetricFamily(
            "pixelkiln_queue_depth", "Requests waiting, per priority class", labels=["priority"]
        )
        for priority in Priority:
            depth.add_metric([priority.value], engine.scheduler.count(_of_priority(priority)))
        yield depth
        yield GaugeMetricFamily(
            "pixelkiln_live_sessions", "Live sessions open", value=engine.live_sessions
        )
        labels = ["runner", "device"]
        up = GaugeMetricFamily(
            "pixelkiln_runner_up", "1 while the runner takes work", labels=labels
        )
        restarts = CounterMetricFamily(
            "pixelkiln_runner_restarts",
            "Restarts after a crash, a hang or a failed start",
            labels=labels,
        )
        running = GaugeMetricFamily(
            "pixelkiln_runner_running_jobs", "Jobs the runner is running", labels=labels
        )
        models = GaugeMetricFamily(
            "pixelkiln_runner_loaded_models", "Models loaded in the runner", labels=labels
        )
        memory = GaugeMetricFamily(
            "pixelkiln_runner_memory_bytes",
            "Memory of the runner's loaded models (as the runner measured them)",
            labels=labels,
        )
        for runner in list(engine.runners):
            key = [runner.name, runner.device]
            loaded = list(runner.models)
            up.add_metric(key, 1.0 if runner.state == "ready" else 0.0)
            restarts.add_metric(key, runner.restarts)
            running.add_metric(key, len(runner.inflight))
            models.add_metric(key, len(loaded))
            memory.add_metric(key, sum(m.memory_bytes for m in loaded))
        yield from (up, restarts, running, models, memory)


def _of_priority(priority: Priority) -> Callable[[Job], bool]:
    return lambda job: job.request.priority is priority


class _HeaderClock(io.RawIOBase):
    """The connection's reads, each allowed only what is left of the time for the headers, so
    the whole request line and headers must come within :data:`HEADER_TIMEOUT`."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        super().__init__()
        self.sock = sock
        self.deadline: float | None = time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request headers were not sent in time")
            self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class _Handler(WSGIRequestHandler):
    clock: _HeaderClock

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the base's reader: an open one would keep the socket from closing
        self.clock = _HeaderClock(self.connection, HEADER_TIMEOUT)
        self.rfile = io.BufferedReader(self.clock)

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        self.clock.deadline = None  # the headers are in (or refused): the rest has its own limit
        self.connection.settimeout(RESPONSE_TIMEOUT)
        return parsed

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:  # TimeoutError, a reset, a bad TLS handshake
            if self.clock.deadline is None:
                raise
            # Before the headers were in: drop the client quietly (no traceback on stderr).

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ[AUTHORIZATION_VALUES] = self.headers.get_all(AUTH_HEADER, [])
        return environ

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Scrapes are not logged (Prometheus scrapes every few seconds)."""


def _server_class(host: str, port: int) -> type[WSGIServer]:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Server(ThreadingMixIn, WSGIServer):
        """One thread per connection, at most :data:`MAX_CONNECTIONS` of them.

        A connection beyond the cap is closed on the accepting thread, at once, without a
        thread or a read: answering it (a 503) would mean a TLS handshake and a write there,
        which a client that says nothing could stall, holding up every other scrape. The
        connections counted are freed within :data:`HEADER_TIMEOUT` when their clients say
        nothing, so a real scrape gets in again soon after a flood stops.
        """

        address_family = family
        daemon_threads = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
            super().__init__(*args, **kwargs)

        def process_request(self, request: Any, client_address: Any) -> None:
            if not self.slots.acquire(blocking=False):
                self.shutdown_request(request)
                return
            try:
                super().process_request(request, client_address)
            except BaseException:  # the thread did not start
                self.slots.release()
                raise

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                self.slots.release()

    return Server


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def host_name(header: str) -> str:
    """The host of a ``Host`` header, without its port or IPv6 brackets, in lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    name, sep, port = header.rpartition(":")
    return name if sep and ":" not in name and (port.isdigit() or not port) else header


def host_allowed(header: str | None) -> bool:
    """Whether a request with this ``Host`` header may read the metrics of an endpoint bound
    to a loopback host: ``localhost`` or a loopback address (127.x, ``[::1]``), any port.
    (The bound host is one of those: :func:`guarded_app` checks only then.)

    A browser always sends the ``Host`` of the page's URL, so a page on evil.example, its name
    made to resolve to 127.0.0.1, sends ``Host: evil.example`` and is refused. A request with
    no ``Host`` at all (HTTP/1.0 allows that) cannot come from a browser and is let in: on
    loopback it is a local program, which could read the port anyway.
    """
    if header is None:
        return True
    return is_loopback_host(host_name(header))


def guarded_app(
    registry: CollectorRegistry, tokens: TokenStore | None, host: str | None = None
) -> WsgiApp:
    """Prometheus' WSGI app, behind the daemon's tokens when they are on, answering only
    loopback names in ``Host`` when bound to the loopback ``host``.

    Bound to any other host, ``Host`` is not checked: scrapers on the network reach the
    daemon by names and addresses it cannot know (aliases, proxies), and the endpoint is
    guarded by the token already (or exposed on purpose with ``--insecure``, where anyone on
    the network can read it directly, no rebinding needed).
    """
    metrics_app = make_wsgi_app(registry)
    check_host = host is not None and is_loopback_host(host)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        # Before anything else: a page that rebinds its name learns nothing, not even a 404.
        # Two Host headers arrive joined with a comma, which names no host: refused.
        sent = environ.get("HTTP_HOST")
        if check_host and not host_allowed(sent):
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return iter(
                [
                    f"PERMISSION_DENIED: Host: {sent!r} is not a loopback name; scrape "
                    "localhost, 127.0.0.1 or [::1]\n".encode()
                ]
            )
        if environ.get("PATH_INFO", "/") not in PATHS:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return iter([b"NOT_FOUND: the metrics are at /metrics\n"])
        if tokens is not None:
            try:
                # Each copy sent (_Handler.get_environ): twice is refused, as on gRPC.
                tokens.authenticate(one_value(environ[AUTHORIZATION_VALUES], AUTH_HEADER))
            except Unauthenticated as exc:
                start_response(
                    "401 Unauthorized",
                    [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")],
                )
                return iter([f"UNAUTHENTICATED: {exc.message}\n".encode()])
        return iter(metrics_app(environ, start_response))

    return app


class MetricsServer:
    """The HTTP endpoint in a thread of its own: a scrape never waits for the event loop."""

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        tokens: TokenStore | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._app = guarded_app(registry, tokens, host)
        self._ssl = ssl_context
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def scheme(self) -> str:
        return "https" if self._ssl is not None else "http"

    def start(self) -> None:
        """Bind and serve; raises OSError (naming --metrics-port) when the port is taken."""
        host = self.host.strip("[]")
        try:
            server = make_server(
                host,
                self.port,
                self._app,
                server_class=_server_class(host, self.port),
                handler_class=_Handler,
            )
        except OSError as exc:
            error = OSError(
                f"cannot listen on {self.host}:{self.port} (--metrics-port): {exc.strerror}"
            )
            error.errno = exc.errno  # EADDRINUSE: serve says to choose another port
            raise error from None
        if self._ssl is not None:
            # The handshake happens on the handler's thread, at its first read: a client that
            # connects and says nothing never holds up the accepting thread.
            server.socket = self._ssl.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="metrics", daemon=True
        )
        self._thread.start()
        log.info("metrics on %s://%s:%d/metrics", self.scheme, self.host, self.port)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
