"""Rendering the committed repository for a machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from toolmesh_models.errors import PlacementError, RepositoryError
from toolmesh_models.paths import REPOSITORY
from toolmesh_models.placement import load_placement, parse_placement
from toolmesh_models.repository import MARKER, available_models, read_config, render_repository

IMAGE_OPS = ["color_depth", "convert_format", "find", "greyscale", "resize", "rotate"]
TOOLBOX = ["best_image_match", "best_text_match", "caption", "compute_depth", "count",
           "dominant_color", "exists", "read_text", "simple_query", "verify_property"]  # fmt: skip
MODELS = sorted([*IMAGE_OPS, *TOOLBOX])
#: CPU-pinned models (placement.yaml kind: cpu) and their instance counts.
PINNED = {"greyscale": 1, "resize": 1, "rotate": 1, "color_depth": 1, "convert_format": 1,
          "dominant_color": 1, "exists": 2, "count": 2}  # fmt: skip
CPU = model_config_pb2.ModelInstanceGroup.KIND_CPU
GPU = model_config_pb2.ModelInstanceGroup.KIND_GPU


def parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_available_models() -> None:
    assert available_models() == MODELS


@pytest.mark.parametrize(
    ("gpus", "expected_find"),
    [([], [(CPU, 2, [])]), ([0, 1], [(GPU, 2, [0]), (GPU, 2, [1])])],
)
def test_render_every_model(tmp_path: Path, gpus: list[int], expected_find: list) -> None:
    dest = tmp_path / "repo"
    names = render_repository(dest, placement=load_placement(), gpus=gpus)
    assert names == MODELS
    for name in MODELS:
        config = parse(dest / name / "config.pbtxt")
        committed = read_config(REPOSITORY / name / "config.pbtxt")
        groups = [(g.kind, g.count, list(g.gpus)) for g in config.instance_group]
        if name == "find":
            expected = expected_find
        elif name in PINNED:
            expected = [(CPU, PINNED[name], [])]
        else:  # one instance per GPU, each on its own device; one on the CPU without GPUs
            expected = [(GPU, 1, [g]) for g in gpus] or [(CPU, 1, [])]
        assert groups == expected, name
        # Everything but the placement is kept; find's dynamic batcher only on GPUs.
        del committed.instance_group[:]
        del config.instance_group[:]
        if name == "find" and not gpus:
            assert not config.HasField("dynamic_batching")
            committed.ClearField("dynamic_batching")
        assert config == committed, name
        assert (dest / name / "1" / "model.py").read_text() == (
            REPOSITORY / name / "1" / "model.py"
        ).read_text()
    assert (dest / MARKER).is_file()


def test_render_subset_and_replace(tmp_path: Path) -> None:
    dest = tmp_path / "repo"
    placement = load_placement()
    render_repository(dest, placement=placement, gpus=[])
    assert render_repository(dest, placement=placement, gpus=[], models=["rotate"]) == ["rotate"]
    assert sorted(p.name for p in dest.iterdir() if p.is_dir()) == ["rotate"]


def test_missing_gpu_is_refused_and_previous_rendering_kept(tmp_path: Path) -> None:
    dest = tmp_path / "repo"
    render_repository(dest, placement=load_placement(), gpus=[])
    placement = parse_placement({"models": {"find": {"gpus": [3]}}}, source="p.yaml")
    with pytest.raises(PlacementError, match="'find' is placed on GPU"):
        render_repository(dest, placement=placement, gpus=[0])
    assert sorted(p.name for p in dest.iterdir() if p.is_dir()) == MODELS
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".repo-")]  # no staging left


def test_refuses_to_replace_foreign_folder(tmp_path: Path) -> None:
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "notes.txt").write_text("keep me")
    with pytest.raises(RepositoryError, match="not a rendered repository"):
        render_repository(dest, placement=load_placement(), gpus=[])
    assert (dest / "notes.txt").read_text() == "keep me"


def test_unknown_models(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match=r"\['nope'\] are not in"):
        render_repository(tmp_path / "r", placement=load_placement(), gpus=[], models=["nope"])
    typo = parse_placement({"models": {"finf": {"count": 2}}}, source="p.yaml")
    with pytest.raises(PlacementError, match=r"p\.yaml: models \['finf'\] are not in"):
        render_repository(tmp_path / "r", placement=typo, gpus=[])


def fake_source(tmp_path: Path, config: str) -> Path:
    source = tmp_path / "source"
    (source / "broken" / "1").mkdir(parents=True)
    (source / "broken" / "config.pbtxt").write_text(config)
    return source


def test_unparsable_config_names_the_file(tmp_path: Path) -> None:
    source = fake_source(tmp_path, 'name: "broken"\ninput [ { name: "x" data_type: TYPE_NOPE } ]\n')
    with pytest.raises(RepositoryError) as caught:
        render_repository(tmp_path / "r", placement=parse_placement(None), gpus=[], source=source)
    assert str(source / "broken" / "config.pbtxt") in str(caught.value)
    assert "TYPE_NOPE" in str(caught.value)


def test_config_name_must_match_folder(tmp_path: Path) -> None:
    source = fake_source(tmp_path, 'name: "other"\nbackend: "python"\n')
    with pytest.raises(RepositoryError, match="differs from its folder 'broken'"):
        render_repository(tmp_path / "r", placement=parse_placement(None), gpus=[], source=source)


def test_refuses_to_render_into_source(tmp_path: Path) -> None:
    source = fake_source(tmp_path, 'name: "broken"\nbackend: "python"\n')
    with pytest.raises(RepositoryError, match="inside the source"):
        render_repository(source / "out", placement=parse_placement(None), gpus=[], source=source)


def test_command_line_renders_and_reports_placement_errors(tmp_path: Path) -> None:
    import subprocess
    import sys

    command = [sys.executable, "-m", "toolmesh_models.repository", "--out", str(tmp_path / "r")]
    done = subprocess.run([*command, "--gpus", "0,1"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    find = parse(tmp_path / "r" / "find" / "config.pbtxt")
    assert [(g.kind, list(g.gpus)) for g in find.instance_group] == [(GPU, [0]), (GPU, [1])]
    placement = tmp_path / "placement.yaml"
    placement.write_text("models: {find: {gpus: [3]}}\n")
    refused = subprocess.run(
        [*command, "--gpus", "0", "--placement", str(placement)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2
    assert "GPU(s) [3]" in refused.stderr and "placement.yaml" in refused.stderr
