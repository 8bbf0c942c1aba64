"""The runner host: the model side of the runner port, one per device.

It owns the loaded models (a :class:`ModelRegistry` with its own memory budget and LRU), runs
one batch of jobs at a time and reports every step as port messages. One thread reads and
works: it waits for a message when idle, and while a batch runs it reads what has arrived
at each point where a job can stop (each step, the encode), so a ``cancel`` lands there.
A second thread proves it is alive. It knows nothing of the front: only messages come in
and go out.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import assets, heap
from ..backends.base import BatchItem, LoadedModel, LoadOptions
from ..catalogue import ModelSpec
from ..engine.registry import ModelRegistry
from ..errors import Cancelled, Internal, PixelKilnError
from ..imaging import codec, overlay
from ..tracepoints import mark
from ..types import DecodedInputs, GenerationRequest
from . import port, results

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostConfig:
    """What a runner needs to start: its name and device, and its memory budgets."""

    name: str = "runner"
    device: str = "auto"
    dtype: str = "auto"
    offline: bool = False
    home: str = "."
    memory_budget_bytes: int | None = None
    vram_budget_bytes: int | None = None
    default_model: str = ""
    # CPU threads for this runner's kernels (0: the library's default).
    threads: int = 0
    # Tests only: accept ``fault`` messages that make this runner die at a chosen point.
    allow_faults: bool = False
    # Load pickle-based weights (serve --allow-pickle); otherwise safetensors only.
    allow_pickle: bool = False


# Stream-batch frames whose input hashes are kept: more than a stream holds in flight (its
# steps - 1) times the live sessions a runner serves at once.
STREAM_SHAS_KEPT = 256


@dataclass
class _RunJob:
    id: str
    request: GenerationRequest
    spec: ModelSpec
    inputs: DecodedInputs
    shas: tuple[str, str]


class _Hooks:
    """StepHooks for one job: progress and previews as messages, and the cancel check."""

    def __init__(self, host: RunnerHost, job: _RunJob, started: float) -> None:
        self.host = host
        self.job = job
        self.started = started
        self.every = job.request.preview.every_n_steps
        self.progress = job.request.preview.progress
        self.notes: dict[str, str] = {}

    def on_step(self, step: int, total: int) -> bool:
        self.host.raise_if_cancelled(self.job.id)
        self.host.fault("step")
        if step == total:
            self.host.fault("decode")
        if self.progress:
            elapsed = (time.perf_counter() - self.started) * 1000.0
            self.host.send(
                {"ev": "progress", "job": self.job.id, "step": step, "total": total,
                 "elapsed_ms": elapsed}
            )  # fmt: skip
        return self.every > 0 and (step % self.every == 0 or step == total)

    def on_note(self, key: str, value: str) -> None:
        """What the backend did with the live options (see :func:`results.noted`)."""
        self.notes[key] = value

    def on_preview(self, step: int, images: list[np.ndarray]) -> None:
        encoding = self.job.request.preview.encoding
        encoded = [codec.encode(img, encoding) for img in images]
        self.host.send({"ev": "preview", "job": self.job.id, "step": step, "images": encoded})


class RunnerHost:
    """``own_process``: the host is its process's only tenant (a runner child, a Ray
    replica), so it may freeze the heap after each load (heap.py)."""

    def __init__(
        self, config: HostConfig, send: Callable[[bytes], None], own_process: bool = False
    ) -> None:
        self.config = config
        self._own_process = own_process
        self._send_bytes = send
        self._send_lock = threading.Lock()
        # Requests that serve has read and not yet carried out (those read while a batch runs
        # wait for it). serve's recv and waiting: None and never without serve (Ray replicas).
        self._work: deque[port.Message] = deque()
        self._recv: Callable[[], bytes | None] | None = None
        self._waiting: Callable[[], bool] = lambda: False
        self._cancelled: dict[str, str] = {}
        self._current: list[_RunJob] = []
        self._held: port.Message | None = None  # see _end
        self._busy = False
        self._stopped = threading.Event()
        # The front is gone (its connection ended): a running batch stops at its next step
        # instead of finishing for no one (a runner outlived a killed daemon by 30-50 s).
        self._front_gone = False
        self._faults: dict[str, str] = {}
        # Input hashes of recent stream-batch frames by client_request_id: a frame's image
        # answers an earlier input, and its recipe names that input (see _finish).
        self._stream_shas: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self.registry = ModelRegistry(
            LoadOptions(
                config.device,
                config.dtype,
                config.offline,
                Path(config.home),
                allow_pickle=config.allow_pickle,
            ),
            default_model=config.default_model,
            memory_budget_bytes=config.memory_budget_bytes,
            vram_budget_bytes=config.vram_budget_bytes,
            in_use=lambda: {job.spec.name for job in self._current},
        )

    # -- the two threads -----------------------------------------------------------------

    def serve(self, recv: Callable[[], bytes | None], waiting: Callable[[], bool]) -> None:
        """Run until ``shutdown`` or the front goes away, on the calling thread; a heartbeat
        thread reports. ``recv`` blocks for the next message (None: the front is gone);
        ``waiting()`` says whether one has arrived, without blocking.

        The thread that reads a ``run`` runs it: no hand-off to another thread between the
        message and the model (a wake-up on the path of every request). While it runs, the
        messages that arrive are read at each point where a job can stop (``_read_waiting``):
        a cancel or fault takes effect there, other requests wait their turn."""
        self._recv, self._waiting = recv, waiting
        beat = threading.Thread(target=self._heartbeat, name="runner-beat", daemon=True)
        beat.start()
        try:
            while not self._stopped.is_set():
                if not self._work:
                    data = recv()
                    if data is None:
                        break
                    mark("runner.received")
                    self._take(port.unpack(data))
                    continue
                self._busy = True
                try:
                    self.handle(self._work.popleft())
                finally:
                    self._busy = False
        finally:
            self._stopped.set()

    def _take(self, message: port.Message) -> None:
        """A message read by ``serve``: control at once, requests into the work queue."""
        op = message.get("op")
        if op == "cancel":
            self.cancel(str(message["job"]), str(message.get("reason", "")))
        elif op == "fault":
            if self.config.allow_faults:
                self._faults[str(message["point"])] = str(message["action"])
        elif op == "shutdown":
            self._stopped.set()
        else:
            self._work.append(message)

    def _read_waiting(self) -> None:
        """While a batch runs: read every message that has arrived, without blocking."""
        recv = self._recv
        while recv is not None and not self._stopped.is_set() and self._waiting():
            data = recv()
            if data is None:  # the front is gone: the batch has no one to report to
                self._front_gone = True
                self._stopped.set()
                return
            self._take(port.unpack(data))

    def _heartbeat(self) -> None:
        while not self._stopped.wait(port.HEARTBEAT_S):
            self.send({"ev": "alive", "busy": self._busy})

    # -- messages ------------------------------------------------------------------------

    def send(self, message: port.Message) -> None:
        data = port.pack(message)
        with self._send_lock:
            try:
                self._send_bytes(data)
            except (OSError, EOFError, ValueError):
                self._front_gone = True  # nothing left to tell it
                self._stopped.set()

    def cancel(self, job_id: str, reason: str) -> None:
        """Stop ``job_id`` at its next step (any thread: a Ray replica's, or serve's)."""
        self._cancelled[job_id] = reason

    def handle(self, message: port.Message) -> None:
        """Carry out one request (``run``, ``load``, ``unload``, ``status``) on the calling
        thread, its events and reply going to ``send`` (``serve`` calls it on its own thread;
        a Ray Serve replica calls it for each job)."""
        if not self._own_process:
            self._handle(message)
            return
        loaded = {id(m) for m in self.registry.loaded()}
        try:
            self._handle(message)
        finally:
            now = {id(m) for m in self.registry.loaded()}
            if now != loaded:  # a load, an unload, or both (an eviction to make room)
                (heap.release if loaded - now else heap.settle)()

    def _handle(self, message: port.Message) -> None:
        op = message.get("op")
        if op == "run":
            self._held = None
            self._run([self._job(j) for j in message["jobs"]])
            # The batch's last event, its end and the runner's state go as one message: the
            # front frees the runner as it delivers the last result, so a client's next
            # request finds it free (one pipe message and one wake-up of the front, not three).
            last, self._held = self._held or {"ev": "done"}, None
            end = {**last, "done": True, **self.state()}
            mark("runner.to_front")
            self.send(end)
            return
        call = message.get("call")
        try:
            value = self._call(op, message)
        except PixelKilnError as exc:
            reply = {"ok": False, "error": port.error_to_wire(exc)}
        except Exception:
            log.exception("runner %s: %s failed", self.config.name, op)
            error = Internal(f"internal error in runner {self.config.name} ({op})")
            reply = {"ok": False, "error": port.error_to_wire(error)}
        else:
            reply = {"ok": True, "value": value}
        # With the runner's state: the front knows it when the reply lands.
        self.send({"ev": "reply", "call": call, **reply, **self.state()})

    def _call(self, op: Any, message: port.Message) -> Any:
        if op == "load":
            spec = port.spec_from_wire(message["spec"])
            self.fault("load")
            self.registry.get(spec)
            return {}
        if op == "unload":
            return self.registry.unload(str(message["name"]))
        if op == "status":
            return self.state()
        raise Internal(f"runner {self.config.name}: unknown operation {op!r}")

    def state(self) -> dict[str, Any]:
        return {
            "models": self.registry.statuses(),
            "budget": self.registry.budget_bytes or 0,
        }

    def _job(self, data: dict[str, Any]) -> _RunJob:
        shas = data.get("shas") or ("", "")
        return _RunJob(
            id=str(data["id"]),
            request=port.request_from_wire(data["request"]),
            spec=port.spec_from_wire(data["spec"]),
            inputs=port.inputs_from_wire(data.get("inputs") or {}),
            shas=(str(shas[0]), str(shas[1])),
        )

    def fault(self, point: str) -> None:
        """Tests: fail here if a ``fault`` message asked for it (points: load, step, decode
        (after the last denoising step, as the VAE decode starts), encode; actions: exit,
        segfault, raise, garble: send the front a message it cannot read)."""
        action = self._faults.pop(point, None)
        if action == "exit":
            os._exit(3)
        elif action == "segfault":
            faulthandler._sigsegv()  # type: ignore[attr-defined]
        elif action == "raise":
            raise RuntimeError(f"fault injected at {point}")
        elif action == "garble":  # a message the front cannot read (not msgpack)
            with self._send_lock:
                self._send_bytes(b"\xc1 garbled")

    def raise_if_cancelled(self, job_id: str) -> None:
        """Where a job can stop: read what has arrived (a cancel), then stop if cancelled."""
        self._read_waiting()
        if self._front_gone:
            raise Cancelled("the daemon's front went away")
        reason = self._cancelled.get(job_id)
        if reason is not None:
            raise Cancelled(reason or "cancelled")

    # -- running a batch -------------------------------------------------------------------

    def _run(self, jobs: list[_RunJob]) -> None:
        started = time.perf_counter()
        # The front sends a batch only after the last one is done, so a cancel of any other
        # job is for one that already ended: forget it.
        ids = {job.id for job in jobs}
        self._cancelled = {k: v for k, v in list(self._cancelled.items()) if k in ids}
        for job in jobs:
            self.send({"ev": "started", "job": job.id})
        live = []
        for job in jobs:
            try:
                self.raise_if_cancelled(job.id)
                live.append(job)
            except PixelKilnError as exc:
                self._fail(job, exc)
        if not live:
            return
        self._current = live
        try:
            with self.registry.lock:
                model = self.registry.get(live[0].spec)
                hooks = [_Hooks(self, j, started) for j in live]
                items = [
                    BatchItem(
                        replace(j.request, prompt=assets.model_prompt(j.request)), j.inputs, h
                    )
                    for j, h in zip(live, hooks, strict=True)
                ]
                mark("runner.model_start")
                outcomes = model.generate_batch(items)
                mark("runner.model_end")
        except PixelKilnError as exc:
            for job in live:
                self._fail(job, exc)
            return
        except Exception:
            log.exception("requests %s failed", ",".join(j.id for j in live))
            for job in live:
                self._fail(
                    job,
                    Internal(
                        f"internal error in the model runner (request {job.id}); "
                        "the daemon log has the details"
                    ),
                )
            return
        finally:
            self._current = []
        model_ms = (time.perf_counter() - started) * 1000.0
        batch_images = sum(j.request.num_images for j in live)
        for job, outcome, hook in zip(live, outcomes, hooks, strict=True):
            if isinstance(outcome, PixelKilnError):
                self._fail(job, outcome)
            else:
                self._finish(job, model, outcome, model_ms, batch_images, hook.notes)

    def _answered_shas(self, job: _RunJob, answers: str) -> tuple[str, str]:
        """The input hashes of the frame whose image this is: with stream batch the image comes
        from an earlier input (``answers``, its client_request_id), not from ``job``'s."""
        if not job.request.stream_batch:
            return job.shas
        self._stream_shas[job.request.client_request_id] = job.shas
        while len(self._stream_shas) > STREAM_SHAS_KEPT:
            self._stream_shas.popitem(last=False)
        return self._stream_shas.get(answers or job.request.client_request_id, job.shas)

    def _fail(self, job: _RunJob, exc: PixelKilnError) -> None:
        log.info("request %s ended: %s %s", job.id, exc.code.value, exc.message)
        self._end({"ev": "error", "job": job.id, "error": port.error_to_wire(exc)})

    def _end(self, message: port.Message) -> None:
        """A job's last event (result or error): held until the next one, so that the batch's
        last goes out with its end (see ``_handle``)."""
        if self._held is not None:
            self.send(self._held)
        self._held = message

    def _finish(
        self,
        job: _RunJob,
        model: LoadedModel,
        images: list[np.ndarray],
        model_ms: float,
        batch_images: int,
        notes: dict[str, str],
    ) -> None:
        encode_started = time.perf_counter()
        try:
            self.raise_if_cancelled(job.id)
            self.fault("encode")
            shas = self._answered_shas(job, notes.get("answers", ""))
            init, mask = job.inputs.init_rgb, job.inputs.mask
            if init is not None and mask is not None:  # inpainting: the rest stays as it was
                images = [overlay.keep_unmasked(image, init, mask) for image in images]
            result = results.build(job.request, model, images, batch_images, notes, shas)
        except PixelKilnError as exc:
            self._fail(job, exc)
            return
        except Exception:
            log.exception("request %s failed while encoding", job.id)
            self._fail(job, Internal(f"internal error while encoding (request {job.id})"))
            return
        encode_ms = (time.perf_counter() - encode_started) * 1000.0
        self._end(
            {"ev": "result", "job": job.id, "result": result, "model_ms": model_ms,
             "encode_ms": encode_ms}
        )  # fmt: skip
