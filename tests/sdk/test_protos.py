"""The committed gRPC stubs are exactly what `make protos` generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_are_current(tmp_path: Path) -> None:
    protos = sorted((ROOT / "protos" / "toolmesh" / "v1").glob("*.proto"))
    assert protos, "no .proto files"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            str(ROOT / "protos"),
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            *map(str, protos),
        ],
        check=True,
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py*"))
    assert generated
    for rel in generated:
        committed = ROOT / "sdk" / rel
        assert committed.exists(), f"{rel} is not committed; run `make protos`"
        assert committed.read_text() == (tmp_path / rel).read_text(), (
            f"{rel} is stale; run `make protos`"
        )
