"""placement.yaml → instance groups, for machines with 0, 1 and 4 GPUs."""

from __future__ import annotations

from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2

from toolmesh_models.errors import PlacementError
from toolmesh_models.paths import REPOSITORY
from toolmesh_models.placement import (
    detect_gpus,
    instance_groups,
    load_placement,
    parse_placement,
)
from toolmesh_models.repository import available_models, read_config, render_repository

CPU = model_config_pb2.ModelInstanceGroup.KIND_CPU
GPU = model_config_pb2.ModelInstanceGroup.KIND_GPU

DOCUMENT = {
    "defaults": {"count": 1},
    "models": {
        "find": {"count": 2},
        "pinned": {"count": 2, "gpus": [0, 1]},
        "greyscale": {"kind": "cpu", "count": 3},
        "small": {"count": 4, "cpu_count": 1},
    },
}


def groups(model: str, gpus: list[int]) -> list[tuple[int, int, list[int]]]:
    placement = parse_placement(DOCUMENT, source="test.yaml")
    return [(g.kind, g.count, list(g.gpus)) for g in instance_groups(placement, model, gpus)]


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("find", [(CPU, 2, [])]),
        ("pinned", [(CPU, 2, [])]),  # GPU placement falls back to the CPU without GPUs
        ("greyscale", [(CPU, 3, [])]),
        ("small", [(CPU, 1, [])]),  # cpu_count wins on the CPU
        ("unlisted", [(CPU, 1, [])]),  # defaults
    ],
)
def test_no_gpu(model: str, expected: list) -> None:
    assert groups(model, []) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("find", [(GPU, 2, [0])]),
        ("greyscale", [(CPU, 3, [])]),
        ("small", [(GPU, 4, [0])]),
        ("unlisted", [(GPU, 1, [0])]),
    ],
)
def test_one_gpu(model: str, expected: list) -> None:
    assert groups(model, [0]) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("find", [(GPU, 2, [0]), (GPU, 2, [1]), (GPU, 2, [2]), (GPU, 2, [3])]),
        ("pinned", [(GPU, 2, [0]), (GPU, 2, [1])]),
        ("greyscale", [(CPU, 3, [])]),
        ("unlisted", [(GPU, 1, [0]), (GPU, 1, [1]), (GPU, 1, [2]), (GPU, 1, [3])]),
    ],
)
def test_four_gpus(model: str, expected: list) -> None:
    assert groups(model, [0, 1, 2, 3]) == expected


def test_missing_gpu_names_model_index_and_inventory() -> None:
    with pytest.raises(PlacementError) as caught:
        groups("pinned", [0])
    message = str(caught.value)
    assert "test.yaml" in message
    assert "'pinned'" in message
    assert "[1]" in message  # the missing index
    assert "has GPU(s) [0]" in message


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"model": {}}, "unknown top-level key(s) ['model']"),
        ({"models": {"find": {"cuont": 2}}}, "models.find: unknown key(s) ['cuont']"),
        ({"models": {"find": {"count": 0}}}, "models.find.count: must be a positive integer"),
        ({"models": {"find": {"count": -1}}}, "models.find.count: must be a positive integer"),
        ({"models": {"find": {"count": "2"}}}, "models.find.count: must be a positive integer"),
        ({"models": {"find": {"count": True}}}, "models.find.count: must be a positive integer"),
        ({"defaults": {"cpu_count": 0}}, "defaults.cpu_count: must be a positive integer"),
        ({"models": {"find": {"kind": "tpu"}}}, "models.find.kind: must be one of"),
        ({"models": {"find": {"gpus": []}}}, "models.find.gpus: must be a non-empty list"),
        ({"models": {"find": {"gpus": [0, 0]}}}, "models.find.gpus: must be a non-empty list"),
        ({"models": {"find": {"gpus": [-1]}}}, "models.find.gpus: must be a non-empty list"),
        ({"models": {"find": {"gpus": 0}}}, "models.find.gpus: must be a non-empty list"),
        ({"models": {"find": {"kind": "cpu", "gpus": [0]}}}, "'gpus' makes no sense"),
        ({"models": ["find"]}, "models: expected a mapping"),
        ({"models": {"find": 2}}, "models.find: expected a mapping"),
        (["find"], "expected a mapping with 'defaults' and 'models'"),
    ],
)
def test_malformed_document(document: object, fragment: str) -> None:
    with pytest.raises(PlacementError) as caught:
        parse_placement(document, source="bad.yaml")
    assert str(caught.value).startswith("bad.yaml: ")
    assert fragment in str(caught.value)


def test_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "placement.yaml"
    path.write_text("models:\n  find: {count: 2\n")
    with pytest.raises(PlacementError, match=r"placement\.yaml: not valid YAML"):
        load_placement(path)
    path.write_text("models:\n  find: {count: 0}\n")
    with pytest.raises(PlacementError, match=r"placement\.yaml: models\.find\.count"):
        load_placement(path)
    with pytest.raises(PlacementError, match="cannot read"):
        load_placement(tmp_path / "absent.yaml")


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "placement.yaml"
    path.write_text("# nothing\n")
    placement = load_placement(path)
    assert [(g.kind, g.count) for g in instance_groups(placement, "find", [])] == [(CPU, 1)]


