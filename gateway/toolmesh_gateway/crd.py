"""The ``functions.toolmesh.dev`` CustomResourceDefinition, generated from the registry's schema.

``FUNCTION_RESOURCE_SCHEMA`` (registry.py) is the one description of a Function
resource; the CRD's ``openAPIV3Schema`` is derived from it here, so the cluster
and the local registry accept the same documents. Regenerate after changing it::

    make crd      # python -m toolmesh_gateway.crd --out deploy/base/function-crd.yaml

(``tests/deploy`` checks that the committed file equals this output.)

JSON Schema and Kubernetes' structural OpenAPI schemas differ, so the translation:

- ``const: v`` becomes ``enum: [v]`` (Kubernetes has no ``const``);
- an object without ``additionalProperties`` (JSON Schema: anything else is
  allowed) gets ``x-kubernetes-preserve-unknown-fields: true``, so the API server
  keeps the free-form JSON Schemas in ``parametersSchema``/``resultSchema``;
- ``additionalProperties: false`` is dropped: Kubernetes forbids it next to
  ``properties``, and it already prunes undeclared fields (``kubectl`` rejects them
  with its default ``--validate=strict``);
- at the root, Kubernetes allows restricting only ``metadata.name`` (labels are
  the API server's business) and types ``apiVersion``/``kind`` itself.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from toolmesh_gateway.registry import FUNCTION_RESOURCE_SCHEMA

__all__ = ["CRD_FILE", "function_crd", "openapi_schema", "render_crd"]

GROUP = "toolmesh.dev"
VERSION = "v1"
KIND = "Function"
PLURAL = "functions"

CRD_FILE = "deploy/base/function-crd.yaml"
"""Where the repository keeps the generated CRD (relative to the repository root)."""

#: ``kubectl explain`` text, by path in the resource.
DESCRIPTIONS = {
    "": "A toolmesh function: documentation for an LLM and a human, JSON Schemas of its "
    "parameters and result, and the Triton model that serves it.",
    "metadata.name": "The function's name, with '-' for '_' (color-depth is color_depth).",
    "spec": "What the function does, takes and returns, and which model computes it.",
    "spec.model": "The Triton model that serves the function.",
    "spec.model.name": "Model name in the Triton model repository.",
    "spec.model.version": "Model version; empty for Triton's version policy.",
    "spec.documentation": "What the function does, written for an LLM and a human.",
    "spec.parametersSchema": "JSON Schema (2020-12) of the keyword arguments, an object.",
    "spec.resultSchema": "JSON Schema (2020-12) of the result.",
}

# JSON Schema keywords with the same meaning in Kubernetes' OpenAPI v3 schemas.
_SAME = ("type", "description", "pattern", "minLength", "maxLength", "minimum", "maximum")
_SAME += ("minItems", "maxItems", "enum", "format", "required", "default")
_HANDLED = frozenset((*_SAME, "const", "properties", "additionalProperties", "items"))
_PYTHON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number"}


def openapi_schema(schema: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """Translate one JSON Schema node (and its children) into a structural OpenAPI node.

    Raises:
        ValueError: The node uses a keyword this translation does not know, so the
            CRD could silently accept less or more than the registry does.
    """
    unknown = set(schema) - _HANDLED
    if unknown:
        raise ValueError(f"{path or '(root)'}: no CRD translation for {sorted(unknown)}")
    node: dict[str, Any] = {}
    if path in DESCRIPTIONS:
        node["description"] = DESCRIPTIONS[path]
    for key in _SAME:
        if key in schema:
            node[key] = schema[key]
    if "const" in schema:
        value = schema["const"]
        node.setdefault("type", _PYTHON_TYPES[type(value)])
        node["enum"] = [value]
    if "items" in schema:
        node["items"] = openapi_schema(schema["items"], f"{path}[]")
    properties = schema.get("properties")
    if properties:
        node["properties"] = {
            name: openapi_schema(child, f"{path}.{name}".lstrip("."))
            for name, child in properties.items()
        }
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        if properties:
            raise ValueError(f"{path}: Kubernetes forbids properties with additionalProperties")
        node["additionalProperties"] = openapi_schema(extra, f"{path}.*")
    elif extra is None and node.get("type") == "object":
        node["x-kubernetes-preserve-unknown-fields"] = True
    return node


def _root_schema() -> dict[str, Any]:
    source = FUNCTION_RESOURCE_SCHEMA
    name = source["properties"]["metadata"]["properties"]["name"]
    root = openapi_schema({k: v for k, v in source.items() if k not in ("properties", "required")})
    root.pop("x-kubernetes-preserve-unknown-fields", None)
    root["required"] = [
        k for k in source["required"] if k not in ("apiVersion", "kind", "metadata")
    ]
    root["properties"] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {
            "type": "object",
            "properties": {"name": openapi_schema(name, "metadata.name")},
        },
        "spec": openapi_schema(source["properties"]["spec"], "spec"),
    }
    return root


def function_crd() -> dict[str, Any]:
    """The CustomResourceDefinition object for ``functions.toolmesh.dev``."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "categories": ["toolmesh"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": _root_schema()},
                    "additionalPrinterColumns": [
                        {"name": "Model", "type": "string", "jsonPath": ".spec.model.name"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                }
            ],
        },
    }


def render_crd() -> str:
    """The CRD as the YAML file committed at :data:`CRD_FILE`."""
    header = (
        "# GENERATED by `make crd` (python -m toolmesh_gateway.crd) from\n"
        "# FUNCTION_RESOURCE_SCHEMA in gateway/toolmesh_gateway/registry.py. Do not edit.\n"
    )
    body = yaml.safe_dump(function_crd(), sort_keys=False, allow_unicode=True, width=100)
    return header + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolmesh_gateway.crd", description=__doc__)
    parser.add_argument("--out", type=Path, help=f"write here (e.g. {CRD_FILE}); default stdout")
    args = parser.parse_args(argv)
    text = render_crd()
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
