from pixelkiln.v1 import generator_pb2 as _generator_pb2
from pixelkiln.v1 import models_pb2 as _models_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Envelope(_message.Message):
    __slots__ = ("request_id", "generate", "event", "cancel", "cancel_response", "live_input", "live_frame", "live_end", "list_models", "list_models_response", "load_model", "model_info", "unload_model", "unload_model_response", "status", "status_response", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    CANCEL_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    LIVE_INPUT_FIELD_NUMBER: _ClassVar[int]
    LIVE_FRAME_FIELD_NUMBER: _ClassVar[int]
    LIVE_END_FIELD_NUMBER: _ClassVar[int]
    LIST_MODELS_FIELD_NUMBER: _ClassVar[int]
    LIST_MODELS_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    LOAD_MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_INFO_FIELD_NUMBER: _ClassVar[int]
    UNLOAD_MODEL_FIELD_NUMBER: _ClassVar[int]
    UNLOAD_MODEL_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    generate: _generator_pb2.GenerateRequest
    event: _generator_pb2.GenerateEvent
    cancel: _generator_pb2.CancelRequest
    cancel_response: _generator_pb2.CancelResponse
    live_input: _generator_pb2.LiveInput
    live_frame: _generator_pb2.LiveFrame
    live_end: LiveEnd
    list_models: _models_pb2.ListModelsRequest
    list_models_response: _models_pb2.ListModelsResponse
    load_model: _models_pb2.LoadModelRequest
    model_info: _models_pb2.ModelInfo
    unload_model: _models_pb2.UnloadModelRequest
    unload_model_response: _models_pb2.UnloadModelResponse
    status: _models_pb2.StatusRequest
    status_response: _models_pb2.StatusResponse
    error: Error
    def __init__(self, request_id: _Optional[str] = ..., generate: _Optional[_Union[_generator_pb2.GenerateRequest, _Mapping]] = ..., event: _Optional[_Union[_generator_pb2.GenerateEvent, _Mapping]] = ..., cancel: _Optional[_Union[_generator_pb2.CancelRequest, _Mapping]] = ..., cancel_response: _Optional[_Union[_generator_pb2.CancelResponse, _Mapping]] = ..., live_input: _Optional[_Union[_generator_pb2.LiveInput, _Mapping]] = ..., live_frame: _Optional[_Union[_generator_pb2.LiveFrame, _Mapping]] = ..., live_end: _Optional[_Union[LiveEnd, _Mapping]] = ..., list_models: _Optional[_Union[_models_pb2.ListModelsRequest, _Mapping]] = ..., list_models_response: _Optional[_Union[_models_pb2.ListModelsResponse, _Mapping]] = ..., load_model: _Optional[_Union[_models_pb2.LoadModelRequest, _Mapping]] = ..., model_info: _Optional[_Union[_models_pb2.ModelInfo, _Mapping]] = ..., unload_model: _Optional[_Union[_models_pb2.UnloadModelRequest, _Mapping]] = ..., unload_model_response: _Optional[_Union[_models_pb2.UnloadModelResponse, _Mapping]] = ..., status: _Optional[_Union[_models_pb2.StatusRequest, _Mapping]] = ..., status_response: _Optional[_Union[_models_pb2.StatusResponse, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class LiveEnd(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "code_name", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    CODE_NAME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    code_name: str
    message: str
    def __init__(self, code: _Optional[int] = ..., code_name: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...