def test_committed_placement() -> None:
    placement = load_placement()
    assert set(placement.models) <= set(available_models())
    find = instance_groups(placement, "find", [])
    assert [(g.kind, g.count) for g in find] == [(CPU, 2)]
    for model in ("greyscale", "resize", "rotate", "color_depth", "convert_format"):
        on_gpu_machine = instance_groups(placement, model, [0, 1])
        assert [(g.kind, g.count) for g in on_gpu_machine] == [(CPU, 1)], model


TRANSFORMER_MODELS = ["simple_query", "caption", "verify_property", "best_image_match",
                      "best_text_match", "compute_depth", "read_text"]  # fmt: skip


@pytest.mark.parametrize("model", TRANSFORMER_MODELS)
@pytest.mark.parametrize("gpus", [[], [0], [0, 1, 2, 3]])
def test_committed_placement_of_the_toolbox(model: str, gpus: list[int]) -> None:
    """One instance per GPU, each group pinned to its own device; one on the CPU without GPUs."""
    groups = [
        (g.kind, g.count, list(g.gpus)) for g in instance_groups(load_placement(), model, gpus)
    ]
    assert groups == ([(GPU, 1, [g]) for g in gpus] or [(CPU, 1, [])])


@pytest.mark.parametrize("model", ["exists", "count", "dominant_color"])
def test_toolbox_helpers_stay_on_the_cpu(model: str) -> None:
    groups = instance_groups(load_placement(), model, [0, 1, 2, 3])
    assert [g.kind for g in groups] == [CPU]


def test_toolbox_model_on_a_missing_gpu_is_an_error() -> None:
    placement = parse_placement({"models": {"caption": {"gpus": [3]}}}, source="p.yaml")
    with pytest.raises(PlacementError, match=r"'caption' is placed on GPU\(s\) \[3\]"):
        instance_groups(placement, "caption", [0, 1])


@pytest.mark.parametrize(("value", "expected"), [("0,1", [0, 1]), ("", []), (" 3 , 1", [1, 3])])
def test_detect_gpus_override(monkeypatch: pytest.MonkeyPatch, value: str, expected: list) -> None:
    monkeypatch.setenv("TOOLMESH_GPUS", value)
    assert detect_gpus() == expected


def test_detect_gpus_bad_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLMESH_GPUS", "gpu0")
    with pytest.raises(PlacementError, match="TOOLMESH_GPUS"):
        detect_gpus()


def fake_nvidia_smi(directory: Path, listing: str) -> None:
    script = directory / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '{listing}'\n")
    script.chmod(0o755)


def test_detect_gpus_with_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvidia_smi(
        tmp_path, "GPU 0: NVIDIA H100 (UUID: GPU-a)\\nGPU 1: NVIDIA H100 (UUID: GPU-b)\\n"
    )
    monkeypatch.delenv("TOOLMESH_GPUS", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert detect_gpus() == [0, 1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # CUDA renumbers the visible GPU as 0
    assert detect_gpus() == [0]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert detect_gpus() == []


def test_detect_gpus_failing_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "nvidia-smi"
    script.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    script.chmod(0o755)
    monkeypatch.delenv("TOOLMESH_GPUS", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    expected = (
        len(list(Path("/proc/driver/nvidia/gpus").iterdir()))
        if Path("/proc/driver/nvidia/gpus").is_dir()
        else 0
    )
    assert detect_gpus() == list(range(expected))


def test_batching_follows_the_device(tmp_path: Path) -> None:
    placement = parse_placement(
        {
            "models": {
                "find": {"count": 2, "batching": "gpu"},
                "compute_depth": {"batching": "never"},
            }
        },
        source="test.yaml",
    )
    chosen = ["find", "compute_depth", "best_image_match"]
    render_repository(tmp_path / "cpu", placement=placement, gpus=[], models=chosen)
    render_repository(tmp_path / "gpu", placement=placement, gpus=[0], models=chosen)

    def batched(machine: str, model: str) -> bool:
        return read_config(tmp_path / machine / model / "config.pbtxt").HasField("dynamic_batching")

    committed = read_config(REPOSITORY / "best_image_match" / "config.pbtxt")
    assert read_config(REPOSITORY / "compute_depth" / "config.pbtxt").HasField("dynamic_batching")
    assert read_config(REPOSITORY / "find" / "config.pbtxt").HasField("dynamic_batching")
    # a batch-1 forward pass on the CPU: no batcher, so no instance waits behind a batch-mate
    assert not batched("cpu", "find")
    assert batched("gpu", "find")
    assert not batched("cpu", "compute_depth") and not batched("gpu", "compute_depth")
    # "always" (the default) keeps what the committed config says, on either machine
    assert batched("cpu", "best_image_match") == committed.HasField("dynamic_batching")
    assert batched("gpu", "best_image_match") == committed.HasField("dynamic_batching")


def test_batching_value_is_checked() -> None:
    with pytest.raises(PlacementError, match=r"models\.find\.batching: must be one of"):
        parse_placement({"models": {"find": {"batching": "sometimes"}}}, source="p.yaml")


def test_committed_find_is_batched_only_on_gpus() -> None:
    assert load_placement().for_model("find").batching == "gpu"
