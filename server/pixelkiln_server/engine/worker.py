"""The model worker: one thread that takes jobs from the scheduler and runs them, several
compatible ones as one micro-batch.

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
from ..backends.base import BatchItem, LoadedModel
from ..errors import Internal, PixelKilnError
from ..imaging import codec
from ..types import Failed, Preview, Progress, Result, Timings
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


def batch_key(job: Job) -> tuple[object, ...] | None:
    """Jobs with equal keys can share one pipeline call; None: this one runs alone."""
    req = job.request
    if req.mode != "txt2img":
        return None
    return (job.spec.name, req.width, req.height, req.steps, req.guidance_scale, req.tiling)


class Worker:
    def __init__(
        self,
        scheduler: Scheduler,
        registry: ModelRegistry,
        max_batch: int = 1,
        batch_wait_s: float = 0.0,
    ) -> None:
        self.scheduler = scheduler
        self.registry = registry
        self.max_batch = max(1, max_batch)
        self.batch_wait_s = batch_wait_s
        self.current: list[Job] = []
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
            jobs = [job, *self._companions(job)]
            self.current = jobs
            self.scheduler.busy = True
            try:
                self.run_jobs(jobs)
            finally:
                self.current = []
                self.scheduler.busy = False

    def _companions(self, job: Job) -> list[Job]:
        key = batch_key(job)
        if key is None or self.max_batch == 1:
            return []
        room = self.max_batch - 1
        found = self.scheduler.take_compatible(lambda j: batch_key(j) == key, room)
        deadline = time.perf_counter() + self.batch_wait_s
        while len(found) < room and (left := deadline - time.perf_counter()) > 0:
            self.scheduler.wait_for_more(left)
            found += self.scheduler.take_compatible(
                lambda j: batch_key(j) == key, room - len(found)
            )
        return found

    def run_jobs(self, jobs: list[Job]) -> None:
        started = time.perf_counter()
        live = []
        for job in jobs:
            try:
                job.raise_if_cancelled()
                live.append(job)
            except PixelKilnError as exc:
                job.finish(Failed(exc))
        if not live:
            return
        try:
            with self.registry.lock:
                model = self.registry.get(live[0].spec)
                items = [
                    BatchItem(
                        replace(j.request, prompt=assets.model_prompt(j.request)),
                        j.inputs,
                        _Hooks(j, started),
                    )
                    for j in live
                ]
                outcomes = model.generate_batch(items)
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
                        f"internal error in the model worker (request {job.id}); "
                        "the daemon log has the details"
                    ),
                )
            return
        model_done = time.perf_counter()
        batch_images = sum(j.request.num_images for j in live)
        for job, outcome in zip(live, outcomes, strict=True):
            if isinstance(outcome, PixelKilnError):
                self._fail(job, outcome)
            else:
                self._finish(job, model, outcome, started, model_done, batch_images)

    def _fail(self, job: Job, exc: PixelKilnError) -> None:
        log.info("request %s ended: %s %s", job.id, exc.code.value, exc.message)
        job.finish(Failed(exc))

    def _finish(
        self,
        job: Job,
        model: LoadedModel,
        images: list[np.ndarray],
        started: float,
        done: float,
        batch_images: int,
    ) -> None:
        try:
            job.raise_if_cancelled()
            recipe = recipes.make_recipe(
                job.request, model.spec.revision, model.device, model.dtype, batch_images
            )
            text = {codec.RECIPE_PNG_KEY: recipes.to_json(recipe)}
            outputs, atlas = assets.build_outputs(job.request, images, text)
        except PixelKilnError as exc:
            self._fail(job, exc)
            return
        except Exception:
            log.exception("request %s failed while encoding", job.id)
            self._fail(job, Internal(f"internal error while encoding (request {job.id})"))
            return
        end = time.perf_counter()
        timings = Timings(
            queue_ms=(started - job.submitted_at) * 1000.0,
            model_ms=(done - started) * 1000.0,
            encode_ms=(end - done) * 1000.0,
            total_ms=(end - job.submitted_at) * 1000.0,
        )
        job.finish(Result(images=outputs, recipe=recipe, timings=timings, atlas=atlas))
