"""Ray Serve's replicas as the front sees them: each one's view (what Status lists), and the
replacements Serve starts for those that leave, which take their place (restarts and why).

Ray does not tell a front when a replica dies or a replacement fails to start; the front
learns it from the replicas' ``state`` broadcasts (one stops answering) and Serve's status
messages ("A replica failed to start ... Error: ..."), polled once a second, so failed starts
that come faster than that are counted once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from ..runners import port
from ..types import LoadedModelStatus
from .jobs import Job
from .runner_client import READY

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def start_failure(message: str) -> str:
    """The cause in Serve's status message of a deployment whose replicas fail to start
    ("A replica failed to start with exception. Retrying. Error: <traceback>"): the
    traceback's last line (the replica's exception, e.g. its warm-up's load error)."""
    _, _, error = _ANSI.sub("", message).partition("Error:")
    lines = [line.strip() for line in (error or message).splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no cause given"


def deployment_messages(app: str) -> list[tuple[str, str]]:
    """On a thread: (status, message) of each deployment of ``app`` as Serve's controller
    reports them; none when the application is not there."""
    from ray import serve

    found = serve.status().applications.get(app)
    if found is None:
        return []
    return [(str(d.status), d.message or "") for d in found.deployments.values()]


@dataclass
class ReplicaView:
    """One replica as the front last heard of it (what ``Status.runners`` shows)."""

    name: str
    device: str = ""
    state: str = READY
    pid: int | None = None
    node: str = ""
    actor: str = ""
    models: list[LoadedModelStatus] = field(default_factory=list)
    budget_bytes: int = 0
    busy: bool = False
    jobs_run: int = 0
    restarts: int = 0
    last_error: str = ""
    inflight: dict[str, Job] = field(default_factory=dict)

    def loaded(self, name: str) -> bool:
        return any(m.name == name for m in self.models)

    def heard(self, message: port.Message) -> None:
        for key in ("device", "pid", "node", "actor", "busy", "jobs_run"):
            if key in message:
                setattr(self, key, message[key])
        if "models" in message:
            self.models, self.budget_bytes = port.state_from_wire(message)
        if self.device == "auto" and self.models:  # what "auto" turned out to be there
            self.device = self.models[0].device


class Replacements:
    """Replicas that left the application, in order; the next new replica takes the first
    one's place: its restarts (+1, and +1 for each replacement that failed to start meanwhile)
    and why it went. With autoscaling, a replica that leaves without a failure was scaled down,
    not replaced."""

    def __init__(self, autoscaling: bool) -> None:
        self.autoscaling = autoscaling
        self._vacated: list[ReplicaView] = []
        self._start_message = ""  # Serve's last "failed to start" message while none serves

    def arrived(self, name: str) -> ReplicaView:
        view = ReplicaView(name)
        if self._vacated:
            gone = self._vacated.pop(0)
            view.restarts = gone.restarts + 1
            view.last_error = f"it replaced {gone.name}, which stopped: {gone.last_error}"
            log.info("Ray runner: replica %s replaces %s", name, gone.name)
        return view

    def left(self, view: ReplicaView) -> None:
        """``view`` answers no more: killed, crashed, its node gone (Serve replaces it), or
        removed by the autoscaler (not a failure: only one that failed under a job counts)."""
        if not view.last_error:
            if self.autoscaling:
                return
            view.last_error = "it left the application (killed, crashed or its node removed)"
        log.warning("Ray replica %s is gone: %s", view.name, view.last_error)
        self._vacated.append(view)

    def failed_start(self, message: str) -> None:
        """Serve reports ``message`` for a replica that failed to start; a new message is one
        more failed start, counted on the place of the replica it would replace."""
        if message == self._start_message:
            return
        self._start_message = message
        if self._vacated:
            place = self._vacated[0]
            place.restarts += 1
            place.last_error = f"its replacement failed to start: {start_failure(message)}"

    def serving(self) -> None:
        self._start_message = ""
