"""Logging of ``pixelkiln serve``: PixelKiln's own lines, the libraries' noise only on request.

Configured first, before torch, diffusers or transformers are imported (they read some of
these settings once, at import). Quiet (the default) hides the libraries' warnings, log
records below ERROR and progress bars: torchao's library-load failures, triton and
torchvision notices, deprecation warnings, tqdm bars. ``--verbose`` shows them all.

The settings travel to child processes through the environment (``PIXELKILN_VERBOSE``,
``PIXELKILN_LOG_LEVEL`` and the libraries' own variables); a child calls
:func:`configure_from_env` before its first import of a model library.
"""

from __future__ import annotations

import logging
import os
import sys

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
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


def configure_logging(level: str = "INFO", verbose: bool = False) -> None:
    """Set up the process's logging once, first thing; ``level`` is PixelKiln's own."""
    level = level.upper()
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}; allowed: {', '.join(LEVELS)}")
    os.environ["PIXELKILN_LOG_LEVEL"] = level
    os.environ["PIXELKILN_VERBOSE"] = "1" if verbose else "0"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
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


def configure_from_env() -> None:
    """The same set-up in a child process, from what the parent put in the environment."""
    configure_logging(
        os.environ.get("PIXELKILN_LOG_LEVEL", "INFO"),
        verbose=os.environ.get("PIXELKILN_VERBOSE", "0") == "1",
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
