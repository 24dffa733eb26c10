"""The seeds' experiments (perf/paper_workload, node_sweep, image_pipeline, llm_cost) on small sizes.

Each script runs for real (Triton, the gateway, the in-process baseline) with a
few tasks, writing into a temporary folder instead of perf/results; the checks
recompute what the scripts report from their raw outputs, independently.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import toolmesh
from perf import image_pipeline, llm_cost, node_sweep, paper_workload
from toolmesh.batch import load_utilisation, read_results
from toolmesh.data import ACCIDENT_REPORT, STREET_REPORT
from toolmesh_codegen.validate import find_problems
from toolmesh_gateway.registry import load_registry
from toolmesh_local.mesh import LocalMesh
from toolmesh_models.ops import color_depth
from toolmesh_models.paths import FUNCTIONS_DIR

PNG = b"\x89PNG"


def price_table() -> dict[str, Any]:
    text = resources.files("toolmesh.batch").joinpath("prices.yaml").read_text()
    return yaml.safe_load(text)


def check_function_stats(report: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """The report's per-function statistics are those of the raw call records."""
    for stats in report["functions"]:
        seconds = [c["end"] - c["start"] for r in records for c in r["calls"]
                   if c["function"] == stats["name"]]  # fmt: skip
        assert stats["count"] == len(seconds) > 0
        assert stats["mean_s"] == pytest.approx(np.mean(seconds))
        if len(seconds) > 1:
            assert stats["stdev_s"] == pytest.approx(np.std(seconds, ddof=1))
    assert sum(s["count"] for s in report["functions"]) == sum(len(r["calls"]) for r in records)


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    work = tmp_path_factory.mktemp("paper-work")
    results = tmp_path_factory.mktemp("paper-results")
    paper_workload.main(["--small", "--work", str(work), "--results", str(results)])
    return work, results, json.loads((results / "paper_workload.json").read_text())


def test_paper_workload_writes_every_run(paper: tuple[Path, Path, dict[str, Any]]) -> None:
    work, results, payload = paper
    assert payload["tasks"] == 6 and payload["images"] == 3
    assert [(r["program"], r["mode"]) for r in payload["rows"]] == [
        ("accident", "baseline"), ("accident", "toolmesh"),
        ("street", "baseline"), ("street", "toolmesh"),
    ]  # fmt: skip
    for row in payload["rows"]:
        records = read_results(work / f"{row['program']}-{row['mode']}.jsonl")
        assert len(records) == row["tasks"] == row["report"]["tasks"] == row["report"]["ok"] == 6
        check_function_stats(row["report"], records)
        baseline = next(
            r for r in payload["rows"] if r["program"] == row["program"] and r["mode"] == "baseline"
        )
        assert row["vs_baseline"] == pytest.approx(baseline["seconds"] / row["seconds"])
        assert row["calls"] == sum(len(r["calls"]) for r in records)
    accident = {r["function"] for rec in read_results(work / "accident-toolmesh.jsonl")
                for r in rec["calls"]}  # fmt: skip
    assert accident == {"find", "simple_query", "verify_property"}
    for picture in ("paper_timeline.png", "paper_utilisation.png"):
        assert (results / picture).read_bytes()[:4] == PNG
    table = (results / "paper_workload.md").read_text()
    assert table.count("| accident |") == 2 and "paper (accident query" in table


def test_paper_workload_baseline_answers_as_the_mesh(
    paper: tuple[Path, Path, dict[str, Any]],
) -> None:
    """Same seed, same images per task; and the in-process baseline (its BLS stand-in for
    verify_property's inner find) gives the answers Triton gives."""
    work, _, _ = paper
    for program in ("accident", "street"):
        base = {r["task"]: r for r in read_results(work / f"{program}-baseline.jsonl")}
        mesh = {r["task"]: r for r in read_results(work / f"{program}-toolmesh.jsonl")}
        assert base.keys() == mesh.keys()
        for task in base:
            assert base[task]["image"] == mesh[task]["image"]
            assert base[task]["result"] == mesh[task]["result"]
    cars = [c for r in read_results(work / "accident-toolmesh.jsonl") for c in r["result"]["cars"]]
    assert cars, "the street frames have vehicles; the accident program found none"
    assert all(
        set(c) == {"label", "score", "color", "model", "damaged", "overturned"} for c in cars
    )


def test_paper_workload_samples_utilisation_per_group(
    paper: tuple[Path, Path, dict[str, Any]],
) -> None:
    work, _, payload = paper
    for row in payload["rows"]:
        use = row["report"]["utilisation"]
        names = {g["name"] for g in use["groups"]}
        expected = {"client"} if row["mode"] == "baseline" else {"client", "gateway", "triton"}
        assert names == expected
        samples = load_utilisation(work / f"{row['program']}-{row['mode']}.util.jsonl")
        assert use["samples"] == len(samples) > 0
        for group in use["groups"]:
            values = [s["cpu"][group["name"]] for s in samples]
            assert group["mean"] == pytest.approx(np.mean(values))
            assert group["idle_fraction"] == pytest.approx(np.mean([v < 5 for v in values]))


