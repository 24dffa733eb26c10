"""``toolmesh ask`` and ``toolmesh parallelize``, run as a user runs them, against the
real mesh and the replay server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.codegen.replay_server import ReplayServer, recorded
from toolmesh_codegen import check

TOOLMESH = str(Path(sys.executable).parent / "toolmesh")
GOLDEN = Path(__file__).parent / "golden"


def toolmesh(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOOLMESH, *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        check=False,
    )


def test_ask_end_to_end(
    address: str, street_paths: list[Path], tmp_path: Path, functions: list
) -> None:
    saved = tmp_path / "prog.py"
    with ReplayServer(recorded("people_cars_colour")) as server:
        done = toolmesh(
            "ask",
            "How many people and cars are there, and what colour is the nearest car?",
            "--image",
            str(street_paths[0]),
            "--save",
            str(saved),
            "--address",
            address,
            env={
                "OPENAI_BASE_URL": server.base_url,
                "OPENAI_API_KEY": "test-key",
                "TOOLMESH_LLM_MODEL": "gpt-4o-mini",
            },
        )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "serial program (gpt-4o-mini-2024-07-18, 2 attempts" in out
    assert "parallel program (2 rounds, critical path 2)" in out
    assert "asyncio.gather(" in out
    assert '"people": 5' in out and '"cars": 1' in out and '"colour":' in out
    assert "serial" in out and "parallel" in out and "rounds" in out
    assert len(server.requests) == 2
    check(saved.read_text(), functions, serial=False)


def test_ask_reports_an_unreachable_llm(address: str, street_paths: list[Path]) -> None:
    done = toolmesh(
        "ask", "How many people?", "--image", str(street_paths[0]), "--address", address,
        env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "k", "TOOLMESH_LLM_MAX_RETRIES": "0"},
    )  # fmt: skip
    assert done.returncode == 1
    assert "cannot reach the LLM endpoint" in done.stderr


def test_parallelize_a_file(tmp_path: Path) -> None:
    out = tmp_path / "parallel.py"
    done = toolmesh("parallelize", str(GOLDEN / "branch_as_task.py"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_text() == (GOLDEN / "branch_as_task.expected").read_text()
    assert "rounds 3 (serial 6), critical path 3" in done.stderr
    bad = tmp_path / "bad.py"
    bad.write_text("async def solve(image):\n    return open('x')\n")
    refused = toolmesh("parallelize", str(bad))
    assert refused.returncode == 2
    assert "line 2: open is not available" in refused.stderr
