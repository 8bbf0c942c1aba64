"""The operations both transports call: one rule, one error mapping, whatever the carrier.

The gRPC services and the WebSocket carrier convert protobuf to domain types, find out who
is calling (a :class:`Caller`), and call :class:`Operations`. Everything an operation checks
(scopes, names, ownership of jobs, shutdown) and every status code it answers lives here, so a
new rule lands once and both transports have it. :func:`to_error` is the one mapping from any
exception to what a client sees.

Every request that reaches an operation ends in one :class:`~.access.RequestRecord` handed to
``request_listeners`` (the access log always; the metrics when they are on); the frames of
live sessions go to ``frame_listeners``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from ..auth import Scope
from ..catalogue import check_model_name
from ..engine.core import Engine, JobHandle
from ..engine.live import LiveSession
from ..errors import (
    Cancelled,
    Internal,
    InvalidArgument,
    PermissionDenied,
    PixelKilnError,
    ResourceExhausted,
    Unavailable,
)
from ..types import (
    DaemonStatus,
    Event,
    GenerationRequest,
    LiveFrame,
    LiveInput,
    ModelInfo,
    Priority,
    Result,
    UnloadResult,
)
from ..types import Failed as FailedEvent
from ..validation import MAX_CLIENT_ID_CHARS
from . import disclosure
from .access import RequestRecord, log_access, text_value
from .model_policy import ModelPolicy

log = logging.getLogger(__name__)
E = TypeVar("E", bound=BaseException)

SHUTTING_DOWN = "the daemon is shutting down; retry on another daemon or after it restarts"


@dataclass(frozen=True)
class Caller:
    """Who is asking. ``client_id`` is the identity for fairness and job ownership: a token's
    name when tokens are on, else what the transport can tell (see services/identity.py)."""

    client_id: str
    scope: Scope = Scope.ADMIN
    peer: str = ""

    @property
    def transport(self) -> str:
        """websocket for the WebSocket carrier's callers (their peer reads ``ws:host:port``)."""
        return "websocket" if self.peer.startswith("ws:") else "grpc"

    def record(self, method: str, **fields: Any) -> RequestRecord:
        return RequestRecord(method, self.transport, self.client_id, self.peer, **fields)


def to_error(exc: BaseException, operation: str, request_id: str = "") -> PixelKilnError:
    """What the client sees for ``exc``: a PixelKilnError as it is; anything else is logged
    with its traceback and becomes INTERNAL with a generic message (never the trace)."""
    # The id and the message can hold what a client sent: quoted and clipped, as in the
    # access log (a WebSocket envelope id with a newline forged a log line, 5 MB of it one line).
    where = f"{operation} {text_value(request_id)}" if request_id else operation
    if isinstance(exc, PixelKilnError):  # a refusal: its access line says it (debug: twice)
        log.debug("%s -> %s: %s", where, exc.code.value, text_value(exc.message))
        return exc
    log.error("%s failed", where, exc_info=exc)
    return Internal(f"internal error in {operation}; see the daemon log")


def _shown(caller: Caller, exc: E) -> E:
    """``exc`` as ``caller`` may see it: paths of the server's machine cut for a caller
    without the admin scope (services/disclosure.py)."""
    if caller.scope is Scope.ADMIN or not isinstance(exc, PixelKilnError):
        return exc
    return disclosure.hide_paths(exc)


