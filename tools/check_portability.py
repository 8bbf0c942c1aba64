"""No Unix-only primitive without its portable twin: walks Python source with ``ast`` and reports
each unguarded use of something that does not exist (or behaves differently) on Windows.

    python tools/check_portability.py   # server/ clients/python/ tools/ benchmarks/; exit 1 if any

What it looks for (the tables below): ``os.fork`` and friends, ``os.setsid``, ``os.killpg``, the
Unix-only modules (``fcntl``, ``termios``, ``pwd``, ...), ``socket.AF_UNIX``, POSIX-only signals
(``signal.SIGKILL``, ``SIGHUP``, ``SIGUSR1``, ...), ``loop.add_signal_handler`` (Unix event loops
only), the ``fork``/``forkserver`` start methods of multiprocessing, hard-coded ``/tmp``,
``/dev/`` and ``/proc/`` paths, and ``chmod`` (file modes mean little on Windows: a comment on the
line or just above that names Windows says what happens there).

"Guarded" means inside a branch of an ``if``/conditional expression that tests ``sys.platform``,
``os.name``, ``platform.system()`` or ``hasattr(...)``; or inside a ``try`` whose handlers catch
``ImportError``, ``AttributeError``, ``NotImplementedError`` or ``OSError``; or listed in
``ALLOWED`` with its reason.
"""

from __future__ import annotations

import ast
import gc
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("server", "clients/python", "tools", "benchmarks")

UNIX_MODULES = {
    "fcntl": "file locks and flags: msvcrt.locking / portable lock files on Windows",
    "termios": "terminal control: no Windows twin",
    "tty": "terminal control: no Windows twin",
    "pty": "pseudo-terminals: no Windows twin",
    "pwd": "the password database: getpass.getuser() is portable",
    "grp": "the group database: no Windows twin",
    "resource": "rlimits: no Windows twin",
    "posix": "use os",
    "syslog": "use logging",
}
OS_FUNCTIONS = {
    "fork": "multiprocessing with the spawn context, or subprocess",
    "forkpty": "no Windows twin",
    "setsid": "subprocess start_new_session= (POSIX) / CREATE_NEW_PROCESS_GROUP (Windows)",
    "setpgid": "subprocess process_group= / CREATE_NEW_PROCESS_GROUP",
    "setpgrp": "subprocess process_group= / CREATE_NEW_PROCESS_GROUP",
    "getpgid": "no Windows twin",
    "killpg": "a process group exists only on POSIX; CTRL_BREAK_EVENT on Windows",
    "getuid": "no users' ids on Windows",
    "geteuid": "no users' ids on Windows",
    "getgid": "no users' ids on Windows",
    "chown": "no Windows twin",
    "mkfifo": "multiprocessing connections or loopback sockets",
    "sched_getaffinity": "Linux only: os.cpu_count() (or os.process_cpu_count(), 3.13)",
    "pipe2": "os.pipe",
    "wait3": "subprocess / multiprocessing",
    "wait4": "subprocess / multiprocessing",
    "readv": "no Windows twin: os.read",
    "writev": "no Windows twin: os.write",
    "getloadavg": "no Windows twin: guard with hasattr (benchmarks/_common.load_average)",
}
POSIX_SIGNALS = {
    "SIGKILL", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGSTOP", "SIGCONT", "SIGCHLD", "SIGALRM",
    "SIGPIPE", "SIGQUIT", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGWINCH", "SIGVTALRM", "SIGPROF",
    "SIGIO", "SIGPOLL", "SIGSYS", "SIGTRAP", "SIGXCPU", "SIGXFSZ", "SIGURG",
}  # fmt: skip
SIGNAL_FUNCTIONS = {"alarm", "setitimer", "getitimer", "pause", "pthread_kill", "sigwait"}
UNIX_PATHS = ("/tmp", "/dev/", "/proc/")
GUARD_EXCEPTIONS = {"ImportError", "ModuleNotFoundError", "AttributeError", "NotImplementedError"}

