"""The steps every call takes around its model, in one place.

``FunctionsService.Call`` runs them around a Triton inference; the local
baseline (``toolmesh_local.inprocess``) runs the very same steps around a model
loaded in its own process. Whatever a caller can get wrong is therefore refused
identically on both paths, and a model's result is checked identically.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from toolmesh.v1 import functions_pb2
from toolmesh.wire import RawImage, WireFormatError, decode_value, fill_value
from toolmesh_gateway.codec import check_image, image_list_parameters
from toolmesh_gateway.errors import GatewayError, invalid_argument
from toolmesh_gateway.registry import FunctionSpec, Registry, RegistryHolder, as_holder
from toolmesh_gateway.schema import with_defaults

__all__ = ["CallPipeline", "lookup_function", "read_arguments"]


def lookup_function(registry: Registry | RegistryHolder, name: str) -> FunctionSpec:
    """The function ``name``, or NOT_FOUND listing the registered ones."""
    function = registry.get(name)
    if function is None:
        known = ", ".join(registry.names()) or "(none)"
        raise GatewayError(
            grpc.StatusCode.NOT_FOUND, f"unknown function {name!r}; registered functions: {known}"
        )
    return function


def read_arguments(function: FunctionSpec, request: functions_pb2.CallRequest) -> dict[str, Any]:
    """Decode, complete and validate a call's arguments; INVALID_ARGUMENT names the field."""
    names = function.parameter_names
    arguments: dict[str, Any] = {}
    for name, value in request.arguments.items():
        if name not in names:
            raise invalid_argument(
                f"unknown argument {name!r} for {function.name}; it takes: {', '.join(names)}"
            )
        try:
            decoded = decode_value(value)
        except WireFormatError as exc:
            raise invalid_argument(f"argument {name!r}: {exc}") from exc
        if name in function.image_parameters and isinstance(decoded, bytes):
            decoded = RawImage(encoded=decoded)
        arguments[name] = decoded
    missing = [n for n in function.required if n not in arguments]
    if missing:
        raise invalid_argument(
            f"missing required argument(s) for {function.name}: {', '.join(missing)}"
        )
    with_defaults(function.parameters_schema, arguments)
    problem = function.check_parameters(arguments)
    if problem is not None:
        raise invalid_argument(f"argument {problem.field or 'arguments'}: {problem.message}")
    return arguments


def images_of(function: FunctionSpec, arguments: dict[str, Any]) -> Iterator[tuple[str, RawImage]]:
    """Every image argument with the name an error should give it (``images[2]``)."""
    for name in function.image_parameters:
        if name in arguments:
            yield name, arguments[name]
    for name in image_list_parameters(function):
        for index, image in enumerate(arguments.get(name, ())):
            yield f"{name}[{index}]", image


class CallPipeline:
    """Argument and result checks of one registry, shared by every way of running a model."""

    def __init__(self, registry: Registry | RegistryHolder, *, max_image_pixels: int) -> None:
        self._registry = as_holder(registry)
        self._max_image_pixels = max_image_pixels

    def function(self, name: str) -> FunctionSpec:
        return lookup_function(self._registry, name)

    def arguments(
        self, function: FunctionSpec, request: functions_pb2.CallRequest
    ) -> dict[str, Any]:
        """The validated arguments of a call to ``function``, every image bounded."""
        arguments = read_arguments(function, request)
        for name, image in images_of(function, arguments):
            check_image(name, image, self._max_image_pixels)
        return arguments

    def response(
        self, function: FunctionSpec, value: Any, *, backend_micros: int = 0
    ) -> functions_pb2.CallResponse:
        """The wire response for a model's result, which must match the resultSchema."""
        problem = function.check_result(value)
        if problem is not None:
            raise GatewayError(
                grpc.StatusCode.INTERNAL,
                f"model {function.model!r} returned a result that does not match the "
                f"resultSchema of {function.name}: {problem.field or 'result'}: {problem.message}",
            )
        response = functions_pb2.CallResponse(backend_micros=backend_micros)
        fill_value(response.result, value)
        return response