def test_image_pipeline_statistics_are_those_of_its_samples(tmp_path: Path) -> None:
    image_pipeline.main(["--small", "--results", str(tmp_path)])
    result = json.loads((tmp_path / "image_pipeline.json").read_text())
    assert result["runs"] == 5
    steps = ["greyscale", "resize", "color_depth", "rotate", "convert_format"]
    for side in (result, result["baseline"]):
        for name in steps:
            stats = side["functions"][name]
            samples = stats["samples_ms"]
            assert len(samples) == 5
            assert stats["mean_ms"] == pytest.approx(np.mean(samples))
            assert stats["stdev_ms"] == pytest.approx(np.std(samples, ddof=1))
            assert stats["cv"] == pytest.approx(np.std(samples, ddof=1) / np.mean(samples))
        turnaround = side["turnaround_samples_ms"]
        assert side["turnaround_ms"] == pytest.approx(np.mean(turnaround))
        # each run's turnaround contains its five calls (and the client's widening step)
        for i, total in enumerate(turnaround):
            parts = sum(side["functions"][n]["samples_ms"][i] for n in [*steps, "widen (client)"])
            assert total >= parts
        price = price_table()["node_types"]["cpu-2core"]["usd_per_hour"]
        expected = side["turnaround_ms"] / 1000 * 100_000 / 3600 * price
        assert side["cost_per_100k"] == pytest.approx(expected)
    concurrent = result["throughput"]
    assert concurrent["pipelines"] == 5
    assert concurrent["images_per_second"] == pytest.approx(5 / concurrent["seconds"])
    assert (tmp_path / "image_pipeline.png").read_bytes()[:4] == PNG
    assert "| **turnaround** |" in (tmp_path / "image_pipeline.md").read_text()


def test_widening_to_10_bit_is_exact() -> None:
    """The client step before color_depth: 10 → 8 bit must give the 8-bit samples back."""
    samples = np.arange(256, dtype=np.uint8).reshape(16, 16)
    deep = image_pipeline.widen_to_10_bit(samples)
    assert deep.dtype == np.uint16 and deep.shape == (16, 16, 1)
    assert deep.max() == 1023 and deep.min() == 0
    assert np.array_equal(color_depth(deep, 10)[:, :, 0], samples)


def test_node_sweep_against_given_endpoints(mesh: LocalMesh, tmp_path: Path) -> None:
    """The cluster path: a gateway started here over Triton servers it is given."""
    node_sweep.main(["--small", "--program", "street", "--nodes", "1",
                     "--endpoints", mesh.triton_urls[0], "--results", str(tmp_path)])  # fmt: skip
    payload = json.loads((tmp_path / "node_sweep.json").read_text())
    assert payload["cpu_bound"] is False and payload["endpoints"] == mesh.triton_urls[:1]
    baseline, one = payload["rows"]
    assert baseline["run"].startswith("baseline") and one["run"] == "toolmesh"
    price = price_table()["node_types"]["cpu-2core"]["usd_per_hour"]
    for row in payload["rows"]:
        assert row["tasks"] == row["report"]["tasks"] == row["report"]["ok"] == 4
        assert row["cost_usd_as_separate_nodes"] == pytest.approx(
            row["seconds"] / 3600 * price * row["nodes"]
        )
    groups = {g["name"] for g in one["report"]["utilisation"]["groups"]}
    assert groups == {"gateway", "client"}  # remote Tritons are not sampled from here
    assert "remote Triton servers" in (tmp_path / "node_sweep.md").read_text()


def test_node_sweep_refuses_more_nodes_than_endpoints(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        node_sweep.main(
            ["--nodes", "1,2", "--endpoints", "127.0.0.1:1", "--results", str(tmp_path)]
        )


def test_llm_cost_is_tokens_times_prices(tmp_path: Path) -> None:
    llm_cost.main(["--questions", "1234", "--results", str(tmp_path)])
    payload = json.loads((tmp_path / "llm_cost.json").read_text())
    tokens = payload["tokens"]
    assert tokens["completion_chars"] == len(ACCIDENT_REPORT.read_text())
    assert tokens["completion_tokens"] == pytest.approx(tokens["completion_chars"] / 4)
    assert tokens["prompt_tokens"] > tokens["completion_tokens"]  # the registry is in the prompt
    rows = price_table()["llm_models"]
    for model in payload["models"]:
        row = rows[model["model"]]
        if "usd_per_hour" in row:
            per = (
                (tokens["prompt_tokens"] + tokens["completion_tokens"])
                / row["tokens_per_second"]
                / 3600
                * row["usd_per_hour"]
            )
        else:
            per = (tokens["prompt_tokens"] * row["usd_per_1m_input_tokens"]
                   + tokens["completion_tokens"] * row["usd_per_1m_output_tokens"]) / 1e6  # fmt: skip
        assert model["usd"] == pytest.approx(1234 * per)
    assert "$863.33" in (tmp_path / "llm_cost.md").read_text()


@pytest.mark.parametrize("program", [ACCIDENT_REPORT, STREET_REPORT], ids=lambda p: p.stem)
def test_shipped_programs_pass_the_sandbox_contract(program: Path) -> None:
    """`toolmesh run` without --trusted checks a program as the codegen validator does."""
    functions = [
        toolmesh.FunctionInfo.from_proto(f.to_proto()) for f in load_registry(FUNCTIONS_DIR)
    ]
    assert find_problems(program.read_text(), functions, serial=False) == []
