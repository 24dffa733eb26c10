"""Function documents: the shipped ones load; broken ones name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from toolmesh_gateway.registry import FunctionDocumentError, load_function_file, load_registry
from toolmesh_models.paths import FUNCTIONS_DIR

VALID = {
    "apiVersion": "toolmesh.dev/v1",
    "kind": "Function",
    "metadata": {"name": "blur"},
    "spec": {
        "model": {"name": "blur"},
        "documentation": "Blurs the image with a Gaussian kernel of the given radius.",
        "parametersSchema": {
            "type": "object",
            "required": ["image"],
            "properties": {
                "image": {"type": "string", "format": "image"},
                "radius": {"type": "number", "default": 2},
            },
        },
        "resultSchema": {"type": "string", "format": "image"},
    },
}


def write(tmp_path: Path, document: object, name: str = "blur.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document) if not isinstance(document, str) else document)
    return path


def test_shipped_functions_load() -> None:
    registry = load_registry(FUNCTIONS_DIR)
    assert {"find", "greyscale", "resize", "rotate", "color_depth", "convert_format"} <= set(
        registry.names()
    )
    for function in registry:
        if function.name == "best_image_match":  # a list of images, not one image parameter
            assert function.image_parameters == frozenset(), function.name
            continue
        assert function.image_parameters == {"image"}, function.name


def test_a_valid_document_loads(tmp_path: Path) -> None:
    [spec] = load_function_file(write(tmp_path, VALID))
    assert spec.name == "blur" and spec.model == "blur"
    assert spec.required == ("image",)


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.update(kind="Pod"), "kind"),
        (lambda d: d["metadata"].update(name="Blur Me"), "metadata.name"),
        (lambda d: d["spec"].pop("resultSchema"), "resultSchema"),
        (lambda d: d["spec"].update(documentation="short"), "spec.documentation"),
        (
            lambda d: d["spec"]["parametersSchema"].update(type="array"),
            "spec.parametersSchema.type",
        ),
        (
            lambda d: d["spec"]["parametersSchema"]["properties"]["radius"].update(type="floaty"),
            "spec.parametersSchema.properties.radius.type",
        ),
        (lambda d: d["spec"]["parametersSchema"].update(required=["nope"]), "'nope'"),
        (lambda d: d["spec"].update(modle={"name": "x"}), "spec"),
    ],
)
def test_broken_documents_name_the_file_and_the_field(
    tmp_path: Path, mutate, fragment: str
) -> None:
    import copy

    document = copy.deepcopy(VALID)
    mutate(document)
    path = write(tmp_path, document)
    with pytest.raises(FunctionDocumentError) as info:
        load_function_file(path)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "spec: [unclosed")
    with pytest.raises(FunctionDocumentError, match="not valid YAML"):
        load_function_file(path)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    write(tmp_path, VALID, "a.yaml")
    write(tmp_path, VALID, "b.yaml")
    with pytest.raises(FunctionDocumentError, match="also defined in"):
        load_registry(tmp_path)
