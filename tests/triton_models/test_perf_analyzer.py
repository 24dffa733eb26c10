"""perf_analyzer, the serving engineer's load tool, runs against our Triton's `find`."""

from __future__ import annotations

from pathlib import Path

from toolmesh_local.mesh import LocalMesh
from toolmesh_local.perf_analyzer import image_input_data, run_perf_analyzer


def test_perf_analyzer_measures_find(mesh: LocalMesh, street_jpeg: bytes, tmp_path: Path) -> None:
    assert mesh.triton is not None
    data = image_input_data(
        tmp_path / "find.json", street_jpeg, object_name="person", threshold=0.3
    )
    result = run_perf_analyzer(
        mesh.triton.grpc_url, "find", input_data=data, concurrency=2, measurement_ms=1500
    )
    assert result.throughput > 0
    assert result.p50_us is not None and result.p50_us > 0
    assert "Request concurrency: 2" in result.output
