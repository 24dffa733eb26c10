"""Python data <-> ``toolmesh.v1.Value``, the wire form of arguments and results.

Both ends use this module: the SDK to send arguments and read results, the
gateway to read arguments and send results. Images stay ``RawImage`` (encoded
file bytes or a pixel array) on the wire side; the SDK turns them into PIL
images at its edge, the gateway hands them to Triton untouched.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf import struct_pb2

from toolmesh._exceptions import ToolmeshError
from toolmesh.v1 import values_pb2

__all__ = [
    "TENSOR_DTYPES",
    "RawImage",
    "WireFormatError",
    "array_to_tensor",
    "decode_value",
    "encode_value",
    "tensor_to_array",
]

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
    if array.dtype.name not in TENSOR_DTYPES:
        raise WireFormatError(
            f"arrays of dtype {array.dtype} cannot be sent; use one of {sorted(TENSOR_DTYPES)}"
        )
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return values_pb2.Tensor(
        dtype=array.dtype.name, shape=array.shape, data=np.ascontiguousarray(little).tobytes()
    )


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


def _image_to_proto(image: RawImage) -> values_pb2.Image:
    if image.encoded is not None:
        return values_pb2.Image(encoded=image.encoded)
    assert image.array is not None
    return values_pb2.Image(array=array_to_tensor(image.array))


def _pil_to_raw(image: Any) -> RawImage:
    """Pixels of a PIL image; modes NumPy cannot represent faithfully become RGB."""
    if image.mode not in ("L", "RGB", "RGBA", "I;16", "I", "F", "1"):
        image = image.convert("RGB")
    elif image.mode == "1":
        image = image.convert("L")
    return RawImage(array=np.asarray(image))


def encode_value(obj: Any) -> values_pb2.Value:
    """Any supported Python object as a Value.

    Supported: None, bool, int, float, str, bytes, lists/tuples, mappings with
    string keys, NumPy scalars and arrays (sent as images), PIL images,
    ``pathlib.Path`` (the file is read and sent as an encoded image) and
    ``RawImage``.
    """
    if obj is None:
        return values_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    if isinstance(obj, bool | np.bool_):
        return values_pb2.Value(bool_value=bool(obj))
    if isinstance(obj, int | np.integer):
        value = int(obj)
        if not -(2**63) <= value < 2**63:
            raise WireFormatError(f"integer {value} does not fit in 64 bits")
        return values_pb2.Value(int_value=value)
    if isinstance(obj, float | np.floating):
        return values_pb2.Value(number_value=float(obj))
    if isinstance(obj, str):
        return values_pb2.Value(string_value=obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        return values_pb2.Value(bytes_value=bytes(obj))
    if isinstance(obj, RawImage):
        return values_pb2.Value(image_value=_image_to_proto(obj))
    if isinstance(obj, np.ndarray):
        return values_pb2.Value(image_value=_image_to_proto(RawImage(array=obj)))
    if isinstance(obj, os.PathLike):
        with open(obj, "rb") as fh:
            return values_pb2.Value(image_value=values_pb2.Image(encoded=fh.read()))
    if isinstance(obj, Mapping):
        struct = values_pb2.StructValue()
        for key, item in obj.items():
            if not isinstance(key, str):
                raise WireFormatError(f"mapping keys must be strings, got {type(key).__name__}")
            struct.fields[key].CopyFrom(encode_value(item))
        return values_pb2.Value(struct_value=struct)
    if isinstance(obj, list | tuple):
        return values_pb2.Value(
            list_value=values_pb2.ListValue(values=[encode_value(item) for item in obj])
        )
    if _is_pil_image(obj):
        return values_pb2.Value(image_value=_image_to_proto(_pil_to_raw(obj)))
    raise WireFormatError(
        f"cannot send a value of type {type(obj).__module__}.{type(obj).__name__}"
    )


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
