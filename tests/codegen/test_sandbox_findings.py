"""Issue 14's findings, each through a public path, with its exact outcome, and each
followed by runs that must still get their own correct answers."""

from __future__ import annotations

import asyncio
import resource
from pathlib import Path
from typing import Any

import pytest

import toolmesh.codegen
from toolmesh_codegen import (
    Limits,
    ProgramError,
    Sandbox,
    SandboxTimeout,
    SandboxViolation,
    ValidationError,
)


def program(body: str) -> str:
    return "async def solve(image):\n" + "".join(f"    {line}\n" for line in body.splitlines())


def answer(n: int) -> str:
    """A program whose answer says which run it was."""
    return program(f"return [{n}, list(image.size)]")


async def expect_own_answers(box: Sandbox, frame: Path, first: int = 100) -> None:
    results = await asyncio.gather(*(box.run(answer(first + i), image=frame) for i in range(3)))
    assert [r.value for r in results] == [[first + i, [768, 576]] for i in range(3)]


@pytest.mark.parametrize(
    "body",
    [
        'return image.convert("L").tobytes("libtiff", "L", 3, "x", [], {})',
        'return image.frombytes(b"", "libtiff", ("L", 0, 3))',
        "return image.im",
        'return image.convert("L").save("x.png")',
    ],
    ids=["tobytes-libtiff-fd", "frombytes-libtiff-fd", "im", "save"],
)
async def test_pillow_fd_methods_are_not_reachable(
    sandbox: Sandbox, street_paths: list[Path], body: str
) -> None:
    """The libtiff encoder/decoder took a raw fd (fd 3 was the response pipe): programs
    hold a proxy image with no such methods, so nothing reaches a descriptor."""
    frame = street_paths[0]
    try:
        await sandbox.run(program(body), image=frame)
    except SandboxViolation as exc:  # refused statically (im, save)
        assert "is not allowed" in str(exc)
    except ProgramError as exc:  # the proxy has no such attribute
        assert exc.type_name == "AttributeError"
        assert "'SandboxImage' object has no attribute" in exc.message
    else:
        pytest.fail("the program ran")
    await expect_own_answers(sandbox, frame)


async def test_a_background_writer_cannot_forge_a_later_answer(
    sandbox: Sandbox, street_paths: list[Path]
) -> None:
    source = program(
        "async def later():\n"
        "    return image.convert('L').tobytes('libtiff', 'L', 3, 'x', [], {})\n"
        "asyncio.ensure_future(later())\n"
        "return 'first'"
    )
    assert (await sandbox.run(source, image=street_paths[0])).value == "first"
    await expect_own_answers(sandbox, street_paths[0], first=200)


async def test_tasks_do_not_outlive_their_run(address: str, street_paths: list[Path]) -> None:
    """A task that keeps calling the mesh stops with its run: its process is gone."""
    calls: list[str] = []
    finished = asyncio.Event()

    async def counting_call(function: str, /, **arguments: Any) -> Any:
        calls.append(function)
        if len(calls) >= 3:
            finished.set()
        return [1, 2]

    source = program(
        "async def forever():\n"
        "    while True:\n"
        "        await toolmesh.call('find', image=image, object_name='car')\n"
        "asyncio.ensure_future(forever())\n"
        "first = await toolmesh.call('find', image=image, object_name='person')\n"
        "return len(first)"
    )
    async with Sandbox(address, call=counting_call, limits=Limits(timeout_s=30)) as box:
        result = await box.run(source, image=street_paths[0])
        assert result.value == 2
        made = len(calls)
        # a further run does its own work; the first run's loop made no call meanwhile
        second = await box.run(answer(1), image=street_paths[0])
        await asyncio.sleep(0.3)
        assert second.value == [1, [768, 576]]
        assert len(calls) == made


async def test_a_task_spinning_in_c_cannot_stall_the_next_run(
    address: str, street_paths: list[Path]
) -> None:
    """A task spinning in C stopped the old shared child reading its stdin, and the
    host's drain() hung outside the deadline; now each run has its own process, and
    one deadline covers write, drain and read."""
    spin = program(
        "async def spin():\n"
        "    return any(iter(int, 1))\n"
        "asyncio.ensure_future(spin())\n"
        "return 'spun'"
    )
    async with Sandbox(address, limits=Limits(timeout_s=3)) as box:
        assert (await box.run(spin, image=street_paths[0])).value == "spun"
        with pytest.raises(SandboxTimeout, match=r"longer than 3 s and was killed"):
            await box.run(program("return any(iter(int, 1))"), image=street_paths[0])
        await expect_own_answers(box, street_paths[0], first=300)