class OwnedJob:
    """A submitted job as its caller sees it: events to iterate, and a cancel."""

    def __init__(
        self,
        ops: Operations,
        caller: Caller,
        handle: JobHandle,
        keys: list[str],
        record: RequestRecord,
    ):
        self._ops = ops
        self.caller = caller
        self.handle = handle
        self.id = handle.id
        self._keys = keys
        self.finished = False
        self.record = record
        self._shutdown = False
        # Set by a transport that can tell why its client stopped listening (gRPC: a deadline
        # that passed is DEADLINE_EXCEEDED in the records, not "the client went away").
        self.why_gone: Callable[[], PixelKilnError] | None = None

    async def __aiter__(self) -> AsyncIterator[Event]:
        record = self.record
        try:
            async for event in self.handle:
                if isinstance(event, Result):
                    self.finished = True
                    record.timings = event.timings
                    self._ops._finish(record, None)
                elif isinstance(event, FailedEvent):
                    self.finished = True
                    if self._shutdown and isinstance(event.error, Cancelled):
                        event = FailedEvent(Unavailable(SHUTTING_DOWN))
                    self._ops._finish(record, event.error)
                    event = FailedEvent(_shown(self.caller, event.error))
                yield event
        finally:
            if not record.done:
                gone = self.why_gone() if self.why_gone else Cancelled("the client went away")
                self._ops._finish(record, gone)
            self._ops._forget(self)

    def cancel(self, reason: str = "cancelled by the client") -> None:
        if not self.finished:
            self.handle.cancel(reason)

    def end_for_shutdown(self) -> None:
        """Cancel it; its stream ends with UNAVAILABLE (a retry elsewhere is safe)."""
        if not self.finished:
            self._shutdown = True
            self.handle.cancel(SHUTTING_DOWN)


def _distinct(keys: dict[str, OwnedJob]) -> list[OwnedJob]:
    """A client's jobs, each once (a job is under its server id and its client_request_id)."""
    return list({id(job): job for job in keys.values()}.values())


