"""A bounded queue: priority classes first (live, interactive, batch), then fairness between
clients (round robin, the client served least recently first), then arrival. Thread-safe.

Every change of order re-reports queue positions to the jobs whose position changed, and
:meth:`Scheduler.take_compatible` hands the runner pool queued jobs it can run in one batch;
:meth:`Scheduler.put_back` returns one a runner never started to the front of its class.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

from ..errors import ResourceExhausted, Unavailable
from ..types import Queued
from .jobs import Job

_MAX_CLIENT_HISTORY = 1024


class Scheduler:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._jobs: list[Job] = []  # arrival order
        self._order: list[Job] = []  # service order, recomputed on every change
        self._served: dict[str, int] = {}  # client -> tick of its last job taken
        self._tick = itertools.count(1)
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        # Jobs handed out and put back (their runner died before starting them): first in
        # their priority class, in arrival order.
        self._returned: set[Job] = set()
        # Set by the pool while no runner is free: a job entering an empty queue of an idle
        # runner starts at once, and gets no Queued event (one message less per request).
        self.busy = False

    def put(self, job: Job) -> None:
        """Enqueue, or raise ResourceExhausted when the queue is full."""
        with self._cond:
            if self._closed:
                raise Unavailable("the daemon is shutting down")
            if len(self._jobs) >= self.capacity:
                raise ResourceExhausted(
                    f"queue is full ({self.capacity} requests waiting, the limit set by "
                    "--queue-size); retry later"
                )
            job.seq = next(self._seq)
            self._jobs.append(job)
            self._changed()
            self._cond.notify()

    def put_back(self, job: Job) -> None:
        """Return a job that was taken but never started (its runner died first) to where it
        stood: ahead of the jobs of its priority class, even when the queue is full (it was
        admitted once). Raises Unavailable once the queue is closed."""
        with self._cond:
            if self._closed:
                raise Unavailable("the daemon is shutting down")
            self._returned.add(job)
            self._jobs.append(job)
            self._jobs.sort(key=lambda j: j.seq)
            self._changed()
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Job | None:
        """Block until a job is ready; None once closed (or after ``timeout``)."""
        with self._cond:
            while not self._jobs and not self._closed:
                if not self._cond.wait(timeout):
                    return None
            if not self._jobs:
                return None
            job = self._order[0]
            self._take(job)
            self._changed()
            return job

    def take_compatible(self, predicate: Callable[[Job], bool], limit: int) -> list[Job]:
        """Remove and return up to ``limit`` queued jobs (in service order) that satisfy
        ``predicate``; used to fill a micro-batch."""
        with self._cond:
            taken = [job for job in self._order if predicate(job)][:limit]
            for job in taken:
                self._take(job)
            if taken:
                self._changed()
            return taken

    def count(self, predicate: Callable[[Job], bool]) -> int:
        """How many queued jobs satisfy ``predicate``."""
        with self._cond:
            return sum(1 for job in self._jobs if predicate(job))

    def remove(self, job: Job) -> bool:
        with self._cond:
            if job not in self._jobs:
                return False
            self._jobs.remove(job)
            self._returned.discard(job)
            self._changed()
            return True

    def drain(self) -> list[Job]:
        """Close the queue and return every job still waiting."""
        with self._cond:
            self._closed = True
            jobs, self._jobs, self._order = self._jobs, [], []
            self._returned.clear()
            self._cond.notify_all()
            return jobs

    @property
    def depth(self) -> int:
        return len(self._jobs)

    def _take(self, job: Job) -> None:
        self._jobs.remove(job)
        self._returned.discard(job)
        self._served[job.client_id] = next(self._tick)
        if len(self._served) > _MAX_CLIENT_HISTORY:
            oldest = min(self._served, key=self._served.__getitem__)
            del self._served[oldest]

    def _changed(self) -> None:
        self._order = self._service_order()
        depth = len(self._order)
        for position, job in enumerate(self._order):
            if position == 0 and job.last_position == -1 and not self.busy:
                continue
            if job.last_position != position:
                job.last_position = position
                job.emit(Queued(position=position, queue_depth=depth))

    def _service_order(self) -> list[Job]:
        order: list[Job] = []
        ranks = sorted({job.request.priority.rank for job in self._jobs})
        for rank in ranks:
            per_client: dict[str, list[Job]] = {}
            for job in self._jobs:
                if job.request.priority.rank != rank:
                    continue
                if job in self._returned:
                    order.append(job)
                else:
                    per_client.setdefault(job.client_id, []).append(job)
            clients = sorted(
                per_client, key=lambda c: (self._served.get(c, 0), per_client[c][0].seq)
            )
            for round_jobs in itertools.zip_longest(*(per_client[c] for c in clients)):
                order.extend(job for job in round_jobs if job is not None)
        return order
