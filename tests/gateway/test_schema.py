"""Schema checks: images and bytes count as strings; the fast path agrees with jsonschema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from toolmesh.wire import RawImage
from toolmesh_gateway.registry import load_registry
from toolmesh_gateway.schema import compile_check, make_validator
from toolmesh_models.paths import FUNCTIONS_DIR

FIND = load_registry(Path(FUNCTIONS_DIR)).get("find")
assert FIND is not None

detection = st.fixed_dictionaries(
    {
        "box": st.lists(st.floats(allow_nan=False, width=32), min_size=3, max_size=5),
        "score": st.floats(min_value=-0.5, max_value=1.5, allow_nan=False),
        "label": st.one_of(st.text(max_size=8), st.integers()),
    },
    optional={"extra": st.integers()},
)


@settings(max_examples=300)
@given(st.lists(detection, max_size=4))
def test_fast_check_agrees_with_jsonschema(value: list) -> None:
    fast = compile_check(FIND.result_schema)
    reference = make_validator(FIND.result_schema)
    assert (fast(value) is None) == reference.is_valid(value)


def test_problems_name_the_field() -> None:
    problem = compile_check(FIND.result_schema)([{"box": [1, 2, 3], "score": 0.5, "label": "x"}])
    assert problem is not None
    assert problem.field == "[0].box"
    assert "4" in problem.message


def test_images_and_bytes_are_strings_of_their_format() -> None:
    schema = {
        "type": "object",
        "properties": {
            "image": {"type": "string", "format": "image", "minLength": 1},
            "data": {"type": "string", "format": "binary"},
        },
    }
    check = compile_check(schema)
    image = RawImage(array=np.zeros((2, 2, 3), dtype=np.uint8))
    assert check({"image": image, "data": b"\x00"}) is None
    assert check({"image": "not an image"}) is not None
    assert check({"data": "text, not bytes"}) is not None
    assert check({"image": 5}) is not None
