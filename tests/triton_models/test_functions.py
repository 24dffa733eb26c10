"""The Function documents, and their agreement with the models' tensor contract."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml
from tritonclient.grpc import model_config_pb2

from toolmesh_models.paths import FUNCTIONS_DIR, REPOSITORY
from toolmesh_models.repository import available_models, read_config

FUNCTIONS = sorted(p.stem for p in FUNCTIONS_DIR.glob("*.yaml"))
SCALAR_TYPES = {
    "string": {"TYPE_STRING"},
    "integer": {"TYPE_INT64", "TYPE_INT32"},
    "number": {"TYPE_FP32", "TYPE_FP64"},
    "boolean": {"TYPE_BOOL"},
}


def document(name: str) -> dict[str, Any]:
    return yaml.safe_load((FUNCTIONS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))


def test_one_function_per_model() -> None:
    assert available_models() == FUNCTIONS


@pytest.mark.parametrize("name", FUNCTIONS)
def test_document_shape(name: str) -> None:
    doc = document(name)
    assert doc["apiVersion"] == "toolmesh.dev/v1" and doc["kind"] == "Function"
    # Kubernetes object names cannot hold "_": color-depth defines the function color_depth
    assert doc["metadata"]["name"].replace("-", "_") == name
    spec = doc["spec"]
    assert set(spec) == {"model", "documentation", "parametersSchema", "resultSchema"}
    assert spec["model"]["name"] == name
    assert "Example:" in spec["documentation"] and "INVALID_ARGUMENT" in spec["documentation"]
    params = spec["parametersSchema"]
    assert params["type"] == "object" and params["additionalProperties"] is False
    assert set(params["required"]) <= set(params["properties"])
    for schema in (params, spec["resultSchema"]):
        jsonschema.Draft202012Validator.check_schema(schema)
    for prop, schema in params["properties"].items():
        assert schema.get("description"), f"{name}.{prop} has no description"
        if "default" in schema:
            assert prop not in params["required"]
            jsonschema.Draft202012Validator(schema).validate(schema["default"])


@pytest.mark.parametrize("name", FUNCTIONS)
def test_parameters_match_model_inputs(name: str) -> None:
    params = document(name)["spec"]["parametersSchema"]["properties"]
    config = read_config(REPOSITORY / name / "config.pbtxt")
    inputs = {i.name: i for i in config.input}
    expected = set()
    for prop, schema in params.items():
        if schema.get("format") == "image":
            expected |= {prop, prop + "_array"}
            encoded, pixels = inputs[prop], inputs[prop + "_array"]
            assert encoded.optional and pixels.optional
            assert encoded.data_type == model_config_pb2.TYPE_UINT8 and list(encoded.dims) == [-1]
            assert list(pixels.dims) == [-1, -1, -1]
        elif schema.get("type") == "array":
            expected.add(prop)
            tensor = inputs[prop]
            items = schema["items"]
            if items.get("format") == "image":  # one encoded file per element
                assert tensor.data_type == model_config_pb2.TYPE_STRING
                assert list(tensor.dims) == [-1]
            elif items.get("type") == "array":  # e.g. boxes: [-1, 4]
                assert items["minItems"] == items["maxItems"]
                assert list(tensor.dims) == [-1, items["maxItems"]]
                assert model_config_pb2.DataType.Name(tensor.data_type) in SCALAR_TYPES["number"]
            else:
                assert list(tensor.dims) == [-1]
                type_name = model_config_pb2.DataType.Name(tensor.data_type)
                assert type_name in SCALAR_TYPES[items["type"]], (prop, type_name)
            assert not tensor.optional  # the gateway fills the default ([])
        else:
            expected.add(prop)
            tensor = inputs[prop]
            assert list(tensor.dims) == [1] and not tensor.optional
            type_name = model_config_pb2.DataType.Name(tensor.data_type)
            assert type_name in SCALAR_TYPES[schema["type"]], (prop, type_name)
    assert set(inputs) == expected
    if config.max_batch_size > 0:
        # Dynamic batching: variable-size inputs must allow ragged batches, or Triton
        # would only group requests whose images have identical byte lengths.
        assert config.HasField("dynamic_batching"), name
        for tensor in config.input:
            if -1 in tensor.dims:
                assert tensor.allow_ragged_batch, (name, tensor.name)
    assert name in BATCHED or config.max_batch_size == 0


BATCHED = {"find", "best_image_match", "best_text_match", "compute_depth"}


def test_detector_clip_and_depth_batch() -> None:
    for name in BATCHED:
        assert read_config(REPOSITORY / name / "config.pbtxt").max_batch_size == 8, name


def test_bls_knows_the_batch_size_of_find() -> None:
    from toolmesh_models import bls

    config = read_config(REPOSITORY / "find" / "config.pbtxt")
    assert config.max_batch_size == bls.FIND_MAX_BATCH_SIZE


@pytest.mark.parametrize("name", FUNCTIONS)
def test_result_matches_model_outputs(name: str) -> None:
    result = document(name)["spec"]["resultSchema"]
    config = read_config(REPOSITORY / name / "config.pbtxt")
    outputs = {o.name for o in config.output}
    if result.get("type") == "array":
        assert outputs == set(result["items"]["properties"])
    elif result.get("type") == "object":
        assert outputs == set(result["properties"])
    else:
        assert outputs == {"result"}
