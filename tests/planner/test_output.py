"""A plan's files: the placement parses and renders with toolmesh-models' own code, and
the overlay renders with the real kustomize into the pools the plan chose."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.rendering import DEPLOY, kubectl
from toolmesh_models.placement import parse_placement
from toolmesh_models.repository import render_repository
from toolmesh_planner.output import placement_document, pool_name, write_overlay
from toolmesh_planner.profile import DeviceProfile, ModelProfile, ServiceTime
from toolmesh_planner.search import Composition, NodeType, PoolPlan


def profile(name: str, kind: str, **batching: int) -> DeviceProfile:
    models = {
        m: ModelProfile(
            functions=(m,),
            service={1: ServiceTime.constant(0.01)},
            max_batch_size=batching.get(m, 0),
            kind=kind if m == "find" else "KIND_CPU",
        )
        for m in ("find", "greyscale", "resize", "rotate")
    }
    return DeviceProfile(name, models, 1.0)


TYPES = {
    "a6000": NodeType("a6000", 1.0, profile("a6000", "KIND_GPU", find=8), 4, "NVIDIA-RTX-A6000"),
    "cpu-2core": NodeType("cpu-2core", 0.08, profile("cpu-2core", "KIND_CPU", find=8), 6),
}
COMPOSITION = Composition(
    (
        PoolPlan("a6000", 2, (("find", 2),)),
        PoolPlan("cpu-2core", 3, (("greyscale", 1), ("resize", 2))),
    )
)


def test_pool_names_are_dns_labels() -> None:
    assert pool_name("a6000+a4000") == "a6000-a4000"
    assert pool_name("CPU_2core") == "cpu-2core"
    assert pool_name("2xA100") == "pool-2xa100"


def test_placement_parses_and_each_pool_renders_its_models(tmp_path: Path) -> None:
    text = yaml.safe_dump(placement_document(COMPOSITION, TYPES))
    placement = parse_placement(yaml.safe_load(text), source="planned")
    assert set(placement.pools) == {"a6000", "cpu-2core"}
    assert set(placement.pools["a6000"].models) == {"find"}
    assert set(placement.pools["cpu-2core"].models) == {"greyscale", "resize"}
    find = placement.for_pool("a6000").for_model("find")
    assert (find.count, find.batching) == (2, "gpu")
    assert placement.for_pool("cpu-2core").for_model("resize").count == 2

    rendered = tmp_path / "a6000"
    render_repository(rendered, placement=placement, gpus=[0], pool="a6000")
    assert sorted(p.name for p in rendered.iterdir() if p.is_dir()) == ["find"]
    config = (rendered / "find" / "config.pbtxt").read_text()
    assert "KIND_GPU" in config and "count: 2" in config
    rendered = tmp_path / "cpu"
    render_repository(rendered, placement=placement, gpus=[], pool="cpu-2core")
    assert sorted(p.name for p in rendered.iterdir() if p.is_dir()) == ["greyscale", "resize"]
    assert "count: 2" in (rendered / "resize" / "config.pbtxt").read_text()


def test_overlay_renders_with_kustomize(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, deploy)
    # the base applies the Function documents from the models' package, beside deploy/
    (tmp_path / "triton_models").symlink_to(DEPLOY.parent / "triton_models")
    overlay = deploy / "overlays" / "planned"
    write_overlay(overlay, COMPOSITION, TYPES)
    done = subprocess.run(
        [kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        pytest.fail(f"kubectl kustomize failed:\n{done.stderr}")
    objects = [d for d in yaml.safe_load_all(done.stdout) if d]

    def one(kind: str, name: str) -> dict:
        found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(found) == 1, (kind, name, [o["metadata"]["name"] for o in objects])
        return found[0]

    gpu = one("Deployment", "triton-a6000")["spec"]["template"]["spec"]
    term = gpu["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["NVIDIA-RTX-A6000"]
    server = next(c for c in gpu["containers"] if c["name"] == "tritonserver")
    assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
    cpu = one("Deployment", "triton-cpu-2core")["spec"]["template"]["spec"]
    server = next(c for c in cpu["containers"] if c["name"] == "tritonserver")
    assert "nvidia.com/gpu" not in server["resources"].get("limits", {})
    init = next(c for c in cpu["initContainers"] if c["name"] == "render-models")
    assert {"name": "TOOLMESH_GPUS", "value": ""} in init["env"]
    assert one("HorizontalPodAutoscaler", "triton-a6000")["spec"]["minReplicas"] == 2
    assert one("HorizontalPodAutoscaler", "triton-cpu-2core")["spec"]["minReplicas"] == 3
    assert one("Service", "triton-a6000")["spec"]["selector"]["toolmesh.dev/gpu-pool"] == "a6000"
    maps = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and "toolmesh-placement" in o["metadata"]["name"]
    ]
    assert len(maps) == 1
    mounted = yaml.safe_load(maps[0]["data"]["placement.yaml"])
    assert mounted == placement_document(COMPOSITION, TYPES)
