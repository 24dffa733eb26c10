"""``toolmesh eval``: the question set, its checks and prices, the command's usage errors,
and a run from end to end against the real mesh with the replay server as the LLM
endpoint. The expected scores are worked out by hand from the recordings' documented
mistakes (tests/codegen/replays/eval/*.yaml), not taken from a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from tests.codegen.eval_replays import EvalResponder, load_recordings
from tests.codegen.replay_server import ReplayServer
from toolmesh_codegen import Usage
from toolmesh_codegen.evaluation import (
    SCENES,
    cost,
    load_prices,
    load_questions,
    matches,
    scene,
    scene_png,
    select,
)
from toolmesh_codegen.evaluation.scenes import COLOURS

TOOLMESH = str(Path(sys.executable).parent / "toolmesh")


def test_the_shipped_set_covers_every_kind_of_question() -> None:
    questions = load_questions()
    assert len(questions) >= 30
    assert len({q.id for q in questions}) == len(questions)
    assert set(Counter(q.category for q in questions)) == {
        "count", "presence", "comparison", "colour", "conditional", "per-detection", "geometry",
    }  # fmt: skip
    kinds = Counter(q.image.split(":")[0] for q in questions)
    assert kinds["street"] >= 10 and kinds["scene"] >= 10
    for q in questions:
        assert q.has_answer != (q.reference is not None), q.id
        assert q.image_bytes()[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb"), q.id


def test_scenes_are_drawn_the_same_every_time_and_as_described() -> None:
    for name in SCENES:
        assert scene_png(name) == scene_png(name), name
    quadrants = scene("quadrants")
    assert quadrants.size == (200, 200)
    centres = {"red": (50, 50), "green": (150, 50), "blue": (50, 150), "yellow": (150, 150)}
    for colour, xy in centres.items():
        assert quadrants.getpixel(xy) == COLOURS[colour]
    grid = scene("grid")
    cells = [grid.getpixel((40 + 80 * c, 40 + 80 * r)) for r in range(2) for c in range(3)]
    assert [c == COLOURS["red"] for c in cells].count(True) == 3
    stripes = Image.open(__import__("io").BytesIO(scene_png("stripes")))
    assert [stripes.getpixel((x, 50)) for x in (50, 150, 250)] == [
        COLOURS["blue"], COLOURS["white"], COLOURS["red"],
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "expected", "tolerance", "right"),
    [
        (" Red ", "red", 0, True),
        ("reddish", "red", 0, False),
        (2.0, 2, 0, True),
        (254, 255, 2, True),
        (252, 255, 2, False),
        (True, 1, 0, False),
        (1, True, 0, False),
        (["a", "B"], ["a", "b"], 0, True),
        (["b", "a"], ["a", "b"], 0, False),
        ({"n": 1}, ["n"], 0, False),
        (float("nan"), 1.0, 5, False),
    ],
)
def test_answers_are_checked_as_a_reader_would(
    answer: object, expected: object, tolerance: float, right: bool
) -> None:
    assert matches(answer, expected, tolerance) is right


def test_cost_comes_from_the_price_table(tmp_path: Path) -> None:
    prices = load_prices()
    usage = Usage(prompt_tokens=2_000_000, completion_tokens=1_000_000)
    # gpt-4o-mini list price: $0.15 per million prompt, $0.60 per million completion tokens
    assert cost(usage, "gpt-4o-mini", prices) == pytest.approx(0.30 + 0.60)
    assert cost(usage, "gpt-4o-mini-2024-07-18", prices) == pytest.approx(0.90)  # by prefix
    assert cost(usage, "some-other-model", prices) is None
    table = tmp_path / "prices.yaml"
    table.write_text("llm_models:\n  m:\n    usd_per_million_prompt_tokens: 1\n")
    with pytest.raises(ValueError, match="m: needs usd_per_million_prompt_tokens"):
        load_prices(table)


def test_a_broken_question_file_names_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(
        "questions:\n  - {id: a, category: count, image: 'scene:nope', question: q, expect: int,"
        " answer: 1}\n"
    )
    with pytest.raises(ValueError, match="a: unknown scene 'nope'"):
        load_questions(path)
    path.write_text(
        "questions:\n  - {id: a, category: count, image: 'scene:grid', question: q, expect: int}\n"
    )
    with pytest.raises(ValueError, match="questions/0"):
        load_questions(path)  # neither an answer nor a reference
    with pytest.raises(ValueError, match="no question 'zz'"):
        select(load_questions(), ["zz"])


def toolmesh_eval(*args: str, env: dict[str, str] | None = None, cwd: Path) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [TOOLMESH, "eval", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", "OPENAI_API_KEY": "k", **(env or {})},
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-q", "no_such_question"], "no question 'no_such_question' in the set"),
        (["--prices", "missing.yaml"], "missing.yaml"),
        (["--prices", "bad.yaml"], "expected a mapping under 'llm_models'"),
        (["--questions", "bad.yaml"], "bad.yaml: top level"),
        (["--out", "bad.yaml"], "bad.yaml: not a folder (for --out)"),
        (["--limit", "0"], "--limit"),
        (["--replan", "-1"], "--replan"),
    ],
)
def test_eval_usage_mistakes_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bad.yaml").write_text("[1, 2]\n")
    done = toolmesh_eval(*args, "--address", "127.0.0.1:9", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in done.stderr and not (tmp_path / "eval-results").exists()


def test_eval_without_an_api_key_fails_before_anything_runs(tmp_path: Path) -> None:
    done = toolmesh_eval("--address", "127.0.0.1:9", cwd=tmp_path, env={"OPENAI_API_KEY": ""})
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: no API key for the LLM: set OPENAI_API_KEY")


#: Six questions that between them meet every documented mistake kind of the recordings.
SUBSET = [
    "quadrant_top_left",  # qwen: prose without a program, then valid (1 repair)
    "blue_quadrant",  # gpt-4o-mini: swaps the bottom quarters (wrong); qwen: right
    "image_width",  # qwen: answers a string, re-planned (1 re-plan)
    "cars_frame_000",  # both (qwen same as gpt): "parked car" refused, re-planned
    "tall_people",  # qwen: KeyError three times (2 re-plans, then failed)
    "cell_colours",  # qwen: asyncio.gather three times (invalid, 2 repairs)
]


def test_eval_end_to_end_against_the_replay_server(address: str, tmp_path: Path) -> None:
    questions = load_questions()
    models = ["gpt-4o-mini", "qwen2.5-coder-7b-instruct"]
    with ReplayServer(respond=EvalResponder(questions, load_recordings())) as server:
        args = ["--base-url", server.base_url, "--address", address, "--out", "scores"]
        for model in models:
            args += ["--model", model]
        for question in SUBSET:
            args += ["-q", question]
        done = toolmesh_eval(*args, cwd=tmp_path, env={"TOOLMESH_LLM_MAX_RETRIES": "0"})
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "scores" / "codegen_eval.json").read_text())
    assert document["questions"] == len(SUBSET)
    assert list(document["models"]) == models
    gpt, qwen = (document["models"][m] for m in models)
    by_id = {m: {r["id"]: r for r in document["models"][m]["results"]} for m in models}

    assert gpt["accuracy"] == pytest.approx(5 / 6) and gpt["valid_rate"] == 1.0
    assert by_id[models[0]]["blue_quadrant"]["outcome"] == "wrong"
    assert by_id[models[0]]["blue_quadrant"]["answer"] == "bottom-right"
    assert (gpt["repair_rounds"], gpt["replan_rounds"], gpt["runtime_errors"]) == (0, 1, 1)

    assert qwen["accuracy"] == pytest.approx(4 / 6) and qwen["valid_rate"] == pytest.approx(5 / 6)
    q = by_id[models[1]]
    assert q["cell_colours"]["outcome"] == "invalid" and q["cell_colours"]["repairs"] == 2
    assert q["quadrant_top_left"]["repairs"] == 1 and q["quadrant_top_left"]["outcome"] == "correct"
    assert q["image_width"]["replans"] == 1 and q["image_width"]["answer"] == 240
    assert q["tall_people"]["outcome"] == "failed"
    assert (q["tall_people"]["replans"], q["tall_people"]["runtime_errors"]) == (2, 3)
    assert (qwen["repair_rounds"], qwen["replan_rounds"], qwen["runtime_errors"]) == (3, 4, 5)
    assert qwen["outcomes"] == {"correct": 4, "wrong": 0, "invalid": 1, "failed": 1, "error": 0}

    # what was asked of the endpoint adds up to what the scorecard counts
    for model, score in zip(models, (gpt, qwen), strict=True):
        asked = [r for r in server.requests if r["model"] == model]
        attempts = sum(1 + r["repairs"] + r["replans"] for r in score["results"])
        assert len(asked) == attempts, model
        assert score["tokens"] == score["prompt_tokens"] + score["completion_tokens"] > 0
    assert gpt["cost"] == pytest.approx(
        (gpt["prompt_tokens"] * 0.15 + gpt["completion_tokens"] * 0.60) / 1e6
    )
    assert qwen["cost"] == 0.0  # self-hosted: no per-token price
    # the parallel rewrite ran wherever the serial program succeeded
    for score in (gpt, qwen):
        timed = [r for r in score["results"] if r["serial_s"] is not None]
        assert (
            score["timed_questions"]
            == len(timed)
            == score["outcomes"]["correct"] + score["outcomes"]["wrong"]
        )
        assert all(r["parallel_rounds"] <= r["serial_rounds"] for r in timed)

    table = (tmp_path / "scores" / "codegen_eval.md").read_text().splitlines()
    assert table[0].startswith("| model | accuracy |") and len(table) == 2 + len(models)
    assert table[2].startswith("| gpt-4o-mini | **83%** (5/6) | 100% (6/6) |")
    assert table[3].startswith("| qwen2.5-coder-7b-instruct | **67%** (4/6) | 83% (5/6) |")
    chart = tmp_path / "scores" / "codegen_eval.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {Path('scores') / 'codegen_eval.json'}" in done.stdout


def test_the_committed_scorecard_is_of_this_question_set_and_says_where_it_came_from() -> None:
    results = Path(__file__).resolve().parents[2] / "perf" / "results" / "codegen_eval.json"
    document = json.loads(results.read_text())
    assert document["questions"] == len(load_questions())
    assert "replay server" in document["llm_endpoint"] and "cores" in document["machine"]
    assert set(document["models"]) == set(load_recordings())
    for model, score in document["models"].items():
        assert {"accuracy", "valid_rate", "tokens", "cost"} <= set(score), model
        assert len(score["results"]) == document["questions"]
        right = sum(r["outcome"] == "correct" for r in score["results"])
        assert score["accuracy"] == pytest.approx(right / document["questions"])
