"""The Ray test cluster (a head with no CPUs, two 1-CPU nodes), started by a process of its own.

Ray starts its processes with ``subprocess.Popen(preexec_fn=...)``. From a pytest worker
whose gRPC, asyncio and execnet threads are running, a lock held by one of them at the fork
can leave a child stuck before ``exec``: a CI run once saw "The current node timed out during
startup" twice in a row (engine/ray_head.py has the same story for the daemon). Here a fresh
interpreter, whose only other thread is none, starts the cluster; the test process joins it as
a driver, which forks nothing. The child takes commands on stdin (``remove NODE_ID``) and ends
the cluster at EOF, so a test worker that dies takes the cluster with it.

    python tests/ray_cluster.py   # prints {"address": ...} once the nodes are up
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

WORKER_NODES = 2


def _start() -> Any:
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        for _ in range(WORKER_NODES):
            c.add_node(num_cpus=1)
    except Exception:
        c.shutdown()
        raise
    return c


def _serve() -> None:
    # Ray waits a fixed 30 s for a node's raylet; on a loaded 2-core machine a node once
    # missed it. One more try before the fixture fails.
    try:
        c = _start()
    except Exception:  # noqa: BLE001 - "The current node timed out during startup"
        c = _start()
    try:
        print(json.dumps({"address": c.address}), flush=True)
        for line in sys.stdin:
            command, _, node_id = line.strip().partition(" ")
            if command == "remove":
                node = next(n for n in c.worker_nodes if n.node_id == node_id)
                c.remove_node(node, allow_graceful=False)
                print("removed", flush=True)
    finally:
        c.shutdown()


class ChildCluster:
    """The cluster's process, as the tests see it: its address and ``remove_node``."""

    def __init__(self) -> None:
        # No token: this cluster is the tests' own, on loopback, and a driver must not pick
        # up a stray ~/.ray/auth_token that the cluster does not know.
        env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
        self.process = subprocess.Popen(  # noqa: S603 - our interpreter, this file
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True,
        )  # fmt: skip
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in, self._out = self.process.stdin, self.process.stdout
        line = self._out.readline()
        if not line:
            self.process.wait(30)
            raise RuntimeError(f"the Ray test cluster did not start ({self.process.returncode})")
        self.address: str = json.loads(line)["address"]

    def remove_node(self, node_id: str) -> None:
        """Kill the worker node ``node_id`` outright (no graceful drain)."""
        self._in.write(f"remove {node_id}\n")
        self._in.flush()
        if self._out.readline().strip() != "removed":
            raise RuntimeError(f"the Ray test cluster did not remove node {node_id}")

    def shutdown(self) -> None:
        self._in.close()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)


if __name__ == "__main__":
    _serve()
