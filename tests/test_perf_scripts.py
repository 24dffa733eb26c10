"""Every benchmark in perf/ still imports: a moved module breaks a script CI never runs."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PERF = Path(__file__).resolve().parents[1] / "perf"
SCRIPTS = sorted(p.stem for p in PERF.glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("script", SCRIPTS)
def test_perf_script_imports_and_documents_itself(script: str) -> None:
    module = importlib.import_module(f"perf.{script}")
    assert module.__doc__, f"perf/{script}.py says nothing about what it measures"


#: Scripts with a command line of their own (gpu_stub_probe takes one bare path).
ARGPARSE = [s for s in SCRIPTS if "argparse" in (PERF / f"{s}.py").read_text()]


@pytest.mark.parametrize("script", ARGPARSE)
def test_perf_script_answers_help(script: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", f"perf.{script}", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PERF.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower()
