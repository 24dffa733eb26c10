"""The paper's baseline: every model in this process, no gateway hop, no Triton.

``InProcessTransport`` is a drop-in for the SDK's gRPC transport. It runs the
very ``model.py`` code Triton would run (each model's ``TritonPythonModel``,
instantiated here without Triton) behind the gateway's own argument and
result checks (``toolmesh_gateway.pipeline.CallPipeline``, the steps
``FunctionsService.Call`` runs), synchronously: calls execute one after another on the event
loop, like the monolithic serial program DiCE-C compares against.

Models that call ``find`` from inside Triton (business logic scripting:
``exists``, ``count``, ``verify_property``) get the same answer here from the
``find`` model loaded in this process, through a stand-in for the slice of
``triton_python_backend_utils`` that ``toolmesh_models.bls`` uses.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from toolmesh import Metadata
from toolmesh.v1 import functions_pb2, registry_pb2
from toolmesh.wire import RawImage
from toolmesh_gateway.codec import decode_result, image_list_parameters
from toolmesh_gateway.config import DEFAULT_MAX_IMAGE_PIXELS
from toolmesh_gateway.errors import GatewayError, invalid_argument
from toolmesh_gateway.pipeline import CallPipeline
from toolmesh_gateway.registry import Registry, load_registry
from toolmesh_gateway.triton import ModelInfo, TensorInfo
from toolmesh_models import bls, imaging
from toolmesh_models.errors import ArgumentError
from toolmesh_models.paths import FUNCTIONS_DIR, REPOSITORY
from toolmesh_models.repository import read_config

__all__ = ["InProcessTransport"]

log = logging.getLogger(__name__)


class _Outputs:
    """What ``decode_result`` reads from a Triton ``InferResult``, over a plain dict."""

    def __init__(self, outputs: dict[str, Any]) -> None:
        self._outputs = outputs

    def as_numpy(self, name: str) -> np.ndarray | None:
        value = self._outputs.get(name)
        if value is None:
            return None
        if isinstance(value, list | tuple):
            return np.array(value, dtype=object)
        return np.asarray(value)


class _LoadedModel:
    def __init__(self, name: str, repository: Path) -> None:
        directory = repository / name
        config = read_config(directory / "config.pbtxt")
        spec = importlib.util.spec_from_file_location(
            f"toolmesh_inprocess_{name}", directory / "1" / "model.py"
        )
        if spec is None or spec.loader is None:
            raise RuntimeError(f"{directory}: no model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        instance = module.TritonPythonModel()
        # What FunctionModel.initialize would set from Triton's arguments.
        instance.name = name
        instance.instance_kind = "CPU"
        instance.device_id = 0
        instance.max_batch_size = 0
        instance.parameters = {k: v.string_value for k, v in config.parameters.items()}
        instance.log = lambda message: log.info("%s: %s", name, message)
        instance.setup()
        self.instance = instance
        self.batched = config.max_batch_size > 0
        self.info = ModelInfo(
            name=name,
            inputs={},
            outputs={o.name: TensorInfo(o.name, "") for o in config.output},
            max_batch_size=0,
        )


class _Tensor:
    """``pb_utils.Tensor``: a named array."""

    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name = name
        self._array = array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class _Response:
    """``pb_utils.InferenceResponse`` of a BLS request: output tensors, or an error."""

    def __init__(self, outputs: dict[str, _Tensor], error: str | None = None) -> None:
        self.outputs = outputs
        self._error = error

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> Any:
        message = self._error

        class _Error:
            def message(self) -> str | None:
                return message

        return _Error()


class _BlsStandIn:
    """What ``toolmesh_models.bls`` needs of ``triton_python_backend_utils``, run in-process.

    A BLS request to a model is answered by that model's ``run`` in this process,
    with the batch dimension its config declares added and removed as Triton would.
    """

    def __init__(self, transport: InProcessTransport) -> None:
        self._transport = transport

    @staticmethod
    def Tensor(name: str, array: np.ndarray) -> _Tensor:
        return _Tensor(name, array)

    @staticmethod
    def get_output_tensor_by_name(response: _Response, name: str) -> _Tensor | None:
        return response.outputs.get(name)

    def InferenceRequest(
        self,
        *,
        model_name: str,
        inputs: list[_Tensor],
        requested_output_names: list[str],
        timeout: int = 0,
    ) -> Any:
        transport = self._transport

        class _Request:
            def exec(self) -> _Response:
                model = transport._model(model_name)
                batched = model.batched
                arguments: dict[str, Any] = {}
                for tensor in inputs:
                    array = tensor.as_numpy()[0] if batched else tensor.as_numpy()
                    name = tensor.name().removesuffix("_array")
                    if array.dtype == np.object_:
                        value = array.reshape(-1)[0]
                        arguments[name] = value.decode() if isinstance(value, bytes) else value
                    elif name != tensor.name():
                        arguments[name] = imaging.check_array(array, name=tensor.name())
                    else:
                        arguments[name] = array.reshape(-1)[0].item()
                try:
                    outputs = model.instance.run(**arguments)
                except ArgumentError as exc:
                    return _Response({}, str(exc))
                except Exception as exc:
                    return _Response({}, f"{model_name}: internal error: {exc}")
                tensors = {}
                for name in requested_output_names:
                    value = outputs[name]
                    array = (
                        np.array(value, dtype=np.object_)
                        if isinstance(value, list | tuple)
                        else np.asarray(value)
                    )
                    tensors[name] = _Tensor(name, array[np.newaxis] if batched else array)
                return _Response(tensors)

        return _Request()


def _pixels(name: str, image: RawImage) -> np.ndarray:
    """What Triton's side of the tensor contract would hand the model: decoded pixels."""
    try:
        if image.encoded is not None:
            return imaging.decode(image.encoded)
        assert image.array is not None
        array = image.array if image.array.ndim == 3 else image.array[:, :, np.newaxis]
        return imaging.check_array(array)
    except ArgumentError as exc:
        raise invalid_argument(f"argument {name!r}: {exc}") from exc


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


