"""What a plan writes: the placement file with its ``pools:`` and a kustomize overlay.

The placement file is the format of ``triton_models/toolmesh_models/placement.yaml``
(the renderer reads it in every pool's init container; the gateway reads ``pools:``
to route). The overlay has the shape of ``deploy/overlays/mixed-gpu``: one folder
per pool that suffixes the shared ``triton-pool`` base and patches its node
affinity, GPUs and replica bounds, so ``kubectl apply -k`` deploys exactly the
composition the plan chose. Pool names are node-type names made DNS-1035 labels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from toolmesh_planner.search import Composition, Evaluation, NodeType

__all__ = ["overlay_files", "placement_document", "pool_name", "summary", "write_overlay"]


def pool_name(node_type: str) -> str:
    """``node_type`` as a DNS-1035 label (what a pool name and its Service need)."""
    label = re.sub(r"[^a-z0-9-]+", "-", node_type.lower()).strip("-")
    if not label or not label[0].isalpha():
        label = f"pool-{label}".rstrip("-")
    return label[:50]


def placement_document(composition: Composition, types: Mapping[str, NodeType]) -> dict[str, Any]:
    """The placement file: model settings, then which pool loads which model.

    A model batches only where its instances are GPUs (``batching: gpu``), as the
    simulation assumed; a model measured on a CPU instance is pinned there
    (``kind: cpu``). Instance counts are per pool.
    """
    models: dict[str, dict[str, Any]] = {}
    pools: dict[str, Any] = {}
    for pool in composition.pools:
        profile = types[pool.node_type].profile
        entries: dict[str, Any] = {}
        for model, instances in pool.models:
            measured = profile.models[model]
            settings = models.setdefault(model, {})
            if measured.max_batch_size > 0:
                settings["batching"] = "gpu"
            if measured.kind == "KIND_CPU" and types[pool.node_type].gpu_product is not None:
                settings["kind"] = "cpu"
            entries[model] = {"count": instances}
        pools[pool_name(pool.node_type)] = {"models": entries}
    return {"defaults": {"count": 1}, "models": models, "pools": pools}


def _pool_patch(node_type: NodeType, count: int) -> list[dict[str, Any]]:
    if node_type.gpu_product is not None:
        # one GPU per pod, pinned to the GPU product's nodes (GPU Feature Discovery's label)
        term = {
            "key": "nvidia.com/gpu.product",
            "operator": "In",
            "values": [node_type.gpu_product],
        }
        gpus, gpu_limit = "0", 1
    else:
        # a CPU node type: the pool's nodes carry its name as a label; no GPU is asked for
        term = {"key": "toolmesh.dev/node-type", "operator": "In", "values": [node_type.name]}
        gpus, gpu_limit = "", None
    template: dict[str, Any] = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [term]}]
                }
            }
        },
        "initContainers": [
            {"name": "render-models", "env": [{"name": "TOOLMESH_GPUS", "value": gpus}]}
        ],
        "containers": [
            {"name": "tritonserver", "resources": {"limits": {"nvidia.com/gpu": gpu_limit}}}
        ],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "triton"},
        "spec": {"template": {"spec": template}},
    }
    # the plan's count is the floor; the autoscaler may add up to as many again on load
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "triton"},
        "spec": {
            "minReplicas": count,
            "maxReplicas": max(count, min(2 * count, node_type.max_nodes)),
        },
    }
    return [deployment, hpa]


def overlay_files(
    composition: Composition,
    types: Mapping[str, NodeType],
    *,
    base: str = "../../base",
    triton_pool: str = "../../../triton-pool",
) -> dict[str, str]:
    """Every file of the overlay, by path relative to its folder.

    ``base`` and ``triton_pool`` are the relative paths from the overlay folder (and
    from a pool folder) to ``deploy/base`` and ``deploy/triton-pool``: the defaults
    fit an overlay written to ``deploy/overlays/<name>``.
    """
    names = [pool_name(p.node_type) for p in composition.pools]
    files: dict[str, str] = {
        "placement.yaml": "# Written by `toolmesh plan`: "
        + composition.describe()
        + "\n"
        + yaml.safe_dump(placement_document(composition, types), sort_keys=False),
    }
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "toolmesh",
        "resources": [base, *(f"pool-{n}" for n in names)],
        "configMapGenerator": [{"name": "toolmesh-placement", "files": ["placement.yaml"]}],
    }
    files["kustomization.yaml"] = (
        "# Written by `toolmesh plan`; set `images:` to where you pushed them (deploy/README.md).\n"
        + yaml.safe_dump(kustomization, sort_keys=False)
    )
    for pool, name in zip(composition.pools, names, strict=True):
        node_type = types[pool.node_type]
        files[f"pool-{name}/kustomization.yaml"] = yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [triton_pool],
                "nameSuffix": f"-{name}",
                "labels": [{"pairs": {"toolmesh.dev/gpu-pool": name}, "includeSelectors": True}],
                "patches": [{"path": "pool.yaml"}],
            },
            sort_keys=False,
        )
        files[f"pool-{name}/pool.yaml"] = (
            f"# {pool.count}× {node_type.name} ({node_type.usd_per_hour:g} USD/hour each)\n"
            + yaml.safe_dump_all(_pool_patch(node_type, pool.count), sort_keys=False)
        )
    return files


def write_overlay(
    folder: Path,
    composition: Composition,
    types: Mapping[str, NodeType],
    *,
    base: str = "../../base",
    triton_pool: str = "../../../triton-pool",
) -> list[Path]:
    """Write :func:`overlay_files` under ``folder``; returns the paths written."""
    written = []
    for name, text in overlay_files(composition, types, base=base, triton_pool=triton_pool).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def summary(evaluation: Evaluation, types: Mapping[str, NodeType]) -> dict[str, Any]:
    """The plan's prediction as data: wall, cost, utilisation per pool and model."""
    result = evaluation.result
    return {
        "composition": evaluation.composition.describe(),
        "pools": {
            pool_name(p.node_type): {
                "node_type": p.node_type,
                "count": p.count,
                "usd_per_hour_each": types[p.node_type].usd_per_hour,
                "models": dict(p.models),
                "device_utilisation": round(result.device_utilisation.get(p.node_type, 0.0), 3),
                "instance_utilisation": {
                    m: round(u, 3) for m, u in result.utilisation.get(p.node_type, {}).items()
                },
            }
            for p in evaluation.composition.pools
        },
        "predicted_wall_s": round(result.wall_s, 3),
        "limit_s": round(evaluation.limit_s, 3),
        "meets_target": evaluation.meets,
        "usd_per_hour": round(evaluation.usd_per_hour, 4),
        "cost_usd": round(evaluation.cost_usd, 4),
        "mean_task_latency_s": round(result.mean_latency_s, 4),
    }
