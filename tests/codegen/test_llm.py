"""The LLM path through a local OpenAI-compatible server that replays recorded chat
completions, driven by the real ``openai`` client: the repair loop, retries, timeouts,
token usage."""

from __future__ import annotations

import pytest

import toolmesh
from tests.codegen.replay_server import ReplayServer, Step, recorded
from toolmesh_codegen import LLMClient, LLMError, LLMSettings, RepairFailed, check, generate

QUESTION = "How many people and cars are there, and what colour is the nearest car?"


def llm_for(server: ReplayServer, **overrides: object) -> LLMClient:
    settings = LLMSettings.resolve(
        model="gpt-4o-mini", base_url=server.base_url, api_key="test-key", **overrides
    )
    return LLMClient(settings)


async def test_repair_loop_fixes_an_invalid_program(
    functions: list[toolmesh.FunctionInfo],
) -> None:
    with ReplayServer(recorded("people_cars_colour")) as server:
        async with llm_for(server) as llm:
            generation = await generate(QUESTION, functions=functions, llm=llm)
    assert len(server.requests) == 2
    first, second = server.requests
    assert server.paths == ["/v1/chat/completions"] * 2
    assert first["model"] == "gpt-4o-mini"
    # the prompt is built from the live registry
    system = first["messages"][0]["content"]
    for info in functions:
        if not info.available:
            assert info.name in system.split("not available now, do not call:")[1]
            continue
        assert info.signature() in system
        assert info.documentation.strip().splitlines()[0] in system
    # the repair request carries the validator's line-numbered problems
    repair = second["messages"][-1]["content"]
    assert second["messages"][-2]["role"] == "assistant"
    assert "line 4: pass the arguments of 'find' by keyword" in repair
    assert "line 5: find(): argument 'threshold'=1.5 is invalid" in repair
    assert "line 6: try/except is not allowed" in repair
    assert "line 10: unknown function 'colour'" in repair
    assert [len(a.problems) > 0 for a in generation.attempts] == [True, False]
    assert generation.usage.prompt_tokens == 3187 + 3562
    assert generation.usage.completion_tokens == 196 + 241
    assert generation.usage.requests == 2
    assert generation.model == "gpt-4o-mini-2024-07-18"
    check(generation.serial, functions, serial=True)
    check(generation.parallel, functions, serial=False)
    assert "asyncio.gather(" in generation.parallel
    assert generation.plan.rounds == 2


async def test_gives_up_after_the_allowed_repairs(functions: list) -> None:
    invalid = recorded("people_cars_colour")[0]
    with ReplayServer([invalid, invalid]) as server:
        async with llm_for(server) as llm:
            with pytest.raises(RepairFailed) as caught:
                await generate(QUESTION, functions=functions, llm=llm, max_repairs=1)
    assert len(server.requests) == 2
    assert caught.value.attempts == 2
    assert any("unknown function 'colour'" in str(p) for p in caught.value.problems)


async def test_an_answer_without_code_is_sent_back(functions: list) -> None:
    chat = recorded("people_cars_colour")
    prose = {**chat[0], "choices": [{**chat[0]["choices"][0], "message": {"role": "assistant", "content": "I cannot see images."}}]}  # fmt: skip
    with ReplayServer([prose, chat[1]]) as server:
        async with llm_for(server) as llm:
            generation = await generate(QUESTION, functions=functions, llm=llm)
    assert "contains no program" in server.requests[1]["messages"][-1]["content"]
    assert len(generation.attempts) == 2


async def test_server_errors_are_retried(functions: list) -> None:
    steps = [
        Step({"error": {"message": "overloaded"}}, status=503),
        recorded("people_cars_colour")[1],
    ]
    with ReplayServer(steps) as server:
        async with llm_for(server, max_retries=2) as llm:
            generation = await generate(QUESTION, functions=functions, llm=llm)
    assert len(server.requests) == 2  # the 503, then the retry
    assert generation.usage.requests == 1  # only answered requests count


async def test_timeout_is_reported(functions: list) -> None:
    slow = Step(recorded("people_cars_colour")[1], delay_s=3.0)
    with ReplayServer([slow]) as server:
        async with llm_for(server, timeout_s=0.3, max_retries=0) as llm:
            with pytest.raises(LLMError, match=r"did not answer within 0\.3 s"):
                await generate(QUESTION, functions=functions, llm=llm)


async def test_client_errors_are_not_retried(functions: list) -> None:
    steps = [Step({"error": {"message": "bad key"}}, status=401)]
    with ReplayServer(steps) as server:
        async with llm_for(server, max_retries=3) as llm:
            with pytest.raises(LLMError, match="401"):
                await generate(QUESTION, functions=functions, llm=llm)
    assert len(server.requests) == 1


def test_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        LLMClient(LLMSettings.resolve())


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("TOOLMESH_LLM_MODEL", "local-coder")
    monkeypatch.setenv("TOOLMESH_LLM_TIMEOUT", "7")
    settings = LLMSettings.resolve()
    assert (settings.base_url, settings.api_key, settings.model, settings.timeout_s) == (
        "http://127.0.0.1:9/v1",
        "k",
        "local-coder",
        7.0,
    )
    assert LLMSettings.resolve(model="other").model == "other"
