"""``toolmesh.codegen``: the SDK's thin, lazily imported entry to the codegen agent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import toolmesh.codegen
import toolmesh_codegen

GOLDEN = Path(__file__).parent / "golden"


def test_import_toolmesh_does_not_load_codegen() -> None:
    code = "import sys, toolmesh; print('toolmesh_codegen' in sys.modules, 'openai' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_parallelize_and_names_are_re_exported() -> None:
    source = (GOLDEN / "two_finds.py").read_text()
    assert toolmesh.codegen.parallelize(source) == (GOLDEN / "two_finds.expected").read_text()
    assert toolmesh.codegen.Sandbox is toolmesh_codegen.Sandbox
    with pytest.raises(AttributeError):
        toolmesh.codegen.no_such_name  # noqa: B018


async def test_run_validates_and_runs_in_a_sandbox(
    address: str, street_paths: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLMESH_ADDRESS", address)
    source = toolmesh.codegen.parallelize((GOLDEN / "two_finds.py").read_text())
    result = await toolmesh.codegen.run(source, image=street_paths[0])
    assert result.value == {"people": 5, "cars": 1}
    assert (result.calls, result.rounds) == (2, 1)
    with pytest.raises(toolmesh_codegen.ValidationError, match="unknown function 'findd'"):
        await toolmesh.codegen.run(source.replace("'find'", "'findd'"), image=street_paths[0])
    with pytest.raises(TypeError, match=r"solve\(image\) needs image and takes no picture"):
        await toolmesh.codegen.run(source, picture=street_paths[0])
