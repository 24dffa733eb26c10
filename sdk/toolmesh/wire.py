"""Python data <-> ``toolmesh.v1.Value``, the wire form of arguments and results.

This is the client's public wire module: the gateway, the codegen sandbox and the
local baseline encode and decode through it, never through the SDK's private modules.

Both ends use this module: the SDK to send arguments and read results, the
gateway to read arguments and send results. Images stay ``RawImage`` (encoded
file bytes or a pixel array) on the wire side; the SDK turns them into PIL
images at its edge, the gateway hands them to Triton untouched.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf import struct_pb2

from toolmesh._exceptions import ToolmeshError
from toolmesh.v1 import values_pb2

__all__ = [
    "ARRAY_SUFFIX",
    "TENSOR_DTYPES",
    "RawImage",
    "WireFormatError",
    "array_to_tensor",
    "decode_value",
    "encode_value",
    "fill_value",
    "raw_image_to_pil",
    "read_image_file",
    "result_to_json",
    "tensor_to_array",
]

#: Suffix of the KServe input that carries an image parameter as pixels (``image_array``)
#: rather than as file bytes (``image``): the gateway's half of the tensor contract
#: (``toolmesh_models.backend`` holds Triton's half; tests check that they agree).
ARRAY_SUFFIX = "_array"

#: dtypes a Tensor may carry; anything else is refused rather than guessed.
TENSOR_DTYPES = frozenset(
    {
        "bool",
        "uint8",
        "uint16",
        "uint32",
        "int8",
        "int16",
        "int32",
        "int64",
        "float16",
        "float32",
        "float64",
    }
)


class WireFormatError(ToolmeshError, ValueError):
    """A value cannot be represented on the wire, or a wire value is malformed."""


class ArgumentError(WireFormatError):
    """A call's argument cannot be sent as given; raised before any request, naming it.

    Attributes:
        argument: The argument's name (``image``).
    """

    def __init__(self, argument: str, problem: str) -> None:
        super().__init__(f"argument {argument}: {problem}")
        self.argument = argument


@dataclass(frozen=True, slots=True, eq=False)
class RawImage:
    """An image as it travels: the bytes of an image file, or decoded pixels."""

    encoded: bytes | None = None
    array: npt.NDArray[Any] | None = None

    def __post_init__(self) -> None:
        if (self.encoded is None) == (self.array is None):
            raise WireFormatError("an image is either encoded bytes or a pixel array, not both")

    @property
    def nbytes(self) -> int:
        """Size on the wire, for logs and limits."""
        if self.encoded is not None:
            return len(self.encoded)
        assert self.array is not None
        return int(self.array.nbytes)


def array_to_tensor(array: npt.NDArray[Any]) -> values_pb2.Tensor:
    """A NumPy array as a little-endian, row-major Tensor."""
    tensor = values_pb2.Tensor()
    _fill_tensor(tensor, array)
    return tensor


def tensor_to_array(tensor: values_pb2.Tensor) -> npt.NDArray[Any]:
    """A Tensor as a read-only NumPy array, checking that data matches dtype and shape."""
    if tensor.dtype not in TENSOR_DTYPES:
        raise WireFormatError(
            f"tensor dtype {tensor.dtype!r} is not one of {sorted(TENSOR_DTYPES)}"
        )
    shape = tuple(tensor.shape)
    if any(d < 0 for d in shape):
        raise WireFormatError(f"tensor shape {list(shape)} has a negative dimension")
    dtype = np.dtype(tensor.dtype).newbyteorder("<")
    expected = math.prod(shape) * dtype.itemsize
    if expected != len(tensor.data):
        raise WireFormatError(
            f"tensor of dtype {tensor.dtype} and shape {list(shape)} needs {expected} bytes, "
            f"got {len(tensor.data)}"
        )
    return np.frombuffer(tensor.data, dtype=dtype).reshape(shape)


def _fill_image(target: values_pb2.Image, image: RawImage) -> None:
    if image.encoded is not None:
        target.encoded = image.encoded
        return
    assert image.array is not None
    _fill_tensor(target.array, image.array)


def _fill_tensor(target: values_pb2.Tensor, array: npt.NDArray[Any]) -> None:
    if array.dtype.name not in TENSOR_DTYPES:
        raise WireFormatError(
            f"arrays of dtype {array.dtype} cannot be sent; use one of {sorted(TENSOR_DTYPES)}"
        )
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    target.dtype = array.dtype.name
    target.shape.extend(array.shape)
    target.data = np.ascontiguousarray(little).tobytes()


def _pil_to_raw(image: Any) -> RawImage:
    """Pixels of a PIL image; modes NumPy cannot represent faithfully become RGB."""
    if image.mode not in ("L", "RGB", "RGBA", "I;16", "I", "F", "1"):
        image = image.convert("RGB")
    elif image.mode == "1":
        image = image.convert("L")
    return RawImage(array=np.asarray(image))


def encode_value(obj: Any) -> values_pb2.Value:
    """Any supported Python object as a Value; see ``fill_value``."""
    value = values_pb2.Value()
    fill_value(value, obj)
    return value


def fill_value(target: values_pb2.Value, obj: Any) -> None:
    """Write ``obj`` into ``target`` in place.

    Building nested messages in place, rather than constructing and copying
    them, matters for images: a decoded frame is hundreds of kilobytes and
    every ``CopyFrom`` would copy it again.

    Supported: None, bool, int, float, str, bytes, lists/tuples, mappings with
    string keys, NumPy scalars and arrays (sent as images), PIL images,
    ``pathlib.Path`` (the file is read and sent as an encoded image) and
    ``RawImage``.
    """
    if obj is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool | np.bool_):
        target.bool_value = bool(obj)
    elif isinstance(obj, int | np.integer):
        value = int(obj)
        if not -(2**63) <= value < 2**63:
            raise WireFormatError(f"integer {value} does not fit in 64 bits")
        target.int_value = value
    elif isinstance(obj, float | np.floating):
        target.number_value = float(obj)
    elif isinstance(obj, str):
        target.string_value = obj
    elif isinstance(obj, bytes | bytearray | memoryview):
        target.bytes_value = bytes(obj)
    elif isinstance(obj, RawImage):
        _fill_image(target.image_value, obj)
    elif isinstance(obj, np.ndarray):
        _fill_image(target.image_value, RawImage(array=obj))
    elif isinstance(obj, os.PathLike):
        target.image_value.encoded = read_image_file(obj)
    elif isinstance(obj, Mapping):
        fields = target.struct_value.fields
        target.struct_value.SetInParent()  # an empty mapping is still a struct
        for key, item in obj.items():
            if not isinstance(key, str):
                raise WireFormatError(f"mapping keys must be strings, got {type(key).__name__}")
            fill_value(fields[key], item)
    elif isinstance(obj, list | tuple):
        values = target.list_value.values
        target.list_value.SetInParent()  # an empty list is still a list
        for item in obj:
            fill_value(values.add(), item)
    elif _is_pil_image(obj):
        _fill_image(target.image_value, _pil_to_raw(obj))
    else:
        raise WireFormatError(
            f"cannot send a value of type {type(obj).__module__}.{type(obj).__name__}"
        )


def read_image_file(path: os.PathLike[str] | str) -> bytes:
    """The bytes of an image file; a path that cannot be one is a :class:`WireFormatError`.

    ``OSError`` would say ``[Errno 21] Is a directory: '.'``; this says which
    path and what is wrong with it, and the client adds the argument's name.
    """
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError as exc:
        raise WireFormatError(f"no such file: {os.fspath(path)!r}") from exc
    except IsADirectoryError as exc:
        raise WireFormatError(f"{os.fspath(path)!r} is a directory, not an image file") from exc
    except OSError as exc:
        raise WireFormatError(f"cannot read {os.fspath(path)!r}: {exc.strerror}") from exc


def _is_pil_image(obj: Any) -> bool:
    # PIL is imported lazily: the gateway never needs it on this path.
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return False
    return isinstance(obj, Image.Image)


def _raw_image_from_proto(image: values_pb2.Image) -> RawImage:
    which = image.WhichOneof("data")
    if which == "encoded":
        return RawImage(encoded=image.encoded)
    if which == "array":
        return RawImage(array=tensor_to_array(image.array))
    raise WireFormatError("image value has neither encoded bytes nor an array")


def decode_value(value: values_pb2.Value, images: Callable[[RawImage], Any] | None = None) -> Any:
    """A Value as plain Python data; ``images`` converts each image (default: ``RawImage``)."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return {k: decode_value(v, images) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [decode_value(v, images) for v in value.list_value.values]
    if kind == "image_value":
        raw = _raw_image_from_proto(value.image_value)
        return images(raw) if images is not None else raw
    if kind is None or kind == "null_value":
        return None
    return getattr(value, kind)


