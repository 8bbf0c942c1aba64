"""Godot 4 engine objects for gdvm.py: Time, Engine/SceneTree, WebSocketPeer, container methods.

``WebSocketPeer`` is backed by a real WebSocket connection (``websockets.sync.client``) on a
background thread, and follows the Godot 4 behaviour the client depends on (modules/websocket,
wsl_peer.cpp):

- ``connect_to_url`` returns at once (``ERR_INVALID_PARAMETER`` for a URL that is not ws:// or
  wss://); the state is ``STATE_CONNECTING`` until a later ``poll()`` sees the handshake done
  (``STATE_OPEN``) or failed (``STATE_CLOSED``, close code -1).
- Packets become visible only in ``poll()``; ``get_packet()`` fails unless the peer is open.
- ``inbound_buffer_size`` (default 65535) is read when connecting and caps one message: a larger
  one closes the connection with 1009 "Message too big", as wslay does. ``send()`` fails with
  ``ERR_OUT_OF_MEMORY`` above ``outbound_buffer_size`` and with ``FAILED`` unless open.
- A close frame from the server gives its code and reason; a dropped connection gives -1.
- No handshake timeout of its own (Godot's peer has none; the client's connect timeout
  governs): the real connection waits up to :data:`OPEN_BOUND_S`, a bound for a test that
  forgets to close. Why a connection failed is kept in ``natives.connect_failures`` for the
  tests' messages (Godot's own is close code -1 and nothing more).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from ..stubs.gdscript_builtins import GDArray, GDScriptError, Native, PackedByteArray, to_str

OPEN_BOUND_S = 120.0

OK, FAILED, ERR_OUT_OF_MEMORY, ERR_INVALID_PARAMETER, ERR_ALREADY_IN_USE = 0, 1, 6, 31, 22
ERR_FILE_NOT_FOUND = 7
FILE_WRITE = 2
ERROR_NAMES = {
    OK: "OK", FAILED: "Failed", ERR_OUT_OF_MEMORY: "Out of memory",
    ERR_INVALID_PARAMETER: "Invalid parameter", ERR_ALREADY_IN_USE: "Already in use",
}  # fmt: skip
STATE_CONNECTING, STATE_OPEN, STATE_CLOSING, STATE_CLOSED = 0, 1, 2, 3
WRITE_MODE_TEXT, WRITE_MODE_BINARY = 0, 1


class NativeObject:
    """An engine object: properties (``props``), signals and ``gd_<name>`` methods."""

    CLASS = "Object"
    BASES: tuple[str, ...] = ("Object",)

    def __init__(self, vm: Any) -> None:
        self.vm = vm
        self.props: dict[str, Any] = {}
        self.signals: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        if name in self.props:
            return self.props[name]
        if name in self.signals:
            return self.signals[name]
        method = getattr(self, f"gd_{name}", None)
        if method is not None:
            from .gdvm import GDCallable

            return GDCallable(self.vm, None, self, py=method)
        raise GDScriptError(f'invalid access to property "{name}" on {self.CLASS}')

    def set(self, name: str, value: Any) -> None:
        if name not in self.props:
            raise GDScriptError(f'invalid assignment of property "{name}" on {self.CLASS}')
        if type(value) is not type(self.props[name]):
            raise GDScriptError(f"{self.CLASS}.{name} wants {type(self.props[name]).__name__}")
        self.props[name] = value

    def call(self, name: str, args: list[Any]) -> Any:
        method = getattr(self, f"gd_{name}", None)
        if method is None:
            raise GDScriptError(f'{self.CLASS} has no method "{name}"')
        return method(*args)


def is_native_instance(value: Any, want: str) -> bool:
    if value is None or want in ("Object", "Variant"):
        return True
    from .gdvm import GDCallable, Signal

    if want == "Callable":
        return isinstance(value, GDCallable)
    if want == "Signal":
        return isinstance(value, Signal)
    if want == "PackedStringArray":
        return isinstance(value, list)
    if isinstance(value, NativeObject):
        return want in (value.CLASS, *value.BASES)
    return want == "RefCounted"  # a script instance (the scripts here extend RefCounted)


class SceneTreeTimer(NativeObject):
    CLASS = "SceneTreeTimer"
    BASES = ("RefCounted", "Object")

    def __init__(self, vm: Any, seconds: float) -> None:
        super().__init__(vm)
        from .gdvm import Signal

        self.due = time.monotonic() + seconds
        self.signals["timeout"] = Signal(vm, "SceneTreeTimer.timeout")


class SceneTree(NativeObject):
    """The main loop: ``frame()`` fires due timers, then emits ``process_frame``."""

    CLASS = "SceneTree"
    BASES = ("MainLoop", "Object")

    def __init__(self, vm: Any) -> None:
        super().__init__(vm)
        from .gdvm import Signal

        self.signals["process_frame"] = Signal(vm, "SceneTree.process_frame")
        self.timers: list[SceneTreeTimer] = []

    def gd_create_timer(self, seconds: float, *_: Any) -> SceneTreeTimer:
        timer = SceneTreeTimer(self.vm, float(seconds))
        self.timers.append(timer)
        return timer

    def frame(self) -> None:
        now = time.monotonic()
        due = [t for t in self.timers if t.due <= now]
        self.timers = [t for t in self.timers if t.due > now]
        for timer in due:
            timer.signals["timeout"].emit()
        self.signals["process_frame"].emit()


class WebSocketPeer(NativeObject):
    CLASS = "WebSocketPeer"
    BASES = ("PacketPeer", "RefCounted", "Object")

    def __init__(self, vm: Any) -> None:
        super().__init__(vm)
        self.props = {
            "inbound_buffer_size": 65535, "outbound_buffer_size": 65535,
            "max_queued_packets": 4096, "supported_protocols": GDArray(),
            "handshake_headers": GDArray(),
        }  # fmt: skip
        self.state = STATE_CLOSED
        self.url = ""
        self.inbound_at_connect = 0
        self.close_code, self.close_reason = -1, ""
        self._lock = threading.Lock()
        self._arrived: deque[tuple[Any, ...]] = deque()
        self._packets: deque[bytes | str] = deque()
        self._was_string = False
        self._conn: Any = None
        vm.natives.peers.append(self)

    # -- the network thread --

    def _run(self, url: str, max_size: int) -> None:
        extra = [tuple(part.strip() for part in h.split(":", 1)) for h in self.handshake]
        context = ssl_context(self.tls) if url.startswith("wss://") else None
        try:
            conn = connect(
                url, max_size=max_size, compression=None, proxy=None, open_timeout=OPEN_BOUND_S,
                ping_interval=None, close_timeout=2, additional_headers=extra, ssl=context,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - any failure means "could not connect"
            self.vm.natives.connect_failures.append(f"{url}: {type(exc).__name__}: {exc}")
            self._push(("failed", f"{type(exc).__name__}: {exc}"))
            return
        self._conn = conn
        self._push(("open",))
        code, reason = -1, ""
        try:
            for message in conn:
                self._push(("message", message))
            if conn.close_code not in (None, 1005, 1006):
                code, reason = conn.close_code, conn.close_reason or ""
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == 1009:
                code, reason = 1009, "Message too big"
            elif exc.rcvd is not None:
                code, reason = exc.rcvd.code, exc.rcvd.reason
        self._push(("closed", code, reason))

    def _push(self, event: tuple[Any, ...]) -> None:
        with self._lock:
            self._arrived.append(event)

    # -- the GDScript API --

    def gd_connect_to_url(self, url: str, tls: Any = None) -> int:
        if self.state not in (STATE_CLOSED, STATE_CLOSING):
            return ERR_ALREADY_IN_USE
        if not url.startswith(("ws://", "wss://")):
            self.vm.engine_errors.append(f"Invalid URL: {url}")
            return ERR_INVALID_PARAMETER
        self.url, self.state = url, STATE_CONNECTING
        self.close_code, self.close_reason = -1, ""
        self.inbound_at_connect = self.props["inbound_buffer_size"]
        self.handshake, self.tls = list(self.props["handshake_headers"]), tls
        thread = threading.Thread(
            target=self._run, args=(url, self.inbound_at_connect), daemon=True, name="ws-peer"
        )
        thread.start()
        return OK

    def gd_poll(self) -> None:
        with self._lock:
            events = list(self._arrived)
            self._arrived.clear()
        for event in events:
            kind = event[0]
            if kind == "open" and self.state == STATE_CONNECTING:
                self.state = STATE_OPEN
            elif kind == "message" and self.state == STATE_OPEN:
                self._packets.append(event[1])
            elif kind == "failed":
                self.state, self.close_code, self.close_reason = STATE_CLOSED, -1, ""
            elif kind == "closed":
                self.state = STATE_CLOSED
                self.close_code, self.close_reason = event[1], event[2]

    def gd_get_ready_state(self) -> int:
        return self.state

    def gd_get_available_packet_count(self) -> int:
        return len(self._packets)

    def gd_get_packet(self) -> PackedByteArray:
        if self.state != STATE_OPEN:
            self.vm.engine_errors.append("WebSocketPeer.get_packet() while not open")
            return PackedByteArray()
        if not self._packets:
            return PackedByteArray()
        packet = self._packets.popleft()
        self._was_string = isinstance(packet, str)
        return PackedByteArray(packet.encode("utf-8") if isinstance(packet, str) else packet)

    def gd_was_string_packet(self) -> bool:
        return self._was_string

    def gd_send(self, data: PackedByteArray, mode: int = WRITE_MODE_BINARY) -> int:
        if self.state != STATE_OPEN:
            self.vm.engine_errors.append("WebSocketPeer.send() while not open")
            return FAILED
        if len(data.data) > self.props["outbound_buffer_size"]:
            self.vm.engine_errors.append("WebSocketPeer.send(): over outbound_buffer_size")
            return ERR_OUT_OF_MEMORY
        payload = bytes(data.data)
        try:
            self._conn.send(payload.decode("utf-8") if mode == WRITE_MODE_TEXT else payload)
        except ConnectionClosed:
            return FAILED
        return OK

    def gd_put_packet(self, data: PackedByteArray) -> int:
        return self.gd_send(data, WRITE_MODE_BINARY)

    def gd_send_text(self, text: str) -> int:
        return self.gd_send(PackedByteArray(text.encode("utf-8")), WRITE_MODE_TEXT)

    def gd_close(self, code: int = 1000, reason: str = "") -> None:
        if self.state == STATE_CONNECTING or self._conn is None:
            self.state = STATE_CLOSED
        elif self.state == STATE_OPEN:
            self.state = STATE_CLOSING
        conn = self._conn
        if conn is not None:
            threading.Thread(target=conn.close, args=(code, reason), daemon=True).start()

    def gd_get_close_code(self) -> int:
        return self.close_code

    def gd_get_close_reason(self) -> str:
        return self.close_reason

    def gd_get_requested_url(self) -> str:
        return self.url

    def shutdown(self) -> None:
        if self._conn is not None:
            self._conn.close()


class FileHandle(NativeObject):
    """FileAccess opened for writing (the only mode the addon uses)."""

    CLASS = "FileAccess"
    BASES = ("RefCounted", "Object")

    def __init__(self, vm: Any, path: Path) -> None:
        super().__init__(vm)
        self.path, self.parts = path, []

    def gd_store_buffer(self, data: PackedByteArray) -> bool:
        self.parts.append(bytes(data.data))
        return True

    def gd_get_error(self) -> int:
        return OK

    def gd_close(self) -> None:
        self.path.write_bytes(b"".join(self.parts))


def var_to_str(value: Any) -> str:
    """Godot's text form of a value, as in .import and .tres files (the types used here)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise GDScriptError(f"var_to_str: {type(value).__name__} is not modelled")


