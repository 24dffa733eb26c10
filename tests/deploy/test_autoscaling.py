"""Triton pools scale on load: an HPA per pool on two per-pod metrics, which the Prometheus
Adapter rules of deploy/autoscaling/ derive from series that really exist.

The chain is gateway and Triton metrics → Prometheus → adapter → HPA. No Prometheus or
adapter runs here, so each link is checked where it can be: the HPAs and PDBs against the
rendered overlays; the adapter rules against the adapter's rule format, with their
metricsQuery expanded the way the adapter expands it and parsed as PromQL; the Triton
series the queue rule reads against a real Triton's /metrics after an inference.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import toolmesh
from tests.deploy.rendering import DEPLOY, OVERLAYS, find, one, render
from toolmesh_local.mesh import LocalMesh

ADAPTER_VALUES = DEPLOY / "autoscaling" / "prometheus-adapter-values.yaml"
#: The keys of a Prometheus Adapter discovery rule (its config format, docs/config.md).
RULE_REQUIRED = {"seriesQuery", "resources", "name", "metricsQuery"}
RULE_OPTIONAL = {"seriesFilters"}
TEMPLATES = ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>")
POOL_LABEL = "toolmesh.dev/gpu-pool"


def adapter_rules() -> list[dict[str, Any]]:
    values = yaml.safe_load(ADAPTER_VALUES.read_text(encoding="utf-8"))
    assert values["rules"]["default"] is False, "only the rules the autoscalers use"
    rules: list[dict[str, Any]] = values["rules"]["custom"]
    return rules


def pool_deployments(objects: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """The Triton pools' Deployments: the ones whose pods carry the pool label."""
    pools = [
        d
        for d in find(objects, "Deployment")
        if POOL_LABEL in d["spec"]["template"]["metadata"]["labels"]
    ]
    assert pools
    return pools


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def pool_autoscalers(objects: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [
        h
        for h in find(objects, "HorizontalPodAutoscaler")
        if h["metadata"]["name"] != "toolmesh-gateway"
    ]


# ---- the HPAs and PDBs of the pools ---------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_pool_has_one_autoscaler_on_its_deployment(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    autoscalers = pool_autoscalers(objects)
    pools = pool_deployments(objects)
    assert len(autoscalers) == len(pools), "one HPA per pool, no stray one"
    for deployment in pools:
        name = deployment["metadata"]["name"]
        [hpa] = [
            h
            for h in autoscalers
            if h["spec"]["scaleTargetRef"]
            == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        ]
        assert "replicas" not in deployment["spec"], f"{name}: the HPA owns the replica count"
        spec = hpa["spec"]
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"], name
        assert hpa["metadata"]["labels"][POOL_LABEL] == deployment["metadata"]["labels"][POOL_LABEL]
        # up at once, down only after the load has stayed low: a new pod loads models for minutes
        behavior = spec["behavior"]
        assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0, name
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pools_replica_bounds_are_the_overlays(overlay: str) -> None:
    """min/max come from each pool's patch, not the triton-pool defaults (1/1: no scaling)."""
    objects = render(f"overlays/{overlay}")
    base = yaml.safe_load((DEPLOY / "triton-pool" / "hpa.yaml").read_text())["spec"]
    for hpa in pool_autoscalers(objects):
        assert hpa["spec"]["maxReplicas"] > base["maxReplicas"], hpa["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_pool_has_a_disruption_budget_for_exactly_its_pods(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    deployments = find(objects, "Deployment")
    budgets = find(objects, "PodDisruptionBudget")
    for pool in pool_deployments(objects):
        labels = pool["spec"]["template"]["metadata"]["labels"]
        [pdb] = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)]
        selected = [
            d["metadata"]["name"]
            for d in deployments
            if selects(
                pdb["spec"]["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"]
            )
        ]
        assert selected == [pool["metadata"]["name"]], pdb["metadata"]["name"]
        assert pdb["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_metric_an_autoscaler_asks_for_comes_from_exactly_one_rule(overlay: str) -> None:
    produced = [rule["name"]["as"] for rule in adapter_rules()]
    asked = set()
    for hpa in pool_autoscalers(render(f"overlays/{overlay}")):
        for metric in hpa["spec"]["metrics"]:
            # per-pod figures, averaged over the pool's pods by the HPA
            assert metric["type"] == "Pods", hpa["metadata"]["name"]
            name = metric["pods"]["metric"]["name"]
            assert produced.count(name) == 1, f"{name}: {produced.count(name)} rules produce it"
            target = metric["pods"]["target"]
            assert target["type"] == "AverageValue" and float(target["averageValue"]) > 0
            asked.add(name)
    assert asked == {"toolmesh_triton_in_flight", "toolmesh_triton_queue_us_per_request"}
    assert set(produced) == asked, "a rule nothing asks for"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_and_gateway_pods_are_scraped_on_their_metrics_ports(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    for deployment in pool_deployments(objects):
        template = deployment["spec"]["template"]
        [server] = [c for c in template["spec"]["containers"] if c["name"] == "tritonserver"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        [port] = [p["containerPort"] for p in server["ports"] if p["name"] == "metrics"]
        assert annotations["prometheus.io/port"] == str(port)
        assert f"--metrics-port={port}" in server["args"]
    gateway = one(objects, "Deployment", "toolmesh-gateway")["spec"]["template"]
    [container] = [c for c in gateway["spec"]["containers"] if c["name"] == "gateway"]
    address = next(e["value"] for e in container["env"] if e["name"] == "TOOLMESH_METRICS_ADDRESS")
    assert gateway["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert gateway["metadata"]["annotations"]["prometheus.io/port"] == address.rpartition(":")[2]


# ---- the Prometheus Adapter rules -------------------------------------------------------


def walk(node: Any) -> Iterator[Any]:
    """Every node of a promql_parser expression tree."""
    yield node
    for attribute in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attribute, None)
        if child is not None:
            yield from walk(child)
    for child in getattr(node, "args", None) or ():
        yield from walk(child)


def of_type(expression: Any, kind: type) -> list[Any]:
    return [n for n in walk(expression) if isinstance(n, kind)]


def matchers(selector: promql_parser.VectorSelector) -> dict[str, tuple[str, str]]:
    """label → (operator, value); the operator as PromQL writes it."""
    operators = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}
    return {
        m.name: (operators[str(m.op).rpartition(".")[2]], m.value)
        for m in selector.matchers.matchers
    }


def pod_label(rule: dict[str, Any]) -> str:
    [label] = [k for k, v in rule["resources"]["overrides"].items() if v == {"resource": "pod"}]
    return label


def expand(rule: dict[str, Any], namespace: str, pods: list[str]) -> str:
    """The query the adapter sends for ``pods`` of ``namespace``: its template variables
    filled in as the adapter fills them for a pods query (series name, resource label
    matchers, the pod resource's label to group by)."""
    series = promql_parser.parse(rule["seriesQuery"]).name
    label = pod_label(rule)
    label_matchers = f'namespace="{namespace}",{label}=~"{"|".join(pods)}"'
    return (
        rule["metricsQuery"]
        .replace("<<.Series>>", series)
        .replace("<<.LabelMatchers>>", label_matchers)
        .replace("<<.GroupBy>>", label)
    )


def check_rule(rule: dict[str, Any]) -> set[str]:
    """Assert ``rule`` is a discovery rule the adapter can serve per pod; return the series
    names its query reads."""
    assert RULE_REQUIRED <= set(rule) <= RULE_REQUIRED | RULE_OPTIONAL, sorted(rule)
    # resources: the namespace, and one label that names the pod the figure is about
    overrides = rule["resources"]["overrides"]
    assert overrides.get("namespace") == {"resource": "namespace"}
    assert len(overrides) == 2 and pod_label(rule)
    # seriesQuery: one metric, only series that carry both resource labels
    series = promql_parser.parse(rule["seriesQuery"])
    assert isinstance(series, promql_parser.VectorSelector) and series.name
    found = matchers(series)
    for label in overrides:
        assert found.get(label) == ("!=", ""), f"{series.name}: series without {label}"
    # name: renames that metric
    assert re.search(rule["name"]["matches"], series.name), rule["name"]
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", rule["name"]["as"])
    for template in TEMPLATES:
        assert template in rule["metricsQuery"], f"{rule['name']['as']}: no {template}"
    # expanded: valid PromQL in which every series read is narrowed to the asked pods and
    # every aggregation keeps one figure per pod
    pods = ["triton-a4000-7d9f-abcde", "triton-a4000-7d9f-fghij"]
    expression = promql_parser.parse(expand(rule, "toolmesh", pods))
    selectors = of_type(expression, promql_parser.VectorSelector)
    assert selectors
    for selector in selectors:
        found = matchers(selector)
        assert found.get("namespace") == ("=", "toolmesh"), selector
        assert found.get(pod_label(rule)) == ("=~", "|".join(pods)), selector
    aggregations = of_type(expression, promql_parser.AggregateExpr)
    assert aggregations, "summed over whatever else labels the series"
    for aggregation in aggregations:
        assert str(aggregation.op) == "sum", aggregation
        assert str(aggregation.modifier) == f"by ({pod_label(rule)})", aggregation
    return {selector.name for selector in selectors}


@pytest.mark.parametrize("rule", adapter_rules(), ids=lambda r: r["name"]["as"])
def test_each_adapter_rule_is_served_per_pod(rule: dict[str, Any]) -> None:
    check_rule(rule)


def test_a_rule_that_forgets_its_label_matchers_is_caught() -> None:
    # the control for the test above: a query that reads a series for every pod fails it
    [queue] = [
        r for r in adapter_rules() if r["name"]["as"] == "toolmesh_triton_queue_us_per_request"
    ]
    broken = copy.deepcopy(queue)
    broken["metricsQuery"] = broken["metricsQuery"].replace(
        "nv_inference_request_success{<<.LabelMatchers>>}", "nv_inference_request_success"
    )
    assert broken["metricsQuery"] != queue["metricsQuery"]
    with pytest.raises(AssertionError):
        check_rule(broken)


def test_in_flight_sums_the_gateways_figures_per_triton_pod() -> None:
    """The gateway's series carry the scraped gateway's own `pod`; the Triton pod is `triton_pod`."""
    [rule] = [r for r in adapter_rules() if r["name"]["as"] == "toolmesh_triton_in_flight"]
    assert pod_label(rule) == "triton_pod"
    assert check_rule(rule) == {"toolmesh_endpoint_in_flight"}


def test_queue_time_is_a_ratio_of_rates_guarded_against_no_requests() -> None:
    [rule] = [
        r for r in adapter_rules() if r["name"]["as"] == "toolmesh_triton_queue_us_per_request"
    ]
    assert pod_label(rule) == "pod"
    assert check_rule(rule) == {"nv_inference_queue_duration_us", "nv_inference_request_success"}
    expression = promql_parser.parse(expand(rule, "toolmesh", ["triton-a6000-1"]))
    assert isinstance(expression, promql_parser.BinaryExpr) and str(expression.op) == "/"
    # both counters as rates: a counter's raw value only grows
    rates = [c for c in of_type(expression, promql_parser.Call) if c.func.name == "rate"]
    assert len(rates) == 2
    # 0 requests in the window: a positive floor under the divisor, so 0/0 reads 0, not NaN
    guard = expression.rhs
    assert isinstance(guard, promql_parser.Call) and guard.func.name == "clamp_min"
    floor = guard.args[1]
    assert isinstance(floor, promql_parser.NumberLiteral) and 0 < floor.val < 1e-3


# ---- the series the queue rule reads exist in a real Triton ----------------------------


def scrape(mesh: LocalMesh) -> str:
    assert mesh.triton is not None
    url = f"http://127.0.0.1:{mesh.triton.ports.metrics}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
    return text


def sample(text: str, metric: str, model: str) -> float | None:
    """The value of ``metric{model=...}`` as Prometheus stores it: the sample's name verbatim."""
    for labels, value in re.findall(rf"^{metric}\{{([^}}]*)\}} (\S+)$", text, re.MULTILINE):
        if f'model="{model}"' in labels:
            return float(value)
    return None


async def test_triton_exports_the_counters_the_queue_rule_reads(
    mesh: LocalMesh, client: toolmesh.Client, rgb_pattern: np.ndarray
) -> None:
    [rule] = [
        r for r in adapter_rules() if r["name"]["as"] == "toolmesh_triton_queue_us_per_request"
    ]
    expression = promql_parser.parse(expand(rule, "toolmesh", ["p"]))
    read = {s.name for s in of_type(expression, promql_parser.VectorSelector)}
    requests = "nv_inference_request_success"
    assert requests in read
    before = sample(scrape(mesh), requests, "greyscale") or 0.0
    await client.call("greyscale", image=rgb_pattern)
    # Triton refreshes /metrics on an interval (2 s by default): wait for the call to show
    deadline = time.monotonic() + 60
    after = scrape(mesh)
    while (sample(after, requests, "greyscale") or 0.0) < before + 1:
        assert time.monotonic() < deadline, f"the call never showed in {requests}"
        await asyncio.sleep(0.5)
        after = scrape(mesh)
    families = {f.name: f.type for f in text_string_to_metric_families(after)}
    for metric in sorted(read):
        assert families.get(metric) == "counter", f"{metric}: {families.get(metric)!r}"
        assert sample(after, metric, "greyscale") is not None, f"no {metric} sample for greyscale"
