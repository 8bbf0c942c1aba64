"""A bounded queue ordered by priority class, then arrival. Thread-safe.

Every change of order re-reports queue positions to the jobs whose position changed.
"""

from __future__ import annotations

import bisect
import itertools
import threading

from ..errors import ResourceExhausted
from ..types import Queued
from .jobs import Job


class Scheduler:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._jobs: list[Job] = []
        self._keys: list[tuple[int, int]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, job: Job) -> None:
        """Enqueue, or raise ResourceExhausted when the queue is full."""
        with self._cond:
            if self._closed:
                from ..errors import Unavailable

                raise Unavailable("the daemon is shutting down")
            if len(self._jobs) >= self.capacity:
                raise ResourceExhausted(
                    f"queue is full ({self.capacity} requests waiting, the limit set by "
                    "--queue-size); retry later"
                )
            job.seq = next(self._seq)
            key = (job.request.priority.rank, job.seq)
            index = bisect.bisect(self._keys, key)
            self._keys.insert(index, key)
            self._jobs.insert(index, job)
            self._report_positions()
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Job | None:
        """Block until a job is ready; None once closed (or after ``timeout``)."""
        with self._cond:
            while not self._jobs and not self._closed:
                if not self._cond.wait(timeout):
                    return None
            if not self._jobs:
                return None
            self._keys.pop(0)
            job = self._jobs.pop(0)
            self._report_positions()
            return job

    def remove(self, job: Job) -> bool:
        with self._cond:
            try:
                index = self._jobs.index(job)
            except ValueError:
                return False
            del self._jobs[index], self._keys[index]
            self._report_positions()
            return True

    def drain(self) -> list[Job]:
        """Close the queue and return every job still waiting."""
        with self._cond:
            self._closed = True
            jobs, self._jobs, self._keys = self._jobs, [], []
            self._cond.notify_all()
            return jobs

    @property
    def depth(self) -> int:
        return len(self._jobs)

    def _report_positions(self) -> None:
        depth = len(self._jobs)
        for position, job in enumerate(self._jobs):
            if job.last_position != position:
                job.last_position = position
                job.emit(Queued(position=position, queue_depth=depth))
