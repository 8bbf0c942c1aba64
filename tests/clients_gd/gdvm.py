"""Signals, callables, ``await`` and engine types for tests/stubs/gdscript_vm.py.

``GodotVM`` extends the stub interpreter (which runs the generated messages and the codec) with
what the GDScript client needs, following Godot 4's rules where the client depends on them:

- ``signal`` declarations; ``sig.connect(callable, flags)`` (connecting the same callable twice
  is an error), ``disconnect``, ``is_connected``, ``emit`` (connections run in order, at once;
  ``CONNECT_ONE_SHOT``); a wrong argument count is an error, as in Godot.
- Callables from methods (``poll``, ``self._on_x``), ``.call()``, ``.bind()``, equality.
- Coroutines: a function whose body contains ``await`` runs on its own thread, and exactly one
  thread runs GDScript at any time (a strict hand-off, so the interpreter stays single-threaded
  in effect). ``await signal`` suspends until the signal is emitted and resumes inside that
  ``emit()`` call, as Godot does; ``await f()`` waits for coroutine ``f``; awaiting anything
  else returns it at once. A coroutine that never awaits returns its value directly.
- ``static var`` as one value per class, made at first use (mutated in place, never assigned);
  ``x as T``, enum and engine class names as type hints, ``res://`` preloads mapped to a
  project folder, and a few engine functions (``mini``, ``error_string``, ``push_warning``).

The engine objects (``Time``, ``Engine.get_main_loop()``, ``WebSocketPeer``) are in
``godot_natives.py``. The tests drive frames with ``GodotVM.run_until_done``: each frame fires due
timers and emits ``SceneTree.process_frame``, as the engine's main loop does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lark import Token, Tree

from ..stubs.gdscript_builtins import GDArray, GDScriptError, PackedByteArray
from ..stubs.gdscript_vm import VM, EnumNS, Frame, FuncDecl, GDClass, Instance
from . import godot_natives

CONNECT_ONE_SHOT = 4
FRAME_S = 0.002  # the pause between frames: a 500 fps main loop that leaves the CPU to others
NATIVE_TYPES = {
    "Object", "RefCounted", "Node", "Callable", "Signal", "SceneTree", "MainLoop", "Image",
    "WebSocketPeer", "Texture2D", "ImageTexture", "StringName", "NodePath", "PackedStringArray",
    "TLSOptions", "HTTPClient", "X509Certificate", "FileAccess",
}  # fmt: skip
INT_TYPES = {"Error", "int"}


class Signal:
    """A signal of one object: its connections, in order."""

    def __init__(self, vm: GodotVM, name: str) -> None:
        self.vm, self.name = vm, name
        self.connections: list[tuple[Any, int]] = []

    def __repr__(self) -> str:
        return f"<signal {self.name}>"

    def connect(self, target: Any, flags: int = 0) -> int:
        if any(c == target for c, _ in self.connections):
            self.vm.engine_errors.append(f"signal {self.name}: {target!r} is already connected")
            return godot_natives.ERR_INVALID_PARAMETER
        self.connections.append((target, flags))
        return godot_natives.OK

    def disconnect(self, target: Any) -> None:
        for i, (c, _) in enumerate(self.connections):
            if c == target:
                del self.connections[i]
                return
        self.vm.engine_errors.append(f"signal {self.name}: {target!r} is not connected")

    def is_connected(self, target: Any) -> bool:
        return any(c == target for c, _ in self.connections)

    def emit(self, *args: Any) -> None:
        for target, flags in list(self.connections):
            if flags & CONNECT_ONE_SHOT:
                self.connections = [(c, f) for c, f in self.connections if c is not target]
            target(*args)

    def method(self, name: str, args: list[Any]) -> Any:
        simple = {"connect", "disconnect", "is_connected", "emit"}
        if name not in simple:
            raise GDScriptError(f'Signal has no method "{name}"')
        return getattr(self, name)(*args)


class GDCallable:
    """Callable: a method of an object (or a static function), with bound arguments."""

    def __init__(
        self, vm: GodotVM, func: FuncDecl | None, this: Any, bound: tuple[Any, ...] = (),
        py: Callable[..., Any] | None = None,
    ) -> None:  # fmt: skip
        self.vm, self.func, self.this, self.bound, self.py = vm, func, this, bound, py

    def __call__(self, *args: Any) -> Any:
        full = [*args, *self.bound]
        if self.py is not None:
            return self.py(*full)
        assert self.func is not None
        return self.vm.call(self.func, self.this, full)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GDCallable):
            return False
        if self.py is not None or other.py is not None:
            return self.py is other.py and self.bound == other.bound
        return (self.func, self.this, self.bound) == (other.func, other.this, other.bound)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        name = self.func.name if self.func else getattr(self.py, "__name__", "?")
        return f"<Callable {name}>"

    def method(self, name: str, args: list[Any]) -> Any:
        if name == "call":
            return self(*args)
        if name == "callv":
            return self(*args[0])
        if name == "bind":
            return GDCallable(self.vm, self.func, self.this, (*args, *self.bound), self.py)
        if name == "is_valid":
            return True
        raise GDScriptError(f'Callable has no method "{name}"')


class FunctionState:
    """What calling a coroutine returns while it is suspended; ``completed`` fires at its end."""

    def __init__(self, vm: GodotVM, name: str) -> None:
        self.name = name
        self.completed = Signal(vm, f"{name}.completed")
        self.done = False
        self.value: Any = None


class Fiber:
    """One coroutine on its own thread; control passes back and forth by hand-off."""

    def __init__(self, vm: GodotVM, run: Callable[[], Any], state: FunctionState) -> None:
        self.vm, self.run, self.state = vm, run, state
        self._go = threading.Semaphore(0)
        self._back = threading.Semaphore(0)
        self._error: BaseException | None = None
        self.finished = False
        old = threading.stack_size(64 * 1024 * 1024)  # the interpreter recurses deeply
        try:
            self.thread = threading.Thread(target=self._main, name=f"gd:{state.name}", daemon=True)
        finally:
            threading.stack_size(old)

    def _main(self) -> None:
        self._go.acquire()
        self.vm.current = self
        try:
            value = self.run()
            self.state.done, self.state.value = True, value
            self.finished = True
            self.state.completed.emit(value)  # resumes whoever awaits this coroutine
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that resumed us
            self._error = exc
            self.finished = True
        finally:
            self._back.release()

    def start(self) -> None:
        self.thread.start()
        self.resume()

    def resume(self) -> None:
        """Runs the coroutine until it awaits again or ends; called by the resuming thread."""
        outer = self.vm.current
        self._go.release()
        self._back.acquire()
        self.vm.current = outer
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def suspend(self) -> None:
        """Called on the coroutine's own thread by ``await``."""
        self._back.release()
        self._go.acquire()
        self.vm.current = self


