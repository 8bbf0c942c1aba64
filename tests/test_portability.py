"""No Unix-only primitive without its portable twin (issue #21): tools/check_portability.py walks
server/, clients/python/, tools/ and benchmarks/ with ast; the tree must be clean, and the
checker must catch what it claims to catch (snippets)."""

from __future__ import annotations

import sys

import pytest

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import check_portability as portability  # noqa: E402

sys.path.remove(str(ROOT / "tools"))


def rules(source: str) -> list[str]:
    return [finding.rule for finding in portability.check_source(source)]


def test_the_source_tree_has_no_unguarded_unix_only_use() -> None:
    findings = portability.check_tree()
    assert not findings, "\n".join(map(str, findings))
    scanned = {p.relative_to(ROOT).parts[0] for p in portability.python_files()}
    assert scanned == {"server", "clients", "tools", "benchmarks"}  # it reached every folder


def test_every_allowed_entry_is_still_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    allowed = dict(portability.ALLOWED)
    monkeypatch.setattr(portability, "ALLOWED", {})
    found = {(f.path, f.rule) for f in portability.check_tree()}
    assert set(allowed) <= found, set(allowed) - found
    assert all(reason.strip() for reason in allowed.values())


def test_an_unguarded_fork_fails() -> None:
    findings = portability.check_source("import os\n\npid = os.fork()\n", "x.py")
    assert [str(f) for f in findings] == [f"x.py:3: os.fork: {portability.OS_FUNCTIONS['fork']}"]


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("import fcntl\n", "import fcntl"),
        ("from termios import tcgetattr\n", "import termios"),
        ("import os\nos.setsid()\n", "os.setsid"),
        ("import os\nos.killpg(1, 15)\n", "os.killpg"),
        ("from os import fork\n", "os.fork"),
        ("import socket\ns = socket.socket(socket.AF_UNIX)\n", "socket.AF_UNIX"),
        ("import signal\nsignal.signal(signal.SIGHUP, print)\n", "signal.SIGHUP"),
        ("import os, signal\nos.kill(1, signal.SIGKILL)\n", "signal.SIGKILL"),
        ("import os\nload = os.getloadavg()[0]\n", "os.getloadavg"),
        ("from signal import SIGUSR1\n", "signal.SIGUSR1"),
        ("import signal\nsignal.alarm(3)\n", "signal.alarm"),
        ("import multiprocessing as mp\nctx = mp.get_context('fork')\n", "multiprocessing 'fork'"),
        ("import multiprocessing\nmultiprocessing.set_start_method('forkserver')\n",
         "multiprocessing 'forkserver'"),
        ("path = '/tmp/pixelkiln.sock'\n", "path /tmp"),
        ("out = open('/dev/null', 'w')\n", "path /dev/"),
        ("import os\nos.chmod('tokens', 0o600)\n", "chmod"),
        ("from pathlib import Path\nPath('tokens').chmod(0o600)\n", "chmod"),
        ("async def f(loop, cb):\n    loop.add_signal_handler(2, cb)\n", "add_signal_handler"),
    ],
)  # fmt: skip
def test_each_unix_only_use_is_found(source: str, rule: str) -> None:
    assert rules(source) == [rule]


@pytest.mark.parametrize(
    "source",
    [
        "import os, sys\nif sys.platform != 'win32':\n    os.fork()\n",
        "import os, sys\nif sys.platform == 'win32':\n    pass\nelse:\n    os.setsid()\n",
        "import os\nif os.name == 'posix':\n    os.killpg(1, 15)\n",
        "import platform, os\nif platform.system() == 'Linux':\n    os.sched_getaffinity(0)\n",
        "import os\nif hasattr(os, 'fork'):\n    os.fork()\n",
        "import signal\nsig = signal.SIGKILL if hasattr(signal, 'SIGKILL') else signal.SIGTERM\n",
        "try:\n    import fcntl\nexcept ImportError:\n    fcntl = None\n",
        "import os\ntry:\n    os.setsid()\nexcept AttributeError:\n    pass\n",
        "async def f(loop, cb):\n    try:\n        loop.add_signal_handler(2, cb)\n"
        "    except NotImplementedError:\n        pass\n",
        "import os\n# Windows: only the read-only flag exists; the file sits in the user's home\n"
        "os.chmod('tokens', 0o600)\n",
        "import os\nos.chmod('tokens', 0o600)  # on Windows only the read-only bit applies\n",
        '"""Writes under /tmp/x by default on Linux."""\n',
        "import signal, os\nos.kill(1, signal.SIGTERM)\nsignal.signal(signal.SIGINT, print)\n",
        "import multiprocessing as mp\nctx = mp.get_context('spawn')\n",
        "import tempfile\npath = tempfile.gettempdir()\n",
        "import os\nos.getenv('TMPDIR', 'tmp')\n",
    ],
)
def test_guarded_or_portable_uses_pass(source: str) -> None:
    assert rules(source) == []


def test_a_try_that_catches_something_else_is_no_guard() -> None:
    source = "import os\ntry:\n    os.fork()\nexcept ValueError:\n    pass\n"
    assert rules(source) == ["os.fork"]
    handler_body = "import os\ntry:\n    pass\nexcept AttributeError:\n    os.fork()\n"
    assert rules(handler_body) == ["os.fork"]  # only the try body is guarded
