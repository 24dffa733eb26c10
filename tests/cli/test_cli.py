"""The `toolmesh` command line, run as a user runs it (a real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

TOOLMESH = str(Path(sys.executable).parent / "toolmesh")


def toolmesh(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOOLMESH, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        check=False,
    )


def test_ls_and_describe(address: str) -> None:
    listing = toolmesh("ls", "--address", address)
    assert listing.returncode == 0, listing.stderr
    assert "find(image, object_name, threshold=0.3)" in listing.stdout
    # the suite's mesh has an empty model store: the transformer functions say so
    lines = listing.stdout.splitlines()
    caption = [line for line in lines if line.startswith("caption(")]
    assert len(caption) == 1, listing.stdout  # one line per function
    assert "unavailable: toolmesh models pull blip-caption" in caption[0]
    described = toolmesh("describe", "caption", "--address", address)
    # the whole reason stays in describe
    assert "caption needs the weights 'blip-caption'" in described.stdout
    described = toolmesh("describe", "rotate", "--address", address)
    assert described.returncode == 0, described.stderr
    assert "counter" in described.stdout.lower() and '"angle"' in described.stdout


def test_call_prints_json(address: str, street_paths: list[Path]) -> None:
    done = toolmesh(
        "call",
        "find",
        "--image",
        str(street_paths[0]),
        "object_name=person",
        "threshold=0.4",
        "--address",
        address,
    )
    assert done.returncode == 0, done.stderr
    people = json.loads(done.stdout)
    assert len(people) >= 2 and all(p["score"] >= 0.4 for p in people)


def test_call_saves_image_results(address: str, tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).save(source)
    done = toolmesh(
        "call",
        "rotate",
        "--image",
        str(source),
        "angle=90",
        "--save",
        str(tmp_path / "out"),
        "--address",
        address,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["image"]["width"] == 3 and summary["image"]["height"] == 4
    saved = np.asarray(Image.open(summary["saved"]))
    assert saved.shape[:2] == (4, 3)


def test_call_errors_are_clear_and_exit_non_zero(address: str, street_paths: list[Path]) -> None:
    bad_type = toolmesh(
        "call", "rotate", "--image", str(street_paths[0]), "angle=ninety", "--address", address
    )
    assert bad_type.returncode == 2
    assert "angle" in bad_type.stderr and "integer" in bad_type.stderr
    unknown = toolmesh("call", "nope", "--address", address)
    assert unknown.returncode == 1
    assert "NOT_FOUND" in unknown.stderr


def test_up_detach_status_down(tmp_path: Path) -> None:
    from toolmesh_local.triton import free_port

    address = f"127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    started = toolmesh(
        "up",
        "--detach",
        "--address",
        address,
        "--run-dir",
        str(run_dir),
        "--models",
        "greyscale",
        timeout=240,
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "plaintext" in started.stdout
        state = json.loads((run_dir / "state.json").read_text())
        assert state["address"] == address and state["models"] == ["greyscale"]
        status = toolmesh("status", "--run-dir", str(run_dir))
        assert status.returncode == 0, status.stderr
        assert "SERVING" in status.stdout
        assert "healthy" in status.stdout and state["triton_urls"][0] in status.stdout
        again = toolmesh("up", "--detach", "--address", address, "--run-dir", str(run_dir))
        assert again.returncode == 1 and "already up" in again.stderr
    finally:
        stopped = toolmesh("down", "--run-dir", str(run_dir))
    assert stopped.returncode == 0, stopped.stderr
    assert "gateway" in stopped.stdout and "triton" in stopped.stdout
    assert not (run_dir / "state.json").exists()
    for pid in (state["gateway_pid"], *state["triton_pids"]):
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )
