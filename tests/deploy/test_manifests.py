"""The overlays render, every object validates strictly, and the objects agree with each other
and with the code they run (ports, selectors, settings, placement)."""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tests.deploy.rendering import DEPLOY, KUBERNETES_VERSIONS, OVERLAYS, find, one, render
from toolmesh_gateway.config import GatewaySettings
from toolmesh_gateway.server import FUNCTIONS_SERVICE
from toolmesh_models.paths import FUNCTIONS_DIR
from toolmesh_models.placement import load_placement
from toolmesh_models.repository import available_models, check_placement

GPU = model_config_pb2.ModelInstanceGroup.KIND_GPU
CPU = model_config_pb2.ModelInstanceGroup.KIND_CPU
#: The pools each overlay must have: GPU product names (node affinity) per pool.
POOLS = {
    "mixed-gpu": {"a6000": "NVIDIA-RTX-A6000", "a4000": "NVIDIA-RTX-A4000"},
    "single-gpu-type": {"a100": "NVIDIA-A100-SXM4-80GB"},
}


def test_the_overlays_are_the_expected_ones() -> None:
    assert sorted(POOLS) == OVERLAYS


@pytest.mark.parametrize("path", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_renders(path: str) -> None:
    objects = render(path)
    kinds = {o["kind"] for o in objects}
    assert {"CustomResourceDefinition", "Function", "Deployment", "Service", "Role"} <= kinds
    assert {o["metadata"]["name"] for o in find(objects, "Deployment")} >= {
        "toolmesh-gateway",
        "otel-collector",
    }
    for o in objects:
        if o["kind"] not in ("Namespace", "CustomResourceDefinition"):
            assert o["metadata"].get("namespace") == "toolmesh", (o["kind"], o["metadata"]["name"])


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_passes_strict_validation(overlay: str, version: str) -> None:
    """kubernetes-validate --strict (bundled OpenAPI schemas, unknown fields refused).

    It has no schema for our custom kind: Functions are validated against the CRD's
    schema in test_crd.py instead (and the CRD itself is validated here).
    """
    checked = 0
    for o in render(f"overlays/{overlay}"):
        if o["kind"] == "Function":
            continue
        try:
            kubernetes_validate.validate(o, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{o['kind']}/{o['metadata']['name']} (Kubernetes {version}): {exc}")
        checked += 1
    assert checked >= 15


def test_strict_validation_refuses_an_unknown_field() -> None:
    # the control for the test above: a misspelt field fails, so passing means something
    deployment = copy.deepcopy(one(render("overlays/mixed-gpu"), "Deployment", "toolmesh-gateway"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpcc"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


# ---- the objects agree with each other ------------------------------------------------


def pod_templates(objects: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [d["spec"]["template"] for d in find(objects, "Deployment")]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def container_ports(template: dict[str, Any]) -> dict[str | int, int]:
    ports: dict[str | int, int] = {}
    for container in template["spec"]["containers"]:
        for port in container.get("ports", []):
            ports[port["containerPort"]] = port["containerPort"]
            if "name" in port:
                ports[port["name"]] = port["containerPort"]
    return ports


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_select_pods_that_have_their_ports(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    for service in find(objects, "Service"):
        selector = service["spec"]["selector"]
        matched = [t for t in pod_templates(objects) if selects(selector, t["metadata"]["labels"])]
        assert matched, f"Service {service['metadata']['name']} selects no pod"
        for template in matched:
            for port in service["spec"]["ports"]:
                assert port["targetPort"] in container_ports(template), (
                    service["metadata"]["name"],
                    port,
                )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_select_their_own_pods_and_nothing_else(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    deployments = find(objects, "Deployment")
    for deployment in deployments:
        selector = deployment["spec"]["selector"]["matchLabels"]
        owners = [
            d for d in deployments if selects(selector, d["spec"]["template"]["metadata"]["labels"])
        ]
        assert owners == [deployment], deployment["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_volumes_name_config_maps_that_exist(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    config_maps = {c["metadata"]["name"] for c in find(objects, "ConfigMap")}
    for template in pod_templates(objects):
        for volume in template["spec"].get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaler_and_disruption_budgets_target_real_pods(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    hpa = one(objects, "HorizontalPodAutoscaler", "toolmesh-gateway")
    target = hpa["spec"]["scaleTargetRef"]
    gateway = one(objects, target["kind"], target["name"])
    assert "replicas" not in gateway["spec"], "the HPA owns the gateway's replica count"
    resources = gateway["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert "cpu" in resources["requests"], "CPU utilisation needs a CPU request"
    for pdb in find(objects, "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert any(selects(selector, t["metadata"]["labels"]) for t in pod_templates(objects))


def test_rbac_lets_the_gateway_watch_functions_and_discover_endpoints() -> None:
    objects = render("overlays/mixed-gpu")
    deployment = one(objects, "Deployment", "toolmesh-gateway")
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    one(objects, "ServiceAccount", account)
    subject = {"kind": "ServiceAccount", "name": account, "namespace": "toolmesh"}
    [binding] = [b for b in find(objects, "RoleBinding") if subject in b["subjects"]]
    assert binding["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    role = one(objects, binding["roleRef"]["kind"], binding["roleRef"]["name"])

    def allowed(group: str, resource: str, verb: str) -> bool:
        return any(
            group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]
            for r in role["rules"]
        )

    crd = one(objects, "CustomResourceDefinition", "functions.toolmesh.dev")["spec"]
    for verb in ("list", "watch"):
        assert allowed(crd["group"], crd["names"]["plural"], verb)
        assert allowed("discovery.k8s.io", "endpointslices", verb)
    assert not allowed(crd["group"], crd["names"]["plural"], "delete")
    # minimal: read-only, and only what the gateway reads (it finds a pool's slices by
    # their service-name label, so neither Services nor the legacy Endpoints)
    granted = {
        (group, resource)
        for r in role["rules"]
        for group in r["apiGroups"]
        for resource in r["resources"]
    }
    assert granted == {
        (crd["group"], crd["names"]["plural"]),
        ("discovery.k8s.io", "endpointslices"),
    }
    assert {verb for r in role["rules"] for verb in r["verbs"]} == {"get", "list", "watch"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_reaches_triton(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    [policy] = find(objects, "NetworkPolicy")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    tritons = [
        d for d in find(objects, "Deployment") if d["metadata"]["name"].startswith("triton-")
    ]
    assert tritons
    for deployment in find(objects, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selects(spec["podSelector"]["matchLabels"], labels) == (deployment in tritons)
    [rule] = spec["ingress"]
    [peer] = rule["from"]
    gateway = one(objects, "Deployment", "toolmesh-gateway")["spec"]["template"]["metadata"]
    assert selects(peer["podSelector"]["matchLabels"], gateway["labels"])
    assert set(peer) == {"podSelector"}, "no namespace- or IP-wide peers"
    assert [p["port"] for p in rule["ports"]] == [8001]


# ---- the objects agree with the code ------------------------------------------------


def container(template: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    key = "initContainers" if init else "containers"
    [found] = [c for c in template["spec"][key] if c["name"] == name]
    return found


def env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in c.get("env", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_settings_and_probes(
    overlay: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    objects = render(f"overlays/{overlay}")
    template = one(objects, "Deployment", "toolmesh-gateway")["spec"]["template"]
    gateway = container(template, "gateway")
    variables = env(gateway)
    for name in [k for k in os.environ if k.startswith("TOOLMESH_")]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value or "toolmesh")  # fieldRef: the pod's namespace
    settings = GatewaySettings.from_env()  # the very parsing the gateway does at start
    assert settings.address == "0.0.0.0:50051"
    assert settings.registry == "kubernetes"
    port = int(settings.address.rpartition(":")[2])
    assert container_ports(template)["grpc"] == port
    assert settings.metrics_address is not None
    assert container_ports(template)["metrics"] == int(settings.metrics_address.rpartition(":")[2])
    # TLS and tokens from mounted Secrets; probes on the plaintext health-only port.
    assert settings.tls is not None and settings.tokens_file is not None
    mounts = {m["mountPath"]: m["name"] for m in gateway["volumeMounts"]}
    secrets = {
        v["name"]: v["secret"]["secretName"] for v in template["spec"]["volumes"] if "secret" in v
    }
    for path in (settings.tls.cert, settings.tls.key, settings.tokens_file):
        assert mounts.get(str(path.parent)) in secrets, f"{path} is not in a mounted Secret"
    assert (
        template["spec"]["securityContext"]["fsGroup"]
        == template["spec"]["securityContext"]["runAsGroup"]
    )
    assert settings.health_address is not None
    health_port = int(settings.health_address.rpartition(":")[2])
    assert container_ports(template)["health"] == health_port != port
    assert gateway["readinessProbe"]["grpc"] == {
        "port": health_port,
        "service": FUNCTIONS_SERVICE,
    }
    assert gateway["livenessProbe"]["grpc"] == {"port": health_port}
    assert gateway["startupProbe"]["grpc"] == {"port": health_port}
    service = one(objects, "Service", "toolmesh-gateway")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, "grpc")]
    # the Triton pods come from the EndpointSlices of the pools' Services, the pools from
    # the placement file mounted from the overlay's ConfigMap
    assert settings.discovery == "kubernetes"
    assert "TOOLMESH_TRITON_URL" not in variables
    assert settings.placement_file is not None
    name, key = mounted_file(template, gateway, str(settings.placement_file))
    assert name.startswith("toolmesh-placement-"), "the overlay's generated ConfigMap (hashed)"
    here = tmp_path / key
    here.write_text(one(objects, "ConfigMap", name)["data"][key])
    pools = dataclasses.replace(settings, placement_file=here).pools()  # the gateway's parsing
    assert {pool.name for pool in pools} == set(POOLS[overlay])
    services = {s["metadata"]["name"]: s for s in find(objects, "Service")}
    for pool in pools:
        service = services[pool.service]
        assert pool.port_name in [p.get("name") for p in service["spec"]["ports"]], pool
        # the Service is in front of exactly that pool's Triton pods
        selected = [
            d["metadata"]["name"]
            for d in find(objects, "Deployment")
            if selects(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]
        assert selected == [f"triton-{pool.name}"], (pool, selected)
        # and the pool loads what the placement file lists for it
        listed = yaml.safe_load(here.read_text())["pools"][pool.name]["models"]
        assert pool.models == set(listed)
    # the gateway's reading of pools: and the renderer's (toolmesh_models) agree on the file
    rendered_from = load_placement(here).pools
    assert {(p.name, p.service, p.models) for p in pools} == {
        (name, entry.service, frozenset(entry.models)) for name, entry in rendered_from.items()
    }


def mounted_file(template: dict[str, Any], c: dict[str, Any], path: str) -> tuple[str, str]:
    """The (ConfigMap, key) a container sees at ``path``: a subPath mount or a folder mount."""
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    for mount in c.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "configMap" not in volume:
            continue
        if mount["mountPath"] == path and "subPath" in mount:
            return volume["configMap"]["name"], mount["subPath"]
        if str(Path(path).parent) == mount["mountPath"].rstrip("/") and "subPath" not in mount:
            return volume["configMap"]["name"], Path(path).name
    raise AssertionError(f"{path} is not mounted from a ConfigMap in {c['name']}")


def triton_pools(overlay: str) -> list[tuple[str, dict[str, Any]]]:
    objects = render(f"overlays/{overlay}")
    return [(pool, one(objects, "Deployment", f"triton-{pool}")) for pool in POOLS[overlay]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_triton_pool_runs_on_its_gpu_type(overlay: str) -> None:
    for pool, deployment in triton_pools(overlay):
        spec = deployment["spec"]["template"]["spec"]
        [term] = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"
        ]
        [expression] = term["matchExpressions"]
        assert expression["key"] == "nvidia.com/gpu.product" and expression["operator"] == "In"
        assert POOLS[overlay][pool] in expression["values"], pool
        server = container(deployment["spec"]["template"], "tritonserver")
        gpus = int(server["resources"]["limits"]["nvidia.com/gpu"])
        visible = env(container(deployment["spec"]["template"], "render-models", init=True))
        # the device plugin numbers a pod's GPUs from 0: TOOLMESH_GPUS must be exactly those
        assert visible["TOOLMESH_GPUS"] == ",".join(map(str, range(gpus))), pool
        assert deployment["metadata"]["labels"]["toolmesh.dev/gpu-pool"] == pool


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_serves_the_rendered_repository_with_health_probes(overlay: str) -> None:
    for pool, deployment in triton_pools(overlay):
        template = deployment["spec"]["template"]
        server = container(template, "tritonserver")
        render_models = container(template, "render-models", init=True)
        out = next(a for a in render_models["args"] if a.startswith("--out="))[len("--out=") :]
        assert f"--model-repository={out}" in server["args"], pool
        mounts = {m["name"]: m["mountPath"] for m in server["volumeMounts"]}
        init_mounts = {m["name"]: m["mountPath"] for m in render_models["volumeMounts"]}
        assert out.startswith(init_mounts["models"]) and mounts["models"] == init_mounts["models"]
        assert "emptyDir" in next(v for v in template["spec"]["volumes"] if v["name"] == "models")
        assert server["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
        assert server["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
        http = next(a for a in server["args"] if a.startswith("--http-port="))
        assert container_ports(template)["http"] == int(http.split("=")[1])
        grpc_port = next(a for a in server["args"] if a.startswith("--grpc-port="))
        assert container_ports(template)["grpc"] == int(grpc_port.split("=")[1]) == 8001


def resolved_env(template: dict[str, Any], c: dict[str, Any]) -> dict[str, str]:
    """The container's variables as the kubelet sets them: values, and labels by fieldRef."""
    labels = template["metadata"]["labels"]
    variables = {}
    for variable in c.get("env", []):
        if "value" in variable:
            variables[variable["name"]] = variable["value"]
            continue
        field = variable["valueFrom"]["fieldRef"]["fieldPath"]
        label = re.fullmatch(r"metadata\.labels\['([^']+)'\]", field)
        assert label is not None, f"{c['name']}: {variable['name']} from {field}"
        assert label.group(1) in labels, f"{variable['name']}: the pod has no label {field}"
        variables[variable["name"]] = labels[label.group(1)]
    return variables


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_init_container_renders_the_pools_placement(overlay: str, tmp_path: Path) -> None:
    """Run the init container's command (our CLI) on its ConfigMap's placement file:
    each pool's repository holds exactly the models its pools: entry lists."""
    objects = render(f"overlays/{overlay}")
    gateway = one(objects, "Deployment", "toolmesh-gateway")["spec"]["template"]
    gateway_file = env(container(gateway, "gateway"))["TOOLMESH_PLACEMENT_FILE"]
    gateway_config_map = mounted_file(gateway, container(gateway, "gateway"), gateway_file)
    for pool, deployment in triton_pools(overlay):
        template = deployment["spec"]["template"]
        init = container(template, "render-models", init=True)
        volume = next(v for v in template["spec"]["volumes"] if v["name"] == "placement")
        config_map = one(objects, "ConfigMap", volume["configMap"]["name"])
        mount = next(m["mountPath"] for m in init["volumeMounts"] if m["name"] == "placement")
        models = next(m["mountPath"] for m in init["volumeMounts"] if m["name"] == "models")
        here = tmp_path / pool
        (here / "placement").mkdir(parents=True)
        for key, text in config_map["data"].items():
            (here / "placement" / key).write_text(text)
        variables = resolved_env(template, init)
        assert variables["TOOLMESH_POOL"] == pool
        args = []
        for arg in init["args"]:  # Kubernetes expands $(VAR) from the container's env
            for name, value in variables.items():
                arg = arg.replace(f"$({name})", value)
            args.append(
                arg.replace(mount, str(here / "placement")).replace(models, str(here / "models"))
            )
        assert f"--pool={pool}" in args
        assert init["command"][:3] == ["python3", "-m", "toolmesh_models.repository"]
        result = subprocess.run(
            [sys.executable, "-m", "toolmesh_models.repository", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        gpus = list(
            range(int(container(template, "tritonserver")["resources"]["limits"]["nvidia.com/gpu"]))
        )
        # the pool renders from the very file the gateway reads
        placement_file = next(a for a in args if a.startswith("--placement=")).split("=", 1)[1]
        assert (config_map["metadata"]["name"], Path(placement_file).name) == gateway_config_map
        listed = yaml.safe_load(Path(placement_file).read_text())["pools"][pool]["models"]
        placement = load_placement(placement_file).for_pool(pool)
        repository = here / "models" / "repository"
        assert sorted(p.name for p in repository.iterdir() if p.is_dir()) == sorted(listed)
        for model in listed:
            config = text_format.Parse(
                (repository / model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
            )
            groups = [(g.kind, g.count, list(g.gpus)) for g in config.instance_group]
            settings = placement.for_model(model)
            if settings.kind == "cpu":
                assert groups == [(CPU, settings.cpu_count or settings.count, [])], (pool, model)
            else:
                assert groups == [(GPU, settings.count, [i]) for i in gpus], (pool, model)
        # the detector is on every GPU of every pool that loads it
        if "find" in listed:
            assert groups_of(repository, "find") == [
                (GPU, placement.for_model("find").count, [i]) for i in gpus
            ]


def groups_of(repository: Path, model: str) -> list[tuple[int, int, list[int]]]:
    config = text_format.Parse(
        (repository / model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    return [(g.kind, g.count, list(g.gpus)) for g in config.instance_group]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_traces_go_to_the_collector(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    collector = one(objects, "Service", "otel-collector")
    ports = {p["name"]: p["port"] for p in collector["spec"]["ports"]}
    config_map = next(
        c
        for c in find(objects, "ConfigMap")
        if c["metadata"]["name"].startswith("otel-collector-config")
    )
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    for pipeline in config["service"]["pipelines"].values():
        for part in ("receivers", "processors", "exporters"):
            assert set(pipeline[part]) <= set(config[part]), part
    assert set(config["service"]["extensions"]) <= set(config["extensions"])
    http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert int(http.rpartition(":")[2]) == ports["otlp-http"]
    for _, deployment in triton_pools(overlay):
        args = container(deployment["spec"]["template"], "tritonserver")["args"]
        assert (
            f"--trace-config=opentelemetry,url=otel-collector:{ports['otlp-http']}/v1/traces"
            in args
        )
        assert "--trace-config=rate=100" in args  # sampled: see DESIGN.md on rate=1
    gateway = env(
        container(one(objects, "Deployment", "toolmesh-gateway")["spec"]["template"], "gateway")
    )
    assert gateway["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://otel-collector:{ports['otlp-http']}"


def test_overlay_images_are_set_in_one_place() -> None:
    for overlay in OVERLAYS:
        kustomization = yaml.safe_load(
            (DEPLOY / "overlays" / overlay / "kustomization.yaml").read_text()
        )
        names = {i["name"] for i in kustomization["images"]}
        assert names == {"toolmesh/gateway", "toolmesh/triton"}
        images = {
            c["image"]
            for t in pod_templates(render(f"overlays/{overlay}"))
            for c in [*t["spec"]["containers"], *t["spec"].get("initContainers", [])]
        }
        assert not any(i.startswith("toolmesh/") for i in images), "an image escaped `images:`"


def overlay_placement(overlay: str) -> Path:
    return DEPLOY / "overlays" / overlay / "placement.yaml"


def test_each_overlay_has_one_placement_file() -> None:
    assert not list((DEPLOY / "overlays").glob("*/pool-*/placement.yaml")), "one file per overlay"
    for overlay in OVERLAYS:
        kustomization = yaml.safe_load(
            (DEPLOY / "overlays" / overlay / "kustomization.yaml").read_text()
        )
        [generator] = kustomization["configMapGenerator"]
        assert generator["name"] == "toolmesh-placement"
        assert generator["files"] == ["placement.yaml"]
        assert set(load_placement(overlay_placement(overlay)).pools) == set(POOLS[overlay])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pool_placements_keep_the_cpu_gpu_split_of_the_repository(overlay: str) -> None:
    """Pools tune counts; which models are pinned to the CPU follows triton_models/toolmesh_models/placement.yaml."""
    base = load_placement()
    placement = load_placement(overlay_placement(overlay))
    check_placement(placement)  # every name a model, every BLS caller beside find
    for pool in placement.pools:
        view = placement.for_pool(pool)
        for model in view.loads or ():
            assert view.for_model(model).kind == base.for_model(model).kind, (pool, model)
            assert view.for_model(model).batching == base.for_model(model).batching, (pool, model)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_function_is_served_by_some_pool(overlay: str) -> None:
    """The gateway refuses to start when a Function's model is in no pool."""
    pools = yaml.safe_load(overlay_placement(overlay).read_text())["pools"]
    served = {model for entry in pools.values() for model in entry["models"]}
    for path in sorted(FUNCTIONS_DIR.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        assert document["spec"]["model"]["name"] in served, (overlay, path.name)


#: The DiCE-C split (issue 16): transformer models on the 48 GB cards, the light ones on the
#: 16 GB cards. find (CenterNet) is light; the big pool loads it too because
#: verify_property calls it inside Triton.
HEAVY = {"simple_query", "caption", "verify_property", "best_image_match", "best_text_match",
         "compute_depth"}  # fmt: skip
LIGHT = {"greyscale", "resize", "rotate", "color_depth", "convert_format", "dominant_color",
         "find", "exists", "count", "read_text"}  # fmt: skip


def test_mixed_gpu_puts_heavy_models_on_the_big_gpus() -> None:
    assert set(available_models()) == HEAVY | LIGHT
    pools = yaml.safe_load(overlay_placement("mixed-gpu").read_text())["pools"]
    assert set(pools["a6000"]["models"]) == HEAVY | {"find"}
    assert set(pools["a4000"]["models"]) == LIGHT


def test_single_gpu_type_loads_every_model_in_its_one_pool() -> None:
    pools = yaml.safe_load(overlay_placement("single-gpu-type").read_text())["pools"]
    assert list(pools) == ["a100"]
    assert sorted(pools["a100"]["models"]) == available_models()
