"""Seeded image assignment, and the LLM operating cost `toolmesh report` computes from prices.yaml."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import yaml

from toolmesh.batch import (
    BatchConfig,
    assign_images,
    llm_costs,
    load_llm_prices,
    read_results,
    run_batch,
)
from toolmesh.data import STREET_FRAMES
from toolmesh_local.inprocess import InProcessTransport

TOOLMESH = str(Path(sys.executable).with_name("toolmesh"))


def test_round_robin_without_a_seed() -> None:
    assert assign_images(7, 3) == [0, 1, 2, 0, 1, 2, 0]


def test_seeded_assignment_is_reproducible_and_random() -> None:
    first = assign_images(1000, 30, seed=2025)
    assert first == assign_images(1000, 30, seed=2025)
    assert first != assign_images(1000, 30, seed=2026)
    assert first != assign_images(1000, 30)
    assert set(first) == set(range(30))  # 1000 draws over 30 images miss none
    # uniform: no image gets more than twice its share
    assert max(first.count(i) for i in range(30)) < 2 * 1000 / 30


def test_no_images_is_an_error() -> None:
    with pytest.raises(ValueError):
        assign_images(3, 0)


def test_the_runner_follows_the_seeded_assignment(tmp_path: Path) -> None:
    program = tmp_path / "size.py"
    program.write_text("async def solve(image):\n    return list(image.size)\n")
    images = tmp_path / "images"
    images.mkdir()
    names = [p.name for p in sorted(STREET_FRAMES.glob("*.jpg"))[:5]]
    for name in names:
        (images / name).write_bytes((STREET_FRAMES / name).read_bytes())

    def run(seed: int | None, out: str) -> dict[int, str]:
        config = BatchConfig(program, images, 20, tmp_path / out, 4, seed=seed)
        summary = asyncio.run(run_batch(config, InProcessTransport()))
        assert summary.ok == 20
        return {r["task"]: r["image"] for r in read_results(tmp_path / out)}

    seeded, again, plain = run(11, "a.jsonl"), run(11, "b.jsonl"), run(None, "c.jsonl")
    assert seeded == again
    assert plain == {task: names[task % 5] for task in range(20)}
    assert seeded != plain
    assert seeded == {t: names[i] for t, i in enumerate(assign_images(20, 5, seed=11))}


def bundled_llm_rows() -> dict:
    text = resources.files("toolmesh.batch").joinpath("prices.yaml").read_text()
    return yaml.safe_load(text)["llm_models"]


def expected_usd(row: dict, prompt: float, completion: float) -> float:
    """The price of one question, computed from the table's own row."""
    if "usd_per_hour" in row:
        return (prompt + completion) / row["tokens_per_second"] / 3600 * row["usd_per_hour"]
    return (
        prompt * row["usd_per_1m_input_tokens"] + completion * row["usd_per_1m_output_tokens"]
    ) / 1_000_000


def test_bundled_table_has_api_and_self_hosted_rows() -> None:
    prices = load_llm_prices()
    assert any(p.self_hosted for p in prices.values())
    assert any(not p.self_hosted for p in prices.values())
    costs = llm_costs(prices, prompt_tokens=3000, completion_tokens=400, questions=1000)
    rows = bundled_llm_rows()
    assert [c.model for c in costs] == sorted(
        rows, key=lambda name: expected_usd(rows[name], 3000, 400)
    )
    for cost in costs:
        assert cost.usd_per_question == pytest.approx(expected_usd(rows[cost.model], 3000, 400))
        assert cost.usd == pytest.approx(1000 * cost.usd_per_question)


def test_a_row_must_be_one_kind(tmp_path: Path) -> None:
    table = tmp_path / "prices.yaml"
    table.write_text(
        "node_types: {cpu: {usd_per_hour: 1}}\n"
        "llm_models: {odd: {usd_per_hour: 2, usd_per_1m_input_tokens: 1}}\n"
    )
    with pytest.raises(ValueError, match=r"llm_models\.odd"):
        load_llm_prices(table)


def test_report_prints_and_saves_the_llm_operating_cost(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    results.write_text(
        json.dumps({"task": 0, "image": "a.jpg", "ok": True, "result": 1, "error": None,
                    "start": 10.0, "end": 12.0, "seconds": 2.0, "label": "x", "calls": [
                        {"function": "find", "start": 10.0, "end": 11.5, "seconds": 1.5,
                         "code": "OK", "attempts": 1}]}) + "\n"
    )  # fmt: skip
    done = subprocess.run(
        [TOOLMESH, "report", str(results), "--questions", "2500", "--prompt-tokens", "8000",
         "--completion-tokens", "600", "--json", str(tmp_path / "report.json")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "self-hosted" in done.stdout and "$8,641" in done.stdout
    saved = json.loads((tmp_path / "report.json").read_text())["llm"]
    rows = bundled_llm_rows()
    assert saved["questions"] == 2500
    assert {m["model"] for m in saved["models"]} == set(rows)
    for model in saved["models"]:
        assert model["usd"] == pytest.approx(2500 * expected_usd(rows[model["model"]], 8000, 600))

    broken = tmp_path / "broken.yaml"
    broken.write_text("node_types: {cpu-2core: {usd_per_hour: 1}}\nllm_models: {x: {}}\n")
    refused = subprocess.run(
        [TOOLMESH, "report", str(results), "--questions", "1", "--prices", str(broken)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "llm_models.x" in refused.stderr
