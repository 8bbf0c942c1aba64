"""Runs the web test project in ``chromium-headless-shell`` and reads its report line.

Chromium prints the page's console to stderr with ``--enable-logging=stderr``; Godot's
``print()`` reaches the console through the page (serve.PAGE). The run ends at the report line,
at the engine's exit, at a start failure or at the deadline, whichever comes first; Chromium is
then killed with its whole process group (Debian's chromium-headless-shell is a shell wrapper:
killing only the process started would leave the browser running).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlsplit

from . import project, template
from .serve import PageServer

MARKER = "PIXELKILN_REPORT "
EXIT = "PIXELKILN_EXIT "
START_FAILED = "PIXELKILN_START_FAILED "
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser")
# [pid:tid:date:INFO:CONSOLE(12)] "text", source: http://... (12)   (older builds: CONSOLE:12])
_CONSOLE = re.compile(r':CONSOLE[^\]]*\] "(.*)", source: ')
FLAGS = (
    "--no-sandbox",  # CI runs as root
    "--enable-logging=stderr",
    "--v=0",
    "--use-angle=swiftshader",  # WebGL 2 on the CPU: the template needs a GL context
    "--enable-unsafe-swiftshader",
    "--no-first-run",
    "--disable-gpu-sandbox",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)


class RunError(RuntimeError):
    """The engine did not produce a report (with the console lines seen so far)."""


@dataclass
class Report:
    """What one run produced: the report (None without one), the exit code, the console."""

    report: dict[str, Any] | None = None
    exit_code: int | None = None
    console: list[str] = field(default_factory=list)
    seconds: float = 0.0
    browser_group: int = 0


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def missing() -> str:
    """Why a run cannot happen here ("" when it can)."""
    if find_browser() is None:
        return "no headless Chromium (apt-get install chromium-headless-shell)"
    return template.missing()


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def handshake_problem(url: str, origin: str, timeout: float = 5) -> str:
    """Why the page (at ``origin``) cannot open a WebSocket to ``url``, "" when it can.

    The browser's WebSocket only says 1006 when the daemon refuses its handshake, so the run
    would wait for its deadline; asked here first, the daemon's answer is clear: nothing
    listening, or 403 for an Origin it does not allow (``pixelkiln serve --ws-allow-origin``).
    Only ``ws://`` URLs are asked (a ``wss://`` daemon's certificate is the browser's business).
    """
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname:
        return ""
    port = parts.port or 80
    connection = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        "Origin": origin,
    }
    try:
        connection.request("GET", parts.path or "/", headers=headers)
        answer = connection.getresponse()
        body = answer.read(2000).decode("utf-8", "replace").strip() if answer.status != 101 else ""
    except OSError as err:
        return (
            f"cannot connect to {url} ({err}): is `pixelkiln serve` running with its WebSocket "
            "carrier on that port (--ws-port, default 50052)?"
        )
    finally:
        connection.close()
    if answer.status == 101:
        return ""
    if answer.status == 403:
        return (
            f"the daemon at {url} refused the page's Origin {origin} (HTTP 403: {body}); start it "
            "with --ws-allow-origin 'http://127.0.0.1:*' to let the test page connect"
        )
    return f"the daemon at {url} refused the WebSocket handshake: HTTP {answer.status} {body}"


def run(
    config: dict[str, Any],
    timeout: float = 90,
    browser: str | None = None,
    check_handshake: bool = False,
) -> Report:
    """Packs the project with ``config`` as res://run.json, runs it, returns the report.

    Raises :class:`RunError` when nothing is reported within ``timeout`` seconds, and with
    ``check_handshake`` before starting the browser when the page could not reach
    ``config["url"]`` (see :func:`handshake_problem`).
    """
    why = missing()
    if why:
        raise RunError(why)
    exe = browser or find_browser()
    assert exe is not None
    started = time.monotonic()
    out = Report()
    with (
        PageServer(project.build(config)) as server,
        tempfile.TemporaryDirectory(prefix="pixelkiln-chromium-") as profile,
    ):
        if check_handshake:
            parts = urlsplit(server.url)
            problem = handshake_problem(config["url"], f"{parts.scheme}://{parts.netloc}")
            if problem:
                raise RunError(problem)
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", server.url]
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,  # its own process group, killed as one
        )
        out.browser_group = proc.pid
        assert proc.stderr is not None
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_read_lines, args=(proc.stderr, lines), daemon=True).start()
        try:
            _collect(lines, out, started + timeout)
        finally:
            _stop(proc)
    out.seconds = time.monotonic() - started
    if out.report is None:
        tail = "\n".join(out.console[-40:])
        raise RunError(f"no report from Godot within {timeout:.0f} s; console:\n{tail}")
    return out


def _stop(proc: subprocess.Popen[str]) -> None:
    """Kills the browser's process group and waits until no member is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise RunError(f"Chromium's processes (group {proc.pid}) outlived SIGKILL by 30 s")


def _collect(lines: queue.Queue[str | None], out: Report, deadline: float) -> None:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            return
        if line is None:  # Chromium exited
            return
        match = _CONSOLE.search(line)
        if match is None:
            continue
        text = match.group(1)
        if text.startswith(MARKER):
            out.report = json.loads(text[len(MARKER) :])
            continue
        out.console.append(text)
        if text.startswith(EXIT):
            out.exit_code = int(text[len(EXIT) :])
            return
        if text.startswith(START_FAILED):
            return


def decode_bytes(value: Any) -> Any:
    """The report with each {"base64": ...} back as bytes."""
    if isinstance(value, dict):
        if set(value) == {"base64"}:
            return base64.b64decode(value["base64"])
        return {key: decode_bytes(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_bytes(item) for item in value]
    return value
