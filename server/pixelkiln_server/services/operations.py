"""The operations both transports call: one rule, one error mapping, whatever the carrier.

The gRPC services and the WebSocket carrier convert protobuf to domain types, find out who
is calling (a :class:`Caller`), and call :class:`Operations`. Everything an operation checks
(scopes, names, ownership of jobs, shutdown) and every status code it answers lives here, so a
new rule lands once and both transports have it. :func:`to_error` is the one mapping from any
exception to what a client sees.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ..auth import Scope
from ..engine.core import Engine, JobHandle
from ..engine.live import LiveSession
from ..errors import Internal, InvalidArgument, PermissionDenied, PixelKilnError, Unavailable
from ..types import DaemonStatus, Event, GenerationRequest, ModelInfo, Result, UnloadResult
from ..types import Failed as FailedEvent

log = logging.getLogger(__name__)

SHUTTING_DOWN = "the daemon is shutting down; retry on another daemon or after it restarts"


@dataclass(frozen=True)
class Caller:
    """Who is asking. ``client_id`` is the identity for fairness and job ownership: a token's
    name when tokens are on, else what the transport can tell (see services/identity.py)."""

    client_id: str
    scope: Scope = Scope.ADMIN
    peer: str = ""


def to_error(exc: BaseException, operation: str, request_id: str = "") -> PixelKilnError:
    """What the client sees for ``exc``: a PixelKilnError as it is; anything else is logged
    with its traceback and becomes INTERNAL with a generic message (never the trace)."""
    where = f"{operation} {request_id}".strip()
    if isinstance(exc, PixelKilnError):
        log.info("%s -> %s: %s", where, exc.code.value, exc.message)
        return exc
    log.error("%s failed", where, exc_info=exc)
    return Internal(f"internal error in {operation}; see the daemon log")


class OwnedJob:
    """A submitted job as its caller sees it: events to iterate, and a cancel."""

    def __init__(self, ops: Operations, caller: Caller, handle: JobHandle, keys: list[str]):
        self._ops = ops
        self.caller = caller
        self.handle = handle
        self.id = handle.id
        self._keys = keys
        self.finished = False

    async def __aiter__(self) -> AsyncIterator[Event]:
        try:
            async for event in self.handle:
                if isinstance(event, Result | FailedEvent):
                    self.finished = True
                yield event
        finally:
            self._ops._forget(self)

    def cancel(self, reason: str = "cancelled by the client") -> None:
        if not self.finished:
            self.handle.cancel(reason)


class Operations:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Per client: server id and client_request_id -> its job. Cancel looks only here,
        # so one client can neither see nor cancel another's jobs.
        self._jobs: dict[str, dict[str, OwnedJob]] = {}
        self._lives: set[LiveSession] = set()
        self._draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    # --- generation ---

    async def generate(self, caller: Caller, request: GenerationRequest) -> OwnedJob:
        self._check_open()
        handle = await self.engine.submit(request, client_id=caller.client_id)
        keys = [handle.id]
        if request.client_request_id:
            keys.append(request.client_request_id)
        job = OwnedJob(self, caller, handle, keys)
        own = self._jobs.setdefault(caller.client_id, {})
        for key in keys:
            own[key] = job
        self._idle.clear()
        return job

    def cancel(self, caller: Caller, request_id: str) -> bool:
        """Cancel one of the caller's own jobs by server id or client_request_id; False when
        the caller has no such job queued or running."""
        if not request_id:
            raise InvalidArgument("request_id", "must name a request (server id or yours)")
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
        self._check_open()
        session = self.engine.open_live(caller.client_id)
        self._lives.add(session)
        self._update_idle()
        return session

    async def close_live(self, session: LiveSession) -> None:
        self._lives.discard(session)
        self._update_idle()
        await self.engine.close_live(session)

    # --- models ---

    def list_models(self, caller: Caller) -> tuple[list[ModelInfo], str]:
        return self.engine.models(), self.engine.config.default_model

    async def load(self, caller: Caller, name: str) -> ModelInfo:
        self._require(caller, Scope.ADMIN, "Load")
        if not name:
            raise InvalidArgument("name", "must name a model")
        return await self.engine.load(name)

    async def unload(self, caller: Caller, name: str) -> UnloadResult:
        self._require(caller, Scope.ADMIN, "Unload")
        if not name:
            raise InvalidArgument("name", "must name a model")
        return await self.engine.unload_model(name)

    def status(self, caller: Caller) -> DaemonStatus:
        return self.engine.status()

    # --- rules ---

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

    async def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for every job and live session opened here to end; True
        when they did."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