async def test_a_task_holding_memory_does_not_starve_the_next_run(
    sandbox: Sandbox, street_paths: list[Path]
) -> None:
    hold = program(
        "async def hold():\n"
        "    keep = [bytes(250 * 1024 * 1024)]\n"
        "    return len(keep)\n"
        "asyncio.ensure_future(hold())\n"
        "return 'held'"
    )
    assert (await sandbox.run(hold, image=street_paths[0])).value == "held"
    big = program("data = bytes(600 * 1024 * 1024)\nreturn len(data)")
    assert (await sandbox.run(big, image=street_paths[0])).value == 600 * 1024 * 1024


@pytest.mark.parametrize(
    "source",
    [
        "def keep(asyncio):\n    return 1\n\n" + program("return keep(1)"),
        program("loop = asyncio\nreturn 1"),
        program("t = toolmesh\nreturn 1"),
        program("return [math for math in range(3)]"),
    ],
    ids=["parameter", "alias-asyncio", "alias-toolmesh", "comprehension"],
)
async def test_predefined_modules_cannot_be_rebound(
    sandbox: Sandbox,
    street_paths: list[Path],
    source: str,
    address: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Binding `asyncio` anywhere (`def keep(asyncio)`) used to switch off the serial
    check for the whole module."""
    monkeypatch.setenv("TOOLMESH_ADDRESS", address)
    with pytest.raises(ValidationError, match=r"cannot be (rebound|aliased)"):
        await toolmesh.codegen.run(source, image=street_paths[0])
    with pytest.raises(SandboxViolation, match=r"cannot be (rebound|aliased)"):
        await sandbox.run(source, image=street_paths[0])
    await expect_own_answers(sandbox, street_paths[0], first=400)


async def test_huge_exception_messages_are_cut_in_the_child(
    sandbox: Sandbox, street_paths: list[Path]
) -> None:
    host_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ProgramError) as caught:
        await sandbox.run(program("raise ValueError('x' * 150_000_000)"), image=street_paths[0])
    assert caught.value.type_name == "ValueError"
    assert len(caught.value.message) < 65 * 1024
    assert caught.value.message.endswith("characters cut]")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - host_peak < 64 * 1024
    await expect_own_answers(sandbox, street_paths[0], first=500)


async def test_results_over_16_mib_are_refused(sandbox: Sandbox, street_paths: list[Path]) -> None:
    with pytest.raises(ProgramError, match="larger than 16 MiB"):
        await sandbox.run(program("return 'x' * (17 * 1024 * 1024)"), image=street_paths[0])
    await expect_own_answers(sandbox, street_paths[0], first=600)


@pytest.mark.parametrize("depth", [60, 5000])
async def test_deeply_nested_results_are_a_program_error(
    sandbox: Sandbox, street_paths: list[Path], depth: int
) -> None:
    """60 levels reached the caller as protobuf's DecodeError, 5000 killed the child."""
    source = program(f"x = []\nfor i in range({depth}):\n    x = [x]\nreturn x")
    with pytest.raises(ProgramError, match="nested more than 32 levels deep") as caught:
        await sandbox.run(source, image=street_paths[0])
    assert caught.value.type_name == "TypeError"
    await expect_own_answers(sandbox, street_paths[0], first=700)


async def test_deeply_nested_call_arguments_are_a_program_error(
    sandbox: Sandbox, street_paths: list[Path]
) -> None:
    source = program(
        "x = []\nfor i in range(100):\n    x = [x]\n"
        "return await toolmesh.call('find', image=image, object_name=x)"
    )
    with pytest.raises(ProgramError, match="nested more than 32 levels deep"):
        await sandbox.run(source, image=street_paths[0])
    await expect_own_answers(sandbox, street_paths[0], first=800)


async def test_mesh_errors_reach_the_program_by_type_and_message(
    sandbox: Sandbox, street_paths: list[Path]
) -> None:
    source = program("return await toolmesh.call('find', image=image, object_name=5)")
    with pytest.raises(ProgramError) as caught:
        await sandbox.run(source, image=street_paths[0])
    assert caught.value.type_name == "InvalidArgument"
    await expect_own_answers(sandbox, street_paths[0], first=900)
