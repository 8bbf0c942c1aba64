"""The model worker: one thread that takes jobs from the scheduler and runs them.

Its interface to the rest of the engine is small (a scheduler to read, jobs that carry their
own event channel and cancel flag) so it can move into a child process per GPU later.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

import numpy as np

from .. import assets
from .. import recipe as recipes
from ..errors import Internal, PixelKilnError
from ..imaging import codec
from ..types import (
    Failed,
    Preview,
    Progress,
    Result,
    Timings,
)
from .jobs import Job
from .registry import ModelRegistry
from .scheduler import Scheduler

log = logging.getLogger(__name__)


class _Hooks:
    """StepHooks for one job: progress events, previews, and the cancel check."""

    def __init__(self, job: Job, started: float) -> None:
        self.job = job
        self.started = started
        self.every = job.request.preview.every_n_steps

    def on_step(self, step: int, total: int) -> bool:
        self.job.raise_if_cancelled()
        elapsed = (time.perf_counter() - self.started) * 1000.0
        self.job.emit(Progress(step=step, total=total, elapsed_ms=elapsed))
        return self.every > 0 and (step % self.every == 0 or step == total)

    def on_preview(self, step: int, images: list[np.ndarray]) -> None:
        encoding = self.job.request.preview.encoding
        encoded = [codec.encode(img, encoding) for img in images]
        self.job.emit(Preview(step=step, images=encoded))


class Worker:
    def __init__(self, scheduler: Scheduler, registry: ModelRegistry) -> None:
        self.scheduler = scheduler
        self.registry = registry
        self.current: Job | None = None
        self._thread = threading.Thread(target=self._run, name="pixelkiln-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            job = self.scheduler.get()
            if job is None:
                return
            self.current = job
            try:
                self.run_job(job)
            finally:
                self.current = None

    def run_job(self, job: Job) -> None:
        started = time.perf_counter()
        queue_ms = (started - job.submitted_at) * 1000.0
        try:
            job.raise_if_cancelled()
            with self.registry.lock:
                model = self.registry.get(job.spec)
                model_request = replace(job.request, prompt=assets.model_prompt(job.request))
                images = model.generate(model_request, job.inputs, _Hooks(job, started))
            model_done = time.perf_counter()
            job.raise_if_cancelled()
            recipe = recipes.make_recipe(
                job.request, model.spec.revision, model.device, model.dtype
            )
            text = {codec.RECIPE_PNG_KEY: recipes.to_json(recipe)}
            outputs, atlas = assets.build_outputs(job.request, images, text)
            done = time.perf_counter()
            timings = Timings(
                queue_ms=queue_ms,
                model_ms=(model_done - started) * 1000.0,
                encode_ms=(done - model_done) * 1000.0,
                total_ms=(done - job.submitted_at) * 1000.0,
            )
            job.finish(Result(images=outputs, recipe=recipe, timings=timings, atlas=atlas))
        except PixelKilnError as exc:
            log.info("request %s ended: %s %s", job.id, exc.code.value, exc.message)
            job.finish(Failed(exc))
        except Exception:
            log.exception("request %s failed", job.id)
            job.finish(
                Failed(
                    Internal(
                        f"internal error in the model worker (request {job.id}); "
                        "the daemon log has the details"
                    )
                )
            )
