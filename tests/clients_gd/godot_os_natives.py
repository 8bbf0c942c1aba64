"""Godot 4.6's process API on macOS/Linux, for daemon_launcher.gd on the interpreter.

Modelled on ``drivers/unix/os_unix.cpp`` and ``file_access_unix_pipe.cpp`` (Godot 4.6):

- ``OS.execute_with_pipe(path, args)`` forks and ``execvp``s with three pipes and returns
  ``{"stdio", "stderr", "pid"}``; "stdio" is ONE handle for the child's stdin (write) and stdout
  (read), so closing it closes both. When ``execvp`` fails, the child prints
  ``ERROR: Could not create child process: PATH`` and SIGKILLs itself.
- A pipe's ``get_length()`` is FIONREAD (the bytes readable now); ``get_buffer(n)`` reads.
- ``OS.get_process_exit_code(pid)``: -1 while running, then the exit status (the raw status for
  a signal death); ``OS.is_process_running(pid)``: true only for a live child of this process;
  ``OS.kill(pid)``: SIGKILL, then waits; ``OS.execute(path, args)``: runs and waits, the exit
  status.
- ``OS.set_environment`` changes this process's environment, which children inherit.
- ``FileAccess`` on absolute paths: a real file (the launcher's log), read and written.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path
from typing import Any

from ..stubs.gdscript_builtins import GDScriptError, Native, PackedByteArray
from .godot_natives import FAILED, OK, NativeObject

READ, WRITE = 1, 2
FAILED_TO_START = 'echo "ERROR: Could not create child process: $0" >&2; kill -9 $$'


class PipeFile(NativeObject):
    """A FileAccessUnixPipe: reads one descriptor, writes another; close() closes both."""

    CLASS = "FileAccess"
    BASES = ("RefCounted", "Object")

    def __init__(self, vm: Any, read: Any, write: Any = None) -> None:
        super().__init__(vm)
        self.read, self.write = read, write

    def gd_get_length(self) -> int:
        if self.read is None or self.read.closed:
            return 0
        raw = fcntl.ioctl(self.read.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return int(struct.unpack("i", raw)[0])

    def gd_get_buffer(self, length: int) -> PackedByteArray:
        return PackedByteArray(os.read(self.read.fileno(), length) if length > 0 else b"")

    def gd_close(self) -> None:
        for stream in (self.write, self.read):
            if stream is not None and not stream.closed:
                stream.close()


class RealFile(NativeObject):
    """FileAccess on an absolute path of this machine (READ or WRITE)."""

    CLASS = "FileAccess"
    BASES = ("RefCounted", "Object")

    def __init__(self, vm: Any, path: Path, mode: int) -> None:
        super().__init__(vm)
        self.file = open(path, "rb" if mode == READ else "wb")  # noqa: SIM115 - closed by gd_close

    def gd_store_string(self, text: str) -> None:
        self.file.write(text.encode("utf-8"))

    def gd_store_buffer(self, data: PackedByteArray) -> bool:
        self.file.write(bytes(data.data))
        return True

    def gd_flush(self) -> None:
        self.file.flush()

    def gd_get_length(self) -> int:
        self.file.flush()
        return os.fstat(self.file.fileno()).st_size

    def gd_seek(self, position: int) -> None:
        self.file.seek(position)

    def gd_get_buffer(self, length: int) -> PackedByteArray:
        return PackedByteArray(self.file.read(length))

    def gd_get_error(self) -> int:
        return OK

    def gd_close(self) -> None:
        self.file.close()


class Processes:
    """The children of this 'editor', by pid."""

    def __init__(self, vm: Any) -> None:
        self.vm = vm
        self.children: dict[int, subprocess.Popen[bytes]] = {}

    def execute_with_pipe(self, path: str, args: list[str]) -> dict[str, Any]:
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        try:
            proc = subprocess.Popen([path, *args], **pipes)  # type: ignore[call-overload]
        except OSError:  # execvp failed in the child
            proc = subprocess.Popen(["/bin/sh", "-c", FAILED_TO_START, path], **pipes)  # type: ignore[call-overload]
        self.children[proc.pid] = proc
        return {
            "stdio": PipeFile(self.vm, proc.stdout, proc.stdin),
            "stderr": PipeFile(self.vm, proc.stderr),
            "pid": proc.pid,
        }

    def exit_code(self, pid: int) -> int:
        proc = self.children.get(pid)
        if proc is None or proc.poll() is None:
            return -1
        return proc.returncode if proc.returncode >= 0 else -proc.returncode

    def running(self, pid: int) -> bool:
        proc = self.children.get(pid)
        return proc is not None and proc.poll() is None

    def kill(self, pid: int) -> int:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return FAILED
        if pid in self.children:
            self.children[pid].wait()
        return OK

    def execute(self, path: str, args: list[str]) -> int:
        return subprocess.run([path, *args], check=False).returncode

    def close_all(self) -> None:
        for proc in self.children.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None and not stream.closed:
                    stream.close()


def os_globals(vm: Any, processes: Processes, os_name: str = "Linux") -> dict[str, Any]:
    """OS, ProjectSettings and the Time functions the launcher uses."""

    def unset(name: str) -> None:
        os.environ.pop(name, None)

    def set_env(name: str, value: str) -> None:
        os.environ[name] = value

    members: dict[str, Any] = {
        "get_name": lambda: os_name,
        "get_process_id": os.getpid,
        "get_cmdline_user_args": lambda: list(vm.user_args),
        "execute_with_pipe": processes.execute_with_pipe,
        "get_process_exit_code": processes.exit_code,
        "is_process_running": processes.running,
        "kill": processes.kill,
        "execute": processes.execute,
        "has_environment": lambda name: name in os.environ,
        "get_environment": lambda name: os.environ.get(name, ""),
        "set_environment": set_env,
        "unset_environment": unset,
    }
    members["has_method"] = lambda name: name in members
    members["call"] = lambda name, *args: members[name](*args)

    def globalize(path: str) -> str:
        if not path.startswith("res://") or vm.res_root is None:
            raise GDScriptError(f"globalize_path: {path} is not modelled")
        return (Path(vm.res_root) / path[len("res://") :]).as_posix()

    def stamp(unix: float | None = None, use_space: bool = False) -> str:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(unix))
        return text.replace("T", " ") if use_space else text

    return {
        "OS": Native("OS", members),
        "ProjectSettings": Native("ProjectSettings", {"globalize_path": globalize}),
        "time": {
            "get_datetime_string_from_system": lambda *a: stamp(),
            "get_unix_time_from_system": time.time,
            "get_datetime_string_from_unix_time": stamp,
        },
    }


def open_real(vm: Any, path: str, mode: int) -> RealFile | None:
    """FileAccess.open on an absolute path (None where Godot returns null)."""
    target = Path(path)
    if mode == READ and not target.is_file():
        return None
    if mode == WRITE and not target.parent.is_dir():
        return None
    return RealFile(vm, target, mode)
