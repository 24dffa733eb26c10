"""Re-planning against the real mesh and sandbox: a validated program that fails when it
runs goes back to the LLM (the replay server) with the error and its line, and the next
program's answer is the one returned; the number of re-plans is bounded and counted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import toolmesh
from tests.codegen.replay_server import ReplayServer, completion
from tests.codegen.test_graph import parse_mermaid
from toolmesh.data import STREET_FRAMES
from toolmesh_codegen import (
    FailureKind,
    LLMClient,
    LLMSettings,
    ProgramError,
    ReplanFailed,
    Sandbox,
    SandboxCrashed,
    SandboxTimeout,
    answer,
)
from toolmesh_codegen.replan import blames_the_program, result_type_problem

TOOLMESH = str(Path(sys.executable).parent / "toolmesh")
FRAME = STREET_FRAMES / "frame_000.jpg"

KEY_ERROR = """```python
async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    first = people[0]
    return first["bbox"][2] - first["bbox"][0]
```"""

FIXED = """You're right, the key is `box`:
```python
async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    first = people[0]
    return first["box"][2] - first["box"][0]
```"""

REFUSED = """```python
async def solve(image):
    found = await toolmesh.call("find", image=image, object_name="parked car")
    return len(found)
```"""

COUNT_CARS = """```python
async def solve(image):
    found = await toolmesh.call("find", image=image, object_name="car")
    return len(found)
```"""

WORDS = """```python
async def solve(image):
    found = await toolmesh.call("find", image=image, object_name="car")
    return f"{len(found)} cars"
```"""


def llm_for(server: ReplayServer) -> LLMClient:
    return LLMClient(
        LLMSettings.resolve(
            model="gpt-4o-mini", base_url=server.base_url, api_key="test-key", max_retries=0
        )
    )


async def width_of_first_person(client: toolmesh.Client) -> float:
    people = await client.call("find", image=FRAME, object_name="person")
    return float(people[0]["box"][2] - people[0]["box"][0])


async def test_a_run_time_exception_goes_back_with_its_line_and_the_fix_answers(
    functions: list[toolmesh.FunctionInfo], sandbox: Sandbox, client: toolmesh.Client
) -> None:
    with ReplayServer([completion(KEY_ERROR), completion(FIXED)]) as server:
        async with llm_for(server) as llm:
            solution = await answer(
                "How wide is the most confident person?",
                functions=functions,
                llm=llm,
                sandbox=sandbox,
                inputs={"image": FRAME},
            )
    assert len(server.requests) == 2
    resent = server.requests[1]["messages"]
    # the whole first conversation, the failing program as the assistant said it, then the error
    assert resent[:2] == server.requests[0]["messages"]
    assert resent[2] == {"role": "assistant", "content": KEY_ERROR}
    feedback = resent[3]["content"]
    assert resent[3]["role"] == "user"
    assert "line 4" in feedback and "KeyError: 'bbox'" in feedback
    assert 'return first["bbox"][2] - first["bbox"][0]' in feedback  # the line itself
    assert solution.replans == 1 and solution.repairs == 0
    (failure,) = solution.failures
    assert failure.kind is FailureKind.EXCEPTION and failure.line == 4
    assert solution.value == pytest.approx(await width_of_first_person(client))
    assert solution.parallel is not None and solution.parallel.value == solution.serial.value
    assert solution.usage.requests == 2
    assert '"box"' in solution.generation.serial


async def test_a_refused_call_and_a_wrong_result_type_are_run_failures_too(
    functions: list[toolmesh.FunctionInfo], sandbox: Sandbox, client: toolmesh.Client
) -> None:
    steps = [completion(REFUSED), completion(WORDS), completion(COUNT_CARS)]
    with ReplayServer(steps) as server:
        async with llm_for(server) as llm:
            solution = await answer(
                "How many cars?",
                functions=functions,
                llm=llm,
                sandbox=sandbox,
                inputs={"image": FRAME},
                expect=int,
            )
    assert [f.kind for f in solution.failures] == [
        FailureKind.REFUSED_CALL,
        FailureKind.WRONG_RESULT,
    ]
    refused = server.requests[1]["messages"][-1]["content"]
    assert "refused call" in refused and "InvalidArgument" in refused and "line 2" in refused
    wrong_type = server.requests[2]["messages"][-1]["content"]
    assert "returned str" in wrong_type and "must be int" in wrong_type
    cars = await client.call("find", image=FRAME, object_name="car")
    assert solution.value == len(cars) and solution.replans == 2


async def test_re_plans_are_bounded_and_the_last_failure_is_reported(
    functions: list[toolmesh.FunctionInfo], sandbox: Sandbox
) -> None:
    with ReplayServer([completion(KEY_ERROR)] * 3) as server:
        async with llm_for(server) as llm:
            with pytest.raises(ReplanFailed) as caught:
                await answer(
                    "How wide is the most confident person?",
                    functions=functions,
                    llm=llm,
                    sandbox=sandbox,
                    inputs={"image": FRAME},
                    max_replans=1,
                )
    assert len(server.requests) == 2  # the first program and one re-plan, no more
    assert len(caught.value.failures) == 2
    assert "KeyError: 'bbox'" in str(caught.value) and "(line 4)" in str(caught.value)


def ask(server: ReplayServer, address: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "test-key",
        "TOOLMESH_LLM_MAX_RETRIES": "0",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [TOOLMESH, "ask", "How wide is the most confident person?", "--image", str(FRAME),
         "--address", address, *args],
        capture_output=True, text=True, timeout=300, env=env, cwd=cwd, check=False,
    )  # fmt: skip


def test_ask_re_plans_and_draws_the_plan(address: str, tmp_path: Path) -> None:
    with ReplayServer([completion(KEY_ERROR), completion(FIXED)]) as server:
        done = ask(server, address, "--replan", "1", "--graph", "plan.md", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "re-planned after a failed run: exception: KeyError: 'bbox' (line 4)" in done.stderr
    assert "1 re-plan" in done.stdout
    drawing = (tmp_path / "plan.md").read_text()
    assert drawing.startswith("```mermaid\n")
    parsed = parse_mermaid(drawing.removeprefix("```mermaid\n").removesuffix("```\n"))
    assert [label for label, _ in parsed.nodes.values()] == ["people = find(object_name='person')"]


def test_ask_without_re_plans_fails_in_one_line(address: str, tmp_path: Path) -> None:
    with ReplayServer([completion(KEY_ERROR), completion(FIXED)]) as server:
        done = ask(server, address, "--replan", "0", cwd=tmp_path)
        assert len(server.requests) == 1
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: the program failed when it ran, 1 time; last: exception:")
    assert "KeyError: 'bbox' (line 4)" in lines[-1]


@pytest.mark.parametrize(
    ("error", "blamed"),
    [
        (ProgramError("KeyError", "'bbox'", 4), True),
        (ProgramError("InvalidArgument", "unknown object_name", 2), True),
        (SandboxTimeout("ran longer than 60 s"), True),
        (ProgramError("Unavailable", "Triton is down", 2), False),
        (ProgramError("DeadlineExceeded", "", 2), False),
        (SandboxCrashed("the sandbox process died"), False),
    ],
)
def test_only_failures_a_new_program_could_avoid_are_re_planned(
    error: Exception, blamed: bool
) -> None:
    assert blames_the_program(error) is blamed


@pytest.mark.parametrize(
    ("value", "expect", "problem"),
    [
        (3, int, None),
        (True, int, "returned bool True, but the answer must be int"),
        ("3", int, "returned str '3', but the answer must be int"),
        (2.5, (int, float), None),
        (True, bool, None),
        ([1], list, None),
    ],
)
def test_the_result_type_check(value: object, expect: type, problem: str | None) -> None:
    found = result_type_problem(value, expect)
    assert found is None if problem is None else (found is not None and problem in found)
