from toolmesh.v1 import values_pb2 as _values_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CallRequest(_message.Message):
    __slots__ = ("function", "arguments")
    class ArgumentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _values_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_values_pb2.Value, _Mapping]] = ...) -> None: ...
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    function: str
    arguments: _containers.MessageMap[str, _values_pb2.Value]
    def __init__(self, function: _Optional[str] = ..., arguments: _Optional[_Mapping[str, _values_pb2.Value]] = ...) -> None: ...

class CallResponse(_message.Message):
    __slots__ = ("result", "backend_micros")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_MICROS_FIELD_NUMBER: _ClassVar[int]
    result: _values_pb2.Value
    backend_micros: int
    def __init__(self, result: _Optional[_Union[_values_pb2.Value, _Mapping]] = ..., backend_micros: _Optional[int] = ...) -> None: ...