class InProcessTransport:
    """Runs calls on models loaded in this process (loaded on first use, then kept)."""

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        repository: Path = REPOSITORY,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        self._registry = registry if registry is not None else load_registry(FUNCTIONS_DIR)
        self._pipeline = CallPipeline(self._registry, max_image_pixels=max_image_pixels)
        self._repository = repository
        self._models: dict[str, _LoadedModel] = {}
        if bls.pb_utils is None:  # outside Triton: BLS calls are answered by this process
            bls.pb_utils = _BlsStandIn(self)

    def _model(self, name: str) -> _LoadedModel:
        model = self._models.get(name)
        if model is None:
            model = self._models[name] = _LoadedModel(name, self._repository)
        return model

    def _run(self, request: functions_pb2.CallRequest) -> functions_pb2.CallResponse:
        function = self._pipeline.function(request.function)
        arguments = self._pipeline.arguments(function, request)
        for name in function.image_parameters:
            if name in arguments:
                arguments[name] = _pixels(name, arguments[name])
        for name in image_list_parameters(function):
            if name in arguments:
                arguments[name] = [
                    _pixels(f"{name}[{i}]", image) for i, image in enumerate(arguments[name])
                ]
        model = self._model(function.model)
        try:
            outputs = model.instance.run(**arguments)
        except ArgumentError as exc:
            raise invalid_argument(str(exc)) from exc
        value = decode_result(function, model.info, _Outputs(outputs))  # type: ignore[arg-type]
        return self._pipeline.response(function, value)

    async def call(
        self, request: functions_pb2.CallRequest, *, timeout: float | None, metadata: Metadata
    ) -> functions_pb2.CallResponse:
        try:
            return self._run(request)
        except GatewayError as exc:
            raise _rpc_error(exc.code, exc.message) from exc

    async def list_functions(
        self, *, timeout: float | None, metadata: Metadata
    ) -> registry_pb2.ListFunctionsResponse:
        return registry_pb2.ListFunctionsResponse(functions=[f.to_proto() for f in self._registry])

    async def get_function(
        self, name: str, *, timeout: float | None, metadata: Metadata
    ) -> registry_pb2.Function:
        try:
            return self._pipeline.function(name).to_proto()
        except GatewayError as exc:
            raise _rpc_error(exc.code, exc.message) from exc

    async def aclose(self) -> None:
        self._models.clear()
