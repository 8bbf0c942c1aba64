"""The engine facade the services call: submit, cancel, models, status, warm-up, shutdown."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import replace

from .. import __version__, validation
from ..backends import lora
from ..backends.base import LoadOptions
from ..config import ServerConfig
from ..errors import Cancelled, PixelKilnError, ResourceExhausted, Unavailable
from ..types import (
    Accepted,
    DaemonStatus,
    Event,
    Failed,
    GenerationRequest,
    ModelInfo,
    Priority,
    Result,
    UnloadResult,
)
from .jobs import EventChannel, Job
from .live import LiveSession
from .registry import ModelRegistry
from .scheduler import Scheduler
from .worker import Worker

log = logging.getLogger(__name__)


class JobHandle:
    """What a transport holds for one submitted request: its id, its events, its cancel."""

    def __init__(self, engine: Engine, job: Job, channel: EventChannel) -> None:
        self._engine = engine
        self.job = job
        self.id = job.id
        self._channel = channel

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._channel.__aiter__()

    def cancel(self, reason: str = "cancelled by the client") -> None:
        self._engine.cancel_job(self.job, reason)


class Engine:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        options = LoadOptions(config.device, config.dtype, config.offline, config.home)
        self.registry = ModelRegistry(
            options,
            config.extra_models,
            model_options=config.model_options,
            default_model=config.default_model,
            memory_budget_bytes=config.memory_budget_bytes,
            vram_budget_bytes=config.vram_budget_bytes,
            in_use=lambda: {job.spec.name for job in self.worker.current},
        )
        self.scheduler = Scheduler(config.queue_size)
        self.worker = Worker(
            self.scheduler, self.registry, config.max_batch, config.batch_wait_ms / 1000.0
        )
        self._live_sessions: set[LiveSession] = set()
        self._jobs: dict[str, Job] = {}
        self._by_client_id: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.ready = False
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.worker.start()

    async def warm_up(self) -> None:
        """Load the default model and run one tiny generation through the whole path."""
        spec = self.registry.spec(self.config.default_model)
        request = GenerationRequest(
            prompt="warm-up", model=spec.name, steps=1, seed=0, priority=Priority.LIVE
        )
        handle = await self.submit(request)
        async for event in handle:
            if isinstance(event, Failed):
                raise event.error
        self.ready = True

    async def submit(self, request: GenerationRequest, client_id: str = "") -> JobHandle:
        """Validate and enqueue. Raises PixelKilnError (bad input, unknown model, queue full).
        ``client_id`` names the connection, for fairness between clients."""
        spec = self.registry.spec(request.model or self.config.default_model)
        limits = self.config.limits
        if request.init_image is not None or request.mask is not None:
            resolved, inputs = await asyncio.to_thread(validation.resolve, request, spec, limits)
        else:
            resolved, inputs = validation.resolve(request, spec, limits)
        if resolved.loras or spec.options.loras:
            loras = lora.resolve_scales(resolved.loras, spec.options.loras, spec.name)
            resolved = replace(resolved, loras=loras)
        channel = EventChannel(asyncio.get_running_loop())

        def emit(event: Event) -> None:
            if isinstance(event, Result | Failed):
                self._forget(job)
            channel.emit(event)

        job = Job(request=resolved, inputs=inputs, spec=spec, emit=emit, client_id=client_id)
        assert resolved.seed is not None and resolved.guidance_scale is not None
        channel.emit(
            Accepted(
                request_id=job.id,
                client_request_id=resolved.client_request_id,
                model=spec.name,
                seed=resolved.seed,
                width=resolved.width,
                height=resolved.height,
                steps=resolved.steps,
                guidance_scale=resolved.guidance_scale,
                num_images=resolved.num_images,
            )
        )
        with self._lock:
            self._jobs[job.id] = job
            if resolved.client_request_id:
                self._by_client_id[resolved.client_request_id] = job
        try:
            self.scheduler.put(job)
        except PixelKilnError:
            self._forget(job)
            raise
        return JobHandle(self, job, channel)

    def _forget(self, job: Job) -> None:
        with self._lock:
            self._jobs.pop(job.id, None)
            cid = job.request.client_request_id
            if cid and self._by_client_id.get(cid) is job:
                del self._by_client_id[cid]

    def cancel(self, request_id: str) -> bool:
        """Cancel by server id or client request id; False when nothing is queued or running."""
        with self._lock:
            job = self._jobs.get(request_id) or self._by_client_id.get(request_id)
        if job is None or job.finished:
            return False
        self.cancel_job(job, "cancelled by the client")
        return True

    def cancel_job(self, job: Job, reason: str) -> None:
        job.cancel(reason)
        if self.scheduler.remove(job):
            job.finish(Failed(Cancelled(reason)))

    def open_live(self, client_id: str) -> LiveSession:
        """Start a live session, or raise ResourceExhausted at the daemon's session limit."""
        limit = self.config.max_live_sessions
        if len(self._live_sessions) >= limit:
            raise ResourceExhausted(
                f"too many live sessions ({limit} open, the limit set by --max-live-sessions)"
            )
        session = LiveSession(self, client_id, self.config.live_idle_timeout_s)
        self._live_sessions.add(session)
        session.start()
        return session

    async def close_live(self, session: LiveSession) -> None:
        self._live_sessions.discard(session)
        await session.close()

    @property
    def live_sessions(self) -> int:
        return len(self._live_sessions)

    def models(self) -> list[ModelInfo]:
        return self.registry.infos()

    async def load(self, name: str) -> ModelInfo:
        spec = self.registry.spec(name)
        await asyncio.to_thread(self.registry.get, spec)
        return self.registry.info(spec)

    async def unload_model(self, name: str) -> UnloadResult:
        """Unload and report the bytes measured as freed."""
        return await asyncio.to_thread(self.registry.unload, name)

    def status(self) -> DaemonStatus:
        loaded = self.registry.loaded()
        first = loaded[0] if loaded else None
        return DaemonStatus(
            version=__version__,
            device=first.device if first else self.config.device,
            dtype=first.dtype if first else self.config.dtype,
            memory_used_bytes=sum(m.memory_bytes() for m in loaded),
            loaded_models=[m.spec.name for m in loaded],
            default_model=self.config.default_model,
            queue_depth=self.scheduler.depth,
            queue_capacity=self.scheduler.capacity,
            running=len(self.worker.current),
            ready=self.ready,
            max_message_bytes=self.config.max_message_bytes,
            models=self.registry.statuses(),
            memory_budget_bytes=self.registry.budget_bytes or 0,
        )

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Fail what is queued, cancel what runs, stop the worker."""
        self.ready = False
        for job in self.scheduler.drain():
            job.cancel("the daemon is shutting down")
            job.finish(Failed(Unavailable("the daemon is shutting down")))
        for job in list(self.worker.current):
            job.cancel("the daemon is shutting down")
        if self._started and not await asyncio.to_thread(self.worker.join, timeout):
            log.warning("the model worker did not stop within %.1f s", timeout)
