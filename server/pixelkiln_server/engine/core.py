"""The engine facade the services call: submit, cancel, models, status, warm-up, shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace

from .. import __version__, advice, recipe, validation
from ..backends import lora
from ..backends.base import LoadOptions
from ..catalogue import PRESETS, ModelSpec
from ..config import Limits, ServerConfig
from ..errors import Cancelled, InvalidArgument, PixelKilnError, ResourceExhausted, Unavailable
from ..runners import port
from ..runners.host import HostConfig
from ..runners.transports import ProcessTransport, ThreadTransport, Transport
from ..types import (
    Accepted,
    DaemonStatus,
    DecodedInputs,
    Event,
    Failed,
    GenerationRequest,
    ModelInfo,
    Priority,
    Result,
    RunnerInfo,
    UnloadResult,
)
from .jobs import EventChannel, Job
from .live import LiveSession
from .memory import default_cpu_budget, physical_memory_bytes
from .pool import RunnerPool
from .ray_pool import RayPool
from .ray_replicas import ReplicaView
from .registry import ModelRegistry
from .runner_client import READY, RunnerClient, run_message
from .scheduler import Scheduler

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
    """The front's engine: admission, the queue, live sessions and the runner pool. The models
    live in runners (threads or child processes) behind the runner port."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        options = LoadOptions(config.device, config.dtype, config.offline, config.home)
        # Names -> specs and the catalogue; models load in the runners, never here.
        self.registry = ModelRegistry(
            options,
            config.extra_models,
            model_options=config.model_options,
            default_model=config.default_model,
        )
        self.scheduler = Scheduler(config.queue_size)
        self.pool: RunnerPool | RayPool
        if config.runner == "ray":  # Ray Serve replicas (README "Scaling out")
            self.pool = RayPool(
                self.scheduler,
                config.ray,
                self._ray_host_config(),
                self._ray_warm_up,
                hang_timeout_s=config.runner_hang_timeout_s,
                on_health=self._on_health,
            )
        else:
            runners = [
                RunnerClient(name, device, self._transport_factory(host))
                for name, device, host in self._host_configs()
            ]
            self.pool = RunnerPool(
                runners,
                self.scheduler,
                self._warm_runner,
                max_batch=config.max_batch,
                batch_wait_s=config.batch_wait_ms / 1000.0,
                hang_timeout_s=config.runner_hang_timeout_s,
                on_health=self._on_health,
            )
        self.health_listeners: list[Callable[[bool], None]] = []
        self._live_sessions: set[LiveSession] = set()
        self._jobs: dict[str, Job] = {}
        self._by_client_id: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.ready = False
        self._started = False

    def _host_configs(self) -> list[tuple[str, str, HostConfig]]:
        devices = resolve_devices(self.config.devices, self.config.device)
        cpu_runners = sum(1 for d in devices if d == "cpu")
        threads = max(1, (os.cpu_count() or 1) // cpu_runners) if cpu_runners > 1 else 0
        memory_budget = self.config.memory_budget_bytes
        if memory_budget is None:  # on by default: half the machine, shared by CPU runners
            memory_budget = default_cpu_budget(physical_memory_bytes(), cpu_runners)
        out = []
        for index, device in enumerate(devices):
            name = f"{device.replace(':', '')}#{index}"
            out.append(
                (
                    name,
                    device,
                    HostConfig(
                        name=name,
                        device=device,
                        dtype=self.config.dtype,
                        offline=self.config.offline,
                        home=str(self.config.home),
                        memory_budget_bytes=memory_budget,
                        vram_budget_bytes=self.config.vram_budget_bytes,
                        default_model=self.config.default_model,
                        threads=threads if device == "cpu" else 0,
                        allow_faults=self.config.runner_faults,
                        allow_pickle=self.config.allow_pickle,
                    ),
                )
            )
        return out

    @property
    def runners(self) -> Sequence[RunnerClient | ReplicaView]:
        return self.pool.runners

    def _ray_host_config(self) -> HostConfig:
        """Every Ray replica's: the device ``--device`` names (auto: the GPU Ray gave it)."""
        c = self.config
        return HostConfig(
            name="ray",
            device=c.device,
            dtype=c.dtype,
            offline=c.offline,
            home=str(c.home),
            memory_budget_bytes=c.memory_budget_bytes,
            vram_budget_bytes=c.vram_budget_bytes,
            default_model=c.default_model,
            allow_faults=c.runner_faults,
            allow_pickle=c.allow_pickle,
        )

    def _transport_factory(self, host: HostConfig) -> Callable[[], Transport]:
        if self.config.runner == "thread":
            return lambda: ThreadTransport(host)
        if self.config.runner == "process":
            return lambda: ProcessTransport(host)
        raise InvalidArgument(
            "runner", f"must be thread, process or ray, got {self.config.runner!r}"
        )

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.pool.start()

    async def _warm_runner(self, runner: RunnerClient) -> None:
        """Before a runner takes work: its default model loaded, one generation through it."""
        if not self.config.warm_up:
            return
        done: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

        def emit(event: Event) -> None:
            if isinstance(event, Result | Failed) and not done.done():
                done.set_result(event)

        job = self._warm_up_job(emit)
        await runner.load(job.spec)
        runner.run([job])
        event = await done
        if isinstance(event, Failed):
            raise event.error

    def _warm_up_job(self, emit: Callable[[Event], None]) -> Job:
        spec = self.registry.spec(self.config.default_model)
        request = GenerationRequest(
            prompt="warm-up", model=spec.name, steps=1, seed=0, priority=Priority.LIVE
        )
        resolved, inputs = validation.resolve(request, spec, self.config.limits)
        return Job(request=resolved, inputs=inputs, spec=spec, emit=emit, client_id="")

    def _ray_warm_up(self) -> list[port.Message]:
        """What each Ray replica runs before it takes work: as ``_warm_runner``."""
        if not self.config.warm_up:
            return []
        job = self._warm_up_job(lambda event: None)
        return [{"op": "load", "call": 0, "spec": job.spec}, run_message([job])]

    async def warm_up(self) -> None:
        """Wait until a runner has its default model loaded and has run one generation."""
        await self.pool.wait_ready()
        self.ready = True

    def _on_health(self, serving: bool) -> None:
        for listener in self.health_listeners:
            listener(serving and self.ready)

    async def submit(
        self,
        request: GenerationRequest,
        client_id: str = "",
        affinity: str = "",
        decoded: DecodedInputs | None = None,
    ) -> JobHandle:
        """Validate and enqueue. Raises PixelKilnError (bad input, unknown model, queue full).
        ``client_id`` names the connection, for fairness between clients; jobs of one
        ``affinity`` (a live session) stay on one runner. ``decoded``: the input images as
        the caller already decoded them (with :func:`validation.decode_inputs`), not again."""
        spec = self.registry.spec(request.model or self.config.default_model)
        if self.pool.down_reason is not None:
            raise Unavailable(self.pool.down_reason)
        limits = self.config.limits
        if request.init_image is not None or request.mask is not None:
            # Decoding and hashing the inputs (for the recipe) stay off the event loop.
            resolved, inputs, shas = await asyncio.to_thread(_admit, request, spec, limits, decoded)
        else:
            resolved, inputs = validation.resolve(request, spec, limits)
            shas = ("", "")
        if resolved.loras or spec.options.loras:
            loras = lora.resolve_scales(resolved.loras, spec.options.loras, spec.name)
            resolved = replace(resolved, loras=loras)
        channel = EventChannel(
            asyncio.get_running_loop(), self.config.stream_backlog, resolved.preview.result_only
        )

        def emit(event: Event) -> None:
            if isinstance(event, Result | Failed):
                self._forget(job)
            channel.emit(event)

        job = Job(
            request=resolved,
            inputs=inputs,
            spec=spec,
            emit=emit,
            client_id=client_id,
            affinity=affinity,
            input_shas=shas,
            warnings=advice.request_warnings(spec, resolved),
        )
        channel.on_overflow = lambda: self.cancel_job(job, "the client fell behind")
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
        self.pool.wake()
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
            return
        runner = self.pool.runner_of(job)
        if runner is not None:
            runner.cancel(job.id, reason)

    def open_live(self, client_id: str) -> LiveSession:
        """Start a live session, or raise ResourceExhausted at the daemon's session limit or
        the client's share of it."""
        limit = self.config.max_live_sessions
        if len(self._live_sessions) >= limit:
            raise ResourceExhausted(
                f"too many live sessions ({limit} open, the limit set by --max-live-sessions)"
            )
        share = self.config.max_live_per_client
        if sum(1 for s in self._live_sessions if s.client_id == client_id) >= share:
            raise ResourceExhausted(
                f"client {client_id!r} has {share} live sessions open, the most one client may "
                "hold (--max-live-per-client); end one first"
            )
        session = LiveSession(self, client_id, self.config.live_idle_timeout_s)
        self._live_sessions.add(session)
        session.start()
        return session

    def live_ended(self, session: LiveSession) -> None:
        """The session makes no more frames: its place and its runner pin are free."""
        self._live_sessions.discard(session)
        self.pool.release_pin(session.id)

    async def close_live(self, session: LiveSession) -> None:
        self.live_ended(session)
        await session.close()

    @property
    def live_sessions(self) -> int:
        return len(self._live_sessions)

    def models(self) -> list[ModelInfo]:
        loaded = self._loaded_names()
        infos = [replace(i, loaded=i.name in loaded) for i in self.registry.infos()]
        return infos

    def _loaded_names(self) -> set[str]:
        return {m.name for r in self.runners for m in r.models}

    async def load(self, name: str) -> ModelInfo:
        spec = self.registry.spec(name)
        if isinstance(self.pool, RayPool):
            await self.pool.load(spec)  # Serve picks the replica (a holder first)
        else:
            await self.pool.place_for_load(spec.name).load(spec)
        if spec.name not in PRESETS:
            self.registry.register(spec)
        return replace(self.registry.info(spec), loaded=True)

    async def unload_model(self, name: str) -> UnloadResult:
        """Unload from every runner that holds it; report the bytes measured as freed."""
        if isinstance(self.pool, RayPool):
            return await self.pool.unload(name)
        unloaded, freed = False, 0
        for runner in self.pool.runners:
            if runner.state != READY or not runner.loaded(name):
                continue
            result = port.build(UnloadResult, await runner.call("unload", name=name))
            unloaded = unloaded or result.unloaded
            freed += result.freed_bytes
        return UnloadResult(unloaded=unloaded, freed_bytes=freed)

    def status(self) -> DaemonStatus:
        statuses = [m for r in self.runners for m in r.models]
        first = statuses[0] if statuses else None
        return DaemonStatus(
            version=__version__,
            device=first.device if first else self.config.device,
            dtype=first.dtype if first else self.config.dtype,
            memory_used_bytes=sum(m.memory_bytes for m in statuses),
            loaded_models=sorted({m.name for m in statuses}),
            default_model=self.config.default_model,
            queue_depth=self.scheduler.depth,
            queue_capacity=self.scheduler.capacity,
            running=self.running,
            ready=self.ready and self.pool.serving,
            max_message_bytes=self.config.max_message_bytes,
            models=statuses,
            memory_budget_bytes=next((r.budget_bytes for r in self.runners if r.budget_bytes), 0),
            runners=[
                RunnerInfo(
                    name=r.name,
                    device=r.device,
                    state=r.state,
                    loaded_models=[m.name for m in r.models],
                    memory_bytes=sum(m.memory_bytes for m in r.models),
                    running=len(r.inflight),
                    restarts=r.restarts,
                    last_error=r.last_error,
                    pid=r.pid or 0,
                    jobs_run=r.jobs_run,
                )
                for r in self.runners
            ],
        )

    @property
    def running(self) -> int:
        return sum(len(r.inflight) for r in self.runners)

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Fail what is queued, cancel what runs, stop the runners."""
        self.ready = False
        for job in self.scheduler.drain():
            job.cancel("the daemon is shutting down")
            job.finish(Failed(Unavailable("the daemon is shutting down")))
        if self._started:
            await self.pool.stop(timeout)


def _admit(
    request: GenerationRequest, spec: ModelSpec, limits: Limits, decoded: DecodedInputs | None
) -> tuple[GenerationRequest, DecodedInputs, tuple[str, str]]:
    resolved, inputs = validation.resolve(request, spec, limits, decoded)
    return resolved, inputs, (recipe.sha256(request.init_image), recipe.sha256(request.mask))


def resolve_devices(devices: str, device: str) -> list[str]:
    """``--devices``: "auto" (every CUDA device, else the CPU; or ``--device`` when it names
    one), "cpu", or a list such as "cuda:0,cuda:1" (a device named twice gets two runners)."""
    if devices and devices != "auto":
        names = [d.strip() for d in devices.split(",") if d.strip()]
        if not names:
            raise InvalidArgument("devices", "must name at least one device")
        return names
    if device and device != "auto":
        return [device]
    from ..backends.diffusers_load import auto_devices  # imports torch to count devices

    found: list[str] = auto_devices()
    return found
