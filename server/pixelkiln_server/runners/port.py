"""The runner port: the only contract between the front (services, scheduler, live sessions,
admission) and a model runner (one per device, in a thread, a child process or elsewhere).

Messages are plain data serialised with msgpack, never pickle: dicts of str, int, float, bool,
None, bytes and lists. Arrays travel as ``{"nd": dtype, "shape": [...], "data": bin}``
and come back as read-only views of the received buffer (no copy). Domain dataclasses
(requests, specs, results) travel as dicts of their fields and are rebuilt by type.

Front -> runner (``op``)::

    load    {call, spec}                 -> reply {model: LoadedModelStatus}
    unload  {call, name}                 -> reply {unload: UnloadResult}
    status  {call}                       -> reply {status: RunnerStatus}
    warm    {call, spec}                 -> reply {}   (load, then one 1-step generation)
    run     {jobs: [{id, request, spec, inputs, shas}]}   (one batch; events come back)
    cancel  {job, reason}                (a queued or running job of the current batch)
    shutdown {}

Runner -> front (``ev``)::

    started  {job}                       (the runner has the job: no longer safe to re-place)
    progress {job, step, total, elapsed_ms}
    preview  {job, step, images}
    result   {job, result, model_ms, encode_ms}
    error    {job, error: {code, message, field}}
    done     {}                          (the batch is over: the runner takes work again)
    reply    {call, ok, value | error}
    alive    {busy}                      (heartbeat, every HEARTBEAT_S from its own thread)

A batch's last event carries its end: ``done: true`` and the runner's state (``models``,
``budget``) ride on the last job's result or error, in one message; a batch with no job left
to report ends with a bare ``done``. A reply carries the state too.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
import types
import typing
from functools import cache
from typing import Any

import msgpack
import numpy as np

from ..catalogue import ModelSpec
from ..errors import (
    Cancelled,
    Code,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PixelKilnError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from ..types import DecodedInputs, EncodedImage, GenerationRequest, LoadedModelStatus, Result

HEARTBEAT_S = 0.5

Message = dict[str, Any]


def pack(message: Message) -> bytes:
    return msgpack.packb(message, default=_default, use_bin_type=True)


def unpack(data: bytes | bytearray | memoryview) -> Message:
    message = msgpack.unpackb(data, raw=False, object_hook=_object_hook)
    if not isinstance(message, dict):
        raise ValueError("a port message must be a map")
    return message


def _default(obj: object) -> object:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        data = memoryview(arr).cast("B")  # type: ignore[arg-type]
        return {"nd": arr.dtype.str, "shape": list(arr.shape), "data": data}
    if isinstance(obj, enum.Enum):
        return obj.value
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | frozenset | set):
        return list(obj)
    raise TypeError(f"cannot send {type(obj).__name__} across the runner port")


def _object_hook(obj: dict[str, Any]) -> object:
    if "nd" in obj and "data" in obj and len(obj) == 3:
        return np.frombuffer(obj["data"], dtype=np.dtype(obj["nd"])).reshape(obj["shape"])
    return obj


# -- domain dataclasses from their plain form --------------------------------------------


def build(cls: type[Any], data: Any) -> Any:
    """Rebuild a value of type ``cls`` (a dataclass, enum, tuple, list, dict, optional or
    primitive annotation) from its plain form. Each type's builder is worked out once from
    its annotations (:func:`_builder`): a result crosses per job, and reading the type hints
    per value cost a third of a millisecond of the front's time per job."""
    return _builder(typing.cast(Any, cls))(data)


Builder = typing.Callable[[Any], Any]


def _identity(data: Any) -> Any:
    return data


def _optional(inner: Builder) -> Builder:
    return lambda data: None if data is None else inner(data)


