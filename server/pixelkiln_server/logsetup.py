"""Logging of ``pixelkiln serve``: PixelKiln's own lines, the libraries' noise only on request.

Configured first, before torch, diffusers or transformers are imported (they read some of
these settings once, at import). Quiet (the default) hides the libraries' warnings, log
records below ERROR and progress bars: torchao's library-load failures, triton and
torchvision notices, deprecation warnings, tqdm bars. ``--verbose`` shows them all.

``--log-format json`` writes every line as one JSON object (time, level, logger, message, the
runner's name in a runner child, the traceback as ``exc``, and the access log's fields as keys
of their own; see services/access.py); the quiet rules are the same in both formats.

The settings travel to child processes through the environment (``PIXELKILN_VERBOSE``,
``PIXELKILN_LOG_LEVEL``, ``PIXELKILN_LOG_FORMAT`` and the libraries' own variables); a child
calls :func:`configure_from_env` before its first import of a model library.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")
# Loggers whose records are PixelKiln's own lines.
OWN_LOGGERS = ("pixelkiln", "pixelkiln_server", "__main__")
# Each library's own switch, honoured by the library itself and inherited by child processes.
QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",  # tqdm >= 4.66 reads TQDM_<ARG> as its default arguments
    "TORCH_LOGS": "-all",  # torch's own handler (e.g. torch.utils._pytree deprecation notes)
    "TORCH_CPP_LOG_LEVEL": "ERROR",
    "PYTHONWARNINGS": "ignore",  # read by child interpreters at their start
}


class OwnLines(logging.Filter):
    """Passes PixelKiln's records at any level and other loggers' from ERROR up."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        name = record.name
        return any(name == own or name.startswith(own + ".") for own in OWN_LOGGERS)


class JsonLines(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, runner: str = "") -> None:
        super().__init__()
        self.runner = runner

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.runner:
            line["runner"] = self.runner
        fields = getattr(record, "access", None)
        if isinstance(fields, dict):
            line.update((k, v) for k, v in fields.items() if k not in line)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def make_formatter(log_format: str = "text", runner: str = "") -> logging.Formatter:
    """The formatter for ``--log-format``; ``runner`` names a runner child in its lines."""
    if log_format == "json":
        return JsonLines(runner)
    if runner:
        return logging.Formatter(f"%(asctime)s %(levelname)s %(name)s [{runner}]: %(message)s")
    return logging.Formatter(FORMAT)


def configure_logging(
    level: str = "INFO", verbose: bool = False, log_format: str = "text", runner: str = ""
) -> None:
    """Set up the process's logging once, first thing; ``level`` is PixelKiln's own."""
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}; allowed: {', '.join(LEVELS)}")
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format {log_format!r}; allowed: {', '.join(LOG_FORMATS)}")
    os.environ["PIXELKILN_LOG_LEVEL"] = level
    os.environ["PIXELKILN_VERBOSE"] = "1" if verbose else "0"
    os.environ["PIXELKILN_LOG_FORMAT"] = log_format
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(log_format, runner))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    if verbose:
        return
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)  # what the user set on purpose stays
    handler.addFilter(OwnLines())
    # Warnings become records of the "py.warnings" logger, which OwnLines holds back.
    logging.captureWarnings(True)
    _quiet_loaded_libraries()


def configure_from_env(runner: str = "") -> None:
    """The same set-up in a child process, from what the parent put in the environment;
    ``runner`` names the child in each line."""
    log_format = os.environ.get("PIXELKILN_LOG_FORMAT", "text")
    configure_logging(
        os.environ.get("PIXELKILN_LOG_LEVEL", "INFO"),
        verbose=os.environ.get("PIXELKILN_VERBOSE", "0") == "1",
        log_format=log_format if log_format in LOG_FORMATS else "text",
        runner=runner,
    )


def _quiet_loaded_libraries() -> None:
    """Libraries read their environment switches at import; tell those already imported."""
    for module, call in (
        ("transformers", "utils.logging.set_verbosity_error"),
        ("diffusers", "utils.logging.set_verbosity_error"),
        ("diffusers", "utils.logging.disable_progress_bar"),
    ):
        if module in sys.modules:
            target: object = sys.modules[module]
            for part in call.split("."):
                target = getattr(target, part)
            target()  # type: ignore[operator]


# A runner child sends its log lines to the front over the port when this is "1" (always on
# Windows: spawned children inherit no handles there, so its stderr went nowhere when the
# daemon's own output was a file or a pipe, as under Unity and Godot). The front writes them to
# its standard error as they came, already formatted (text or JSON, named after the runner).
LOGS_VIA_PORT_ENV = "PIXELKILN_RUNNER_LOGS_VIA_PORT"


def logs_via_port() -> bool:
    return sys.platform == "win32" or os.environ.get(LOGS_VIA_PORT_ENV) == "1"


class _LineSender:
    """A stream for the root handler: each record (write, then flush, under the handler's
    lock) goes out as one message."""

    def __init__(self, send: Callable[[str], None]) -> None:
        self._send = send
        self._buffer: list[str] = []

    def write(self, text: str) -> int:
        self._buffer.append(text)
        return len(text)

    def flush(self) -> None:
        text, self._buffer = "".join(self._buffer).rstrip("\n"), []
        if text:
            self._send(text)


def send_logs_to(send: Callable[[str], None]) -> None:
    """Point the process's log handler at ``send`` (one formatted line or record per call)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(_LineSender(send))


def write_runner_lines(text: str) -> None:
    """A runner's log record, as it formatted it, on the front's standard error."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
