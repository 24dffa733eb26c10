"""The Function CRD: generated from the registry's schema, structural, and it accepts the very
Function files the local registry loads (and refuses what the registry refuses)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.rendering import DEPLOY, find, render
from toolmesh_gateway import crd
from toolmesh_gateway.registry import FunctionDocumentError, parse_function_resource
from toolmesh_models.paths import FUNCTIONS_DIR

FUNCTION_FILES = sorted(FUNCTIONS_DIR.glob("*.yaml"))
CRD_PATH = DEPLOY.parent / crd.CRD_FILE
# The API server's rules for object names and labels (k8s.io/apimachinery validation).
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def committed_crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text(encoding="utf-8"))


def crd_schema() -> dict[str, Any]:
    [version] = committed_crd()["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def crd_problems(document: dict[str, Any]) -> list[str]:
    """What the API server would say about ``document`` with the committed CRD installed.

    OpenAPI v3.0 schema objects are JSON Schema draft 4 for every keyword the CRD
    uses; on top: undeclared fields (pruned by the server, refused by kubectl's
    default ``--validate=strict``), the object-name rule and the label rules.
    """
    schema = crd_schema()
    problems = [
        f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in jsonschema.Draft4Validator(schema).iter_errors(document)
    ]
    problems += pruned(document.get("spec"), schema["properties"]["spec"], "spec")
    metadata = document.get("metadata") or {}
    name = str(metadata.get("name", ""))
    if not (DNS_SUBDOMAIN.match(name) and len(name) <= 253):
        problems.append(f"metadata.name: {name!r} is not an RFC 1123 subdomain")
    for key, value in (metadata.get("labels") or {}).items():
        prefix, _, label = str(key).rpartition("/")
        if (
            not LABEL_NAME.match(label)
            or len(label) > 63
            or (prefix and not DNS_SUBDOMAIN.match(prefix))
        ):
            problems.append(f"metadata.labels: bad key {key!r}")
        if value and (not LABEL_NAME.match(str(value)) or len(str(value)) > 63):
            problems.append(f"metadata.labels.{key}: bad value {value!r}")
    return problems


def pruned(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Fields of ``value`` that ``schema`` neither declares nor preserves."""
    if not isinstance(value, dict):
        if isinstance(value, list) and "items" in schema:
            return [
                p for i, v in enumerate(value) for p in pruned(v, schema["items"], f"{path}[{i}]")
            ]
        return []
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    found = []
    for key, child in value.items():
        if key in properties:
            found += pruned(child, properties[key], f"{path}.{key}")
        elif isinstance(extra, dict):
            found += pruned(child, extra, f"{path}.{key}")
        elif not preserve:
            found.append(f"{path}.{key}: not in the CRD schema (pruned by the API server)")
    return found


def structural_problems(node: dict[str, Any], path: str = "", *, root: bool = True) -> list[str]:
    """Kubernetes' structural-schema rules (apiextensions validation) that the schema breaks."""
    problems = []
    where = path or "(root)"
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if "type" not in node and not preserve and not node.get("x-kubernetes-int-or-string"):
        problems.append(f"{where}: every node needs a type")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{where}: properties and additionalProperties are mutually exclusive")
    if node.get("additionalProperties") is False:
        problems.append(f"{where}: additionalProperties: false is not allowed")
    if preserve and node.get("type", "object") != "object":
        problems.append(f"{where}: preserve-unknown-fields only on objects")
    for name, child in node.get("properties", {}).items():
        if root and name == "metadata":
            if set(child) - {"type", "properties"} or set(child.get("properties", {})) - {
                "name",
                "generateName",
            }:
                problems.append("metadata: only name and generateName may be restricted")
            continue
        if root and name in ("apiVersion", "kind") and child != {"type": "string"}:
            problems.append(f"{name}: at the root, only `type: string` is allowed")
            continue
        problems += structural_problems(child, f"{path}.{name}".lstrip("."), root=False)
    if isinstance(node.get("items"), dict):
        problems += structural_problems(node["items"], f"{path}[]", root=False)
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}.*", root=False)
    return problems


def test_committed_crd_is_the_generated_one() -> None:
    assert CRD_PATH.read_text(encoding="utf-8") == crd.render_crd(), (
        f"{crd.CRD_FILE} is stale: run `make crd` after changing FUNCTION_RESOURCE_SCHEMA"
    )


def test_crd_schema_is_structural() -> None:
    assert structural_problems(crd_schema()) == []


