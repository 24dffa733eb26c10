"""``run_batch`` with the sandboxed solver against the real mesh: the same results as
the in-process runner on the street program, every call recorded by the runner's
client, and programs that break the contract refused before any task runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolmesh import GrpcTransport
from toolmesh.batch import BatchConfig, read_results, run_batch
from toolmesh.data import STREET_REPORT
from toolmesh_codegen import ValidationError
from toolmesh_codegen.batch import sandboxed_solver


def images(street_paths: list[Path], tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for path in street_paths[:3]:
        (folder / path.name).symlink_to(path)
    return folder


async def test_sandboxed_batch_matches_trusted(
    address: str, street_paths: list[Path], tmp_path: Path
) -> None:
    folder = images(street_paths, tmp_path)
    outputs = {}
    for name, solver in (("trusted", None), ("sandboxed", sandboxed_solver)):
        config = BatchConfig(
            program=STREET_REPORT, images=folder, tasks=4, out=tmp_path / f"{name}.jsonl",
            concurrency=2, label=name, solver=solver,
        )  # fmt: skip
        summary = await run_batch(
            config, GrpcTransport(address, max_message_bytes=32 * 1024 * 1024)
        )
        assert (summary.ok, summary.failed, summary.complete) == (4, 0, True)
        outputs[name] = sorted(read_results(config.out), key=lambda r: r["task"])
    for trusted, sandboxed in zip(outputs["trusted"], outputs["sandboxed"], strict=True):
        assert sandboxed["result"] == trusted["result"]
        assert sandboxed["result"]["people"] > 0
        functions = sorted(c["function"] for c in sandboxed["calls"])
        assert functions == sorted(c["function"] for c in trusted["calls"])
        assert functions.count("find") == 2


async def test_program_errors_are_task_failures(
    address: str, street_paths: list[Path], tmp_path: Path
) -> None:
    program = tmp_path / "fails.py"
    program.write_text("async def solve(image):\n    return [1][image.width]\n")
    config = BatchConfig(
        program=program, images=images(street_paths, tmp_path), tasks=2,
        out=tmp_path / "out.jsonl", solver=sandboxed_solver,
    )  # fmt: skip
    summary = await run_batch(config, GrpcTransport(address, max_message_bytes=32 * 1024 * 1024))
    assert (summary.ok, summary.failed) == (0, 2)
    for record in read_results(config.out):
        assert record["error"]["type"] == "ProgramError"
        assert record["error"]["message"].startswith("IndexError: list index out of range")


@pytest.mark.parametrize(
    "source",
    [
        "import os\n\nasync def solve(image):\n    return os.system('true')\n",
        "async def solve(image):\n    return open('/etc/passwd').read()\n",
    ],
)
def test_programs_breaking_the_contract_are_refused(tmp_path: Path, source: str) -> None:
    program = tmp_path / "bad.py"
    program.write_text(source)
    with pytest.raises(ValidationError):
        sandboxed_solver(program)