class Natives:
    """The engine singletons and global functions of one VM."""

    def __init__(self, vm: Any) -> None:
        self.vm = vm
        self.tree = SceneTree(vm)
        self.peers: list[WebSocketPeer] = []
        self.connect_failures: list[str] = []
        self.processes = Processes(vm)
        self.start = time.monotonic()

    def ticks_msec(self) -> int:
        return int((time.monotonic() - self.start) * 1000)

    def close_all(self) -> None:
        for peer in self.peers:
            peer.shutdown()
        self.processes.close_all()

    def globals(self) -> dict[str, Any]:
        vm = self.vm

        def push_warning(*parts: Any) -> None:
            vm.warnings.append("".join(to_str(p) for p in parts))

        def gd_assert(condition: Any, message: str = "") -> None:
            if not condition:
                raise GDScriptError(f"Assertion failed: {message}")

        ws_members: dict[str, Any] = {
            "new": lambda: WebSocketPeer(vm),
            "STATE_CONNECTING": STATE_CONNECTING, "STATE_OPEN": STATE_OPEN,
            "STATE_CLOSING": STATE_CLOSING, "STATE_CLOSED": STATE_CLOSED,
            "WRITE_MODE_TEXT": WRITE_MODE_TEXT, "WRITE_MODE_BINARY": WRITE_MODE_BINARY,
        }  # fmt: skip
        errors = {
            "OK": OK, "FAILED": FAILED, "ERR_OUT_OF_MEMORY": ERR_OUT_OF_MEMORY,
            "ERR_INVALID_PARAMETER": ERR_INVALID_PARAMETER,
            "ERR_ALREADY_IN_USE": ERR_ALREADY_IN_USE, "CONNECT_ONE_SHOT": 4,
        }  # fmt: skip

        def real(path: str) -> Path:
            if not path.startswith("res://") or vm.res_root is None:
                raise GDScriptError(f"{path}: only res:// paths are modelled")
            return Path(vm.res_root) / path[len("res://") :]

        def anywhere(path: str) -> Path:
            """res:// in the project; an absolute OS path as it is (the launcher's lookups)."""
            return real(path) if path.startswith("res://") else Path(path)

        def open_file(path: str, mode: int) -> NativeObject | None:
            if not path.startswith("res://"):
                return open_real(vm, path, mode)
            if mode != FILE_WRITE:
                raise GDScriptError("only FileAccess.WRITE is modelled")
            if not real(path).parent.is_dir():
                return None
            return FileHandle(vm, real(path))

        def rename(src: str, dst: str) -> int:
            if not real(src).is_file():
                return ERR_FILE_NOT_FOUND
            os.replace(real(src), real(dst))
            return OK

        def make_dirs(path: str) -> int:
            anywhere(path).mkdir(parents=True, exist_ok=True)
            return OK

        def remove(path: str) -> int:
            real(path).unlink(missing_ok=True)
            return OK

        file_access = {
            "open": open_file, "WRITE": FILE_WRITE, "READ": 1, "get_open_error": lambda: FAILED,
            "file_exists": lambda path: anywhere(path).is_file(),
        }  # fmt: skip
        dir_access = {
            "make_dir_recursive_absolute": make_dirs, "rename_absolute": rename,
            "remove_absolute": remove, "dir_exists_absolute": lambda p: anywhere(p).is_dir(),
        }  # fmt: skip
        system = os_globals(vm, self.processes)
        net = net_globals(vm, web=getattr(vm, "web", False))
        system["OS"].members.update(net["OS"].members)  # has_feature: per VM (web or not)
        return {
            **errors,
            **net,
            "OS": system["OS"],
            "ProjectSettings": system["ProjectSettings"],
            "FileAccess": Native("FileAccess", file_access),
            "DirAccess": Native("DirAccess", dir_access),
            "var_to_str": var_to_str,
            "WebSocketPeer": Native("WebSocketPeer", ws_members),
            "Time": Native("Time", {"get_ticks_msec": self.ticks_msec, **system["time"]}),
            "Engine": Native("Engine", {"get_main_loop": lambda: self.tree}),
            "error_string": lambda code: ERROR_NAMES.get(code, f"Error {code}"),
            "push_warning": push_warning,
            "mini": min, "maxi": max, "assert": gd_assert,
            "int": lambda v: int(v), "float": lambda v: float(v),
            "PackedStringArray": lambda *a: GDArray(a[0] if a else []),
        }  # fmt: skip


