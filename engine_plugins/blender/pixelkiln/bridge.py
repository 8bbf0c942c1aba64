"""Network side of the add-on: jobs on worker threads, talking to the daemon with the
bundled PixelKiln Python client, posting what happens to one queue that the main thread drains.

Nothing here imports ``bpy``: Blender data may only be touched on the main thread, so a job
only ever *posts* (``Post(job_id, kind, payload)``) and ``runtime.tick`` (a
``bpy.app.timers`` callback) applies the posts. Worker threads never block the UI, and the
UI never waits for the network: even Cancel runs its RPC on a short-lived thread.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import re
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from pixelkiln import Client, PixelKilnError, Result
from pixelkiln.v1 import image_pb2

HEALTH_TIMEOUT_S = 5.0
DEFAULT_ADDRESS = "127.0.0.1:50051"


@dataclass(frozen=True)
class Post:
    """One message from a worker thread to the main thread."""

    job_id: int
    kind: str  # "event" | "health" | "live_frame" | "error" | "cancelled" | "done"
    payload: Any = None


class NotReadyError(Exception):
    pass


# --- messages a person can act on ---------------------------------------------------------


def check_address(address: str) -> str | None:
    """A message when ``address`` is not ``host:port`` (grpc would wrap a port of 99999)."""
    m = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})", address.strip())
    if not m or not 1 <= int(m[2]) <= 65535:
        return f"'{address}' is not an address: use host:port, e.g. {DEFAULT_ADDRESS}"
    return None


def describe_error(exc: BaseException, address: str, *, connected: bool = False) -> str:
    """Turn any failure of a job into one sentence that says what to do. ``connected``: the
    daemon had already answered this job (its health check or an event), so a lost
    connection means the daemon went away, not that something else listens there."""
    if isinstance(exc, NotReadyError):
        return str(exc)
    if isinstance(exc, ValueError) and str(exc).startswith("root_certificates:"):
        return (
            "The CA certificate of the add-on's preferences (or PIXELKILN_TLS_CA)"
            + str(exc).removeprefix("root_certificates")
            + ": give the PEM file of the CA that signed the daemon's --tls-cert."
        )
    if not isinstance(exc, PixelKilnError):
        return f"Unexpected error in the add-on: {type(exc).__name__}: {exc}"
    code, msg = exc.code, exc.message or ""
    low = msg.lower()
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return (
            f"The daemon at {address} needs a valid token ({msg}). Set Token in Edit > "
            "Preferences > Add-ons > PixelKiln (or PIXELKILN_TOKEN); `pixelkiln token create "
            "NAME` on the daemon's machine makes one."
        )
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return f"Not allowed with this token: {msg}"
    if code is grpc.StatusCode.UNAVAILABLE and ("tls handshake" in low or "certificate" in low):
        return (
            f"The TLS handshake with {address} failed: the daemon's certificate is not trusted "
            "or does not name this host. Set CA certificate in the add-on's preferences (or "
            "PIXELKILN_TLS_CA) to the CA that signed its --tls-cert."
        )
    if code is grpc.StatusCode.UNAVAILABLE and connected:
        return (
            f"Lost the connection to the daemon at {address} during the request: the daemon "
            f"went away (stopped or crashed; {msg}). Start it again and retry: a retry is safe."
        )
    if code is grpc.StatusCode.UNAVAILABLE:
        if "connection refused" in low or "failed to connect to remote host" in low:
            return (
                f"No PixelKiln daemon at {address}: nothing listens there. Start one with "
                "`pixelkiln serve` (`--port N` picks the port) or fix the address."
            )
        if "http/2" in low or "http1" in low or "socket closed" in low or "protocol" in low:
            return (
                f"Something at {address} answers, but not with gRPC: wrong port? (the "
                "daemon's WebSocket port, 50052 by default, is for Unity and Godot; its gRPC "
                "port is 50051 by default), or the daemon serves TLS (--tls-cert): turn on TLS "
                "in the add-on's preferences"
            )
        if "resolv" in low or "dns" in low:
            return f"Cannot resolve the host of {address}: check the address."
        return f"Lost the daemon at {address} ({msg}). Is it still running?"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return (
            f"No answer from {address} in time: a program there accepts connections but "
            "does not answer gRPC, or a firewall holds them."
        )
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return f"The daemon refused the request: {msg}"
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return f"The daemon is busy or out of memory: {msg}. Try again shortly."
    if code is grpc.StatusCode.NOT_FOUND:
        return f"Not found on the daemon: {msg}"
    if code is grpc.StatusCode.CANCELLED:
        return "Cancelled."
    return f"Server error ({code.name}): {msg}. The daemon's log has the details."


# --- jobs -----------------------------------------------------------------------------------


class Job:
    """A unit of network work on its own daemon thread. Subclasses implement ``run``."""

    kind = "job"

    def __init__(self, bridge: Bridge, address: str) -> None:
        self.bridge = bridge
        self.id = bridge.next_id()
        self.address = address.strip()
        # token= / tls= / root_certificates= for the client (props.client_security).
        self.security: dict[str, Any] = {}
        self.cancel_requested = threading.Event()
        self.finished = threading.Event()
        self.context: dict[str, Any] = {}  # main-thread bookkeeping (datablock names, ...)
        # Set once the daemon answered (health or an event): a later UNAVAILABLE is a loss.
        self.connected = False
        self._thread: threading.Thread | None = None

    def post(self, kind: str, payload: Any = None) -> None:
        self.bridge.queue.put(Post(self.id, kind, payload))

    def start(self) -> Job:
        self.bridge.jobs[self.id] = self
        self._thread = threading.Thread(
            target=self._main, name=f"pixelkiln-{self.kind}-{self.id}", daemon=True
        )
        self._thread.start()
        return self

    def _main(self) -> None:
        try:
            problem = check_address(self.address)
            if problem:
                self.post("error", problem)
            else:
                self.run()
        except PixelKilnError as exc:
            if exc.code is grpc.StatusCode.CANCELLED and self.cancel_requested.is_set():
                self.post("cancelled")
            else:
                self.post("error", describe_error(exc, self.address, connected=self.connected))
        except Exception as exc:  # noqa: BLE001 - reported, never raised into Blender
            traceback.print_exc()
            self.post("error", describe_error(exc, self.address))
        finally:
            self.finished.set()
            self.post("done")

    def run(self) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        """Ask the job to stop; returns at once (any RPC runs on a helper thread)."""
        self.cancel_requested.set()

    def join(self, timeout: float | None = None) -> bool:
        return self.finished.wait(timeout)

    def _connect(self, client: Client) -> None:
        """Fail fast with a clear message when no daemon, the wrong port, or not warm yet."""
        client.timeout = HEALTH_TIMEOUT_S
        state = client.health()
        self.connected = True
        if state != "SERVING":
            raise NotReadyError(
                f"The daemon at {self.address} is {state}: it is loading or warming up its "
                "model. Try again in a moment."
            )
        client.timeout = None


class HealthJob(Job):
    """Health and status: posts ``health`` with a dict for the panel."""

    kind = "health"

    def run(self) -> None:
        with Client(self.address, timeout=HEALTH_TIMEOUT_S, **self.security) as client:
            state = client.health()
            self.connected = True
            info: dict[str, Any] = {"state": state}
            if state == "SERVING":
                status = client.status()
                info.update(
                    model=status.default_model,
                    device=status.device,
                    dtype=status.dtype,
                    version=status.version,
                    queue=status.queue_depth,
                    running=status.running,
                )
            self.post("health", info)


class GenerateJob(Job):
    """One generation: posts each event (``Accepted`` ... ``Result``) as ``event``."""

    kind = "generate"

    def __init__(self, bridge: Bridge, address: str, options: dict[str, Any]) -> None:
        super().__init__(bridge, address)
        self.options = dict(options)
        self._stream: Any = None
        self._lock = threading.Lock()

    def run(self) -> None:
        with Client(self.address, timeout=HEALTH_TIMEOUT_S, **self.security) as client:
            self._connect(client)
            stream = client.stream(**self.options)
            with self._lock:
                self._stream = stream
            if self.cancel_requested.is_set():
                stream.cancel()
            for event in stream:
                self.connected = True
                self.post("event", event)
                if isinstance(event, Result):
                    return

    def cancel(self) -> None:
        super().cancel()
        with self._lock:
            stream = self._stream
        if stream is not None:
            threading.Thread(target=_quietly(stream.cancel), daemon=True).start()


class LiveJob(Job):
    """A live session: the main thread ``submit``s frames (never blocks); frames come back
    as ``live_frame`` posts. The newest submitted input wins, as on the daemon."""

    kind = "live"

    def __init__(self, bridge: Bridge, address: str, settings: dict[str, Any]) -> None:
        super().__init__(bridge, address)
        self.settings = dict(settings)
        self._session: Any = None
        self._pending: tuple[Any, dict[str, Any]] | None = None
        self._lock = threading.Lock()
        self.sent = 0

    def submit(self, image: image_pb2.Image | None, **settings: Any) -> None:
        with self._lock:
            if self._session is None:
                # Not connected yet: keep only the newest input, merging setting changes.
                merged = {**(self._pending[1] if self._pending else {}), **settings}
                self._pending = (image, merged)
                return
            self._session.send(image, **settings)
            self.sent += 1

    def run(self) -> None:
        with Client(self.address, timeout=HEALTH_TIMEOUT_S, **self.security) as client:
            self._connect(client)
            with client.live(**self.settings) as session:
                with self._lock:
                    self._session = session
                    pending, self._pending = self._pending, None
                    if pending is not None:
                        session.send(pending[0], **pending[1])
                        self.sent += 1
                if self.cancel_requested.is_set():
                    return
                self.post("live_started")
                for frame in session:
                    self.connected = True
                    self.post("live_frame", frame)

    def cancel(self) -> None:
        super().cancel()
        with self._lock:
            session = self._session
        if session is not None:
            session.cancel()  # local: ends the stream without a round trip


def _quietly(fn: Callable[[], Any]) -> Callable[[], None]:
    def call() -> None:
        with contextlib.suppress(PixelKilnError):  # the job's stream reports how it ended
            fn()

    return call


class Bridge:
    """The queue between worker threads and the main thread, and the jobs in flight."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Post] = queue.SimpleQueue()
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def drain(self, limit: int = 64) -> list[Post]:
        """Up to ``limit`` posts, oldest first, without waiting."""
        posts: list[Post] = []
        while len(posts) < limit:
            try:
                posts.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return posts

    def active(self, kind: str | None = None) -> list[Job]:
        return [j for j in self.jobs.values() if kind is None or j.kind == kind]

    def forget(self, job_id: int) -> None:
        self.jobs.pop(job_id, None)

    def shutdown(self, timeout: float = 2.0) -> None:
        """Cancel every job and wait a little for their threads (add-on disabled)."""
        jobs = list(self.jobs.values())
        for job in jobs:
            job.cancel()
        for job in jobs:
            job.join(timeout / max(1, len(jobs)))
        self.jobs.clear()
