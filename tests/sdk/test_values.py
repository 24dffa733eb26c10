"""The wire codec on its own: Python data <-> toolmesh.v1.Value."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from toolmesh.v1 import values_pb2
from toolmesh.wire import (
    RawImage,
    WireFormatError,
    array_to_tensor,
    decode_value,
    encode_value,
    tensor_to_array,
)

json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)


@given(json_like)
def test_plain_values_round_trip_exactly(value: object) -> None:
    wire = encode_value(value).SerializeToString()
    decoded = decode_value(values_pb2.Value.FromString(wire))
    assert decoded == value
    assert type(decoded) is type(value)


def test_bool_is_not_sent_as_int() -> None:
    assert encode_value(True).WhichOneof("kind") == "bool_value"
    assert encode_value(np.int16(3)).int_value == 3


def test_integers_outside_64_bits_are_refused() -> None:
    with pytest.raises(WireFormatError, match="64 bits"):
        encode_value(2**64)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "float32", "float64", "bool"])
def test_arrays_round_trip_with_dtype_and_shape(dtype: str) -> None:
    array = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    back = tensor_to_array(array_to_tensor(array))
    assert back.dtype == array.dtype
    assert back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_big_endian_and_non_contiguous_arrays_are_normalised() -> None:
    array = np.arange(12, dtype=">u2").reshape(3, 4)[:, ::2]
    back = tensor_to_array(array_to_tensor(array))
    np.testing.assert_array_equal(back, array)


def test_tensor_whose_data_does_not_match_its_shape_is_refused() -> None:
    tensor = values_pb2.Tensor(dtype="uint8", shape=[2, 2], data=b"abc")
    with pytest.raises(WireFormatError, match="needs 4 bytes, got 3"):
        tensor_to_array(tensor)


def test_unknown_dtype_is_refused() -> None:
    with pytest.raises(WireFormatError, match="dtype"):
        tensor_to_array(values_pb2.Tensor(dtype="complex128", shape=[1], data=b"x" * 16))


def test_pil_images_travel_as_pixel_arrays(rgb_pattern: np.ndarray) -> None:
    value = encode_value(Image.fromarray(rgb_pattern))
    image = decode_value(value)
    assert isinstance(image, RawImage)
    np.testing.assert_array_equal(image.array, rgb_pattern)


def test_palette_images_are_sent_as_rgb() -> None:
    pil = Image.new("P", (4, 3))
    image = decode_value(encode_value(pil))
    assert image.array.shape == (3, 4, 3)


def test_paths_are_read_and_sent_as_encoded_files(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    Image.new("RGB", (5, 5), "red").save(path)
    image = decode_value(encode_value(path))
    assert image.encoded == path.read_bytes()


def test_unsupported_types_name_the_type() -> None:
    with pytest.raises(WireFormatError, match=r"builtins\.object"):
        encode_value(object())
    with pytest.raises(WireFormatError, match="keys must be strings"):
        encode_value({1: 2})


def test_special_floats_survive() -> None:
    assert math.isinf(decode_value(encode_value(float("inf"))))
    assert math.isnan(decode_value(encode_value(float("nan"))))
