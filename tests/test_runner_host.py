"""The runner host's own loop (RunnerHost.serve), driven through its port with the fake model
(no torch, no daemon): the thread that reads a run runs it, and what arrives while a batch
runs is read where a job can stop."""

from __future__ import annotations

import queue
import threading
from typing import Any

from pixelkiln_server.backends.fake import FAKE_SPEC
from pixelkiln_server.runners import port
from pixelkiln_server.runners.host import HostConfig, RunnerHost
from pixelkiln_server.types import GenerationRequest, PreviewOptions

TIMEOUT = 30.0


class Host:
    """A RunnerHost serving on a thread of this test, fed and read through queues."""

    def __init__(self) -> None:
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        self.outbox: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.host = RunnerHost(HostConfig(name="t"), self._sent)
        self.thread = threading.Thread(
            target=self.host.serve,
            args=(self.inbox.get, lambda: not self.inbox.empty()),
            name="serving",
            daemon=True,
        )
        self.thread.start()

    def _sent(self, data: bytes) -> None:
        message = port.unpack(data)
        if message.get("ev") != "alive":  # heartbeats come from their own thread
            self.outbox.put((threading.current_thread().name, message))

    def send(self, message: dict[str, Any]) -> None:
        self.inbox.put(port.pack(message))

    def next(self) -> tuple[str, dict[str, Any]]:
        return self.outbox.get(timeout=TIMEOUT)

    def shutdown(self) -> None:
        self.send({"op": "shutdown"})
        self.wait_ended()

    def wait_ended(self) -> None:
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()

    def until(self, predicate: Any) -> list[tuple[str, dict[str, Any]]]:
        seen = []
        while True:
            seen.append(self.next())
            if predicate(seen[-1][1]):
                return seen


def run(job_id: str, prompt: str = "", steps: int = 2, progress: bool = True) -> dict[str, Any]:
    request = GenerationRequest(
        prompt=prompt,
        model="fake",
        width=64,
        height=64,
        steps=steps,
        seed=1,
        guidance_scale=0.0,
        preview=PreviewOptions(progress=progress),
    )
    job = {"id": job_id, "request": port.request_to_wire(request), "spec": FAKE_SPEC}
    return {"op": "run", "jobs": [job]}


def test_the_thread_that_reads_a_run_runs_it() -> None:
    h = Host()
    h.send(run("a", steps=3))
    seen = h.until(lambda m: m.get("done"))
    assert [m.get("ev") for _, m in seen] == [
        "started",
        "progress",
        "progress",
        "progress",
        "result",
    ]
    # Every event of the batch comes from the serving thread: no hand-off to a worker thread.
    assert {name for name, _ in seen} == {"serving"}
    assert not [t for t in threading.enumerate() if t.name == "runner-work"]
    h.shutdown()


def test_while_a_batch_runs_a_cancel_lands_at_the_next_step_and_requests_wait_their_turn() -> None:
    h = Host()
    h.send(run("slow", prompt="step_ms=50", steps=40))
    h.until(lambda m: m.get("ev") == "progress")
    h.send({"op": "status", "call": 7})  # waits for the batch
    h.send({"op": "cancel", "job": "slow", "reason": "stop now"})
    seen = h.until(lambda m: m.get("ev") == "reply")
    events = [m for _, m in seen]
    error = next(m for m in events if m.get("ev") == "error")
    assert error["job"] == "slow" and error["done"] is True
    assert "stop now" in error["error"]["message"]
    steps = [m["step"] for m in events if m.get("ev") == "progress"]
    assert len(steps) < 10  # stopped within a step or two of the cancel, not after 40
    # The status call was answered after the batch ended, with the runner's state.
    assert events[-1]["call"] == 7 and events[-1]["ok"] is True
    assert [s["name"] for s in events[-1]["models"]] == ["fake"]
    h.shutdown()


def test_shutdown_during_a_batch_lets_it_finish_then_serve_returns() -> None:
    h = Host()
    h.send(run("last", prompt="step_ms=20", steps=10))
    h.until(lambda m: m.get("ev") == "progress")
    h.send({"op": "shutdown"})
    h.send(run("never"))  # after the shutdown: not run
    seen = h.until(lambda m: m.get("done"))
    assert seen[-1][1]["ev"] == "result" and seen[-1][1]["job"] == "last"
    h.wait_ended()
    assert h.outbox.empty()


def test_the_front_going_away_mid_batch_ends_serve() -> None:
    h = Host()
    h.send(run("orphan", prompt="step_ms=20", steps=10, progress=False))
    h.until(lambda m: m.get("ev") == "started")
    h.inbox.put(None)  # recv() says the front is gone
    h.wait_ended()


def test_a_batch_stops_at_its_next_step_when_the_front_is_gone() -> None:
    """A killed daemon's runner finished its batch for no one (30-50 s seen); it stops at the
    next step instead (200 steps of 50 ms would take 10 s)."""
    h = Host()
    h.send(run("orphan", prompt="step_ms=50", steps=200))
    h.until(lambda m: m.get("ev") == "progress")
    h.inbox.put(None)
    (_, last), *_ = h.until(lambda m: m.get("done"))[-1:]
    assert last["ev"] == "error" and "front went away" in last["error"]["message"]
    h.wait_ended()


def test_a_request_that_arrives_while_idle_runs_without_waiting_for_another() -> None:
    h = Host()
    h.send({"op": "status", "call": 1})
    _, reply = h.next()
    assert reply["ev"] == "reply" and reply["call"] == 1 and reply["ok"] is True
    h.send(run("b", progress=False))
    seen = h.until(lambda m: m.get("done"))
    assert [m["ev"] for _, m in seen] == ["started", "result"]
    h.shutdown()