def raw_image_to_pil(image: RawImage) -> Any:
    """A wire image as a PIL image (single-channel arrays become mode ``L``/``I;16``)."""
    from PIL import Image

    if image.encoded is not None:
        pil = Image.open(io.BytesIO(image.encoded))
        pil.load()
        return pil
    assert image.array is not None
    array = image.array
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)


def result_to_json(result: Any, save_dir: Path | None, stem: str) -> Any:
    """JSON-able form of a result: images and bytes are summarised, or written to ``save_dir``."""
    counter = 0

    def saved(summary: dict[str, Any], suffix: str, write: Any) -> dict[str, Any]:
        nonlocal counter
        if save_dir is not None:
            counter += 1
            path = save_dir / f"{stem}-{counter}{suffix}"
            save_dir.mkdir(parents=True, exist_ok=True)
            write(path)
            summary["saved"] = str(path)
        return summary

    def convert(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        if isinstance(value, bytes):
            return saved({"bytes": len(value)}, ".bin", lambda p: p.write_bytes(value))
        if hasattr(value, "size") and hasattr(value, "mode") and hasattr(value, "save"):
            width, height = value.size
            image = {"width": width, "height": height, "mode": value.mode}
            return saved({"image": image}, ".png", value.save)
        return value

    return convert(result)
