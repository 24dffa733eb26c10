"""Function arguments → KServe v2 input tensors, output tensors → function result.

Generic over functions: the rules (see ``triton_models/README.md``) read only
the function's JSON Schemas and the model's metadata, so adding a function
needs a YAML file and a model, never gateway code.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import numpy as np
from PIL import Image
from tritonclient.grpc import InferInput, InferResult
from tritonclient.utils import triton_to_np_dtype

from toolmesh.wire import ARRAY_SUFFIX, RawImage
from toolmesh_gateway.errors import GatewayError
from toolmesh_gateway.errors import invalid_argument as _invalid
from toolmesh_gateway.registry import FunctionSpec
from toolmesh_gateway.triton import ModelInfo, TensorInfo

__all__ = ["check_image", "decode_result", "encode_arguments", "image_list_parameters"]


def check_image(name: str, image: RawImage, max_pixels: int) -> None:
    """Refuse what cannot be an image before it reaches a model.

    Reads only the file header (cheap): the format must be known and the pixel
    count bounded, so decompression bombs never reach Triton. Full decoding is
    the model's job, which answers INVALID_ARGUMENT for a truncated body.
    """
    if image.encoded is not None:
        try:
            with Image.open(io.BytesIO(image.encoded)) as pil:
                width, height = pil.size
        except Image.DecompressionBombError as exc:
            raise _invalid(f"argument {name!r}: image is too large: {exc}") from exc
        except Exception as exc:  # PIL raises several types for garbage input
            raise _invalid(
                f"argument {name!r}: not a decodable image ({len(image.encoded)} bytes; "
                "expected JPEG, PNG, WebP, BMP or TIFF)"
            ) from exc
    else:
        assert image.array is not None
        array = image.array
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
            raise _invalid(
                f"argument {name!r}: pixel array must be H×W or H×W×C with C in 1, 3, 4; "
                f"got shape {list(array.shape)}"
            )
        height, width = array.shape[:2]
    if width <= 0 or height <= 0:
        raise _invalid(f"argument {name!r}: image has no pixels ({width}×{height})")
    if width * height > max_pixels:
        raise _invalid(
            f"argument {name!r}: image is {width}×{height} = {width * height} pixels, "
            f"over the limit of {max_pixels}"
        )


def _tensor(info: TensorInfo, data: np.ndarray, batched: bool) -> InferInput:
    if batched:
        data = data[np.newaxis, ...]
    tensor = InferInput(info.name, list(data.shape), info.datatype)
    tensor.set_data_from_numpy(data)
    return tensor


def _image_tensor(
    name: str, image: RawImage, model: ModelInfo, batched: bool
) -> tuple[TensorInfo, np.ndarray]:
    if image.encoded is not None:
        info = model.inputs.get(name)
        if info is None:
            raise _invalid(f"argument {name!r}: model {model.name!r} takes pixel arrays only")
        return info, np.frombuffer(image.encoded, dtype=np.uint8)
    assert image.array is not None
    info = model.inputs.get(name + ARRAY_SUFFIX)
    if info is None:
        raise _invalid(f"argument {name!r}: model {model.name!r} takes encoded image files only")
    array = image.array if image.array.ndim == 3 else image.array[:, :, np.newaxis]
    target = np.dtype(triton_to_np_dtype(info.datatype))
    if array.dtype != target:
        if not np.can_cast(array.dtype, target, casting="safe"):
            raise _invalid(
                f"argument {name!r}: pixels of dtype {array.dtype} are not accepted by "
                f"{model.name!r} (it takes {target})"
            )
        array = array.astype(target)
    return info, array


def image_list_parameters(function: FunctionSpec) -> list[str]:
    """Names of the top-level parameters that are lists of images (``items: {format: image}``)."""
    props: Mapping[str, Any] = function.parameters_schema.get("properties", {})
    return [
        name
        for name, schema in props.items()
        if schema.get("type") == "array" and schema.get("items", {}).get("format") == "image"
    ]


def _encoded_file(name: str, image: RawImage) -> bytes:
    """An image of a list as file bytes: the model's input is one encoded file per element.

    Pixel arrays are PNG-encoded (lossless), since the images of a list may differ
    in size and cannot share one tensor.
    """
    if image.encoded is not None:
        return image.encoded
    assert image.array is not None
    array = (
        image.array[:, :, 0] if image.array.ndim == 3 and image.array.shape[2] == 1 else image.array
    )
    try:
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=1)
    except (TypeError, ValueError, OSError) as exc:
        raise _invalid(
            f"argument {name!r}: pixels of dtype {array.dtype} and shape {list(array.shape)} "
            "cannot be sent in an image list; send encoded files"
        ) from exc
    return buffer.getvalue()


def _empty_shape(schema: Mapping[str, Any]) -> tuple[int, ...]:
    """Shape of an empty list argument: ``(0, k)`` for a list of fixed-length number lists."""
    items = schema.get("items", {})
    if items.get("type") == "array" and items.get("minItems") == items.get("maxItems") is not None:
        return (0, int(items["maxItems"]))
    return (0,)


def _scalar_dtype(info: TensorInfo) -> Any:
    return object if info.datatype == "BYTES" else triton_to_np_dtype(info.datatype)


def encode_arguments(
    function: FunctionSpec, model: ModelInfo, arguments: Mapping[str, Any]
) -> list[InferInput]:
    """Input tensors for validated arguments (defaults already filled)."""
    batched = model.max_batch_size > 0
    tensors: list[InferInput] = []
    props: Mapping[str, Any] = function.parameters_schema.get("properties", {})
    for name, value in arguments.items():
        if name in function.image_parameters:
            info, data = _image_tensor(name, value, model, batched)
            tensors.append(_tensor(info, data, batched))
            continue
        info = model.inputs.get(name)
        schema = props.get(name, {})
        if info is not None and schema.get("items", {}).get("format") == "image":
            files = [_encoded_file(f"{name}[{i}]", item) for i, item in enumerate(value)]
            data = np.empty(len(files), dtype=object)
            data[:] = files
            tensors.append(_tensor(info, data, batched))
            continue
        if info is None:
            # The function document and the model disagree: a deployment error.
            raise GatewayError(
                grpc.StatusCode.INTERNAL,
                f"model {model.name!r} has no input {name!r} for argument {name!r}",
            )
        items = value if isinstance(value, list) else [value]
        if info.datatype == "BYTES":
            items = [i.encode("utf-8") if isinstance(i, str) else i for i in items]
        data = np.array(items, dtype=_scalar_dtype(info))
        if isinstance(value, list) and not value:
            data = data.reshape(_empty_shape(schema))
        tensors.append(_tensor(info, data, batched))
    return tensors


def _to_python(array: np.ndarray, schema: Mapping[str, Any]) -> Any:
    """One output tensor (or a row of it) as the value ``schema`` describes."""
    fmt = schema.get("format")
    kind = schema.get("type")
    if fmt == "image":
        return RawImage(encoded=array.tobytes()) if array.ndim == 1 else RawImage(array=array)
    if fmt == "binary":
        if array.dtype == object:
            return bytes(array.reshape(-1)[0])
        return array.tobytes()
    if kind == "array":
        items = schema.get("items", {})
        return [_to_python(np.asarray(row), items) for row in array]
    value = array.reshape(-1)[0] if array.ndim else array.item()
    return _scalar(value, kind)


_SCALARS: dict[str, Callable[[Any], Any]] = {
    "integer": int,
    "number": float,
    "boolean": bool,
}


def _scalar(value: Any, kind: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if kind in _SCALARS:
        return _SCALARS[kind](value)
    return value.item() if isinstance(value, np.generic) else value


def decode_result(function: FunctionSpec, model: ModelInfo, result: InferResult) -> Any:
    """The function's result rebuilt from the model's output tensors."""
    schema = function.result_schema
    batched = model.max_batch_size > 0

    def output(name: str) -> np.ndarray:
        array = result.as_numpy(name)
        if array is None:
            raise GatewayError(
                grpc.StatusCode.INTERNAL, f"model {model.name!r} returned no output {name!r}"
            )
        return array[0] if batched else array

    items = schema.get("items", {})
    if schema.get("type") == "array" and items.get("type") == "object":
        props: Mapping[str, Any] = items.get("properties", {})
        columns = {name: output(name) for name in props}
        lengths = {len(col) for col in columns.values()}
        if len(lengths) > 1:
            raise GatewayError(
                grpc.StatusCode.INTERNAL,
                f"model {model.name!r} returned columns of different lengths {sorted(lengths)}",
            )
        count = lengths.pop() if lengths else 0
        return [
            {name: _to_python(np.asarray(columns[name][i]), spec) for name, spec in props.items()}
            for i in range(count)
        ]
    if schema.get("type") == "object" and "properties" in schema:
        return {
            name: _to_python(output(name), spec)
            for name, spec in schema["properties"].items()
            if name in model.outputs
        }
    return _to_python(output("result"), schema)