class Operations:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Per client: server id and client_request_id -> its job. Cancel looks only here,
        # so one client can neither see nor cancel another's jobs.
        self._jobs: dict[str, dict[str, OwnedJob]] = {}
        self._lives: set[LiveSession] = set()
        self._live_records: dict[LiveSession, RequestRecord] = {}
        self._draining = False
        self._idle = asyncio.Event()
        self.policy = ModelPolicy.from_config(engine.config, known=engine.registry.known)
        self._idle.set()
        self.request_listeners: list[Callable[[RequestRecord], None]] = [log_access]
        self.frame_listeners: list[Callable[[LiveFrame], None]] = []

    # --- records ---

    def _finish(self, record: RequestRecord, exc: BaseException | None) -> None:
        if record.done:
            return
        record.finish(exc)
        for listener in self.request_listeners:
            try:
                listener(record)
            except Exception:  # noqa: BLE001 - observing a request never fails it
                log.exception("request listener %r failed", listener)

    @contextlib.contextmanager
    def _recorded(self, caller: Caller, method: str, **fields: Any) -> Iterator[RequestRecord]:
        record = caller.record(method, **fields)
        with self._refused(caller, record):
            yield record
        self._finish(record, None)

    @contextlib.contextmanager
    def _refused(self, caller: Caller, record: RequestRecord) -> Iterator[None]:
        """An error inside finishes ``record`` with it and reaches the caller as it may see it
        (paths of the server's machine cut for a caller without the admin scope)."""
        try:
            yield
        except BaseException as exc:
            self._finish(record, exc)
            shown = _shown(caller, exc)
            if shown is exc:
                raise
            raise shown from None

    def _live_frame(self, frame: LiveFrame) -> None:
        for listener in self.frame_listeners:
            try:
                listener(frame)
            except Exception:  # noqa: BLE001
                log.exception("frame listener %r failed", listener)

    @contextlib.contextmanager
    def converting(self, caller: Caller, method: str) -> Iterator[None]:
        """Around a transport's conversion of a request message: a refusal there (an unknown
        enum number) is recorded like any other, so it reaches the access log and metrics."""
        with self._refused(caller, caller.record(method)):
            yield

    # --- generation ---

    async def generate(self, caller: Caller, request: GenerationRequest) -> OwnedJob:
        record = caller.record(
            "Generate",
            client_request_id=request.client_request_id,
            model=request.model,
            width=request.width,
            height=request.height,
            steps=request.steps,
            priority=request.priority.value,
        )
        with self._refused(caller, record):
            self._check_open()
            request = self._admit(caller, request)
            handle = await self.engine.submit(request, client_id=caller.client_id)
        record.request_id = handle.id
        resolved = handle.job.request  # what Accepted reports (a result_only caller gets none)
        record.model, record.steps = handle.job.spec.name, resolved.steps
        record.width, record.height = resolved.width, resolved.height
        keys = [handle.id]
        if request.client_request_id:
            keys.append(request.client_request_id)
        job = OwnedJob(self, caller, handle, keys, record)
        own = self._jobs.setdefault(caller.client_id, {})
        for key in keys:
            own[key] = job
        self._idle.clear()
        return job

    def cancel(self, caller: Caller, request_id: str) -> bool:
        """Cancel one of the caller's own jobs by server id or client_request_id; False when
        the caller has no such job queued or running."""
        with self._recorded(caller, "Cancel", request_id=request_id):
            if not request_id:
                raise InvalidArgument("request_id", "must name a request (server id or yours)")
            if len(request_id) > MAX_CLIENT_ID_CHARS:  # no request has a longer id
                raise InvalidArgument(
                    "request_id", f"is longer than {MAX_CLIENT_ID_CHARS} chars ({len(request_id)})"
                )
            job = self._jobs.get(caller.client_id, {}).get(request_id)
            if job is None or job.finished:
                return False
            job.cancel("cancelled by the client")
            return True

    def _forget(self, job: OwnedJob) -> None:
        own = self._jobs.get(job.caller.client_id)
        if own is not None:
            for key in job._keys:
                if own.get(key) is job:
                    del own[key]
            if not own:
                del self._jobs[job.caller.client_id]
        self._update_idle()

    def _update_idle(self) -> None:
        if self._jobs or self._lives:
            self._idle.clear()
        else:
            self._idle.set()

    def open_live(self, caller: Caller) -> LiveSession:
        record = caller.record("Live", priority="live")
        with self._refused(caller, record):
            self._check_open()
            # The engine frees a session's place when it makes no more frames; until its
            # stream ends too, it stays with its client: one that stops reading cannot pile
            # up sessions whose last frames the daemon must hold.
            limit = self.engine.config.max_live_sessions
            ended = sum(1 for s in self._lives if s.client_id == caller.client_id and s.ended)
            if ended >= limit:
                raise ResourceExhausted(
                    f"client {caller.client_id!r} has {ended} ended live sessions with frames it "
                    "has not read; the daemon holds at most --max-live-sessions of them per "
                    "client: read your streams, or close them"
                )
            session = self.engine.open_live(caller.client_id)
            session.admit = lambda name: self.policy.admit(name, caller.scope)
            if caller.scope is not Scope.ADMIN:
                session.shown = disclosure.hide_paths
        record.request_id = session.id
        session.on_frame = self._live_frame
        self._live_records[session] = record
        self._lives.add(session)
        self._update_idle()
        return session

    @staticmethod
    def push_live(session: LiveSession, live_input: Callable[[], LiveInput]) -> None:
        """Hand a session the input ``live_input()`` converts; one that cannot be converted
        ends the session with that error, like settings it refuses (both transports)."""
        try:
            converted = live_input()
        except PixelKilnError as exc:
            session.stop(exc)
            return
        session.push(converted)

    async def close_live(self, session: LiveSession) -> None:
        self._lives.discard(session)
        self._update_idle()
        await self.engine.close_live(session)
        record = self._live_records.pop(session, None)
        if record is not None:
            settings = session.settings
            record.model = settings.model or self.engine.config.default_model
            record.width, record.height, record.steps = (
                settings.width,
                settings.height,
                settings.steps,
            )
            record.frames = session.processed
            self._finish(record, session.error)

    # --- models ---

    def list_models(self, caller: Caller) -> tuple[list[ModelInfo], str]:
        with self._recorded(caller, "List"):
            models = self.engine.models()
            if caller.scope is not Scope.ADMIN:
                models = disclosure.public_models(models)
            return models, self.engine.config.default_model

    async def load(self, caller: Caller, name: str) -> ModelInfo:
        with self._recorded(caller, "Load", model=name):
            self._require(caller, Scope.ADMIN, "Load")
            if not name:
                raise InvalidArgument("name", "must name a model")
            check_model_name(name, "name")
            return await self.engine.load(self.policy.admit(name, caller.scope))

    async def unload(self, caller: Caller, name: str) -> UnloadResult:
        with self._recorded(caller, "Unload", model=name):
            self._require(caller, Scope.ADMIN, "Unload")
            if not name:
                raise InvalidArgument("name", "must name a model")
            check_model_name(name, "name")
            return await self.engine.unload_model(self.policy.canonical(name))

    def status(self, caller: Caller) -> DaemonStatus:
        with self._recorded(caller, "Status"):
            status = self.engine.status()
            if caller.scope is not Scope.ADMIN:
                status = disclosure.public_status(status)
            return status

    # --- rules ---

    def _admit(self, caller: Caller, request: GenerationRequest) -> GenerationRequest:
        """The model policy and the per-client job limit, before the request is accepted."""
        if request.priority is Priority.LIVE:
            raise InvalidArgument(
                "priority",
                "LIVE is the class of live sessions' frames (Generator.Live), served before "
                "everything else; a Generate request asks INTERACTIVE or BATCH",
            )
        keys = self._jobs.get(caller.client_id, {})
        if request.client_request_id in keys:
            # One key would name two requests: Cancel would reach the wrong one, and the
            # first would no longer count against the client.
            raise InvalidArgument(
                "client_request_id",
                f"{request.client_request_id[:64]!r} already names one of your requests that "
                "has not ended; give each request its own id",
            )
        limit = self.engine.config.max_jobs_per_client
        own = _distinct(keys)
        active = sum(1 for j in own if not j.handle.job.finished)
        if active >= limit:
            raise ResourceExhausted(
                f"client {caller.client_id!r} has {active} requests queued or running, the "
                "limit set by --max-jobs-per-client; wait for one to finish"
            )
        # A finished job stays with its client until its stream has taken the result: one that
        # does not read (an HTTP/2 window it never grants) would otherwise pile up results the
        # daemon has to hold, as many as it likes. A reader has one or two in flight at most.
        unread = len(own) - active
        if unread >= limit:
            raise ResourceExhausted(
                f"client {caller.client_id!r} has {unread} finished results it has not read; "
                "the daemon holds at most --max-jobs-per-client of them per client: read your "
                "streams, or close them"
            )
        if not request.model:
            return request
        return replace(request, model=self.policy.admit(request.model, caller.scope))

    @staticmethod
    def _require(caller: Caller, scope: Scope, operation: str) -> None:
        if scope is Scope.ADMIN and caller.scope is not Scope.ADMIN:
            raise PermissionDenied(
                f"{operation} needs a token with scope 'admin'; "
                f"{caller.client_id!r} has scope '{caller.scope.value}'"
            )

    def _check_open(self) -> None:
        if self._draining:
            raise Unavailable(SHUTTING_DOWN)

    # --- shutdown ---

    def drain(self) -> None:
        """Refuse new generations and live sessions on every transport from now on."""
        self._draining = True

    def end_all(self) -> None:
        """The grace is over: every job still queued or running, and every live session, ends
        with UNAVAILABLE, which its stream carries to the client before the carriers close."""
        for keys in list(self._jobs.values()):
            for job in _distinct(keys):
                job.end_for_shutdown()
        for session in list(self._lives):
            session.stop(Unavailable(SHUTTING_DOWN))

    async def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for every job and live session opened here to end; True
        when they did."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
