from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EndpointStatus(_message.Message):
    __slots__ = ("url", "healthy", "models", "in_flight", "calls", "failures", "last_error", "pool", "pod", "draining")
    URL_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    url: str
    healthy: bool
    models: _containers.RepeatedScalarFieldContainer[str]
    in_flight: int
    calls: int
    failures: int
    last_error: str
    pool: str
    pod: str
    draining: bool
    def __init__(self, url: _Optional[str] = ..., healthy: _Optional[bool] = ..., models: _Optional[_Iterable[str]] = ..., in_flight: _Optional[int] = ..., calls: _Optional[int] = ..., failures: _Optional[int] = ..., last_error: _Optional[str] = ..., pool: _Optional[str] = ..., pod: _Optional[str] = ..., draining: _Optional[bool] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("version", "endpoints", "functions")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    version: str
    endpoints: _containers.RepeatedCompositeFieldContainer[EndpointStatus]
    functions: int
    def __init__(self, version: _Optional[str] = ..., endpoints: _Optional[_Iterable[_Union[EndpointStatus, _Mapping]]] = ..., functions: _Optional[int] = ...) -> None: ...