# (path relative to the repository root, rule) -> why this use is fine on every OS.
ALLOWED: dict[tuple[str, str], str] = {
    ("tools/check_portability.py", "path /tmp"): "the checker's own list of what it looks for",
    ("tools/check_portability.py", "path /dev/"): "the checker's own list of what it looks for",
    ("tools/check_portability.py", "path /proc/"): "the checker's own list of what it looks for",
    # CI's real-Godot runner: Linux only (Debian's chromium-headless-shell, a shell wrapper whose
    # browser processes must be killed as one group); its test skips where Chromium is missing.
    ("tools/godot_web/runner.py", "os.killpg"): "Linux-only CI tool (Debian's Chromium)",
    ("tools/godot_web/runner.py", "signal.SIGKILL"): "Linux-only CI tool (Debian's Chromium)",
    # Frames are read and written only where transports.FRAMED (os.name == "posix"); Windows
    # keeps multiprocessing's named pipes and a reader thread.
    ("benchmarks/_common.py", "path /proc/"): "cpu_ms: Linux's /proc; NaN elsewhere (OSError)",
    ("benchmarks/load.py", "path /proc/"): "Linux's /proc where it exists; 0 elsewhere (OSError)",
    ("benchmarks/runners.py", "signal.SIGKILL"): "recovery() runs only where hasattr(signal, ...)",
    ("server/pixelkiln_server/runners/frames.py", "os.readv"): "POSIX only (transports.FRAMED)",
    ("server/pixelkiln_server/runners/frames.py", "os.writev"): "POSIX only (transports.FRAMED)",
}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.message}"


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    if isinstance(node, ast.Call):
        return _dotted(node.func) + "()"
    return ""


def _is_platform_test(test: ast.AST) -> bool:
    """A condition that asks which OS this is, or whether a name exists."""
    for node in ast.walk(test):
        name = _dotted(node)
        if name in ("sys.platform", "os.name", "platform.system()", "platform.system"):
            return True
        if isinstance(node, ast.Call) and _dotted(node.func) == "hasattr":
            return True
    return False


