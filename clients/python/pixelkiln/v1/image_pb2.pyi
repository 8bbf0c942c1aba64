from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODING_UNSPECIFIED: _ClassVar[Encoding]
    ENCODING_PNG: _ClassVar[Encoding]
    ENCODING_JPEG: _ClassVar[Encoding]
    ENCODING_WEBP: _ClassVar[Encoding]
    ENCODING_RAW_RGBA8: _ClassVar[Encoding]
ENCODING_UNSPECIFIED: Encoding
ENCODING_PNG: Encoding
ENCODING_JPEG: Encoding
ENCODING_WEBP: Encoding
ENCODING_RAW_RGBA8: Encoding

class Image(_message.Message):
    __slots__ = ("data", "encoding", "width", "height")
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    encoding: Encoding
    width: int
    height: int
    def __init__(self, data: _Optional[bytes] = ..., encoding: _Optional[_Union[Encoding, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...
