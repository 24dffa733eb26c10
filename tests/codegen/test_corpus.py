"""The corpus against the real gateway: for every serial program, its parallel rewrite
gives the same answer (or raises the same exception) on street frames, makes the same
calls, and needs exactly as many rounds as the critical path computed independently by
``critical_path.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.codegen.conftest import CORPUS
from tests.codegen.critical_path import critical_path
from toolmesh_codegen import ProgramError, RunResult, Sandbox, check, plan

# Two frames, alternating over the corpus: 5 people and a car (frame_000), 9 people
# (frame_260). Few, because every program runs twice and `find` costs ~110 ms of CPU
# here; perf/codegen_speedup.py runs the whole corpus on more frames.
FRAMES = ("frame_000.jpg", "frame_260.jpg")


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 25
    questions = [path.read_text().split('"""')[1] for path in CORPUS]
    assert all(q.strip().endswith(("?", ".", ")")) for q in questions)


async def _outcome(sandbox: Sandbox, source: str, frame: Path) -> RunResult | ProgramError:
    try:
        return await sandbox.run(source, image=frame)
    except ProgramError as exc:
        return exc


@pytest.mark.parametrize(
    ("path", "frame_name"),
    [(path, FRAMES[i % len(FRAMES)]) for i, path in enumerate(CORPUS)],
    ids=[path.stem for path in CORPUS],
)
async def test_parallel_matches_serial(
    path: Path, frame_name: str, sandbox: Sandbox, functions: list, street_paths: list[Path]
) -> None:
    source = path.read_text()
    check(source, functions, serial=True)
    rewrite = plan(source)
    check(rewrite.source, functions, serial=False)
    expected_rounds = critical_path(source)
    assert rewrite.rounds == rewrite.critical_path == expected_rounds
    for frame in [p for p in street_paths if p.name == frame_name]:
        serial = await _outcome(sandbox, source, frame)
        parallel = await _outcome(sandbox, rewrite.source, frame)
        if isinstance(serial, ProgramError):
            assert isinstance(parallel, ProgramError), f"{frame.name}: only serial raised"
            assert parallel.signature == serial.signature
            continue
        assert isinstance(parallel, RunResult), f"{frame.name}: parallel raised {parallel}"
        assert parallel.value == serial.value, frame.name
        assert parallel.stdout == serial.stdout, frame.name
        assert parallel.calls == serial.calls
        assert serial.rounds == serial.calls  # serial code waits for every call in turn
        assert parallel.rounds == expected_rounds, frame.name