def _catches_guard(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(_dotted(n).rsplit(".", 1)[-1] in GUARD_EXCEPTIONS for n in names)


class _Visitor(ast.NodeVisitor):
    def __init__(self, path: str, lines: list[str]) -> None:
        self.path = path
        self.lines = lines
        self.guards = 0
        self.findings: list[Finding] = []
        self.docstrings: set[int] = set()

    # ---- guards ---------------------------------------------------------------------------

    def _guarded_children(self, node: ast.AST, guarded: bool) -> None:
        if guarded:
            self.guards += 1
        try:
            self.generic_visit(node)
        finally:
            if guarded:
                self.guards -= 1

    def visit_If(self, node: ast.If) -> None:
        self._guarded_children(node, _is_platform_test(node.test))

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._guarded_children(node, _is_platform_test(node.test))

    def visit_Try(self, node: ast.Try) -> None:
        guarded = any(_catches_guard(h) for h in node.handlers)
        if guarded:
            self.guards += 1
        for stmt in node.body:
            self.visit(stmt)
        if guarded:
            self.guards -= 1
        for part in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(part)

    def _note_docstring(self, node: ast.AST) -> None:
        body = getattr(node, "body", None)
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            self.docstrings.add(id(body[0].value))

    def visit_Module(self, node: ast.Module) -> None:
        self._note_docstring(node)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._note_docstring(node)
        self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._note_docstring(node)
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._note_docstring(node)
        self.generic_visit(node)

    # ---- uses -----------------------------------------------------------------------------

    def _report(self, node: ast.AST, rule: str, message: str) -> None:
        if self.guards or (self.path, rule) in ALLOWED:
            return
        self.findings.append(Finding(self.path, getattr(node, "lineno", 0), rule, message))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            top = alias.name.split(".")[0]
            if top in UNIX_MODULES:
                self._report(node, f"import {top}", UNIX_MODULES[top])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = (node.module or "").split(".")[0]
        if node.level == 0 and module in UNIX_MODULES:
            self._report(node, f"import {module}", UNIX_MODULES[module])
        for alias in node.names:
            if node.level == 0 and module == "os" and alias.name in OS_FUNCTIONS:
                self._report(node, f"os.{alias.name}", OS_FUNCTIONS[alias.name])
            if node.level == 0 and module == "signal" and alias.name in POSIX_SIGNALS:
                self._report(node, f"signal.{alias.name}", "a POSIX-only signal")
            if node.level == 0 and module == "socket" and alias.name == "AF_UNIX":
                self._report(node, "socket.AF_UNIX", "loopback TCP or multiprocessing pipes")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        base = _dotted(node.value)
        if base == "os" and node.attr in OS_FUNCTIONS:
            self._report(node, f"os.{node.attr}", OS_FUNCTIONS[node.attr])
        elif base == "signal" and node.attr in POSIX_SIGNALS:
            self._report(node, f"signal.{node.attr}", "a POSIX-only signal")
        elif base == "signal" and node.attr in SIGNAL_FUNCTIONS:
            self._report(node, f"signal.{node.attr}", "POSIX only")
        elif base == "socket" and node.attr == "AF_UNIX":
            self._report(node, "socket.AF_UNIX", "loopback TCP or multiprocessing pipes")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else _dotted(func)
        if name == "add_signal_handler":
            self._report(
                node,
                "add_signal_handler",
                "Unix event loops only (NotImplementedError on Windows): pixelkiln_server."
                "shutdown.ShutdownSignals falls back to signal.signal",
            )
        if name in ("get_context", "set_start_method") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and first.value in ("fork", "forkserver"):
                self._report(node, f"multiprocessing {first.value!r}", "POSIX only: use 'spawn'")
        if name == "chmod" and not self._windows_note(node):
            self._report(
                node,
                "chmod",
                "file modes are not permissions on Windows: guard it or say what happens "
                "there in a comment naming Windows (on the line or just above)",
            )
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, str) and id(node) not in self.docstrings:
            for prefix in UNIX_PATHS:
                if value == prefix.rstrip("/") or value.startswith(prefix.rstrip("/") + "/"):
                    self._report(
                        node, f"path {prefix}", "hard-coded Unix path: tempfile / os.devnull"
                    )
                    break

    def _windows_note(self, node: ast.AST) -> bool:
        line = getattr(node, "lineno", 1)
        window = self.lines[max(0, line - 4) : line]
        return any("#" in text and "windows" in text.lower() for text in window)


def parse(source: str, path: str) -> ast.Module:
    """``ast.parse`` with the garbage collector paused: on CPython 3.11.7 a collection during
    the tree's construction whose finalizers run Python code (pytest runs this in-process,
    beside the asyncio tasks earlier tests left) can raise "SystemError: AST constructor
    recursion depth mismatch" (python/cpython#106905, a CI flake here)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source, filename=path)
    finally:
        if enabled:
            gc.enable()


def check_source(source: str, path: str = "<snippet>") -> list[Finding]:
    """The findings in one file's source (``path`` is how findings and ``ALLOWED`` name it)."""
    tree = parse(source, path)
    visitor = _Visitor(path, source.splitlines())
    visitor.visit(tree)
    return visitor.findings


def python_files(root: Path = ROOT, scanned: Iterable[str] = SCANNED) -> Iterator[Path]:
    for folder in scanned:
        for path in sorted((root / folder).rglob("*.py")):
            if ".venv" not in path.parts and "__pycache__" not in path.parts:
                yield path


def check_tree(root: Path = ROOT, scanned: Iterable[str] = SCANNED) -> list[Finding]:
    findings: list[Finding] = []
    for path in python_files(root, scanned):
        rel = path.relative_to(root).as_posix()
        findings.extend(check_source(path.read_text(encoding="utf-8"), rel))
    return findings


def main() -> int:
    findings = check_tree()
    for finding in findings:
        print(finding)
    print(f"{len(findings)} unguarded Unix-only use(s) in {', '.join(SCANNED)}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
