"""``toolmesh run`` runs programs in the sandbox unless told ``--trusted``, and refuses
untrusted code, naming ``--trusted``, where no isolation can be had."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from toolmesh.data import STREET_FRAMES
from toolmesh_codegen._jail import FORCE_UNAVAILABLE_ENV

TOOLMESH = str(Path(sys.executable).parent / "toolmesh")

# The codegen contract: only toolmesh, asyncio and math; images through the proxy type.
CONTRACT = """
import asyncio
import toolmesh

async def solve(image):
    small = image.resize((48, 36))
    grey, turned = await asyncio.gather(
        toolmesh.call("greyscale", image=small),
        toolmesh.call("rotate", image=small, angle=90),
    )
    return [list(grey.size), grey.mode, list(turned.size)]
"""

OWN_CODE = """
import numpy as np
import toolmesh

async def solve(image):
    grey = await toolmesh.call("greyscale", image=image.resize((16, 12)))
    return int(np.asarray(grey).sum())
"""


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOOLMESH, "run", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        check=False,
    )


def results(path: Path) -> dict[int, object]:
    return {r["task"]: r["result"] for r in map(json.loads, path.read_text().splitlines())}


def test_run_is_sandboxed_by_default_and_agrees_with_trusted(address: str, tmp_path: Path) -> None:
    program = tmp_path / "program.py"
    program.write_text(CONTRACT)
    common = ["--images", str(STREET_FRAMES), "--tasks", "4", "--address", address]
    sandboxed = run(str(program), *common, "--out", str(tmp_path / "sandboxed.jsonl"))
    assert sandboxed.returncode == 0, sandboxed.stderr
    trusted = run(str(program), *common, "--trusted", "--out", str(tmp_path / "trusted.jsonl"))
    assert trusted.returncode == 0, trusted.stderr
    got = results(tmp_path / "sandboxed.jsonl")
    assert got == results(tmp_path / "trusted.jsonl")
    assert got[0] == [[48, 36], "L", [36, 48]]


def test_untrusted_code_outside_the_contract_is_refused_before_it_runs(
    address: str, tmp_path: Path
) -> None:
    program = tmp_path / "mine.py"
    program.write_text(OWN_CODE)
    out = tmp_path / "out.jsonl"
    common = ["--images", str(STREET_FRAMES), "--tasks", "2", "--address", address]
    refused = run(str(program), *common, "--out", str(out))
    assert refused.returncode == 2
    assert "import of 'numpy' is not allowed" in refused.stderr
    assert "Traceback" not in refused.stderr and not out.exists()
    # one's own code runs with --trusted, in-process
    mine = run(str(program), *common, "--trusted", "--out", str(out))
    assert mine.returncode == 0, mine.stderr
    assert all(isinstance(v, int) and v > 0 for v in results(out).values())


def test_without_isolation_untrusted_code_is_refused_naming_trusted(
    address: str, tmp_path: Path
) -> None:
    program = tmp_path / "program.py"
    program.write_text(CONTRACT)
    out = tmp_path / "out.jsonl"
    common = ["--images", str(STREET_FRAMES), "--tasks", "2", "--address", address]
    env = {FORCE_UNAVAILABLE_ENV: "user namespaces are disabled on this kernel"}
    refused = run(str(program), *common, "--out", str(out), env=env)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot run untrusted programs here")
    assert "user namespaces are disabled on this kernel" in lines[0] and "--trusted" in lines[0]
    assert not out.exists()  # never run weaker than the sandbox
    trusted = run(str(program), *common, "--trusted", "--out", str(out), env=env)
    assert trusted.returncode == 0, trusted.stderr


def test_help_says_what_trusted_means() -> None:
    shown = subprocess.run(
        [TOOLMESH, "run", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=True,
    )
    assert "--trusted" in shown.stdout and "unsandboxed" in shown.stdout