def container_method(obj: Any, name: str, args: list[Any]) -> tuple[bool, Any]:
    """Array, Dictionary and String methods the stub builtins lack: (handled, value)."""
    if isinstance(obj, dict):
        if name == "erase":
            return True, obj.pop(args[0], _MISSING) is not _MISSING
        if name == "get":
            return True, obj.get(args[0], args[1] if len(args) > 1 else None)
        if name == "values":
            return True, GDArray(obj.values())
        if name == "clear":
            obj.clear()
            return True, None
    elif isinstance(obj, list):
        if name == "has":
            return True, args[0] in obj
        if name == "clear":
            obj.clear()
            return True, None
        if name == "pop_front":
            return True, obj.pop(0) if obj else None
        if name == "back":
            return True, obj[-1] if obj else None
        if name == "remove_at":
            del obj[args[0]]
            return True, None
        if name == "append_array":
            obj.extend(args[0])
            return True, None
        if name == "slice":
            return True, GDArray(obj[args[0] : args[1] if len(args) > 1 else None])
        if name == "duplicate":
            copy = GDArray(obj, getattr(obj, "elem", None))
            copy.check = getattr(obj, "check", None)
            return True, copy
    elif isinstance(obj, PackedByteArray):
        if name == "fill":
            obj.data[:] = bytes([args[0] & 0xFF]) * len(obj.data)
            return True, None
    elif isinstance(obj, str):
        if name in STR_METHODS:
            return True, STR_METHODS[name](obj, *args)
        if name in ("get_file", "get_base_dir"):
            scheme, _, rest = obj.rpartition("://")
            head, _, tail = rest.rpartition("/")
            if name == "get_file":
                return True, tail
            return True, (scheme + "://" if scheme else "") + head
    return False, None


_MISSING = object()

from .godot_net_natives import STR_METHODS, net_globals, ssl_context  # noqa: E402 (imports us)
from .godot_os_natives import Processes, open_real, os_globals  # noqa: E402 (imports us)