class GodotVM(VM):
    def __init__(self, res_root: Path | None = None) -> None:
        super().__init__()
        cls = type(self)  # the base registers VM's own handlers only
        self._handlers = {n[3:]: getattr(cls, n) for n in dir(cls) if n.startswith("_e_")}
        self.res_root = res_root
        self.current: Fiber | None = None
        self.engine_errors: list[str] = []  # errors Godot would print (ERR_FAIL_* and friends)
        self.warnings: list[str] = []  # push_warning()
        self._coroutine: dict[int, bool] = {}
        self.natives = godot_natives.Natives(self)
        self.globals.update(self.natives.globals())

    # ---- loading -------------------------------------------------------------------------

    def load(self, path: str | Path) -> GDClass:
        text = str(path)
        if text.startswith("res://"):
            if self.res_root is None:
                raise GDScriptError(f"{text}: no res:// root configured")
            path = self.res_root / text[len("res://") :]
        return super().load(path)

    def _build(self, cls: GDClass, stmts: list[Any]) -> None:
        signals: list[str] = getattr(cls, "signals", [])
        cls.signals = signals  # type: ignore[attr-defined]
        rest = []
        for st in stmts:
            if st.data == "signal_stmt":
                signals.append(str(st.children[0]))
            elif st.data == "docstr_stmt":
                continue
            elif st.data == "static_class_var_stmt":  # one value per class, made at first use
                var = st.children[0].children[0]
                cls.const_nodes[str(var.children[0])] = var.children[-1]
            else:
                rest.append(st)
        super()._build(cls, rest)

    def _e_standalone_call(self, node: Tree, fr: Frame) -> Any:
        name = str(node.children[0])
        if name in ("preload", "load"):
            rel = self.eval(node.children[1], fr)
            return self.load(rel if rel.startswith("res://") else fr.cls.path.parent / rel)
        return super()._e_standalone_call(node, fr)

    # ---- names, types, objects -----------------------------------------------------------

    def lookup(self, name: str, fr: Frame) -> Any:
        if name not in fr.locals and fr.this is not None and _has_signal(fr.this.cls, name):
            return self.signal_of(fr.this, name)
        return super().lookup(name, fr)

    def signal_of(self, inst: Instance, name: str) -> Signal:
        signals: dict[str, Signal] | None = getattr(inst, "signals", None)
        if signals is None:
            signals = inst.signals = {}  # type: ignore[attr-defined]
        if name not in signals:
            signals[name] = Signal(self, f"{inst.cls.name}.{name}")
        return signals[name]

    def resolve_type(self, hint: str, cls: GDClass) -> Any:
        base = hint.split("[", 1)[0].strip()
        if base in INT_TYPES:
            return "int"
        if base in NATIVE_TYPES:
            return base
        if "." in base and base.split(".")[0].strip() in NATIVE_TYPES:
            return "int"  # a native enum such as WebSocketPeer.State
        try:
            return super().resolve_type(hint, cls)
        except GDScriptError:
            parts = [p.strip() for p in base.split(".")]
            value = self.lookup(parts[0], Frame(cls, None))
            for part in parts[1:]:
                value = self.class_const(value, part)
            if isinstance(value, EnumNS):
                return "int"
            raise

    def coerce(self, value: Any, hint: str | None, cls: GDClass) -> Any:
        if hint is not None and hint.split("[", 1)[0].strip() in NATIVE_TYPES:
            want = hint.split("[", 1)[0].strip()
            if not godot_natives.is_native_instance(value, want):
                raise GDScriptError(f"cannot assign {value!r:.60} to {hint}")
            return value
        return super().coerce(value, hint, cls)

    def bind(self, func: FuncDecl, this: Instance | None) -> Callable[..., Any]:
        return GDCallable(self, func, this)

    def get_attr(self, obj: Any, name: str, fr: Frame) -> Any:
        if isinstance(obj, Instance) and _has_signal(obj.cls, name):
            return self.signal_of(obj, name)
        if isinstance(obj, FunctionState) and name == "completed":
            return obj.completed
        if isinstance(obj, godot_natives.NativeObject):
            return obj.get(name)
        return super().get_attr(obj, name, fr)

    def set_attr(self, obj: Any, name: str, value: Any, fr: Frame) -> None:
        if isinstance(obj, godot_natives.NativeObject):
            obj.set(name, value)
            return
        super().set_attr(obj, name, value, fr)

    def call_method(self, obj: Any, name: str, args: list[Any], fr: Frame) -> Any:
        if isinstance(obj, Signal | GDCallable):
            return obj.method(name, args)
        if isinstance(obj, godot_natives.NativeObject):
            return obj.call(name, args)
        if isinstance(obj, list | dict | str | PackedByteArray):
            handled, value = godot_natives.container_method(obj, name, args)
            if handled:
                return value
        return super().call_method(obj, name, args, fr)

    # ---- statements and expressions ------------------------------------------------------

    def exec(self, st: Tree, fr: Frame) -> Any:
        if st.data in ("annotation", "breakpoint_stmt"):
            return None
        return super().exec(st, fr)

    def _e_actual_type_cast(self, node: Tree, fr: Frame) -> Any:
        value = self.eval(node.children[0], fr)
        hint = str(node.children[-1])
        want = self.resolve_type(hint, fr.cls)
        if want == "int" and isinstance(value, float):
            return int(value)
        if want == "float" and isinstance(value, int):
            return float(value)
        if isinstance(want, GDClass):
            return value if isinstance(value, Instance) and value.cls is want else None
        if isinstance(want, str) and want in NATIVE_TYPES:
            return value if godot_natives.is_native_instance(value, want) else None
        return value

    def _e_asless_type_test(self, node: Tree, fr: Frame) -> bool:
        """``value is T`` for the builtin types, script classes and engine classes."""
        value = self.eval(node.children[0], fr)
        hint = str(node.children[-1])
        builtin = {"Dictionary": dict, "Array": list, "String": str, "float": float}
        if hint in builtin:
            return isinstance(value, builtin[hint])
        if hint in ("int", "bool"):
            return type(value) is (int if hint == "int" else bool)
        want = self.resolve_type(hint, fr.cls)
        if isinstance(want, GDClass):
            return isinstance(value, Instance) and value.cls is want
        return value is not None and godot_natives.is_native_instance(value, hint)

    def _e_await_expr(self, node: Tree, fr: Frame) -> Any:
        awaits = sum(1 for c in node.children if isinstance(c, Token) and str(c) == "await")
        value = self.eval(node.children[-1], fr)
        for _ in range(awaits):
            value = self.await_value(value)
        return value

    def await_value(self, value: Any) -> Any:
        if isinstance(value, FunctionState):
            if value.done:
                return value.value
            signal = value.completed
        elif isinstance(value, Signal):
            signal = value
        else:
            return value
        fiber = self.current
        if fiber is None:
            raise GDScriptError("await outside a coroutine")
        box: dict[str, Any] = {}

        def resume(*args: Any) -> None:
            box["value"] = None if not args else args[0] if len(args) == 1 else GDArray(args)
            fiber.resume()

        signal.connect(GDCallable(self, None, None, py=resume), CONNECT_ONE_SHOT)
        fiber.suspend()
        return box["value"]

    # ---- coroutines ----------------------------------------------------------------------

    def call(self, func: FuncDecl, this: Instance | None, args: list[Any]) -> Any:
        if not self._is_coroutine(func):
            return super().call(func, this, args)
        state = FunctionState(self, func.name)
        fiber = Fiber(self, lambda: super(GodotVM, self).call(func, this, args), state)
        fiber.start()
        return state.value if fiber.finished else state

    def _is_coroutine(self, func: FuncDecl) -> bool:
        key = id(func)
        if key not in self._coroutine:
            self._coroutine[key] = any(_contains_await(st) for st in func.body)
        return self._coroutine[key]

    # ---- the main loop -------------------------------------------------------------------

    def run_until_done(
        self, started: Any, timeout: float, on_frame: Callable[[], None] | None = None
    ) -> Any:
        """Runs frames until the coroutine ``started`` (a call's return) ends; its value.

        ``on_frame`` runs between frames (the test's side of a scenario)."""
        deadline = time.monotonic() + timeout
        while isinstance(started, FunctionState) and not started.done:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{started.name}() still waiting after {timeout} s")
            self.natives.tree.frame()
            if on_frame is not None:
                on_frame()
            time.sleep(FRAME_S)
        return started.value if isinstance(started, FunctionState) else started

    def shutdown(self) -> None:
        self.natives.close_all()


def _has_signal(cls: GDClass, name: str) -> bool:
    return name in getattr(cls, "signals", ())


def _contains_await(node: Any) -> bool:
    if isinstance(node, Token) or not isinstance(node, Tree):
        return False
    if node.data == "lambda":
        return False
    if node.data == "await_expr" and any(
        isinstance(c, Token) and str(c) == "await" for c in node.children
    ):
        return True
    return any(_contains_await(c) for c in node.children)


__all__ = ["GodotVM", "Signal", "GDCallable", "FunctionState"]
