"""Helpers shared by the benchmark scripts: statistics, interleaved timing, tables, JSON,
free ports, and daemons to measure (a child process, or a thread with its own event loop).

Benchmarks report; they never assert timings (see DESIGN.md "Performance: how we measure").
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import math
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in [0, 100] (numpy's default method)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """n, median, p95, p99, min, max and mean of a list of times (same unit in, same out)."""
    n, pick = len(values), percentile
    out = {"n": n, "median": pick(values, 50), "p95": pick(values, 95), "p99": pick(values, 99)}
    out.update(min=pick(values, 0), max=pick(values, 100), mean=sum(values) / n if n else math.nan)
    return out


def interleave(
    arms: dict[str, Callable[[], Any]],
    runs: int,
    gap_s: float = 0.0,
    self_timed: Sequence[str] = (),
) -> dict[str, list[float]]:
    """Time each arm ``runs`` times in milliseconds, interleaved round by round (A B, B A, ...,
    the order rotated each round) so that machine noise falls on every arm alike. ``gap_s``:
    an untimed pause before each call, so that no arm starts while the last one's threads
    are still spinning (each call then meets an idle machine, as an artist's request does).
    ``self_timed``: arms that return their own time in ms (work timed in another process,
    without the hop that reaches it)."""
    names = list(arms)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(runs):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            if gap_s:
                time.sleep(gap_s)
            t0 = time.perf_counter()
            got = arms[name]()
            took = (time.perf_counter() - t0) * 1000.0
            times[name].append(float(got) if name in self_timed else took)
    return times


def ratio_interval(
    values: Sequence[float], base: Sequence[float], rounds: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """A 90% bootstrap interval of median(values) / median(base): rounds are resampled with
    their pairs kept (``interleave`` ran them side by side). Where it straddles a goal, one
    run cannot say which side the arm is on."""
    rng, n = random.Random(seed), len(values)
    ratios = []
    for _ in range(rounds):
        pick = [rng.randrange(n) for _ in range(n)]
        ratios.append(
            percentile([values[i] for i in pick], 50) / percentile([base[i] for i in pick], 50)
        )
    return percentile(ratios, 5), percentile(ratios, 95)


def compare(times: dict[str, list[float]], baseline: str) -> dict[str, dict[str, Any]]:
    """Per arm of an ``interleave`` result: ``ms`` (summary) and, for all but ``baseline``,
    ``ratio_median`` (arm median / baseline median) with its 90% bootstrap interval
    ``ratio_90``, and ``paired_diff_ms`` (round by round)."""
    base = times[baseline]
    out: dict[str, dict[str, Any]] = {}
    for name, values in times.items():
        out[name] = {"ms": summarize(values)}
        if name != baseline:
            out[name]["ratio_median"] = percentile(values, 50) / percentile(base, 50)
            out[name]["ratio_90"] = ratio_interval(values, base)
            diffs = [v - b for v, b in zip(values, base, strict=True)]
            out[name]["paired_diff_ms"] = summarize(diffs)
    return out


def pooled(
    groups: Sequence[dict[str, list[float]]], baseline: str, rounds: int = 2000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """``compare`` over several independent groups (each an ``interleave`` result from its own
    fresh processes), pooled: per arm ``ms`` over all rounds and, for all but ``baseline``,
    ``ratio_median`` (pooled median / pooled baseline median), ``ratio_90`` (a 90% bootstrap
    interval that resamples whole groups, so what differs from one process to the next is
    inside it, not only the noise within a group), ``group_ratios`` (each group's own ratio)
    and ``paired_diff_ms`` (round by round, every group)."""
    rng, k = random.Random(seed), len(groups)
    picks = [[groups[rng.randrange(k)] for _ in range(k)] for _ in range(rounds)]

    def ratio(chosen: Sequence[dict[str, list[float]]], name: str) -> float:
        values = [v for g in chosen for v in g[name]]
        return percentile(values, 50) / percentile([v for g in chosen for v in g[baseline]], 50)

    out: dict[str, dict[str, Any]] = {}
    for name in groups[0]:
        out[name] = {"ms": summarize([v for g in groups for v in g[name]])}
        if name == baseline:
            continue
        boot = [ratio(pick, name) for pick in picks]
        diffs = [v - b for g in groups for v, b in zip(g[name], g[baseline], strict=True)]
        out[name].update(
            ratio_median=ratio(groups, name),
            ratio_90=(percentile(boot, 5), percentile(boot, 95)),
            group_ratios=[ratio([g], name) for g in groups],
            paired_diff_ms=summarize(diffs),
        )
    return out


def verdict(value: float, limit: float) -> str:
    return "PASS" if value <= limit else "MISS"


def print_goals(goals: Sequence[tuple[str, float, float]]) -> list[dict[str, Any]]:
    """Print each (name, value, limit) as PASS/MISS (value <= limit); returns them for JSON."""
    out = [dict(name=n, value=v, limit=lim, verdict=verdict(v, lim)) for n, v, lim in goals]
    for g in out:
        print(f"  {g['verdict']}  {g['name']}: {g['value']:.3f} (goal <= {g['limit']})")
    return out


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned table; floats get 2 decimals (3 below 10)."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "-" if math.isnan(v) else f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"
        return str(v)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, creating the folder; NaN becomes null."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(data), indent=2) + "\n")
    return path


def environment() -> dict[str, Any]:
    """Where the numbers came from: cores, torch threads, versions."""
    import grpc
    import torch

    env: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cuda": torch.cuda.is_available(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "grpcio": grpc.__version__,
        "platform": platform.platform(),
        "loadavg_1m": load_average(),  # other work on the machine when measured
        "diffusers": importlib.metadata.version("diffusers"),
    }
    return env


def env_line(env: dict[str, Any]) -> str:
    """One line for the report; shows ``loadavg_1m_after`` too once set."""
    load = f"{env['loadavg_1m']:.2f}"
    if "loadavg_1m_after" in env:
        load += f" before, {env['loadavg_1m_after']:.2f} after"
    return (
        f"env: {env['usable_cores']} usable cores (cpu_count {env['cpu_count']}), "
        f"torch threads {env['torch_threads']} (interop {env['torch_interop_threads']}, "
        f"OMP_WAIT_POLICY {env.get('omp_wait_policy') or 'unset'}), "
        f"load average {load}, cuda {env['cuda']}, python {env['python']}, "
        f"torch {env['torch']}, diffusers {env['diffusers']}, grpcio {env['grpcio']}"
    )


def load_average() -> float:
    """The 1-minute load average (other work on the machine); NaN where the platform has none
    (Windows)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan


def cpu_ms(pid: int) -> float:
    """CPU time (user + system, ms) a process has used so far: Linux's /proc; NaN where it
    cannot be read (another platform, a process gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def pin_threads(threads: int = 0, passive: bool = False) -> int:
    """Set OMP/MKL_NUM_THREADS (default: usable cores) before torch is imported, so this
    process and the child daemons (they inherit it) get identical thread pools. ``passive``:
    OMP_WAIT_POLICY=PASSIVE (no spin-waiting; steadier on a loaded machine, a bit slower)."""
    if passive:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    threads = threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or usable_cores()
    if "torch" in sys.modules:
        print("warning: torch already imported; OMP_NUM_THREADS may not apply", file=sys.stderr)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    return threads


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopThread:
    """An asyncio loop in a daemon thread; ``run(coro)`` runs a coroutine there and waits."""

    def __init__(self, name: str = "bench-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class ThreadDaemon:
    """A Daemon on its own event loop in a background thread of this process (shares the GIL
    and torch's thread pool with the caller), its model runner on a thread too (so models
    built in this process can be served). ``address`` once started."""

    def __init__(self, **config: Any) -> None:
        from pixelkiln_server.app import Daemon
        from pixelkiln_server.config import ServerConfig

        self._config = ServerConfig(**{"port": 0, "runner": "thread", **config})
        self._factory = Daemon
        self._loop = LoopThread("bench-daemon")

    def __enter__(self) -> ThreadDaemon:
        async def start() -> Any:
            daemon = self._factory(self._config)  # grpc.aio binds to the loop it is built on
            await daemon.start()
            await daemon.wait_ready()
            return daemon

        self.daemon = self._loop.run(start(), timeout=300)
        return self

    @property
    def address(self) -> str:
        return self.daemon.address

    @property
    def runner_registry(self) -> Any:
        """The models of the (in-thread) runner."""
        return self.daemon.engine.runners[0].transport.host.registry

    def __exit__(self, *exc: object) -> None:
        self._loop.run(self.daemon.stop(0), timeout=30)
        self._loop.close()


class ChildDaemon:
    """``python -m pixelkiln.cli serve`` in a child process on a free port, ready (health
    SERVING) once entered. ``threads`` sets OMP/MKL threads, hence torch's, in the child.
    ``--runtime torch`` unless ``extra`` names one: the benchmarks compare the daemon with
    torch in-process (serve's default, ``auto``, may pick ONNX Runtime). ``ws``: the WebSocket
    carrier on a free port too (``ws_url``); otherwise off."""

    def __init__(
        self, *extra: str, threads: int | None = None, timeout: float = 300.0, ws: bool = False
    ) -> None:
        self.port, self.extra, self.threads, self.timeout = free_port(), extra, threads, timeout
        self.address = f"127.0.0.1:{self.port}"
        self.ws_port = free_port() if ws else None
        self.ws_url = f"ws://127.0.0.1:{self.ws_port}/v1" if ws else ""
        if self.ws_port is not None:
            self.extra = (*extra, "--ws-port", str(self.ws_port))
        self._log_fd, self.log_path = tempfile.mkstemp(prefix="pixelkiln-bench-", suffix=".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ChildDaemon:
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        if self.threads:
            env.update(OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        cmd = [sys.executable, "-m", "pixelkiln.cli", "serve", "--port", str(self.port)]
        if "--model" not in self.extra:  # the benchmarks are sized for tiny-random
            cmd += ["--model", "tiny-random"]
        if "--runtime" not in self.extra:  # what the benchmarks compare with in-process torch
            cmd += ["--runtime", "torch"]
        if "--ws-port" not in self.extra:  # never the fixed default: a daemon may hold it
            cmd += ["--ws-port", "-1"]
        cmd += ["--log-level", "WARNING", *self.extra]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log_fd, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException as exc:
            tail = self.log_tail()
            self.__exit__()
            if not isinstance(exc, Exception):
                raise
            raise RuntimeError(f"daemon did not become ready ({exc}):\n{tail}") from exc
        return self

    def _wait_ready(self) -> None:
        from pixelkiln import Client, PixelKilnError

        assert self.proc is not None
        deadline = time.monotonic() + self.timeout
        with Client(self.address) as client:
            while self.proc.poll() is None:
                try:
                    return client.wait_ready(timeout=1.0)
                except PixelKilnError:
                    if time.monotonic() > deadline:
                        raise
        raise RuntimeError(f"exited with status {self.proc.returncode}")

    def log_tail(self, chars: int = 4000) -> str:
        return Path(self.log_path).read_text(errors="replace")[-chars:]

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        os.close(self._log_fd)
        Path(self.log_path).unlink(missing_ok=True)


class WsClient:
    """Generate over a daemon's WebSocket carrier as the engines' clients send it: one Envelope
    out (the result alone, as ``Client.generate`` asks), Envelopes in until the Result, which
    is converted as ``Client.generate`` converts it."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        from websockets.sync.client import connect

        self.ws = connect(url, max_size=None)
        self.timeout = timeout
        self.sent = 0

    def generate(self, prompt: str = "", **options: Any) -> Any:
        from pixelkiln import _request
        from pixelkiln.events import event_from_pb
        from pixelkiln.v1 import envelope_pb2 as env_pb

        _request.quiet_defaults(options)
        self.sent += 1
        rid = str(self.sent)
        request = _request.build_request(prompt, **options)
        self.ws.send(env_pb.Envelope(request_id=rid, generate=request).SerializeToString())
        while True:
            envelope = env_pb.Envelope.FromString(self.ws.recv(self.timeout))
            kind = envelope.WhichOneof("body")
            if envelope.request_id != rid:
                continue
            if kind == "error":
                raise RuntimeError(f"Generate over WebSocket: {envelope.error.message}")
            if kind == "event" and envelope.event.WhichOneof("event") == "result":
                return event_from_pb(envelope.event)

    def __enter__(self) -> WsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.ws.close()