def test_structural_check_catches_what_kubernetes_refuses() -> None:
    # The checker itself: each schema below is one the API server rejects.
    assert structural_problems({"properties": {"spec": {"properties": {"a": {}}}}})
    assert structural_problems(
        {
            "type": "object",
            "properties": {"metadata": {"type": "object", "properties": {"labels": {}}}},
        }
    )
    assert structural_problems(
        {
            "type": "object",
            "properties": {"spec": {"type": "object", "additionalProperties": False}},
        }
    )


def test_crd_names_match_the_function_files() -> None:
    spec = committed_crd()["spec"]
    served = {f"{spec['group']}/{v['name']}" for v in spec["versions"] if v["served"]}
    assert committed_crd()["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}"
    assert spec["scope"] == "Namespaced"
    for path in FUNCTION_FILES:
        document = load(path)
        assert document["apiVersion"] in served, path.name
        assert document["kind"] == spec["names"]["kind"], path.name


@pytest.mark.parametrize("path", FUNCTION_FILES, ids=lambda p: p.name)
def test_every_function_file_is_accepted_by_the_crd(path: Path) -> None:
    assert crd_problems(load(path)) == []


def test_the_rendered_functions_are_the_files_themselves() -> None:
    rendered = {f["metadata"]["name"]: f for f in find(render("base"), "Function")}
    files = [load(p) for p in FUNCTION_FILES]
    assert sorted(rendered) == sorted(f["metadata"]["name"] for f in files)
    for document in files:
        got = copy.deepcopy(rendered[document["metadata"]["name"]])
        assert got["metadata"].pop("namespace") == "toolmesh"
        # kustomize adds the part-of label; nothing else changes
        assert got["metadata"]["labels"].pop("app.kubernetes.io/part-of") == "toolmesh"
        assert got == document


def test_the_functions_kustomization_lists_every_function_file() -> None:
    kustomization = yaml.safe_load((FUNCTIONS_DIR / "Kustomization").read_text(encoding="utf-8"))
    assert sorted(kustomization["resources"]) == [p.name for p in FUNCTION_FILES]
    # ...and the registry's loader never reads it as a Function
    assert not list(FUNCTIONS_DIR.glob("Kustomization.y*ml"))


VALID = load(FUNCTIONS_DIR / "greyscale.yaml")


@pytest.mark.parametrize(
    ("mutate", "what"),
    [
        (lambda d: d["metadata"].update(name="grey_scale"), "underscore in the name"),
        (lambda d: d["metadata"].update(name="Greyscale"), "upper case name"),
        (lambda d: d["spec"].update(documentation="too short"), "short documentation"),
        (lambda d: d["spec"].pop("resultSchema"), "no resultSchema"),
        (lambda d: d["spec"]["model"].update(name=""), "empty model name"),
        (lambda d: d["spec"]["parametersSchema"].update(type="array"), "parameters not an object"),
        (lambda d: d["spec"]["parametersSchema"].pop("properties"), "no parameter properties"),
        (lambda d: d["spec"].update(modle={"name": "x"}), "misspelt spec field"),
        (lambda d: d["spec"]["model"].update(replicas=2), "unknown model field"),
    ],
)
def test_crd_and_registry_refuse_the_same_documents(mutate, what: str) -> None:
    document = copy.deepcopy(VALID)
    mutate(document)
    assert crd_problems(document), f"the CRD accepts a document with {what}"
    with pytest.raises(FunctionDocumentError):
        parse_function_resource(document, "test")


def test_crd_and_registry_accept_free_form_json_schemas() -> None:
    # parametersSchema/resultSchema are JSON Schemas: fields the CRD does not declare are kept
    document = copy.deepcopy(VALID)
    document["spec"]["parametersSchema"]["properties"]["image"]["examples"] = ["a.png"]
    document["spec"]["resultSchema"] = {"type": "array", "items": {"type": "number"}}
    assert crd_problems(document) == []
    assert parse_function_resource(document, "test").name == "greyscale"


def test_a_dashed_resource_name_is_an_underscored_function() -> None:
    document = load(FUNCTIONS_DIR / "color_depth.yaml")
    assert document["metadata"]["name"] == "color-depth"
    assert parse_function_resource(document, "test").name == "color_depth"


def test_generator_refuses_keywords_it_cannot_translate() -> None:
    with pytest.raises(ValueError, match="oneOf"):
        crd.openapi_schema({"type": "object", "oneOf": [{"type": "string"}]}, "spec")


def test_an_underscored_resource_name_is_refused_with_the_fix() -> None:
    document = copy.deepcopy(VALID)
    document["metadata"]["name"] = "grey_scale"
    with pytest.raises(FunctionDocumentError, match="write 'grey-scale'"):
        parse_function_resource(document, "test")
