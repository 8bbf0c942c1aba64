from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelInfo(_message.Message):
    __slots__ = ("name", "family", "backend", "native_width", "native_height", "default_steps", "default_guidance", "loaded", "source", "available_locally", "max_steps")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    NATIVE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    NATIVE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_STEPS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_GUIDANCE_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_LOCALLY_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    name: str
    family: str
    backend: str
    native_width: int
    native_height: int
    default_steps: int
    default_guidance: float
    loaded: bool
    source: str
    available_locally: bool
    max_steps: int
    def __init__(self, name: _Optional[str] = ..., family: _Optional[str] = ..., backend: _Optional[str] = ..., native_width: _Optional[int] = ..., native_height: _Optional[int] = ..., default_steps: _Optional[int] = ..., default_guidance: _Optional[float] = ..., loaded: _Optional[bool] = ..., source: _Optional[str] = ..., available_locally: _Optional[bool] = ..., max_steps: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "default_model")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    default_model: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., default_model: _Optional[str] = ...) -> None: ...

class LoadModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UnloadModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UnloadModelResponse(_message.Message):
    __slots__ = ("unloaded", "freed_bytes")
    UNLOADED_FIELD_NUMBER: _ClassVar[int]
    FREED_BYTES_FIELD_NUMBER: _ClassVar[int]
    unloaded: bool
    freed_bytes: int
    def __init__(self, unloaded: _Optional[bool] = ..., freed_bytes: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("version", "device", "dtype", "memory_used_bytes", "loaded_models", "default_model", "queue_depth", "queue_capacity", "running", "ready", "max_message_bytes", "models", "memory_budget_bytes", "runners")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    LOADED_MODELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    QUEUE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    RUNNERS_FIELD_NUMBER: _ClassVar[int]
    version: str
    device: str
    dtype: str
    memory_used_bytes: int
    loaded_models: _containers.RepeatedScalarFieldContainer[str]
    default_model: str
    queue_depth: int
    queue_capacity: int
    running: int
    ready: bool
    max_message_bytes: int
    models: _containers.RepeatedCompositeFieldContainer[LoadedModel]
    memory_budget_bytes: int
    runners: _containers.RepeatedCompositeFieldContainer[RunnerStatus]
    def __init__(self, version: _Optional[str] = ..., device: _Optional[str] = ..., dtype: _Optional[str] = ..., memory_used_bytes: _Optional[int] = ..., loaded_models: _Optional[_Iterable[str]] = ..., default_model: _Optional[str] = ..., queue_depth: _Optional[int] = ..., queue_capacity: _Optional[int] = ..., running: _Optional[int] = ..., ready: _Optional[bool] = ..., max_message_bytes: _Optional[int] = ..., models: _Optional[_Iterable[_Union[LoadedModel, _Mapping]]] = ..., memory_budget_bytes: _Optional[int] = ..., runners: _Optional[_Iterable[_Union[RunnerStatus, _Mapping]]] = ...) -> None: ...

class RunnerStatus(_message.Message):
    __slots__ = ("name", "device", "state", "loaded_models", "memory_bytes", "running", "restarts", "last_error", "pid", "jobs_run")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LOADED_MODELS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    JOBS_RUN_FIELD_NUMBER: _ClassVar[int]
    name: str
    device: str
    state: str
    loaded_models: _containers.RepeatedScalarFieldContainer[str]
    memory_bytes: int
    running: int
    restarts: int
    last_error: str
    pid: int
    jobs_run: int
    def __init__(self, name: _Optional[str] = ..., device: _Optional[str] = ..., state: _Optional[str] = ..., loaded_models: _Optional[_Iterable[str]] = ..., memory_bytes: _Optional[int] = ..., running: _Optional[int] = ..., restarts: _Optional[int] = ..., last_error: _Optional[str] = ..., pid: _Optional[int] = ..., jobs_run: _Optional[int] = ...) -> None: ...

class LoadedModel(_message.Message):
    __slots__ = ("name", "device", "dtype", "memory_bytes", "options", "last_used_unix_ms")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    device: str
    dtype: str
    memory_bytes: int
    options: _containers.ScalarMap[str, str]
    last_used_unix_ms: int
    def __init__(self, name: _Optional[str] = ..., device: _Optional[str] = ..., dtype: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., options: _Optional[_Mapping[str, str]] = ..., last_used_unix_ms: _Optional[int] = ...) -> None: ...