@cache
def _builder(tp: Any) -> Builder:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _builder(args[0]) if len(args) == 1 else _identity
    if origin is tuple:
        parts = typing.get_args(tp)
        if len(parts) == 2 and parts[1] is Ellipsis:
            item = _builder(parts[0])
            return _optional(lambda data: tuple(item(v) for v in data))
        items = [_builder(a) for a in parts]
        return _optional(lambda data: tuple(f(v) for f, v in zip(items, data, strict=True)))
    if origin is list:
        (arg,) = typing.get_args(tp)
        element = _builder(arg)
        return _optional(lambda data: [element(v) for v in data])
    if origin is dict:
        _, arg = typing.get_args(tp)
        value = _builder(arg)
        return _optional(lambda data: {k: value(v) for k, v in data.items()})
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _optional(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = _hints(tp)
        known = {f.name: _builder(hints[f.name]) for f in dataclasses.fields(tp)}
        return _optional(lambda data: tp(**{k: known[k](v) for k, v in data.items() if k in known}))
    if tp is float:
        return lambda data: float(data) if isinstance(data, int) else data
    if tp is bytes:
        return lambda data: bytes(data) if isinstance(data, memoryview | bytearray) else data
    return _identity


@cache
def _hints(cls: type[Any]) -> dict[str, Any]:
    module = sys.modules[cls.__module__]
    return typing.get_type_hints(cls, vars(module))


def request_to_wire(request: GenerationRequest) -> dict[str, Any]:
    """The request without its input images' bytes (the decoded pixels travel beside it)."""

    def strip(img: EncodedImage | None) -> EncodedImage | None:
        return None if img is None else EncodedImage(b"", img.encoding, img.width, img.height)

    stripped = dataclasses.replace(
        request, init_image=strip(request.init_image), mask=strip(request.mask)
    )
    return typing.cast(dict[str, Any], _default(stripped))


def request_from_wire(data: dict[str, Any]) -> GenerationRequest:
    request: GenerationRequest = build(GenerationRequest, data)
    return request


def spec_from_wire(data: dict[str, Any]) -> ModelSpec:
    spec: ModelSpec = build(ModelSpec, data)
    return spec


def inputs_from_wire(data: dict[str, Any]) -> DecodedInputs:
    return DecodedInputs(init_rgb=data.get("init_rgb"), mask=data.get("mask"))


def result_from_wire(data: dict[str, Any]) -> Result:
    result: Result = build(Result, data)
    return result


def model_status_from_wire(data: dict[str, Any]) -> LoadedModelStatus:
    status: LoadedModelStatus = build(LoadedModelStatus, data)
    return status


def state_from_wire(message: Message) -> tuple[list[LoadedModelStatus], int]:
    """A runner's state as a message carries it (``models``, ``budget``)."""
    models = [model_status_from_wire(m) for m in message.get("models") or []]
    return models, int(message.get("budget") or 0)


# -- errors ----------------------------------------------------------------------------------

_ERRORS: dict[Code, type[PixelKilnError]] = {
    Code.INVALID_ARGUMENT: InvalidArgument,
    Code.NOT_FOUND: NotFound,
    Code.RESOURCE_EXHAUSTED: ResourceExhausted,
    Code.CANCELLED: Cancelled,
    Code.UNAVAILABLE: Unavailable,
    Code.FAILED_PRECONDITION: FailedPrecondition,
    Code.DEADLINE_EXCEEDED: DeadlineExceeded,
    Code.UNAUTHENTICATED: Unauthenticated,
    Code.PERMISSION_DENIED: PermissionDenied,
    Code.INTERNAL: Internal,
}


def error_to_wire(exc: PixelKilnError) -> dict[str, Any]:
    return {"code": exc.code.value, "message": exc.message, "field": getattr(exc, "field", "")}


def error_from_wire(data: dict[str, Any]) -> PixelKilnError:
    cls = _ERRORS.get(Code(data.get("code", "INTERNAL")), Internal)
    exc = cls.__new__(cls)
    PixelKilnError.__init__(exc, str(data.get("message", "")))
    if data.get("field"):
        exc.field = data["field"]  # type: ignore[attr-defined]
    return exc
