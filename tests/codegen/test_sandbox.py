"""The sandbox: every escape named in the issue is refused or killed with a clear
error, the host process is unaffected, and the sandbox keeps serving afterwards."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from toolmesh_codegen import (
    Limits,
    ProgramError,
    Sandbox,
    SandboxMemoryError,
    SandboxTimeout,
    SandboxViolation,
)
from toolmesh_codegen._runtime import Tracker, program_namespace

OK = "async def solve(image):\n    return list(image.size)\n"


def program(body: str) -> str:
    return "async def solve(image):\n" + "".join(f"    {line}\n" for line in body.splitlines())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("return __import__('os').listdir('/')", "names starting with an underscore are reserved"),
        ("import os\nreturn os.getcwd()", "import of 'os' is not allowed"),
        ("return open('/etc/passwd').read()", "open is not available"),
        ("return ().__class__.__bases__[0].__subclasses__()", "'__subclasses__' is not allowed"),
        ("return getattr(image, '__class__')", "getattr is not available"),
        ("return '{0.__class__.__init__.__globals__}'.format(image)", "'format' is not allowed"),
        ("image.save('/tmp/toolmesh-escape.png')", "'save' is not allowed"),
        ("return image.im", "'im' is not allowed"),
        ("return asyncio.ensure_future(asyncio.gather()).get_loop()", "'get_loop' is not allowed"),
        ("return vars(toolmesh)", "vars is not available"),
        ("return toolmesh.call.__globals__", "'__globals__' is not allowed"),
        ("return eval('1 + 1')", "eval is not available"),
    ],
)
async def test_escapes_are_refused(
    sandbox: Sandbox, street_paths: list[Path], body: str, message: str
) -> None:
    with pytest.raises(SandboxViolation, match="refused") as caught:
        await sandbox.run(program(body), image=street_paths[0])
    assert message in str(caught.value)
    assert not Path("/tmp/toolmesh-escape.png").exists()


async def test_huge_allocation_hits_the_memory_limit(
    sandbox: Sandbox, street_paths: list[Path]
) -> None:
    host_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(SandboxMemoryError, match="memory"):
        await sandbox.run(program("x = [0] * (10 ** 10)\nreturn len(x)"), image=street_paths[0])
    with pytest.raises(SandboxMemoryError):
        await sandbox.run(program("x = 'a' * (10 ** 11)\nreturn len(x)"), image=street_paths[0])
    # the host did not grow by anything like the program's request
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - host_peak < 512 * 1024
    result = await sandbox.run(OK, image=street_paths[0])
    assert result.value == [768, 576]


async def test_infinite_loop_is_killed(address: str, street_paths: list[Path]) -> None:
    async with Sandbox(address, limits=Limits(timeout_s=1.5)) as box:
        with pytest.raises(SandboxTimeout, match=r"longer than 1\.5 s and was killed"):
            await box.run(program("while True:\n    pass"), image=street_paths[0])
        # a fresh child serves the next run
        result = await box.run(OK, image=street_paths[0])
        assert result.value == [768, 576]


async def test_program_errors_keep_type_message_and_line(
    sandbox: Sandbox, street_paths: list[Path]
) -> None:
    source = program(
        "people = await toolmesh.call('find', image=image, object_name='person')\nreturn people[100]"
    )
    with pytest.raises(ProgramError) as caught:
        await sandbox.run(source, image=street_paths[0])
    assert caught.value.signature == ("IndexError", "list index out of range")
    assert caught.value.line == 3
    deep = "def down(n):\n    return down(n + 1)\n\n" + program("return down(0)")
    with pytest.raises(ProgramError, match="RecursionError"):
        await sandbox.run(deep, image=street_paths[0])


async def test_results_output_and_measurements(sandbox: Sandbox, street_paths: list[Path]) -> None:
    source = program(
        "grey = await toolmesh.call('greyscale', image=image)\n"
        "print('grey', grey.mode)\n"
        "return {'mode': grey.mode, 'image': grey}"
    )
    result = await sandbox.run(source, image=street_paths[0].read_bytes())
    assert result.value["mode"] == "L" and result.value["image"].size == (768, 576)
    assert result.stdout == "grey L\n"
    assert (result.calls, result.rounds) == (1, 1)
    assert result.elapsed_s > 0
    with pytest.raises(ProgramError, match="cannot be sent back"):
        await sandbox.run(program("return {1, 2}"), image=street_paths[0])
    chatty = await sandbox.run(
        program("for i in range(100000):\n    print(i)\nreturn 1"), image=street_paths[0]
    )
    assert chatty.stdout.endswith("[output truncated]\n") and len(chatty.stdout) < 70_000


def test_runtime_namespace_refuses_even_without_the_static_check() -> None:
    namespace = program_namespace(lambda *a, **k: None, Tracker())  # type: ignore[arg-type,return-value]
    for code, message in [
        ("open('/etc/passwd')", "open() is not available"),
        ("__import__('os')", "import of 'os' is not allowed"),
        ("import subprocess", "import of 'subprocess' is not allowed"),
        ("getattr(1, 'real')", "getattr() is not available"),
        ("type(1)", "type() is not available"),
    ]:
        with pytest.raises(SandboxViolation, match=message.replace("(", r"\(").replace(")", r"\)")):
            exec(code, dict(namespace))
    assert sorted(vars(namespace["toolmesh"])) == ["call"]
    assert sorted(vars(namespace["asyncio"])) == ["create_task", "ensure_future", "gather"]
