"""placement.yaml → instance groups, for machines with 0, 1 and 4 GPUs, and per pool."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from toolmesh_models.errors import PlacementError, RepositoryError
from toolmesh_models.paths import REPOSITORY
from toolmesh_models.placement import (
    Placement,
    detect_gpus,
    instance_groups,
    load_placement,
    parse_placement,
)
from toolmesh_models.repository import (
    available_models,
    bls_models,
    check_placement,
    main,
    read_config,
    render_repository,
)

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
        (["find"], "expected a mapping with 'defaults', 'models' and 'pools'"),
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


# ---- pools: which models each Triton pool loads ----------------------------------------

POOLS = {
    "defaults": {"count": 1, "batching": "never"},
    "models": {
        "find": {"count": 2, "batching": "gpu"},
        "greyscale": {"kind": "cpu", "count": 3},
        "caption": {"count": 2},
    },
    "pools": {
        "big": {
            "service": "triton-large",
            "models": {"caption": {"count": 4}, "find": {}, "verify_property": None},
        },
        "small": {
            "models": {
                "find": {"count": 1},
                "count": {"cpu_count": 2},
                "greyscale": {},
                "rotate": {"kind": "cpu"},
            }
        },
    },
}


def settings(view: Placement, model: str) -> tuple[str, int, int | None, str]:
    chosen = view.for_model(model)
    return (chosen.kind, chosen.count, chosen.cpu_count, chosen.batching)


def test_pool_settings_override_models_which_override_defaults() -> None:
    placement = parse_placement(POOLS, source="pools.yaml")
    big, small = placement.for_pool("big"), placement.for_pool("small")
    # the pool's entry wins over models.caption (count 2), which wins over defaults
    assert settings(big, "caption") == ("gpu", 4, None, "never")
    # an empty pool entry (or none at all) keeps models.find / the defaults
    assert settings(big, "find") == ("gpu", 2, None, "gpu")
    assert settings(big, "verify_property") == ("gpu", 1, None, "never")
    # the pool overrides one key; the others come from models.find
    assert settings(small, "find") == ("gpu", 1, None, "gpu")
    assert settings(small, "count") == ("gpu", 1, 2, "never")
    assert settings(small, "greyscale") == ("cpu", 3, None, "never")
    assert settings(small, "rotate") == ("cpu", 1, None, "never")
    # a pool's overrides stay in that pool: the whole file still reads models:
    assert settings(placement, "find") == ("gpu", 2, None, "gpu")
    assert settings(placement, "caption") == ("gpu", 2, None, "never")


def test_pools_name_their_services_and_models() -> None:
    placement = parse_placement(POOLS, source="pools.yaml")
    assert {name: pool.service for name, pool in placement.pools.items()} == {
        "big": "triton-large",
        "small": "triton-small",  # the default: triton-<pool>
    }
    assert placement.loads is None  # the whole file: every model
    assert placement.for_pool("big").loads == {"caption", "find", "verify_property"}
    assert placement.for_pool("small").loads == {"find", "count", "greyscale", "rotate"}
    assert parse_placement({"models": {"find": {}}}).pools == {}


@pytest.mark.parametrize(
    ("pools", "fragment"),
    [
        ({}, "pools: expected a non-empty mapping"),
        (["big"], "pools: expected a non-empty mapping"),
        ({"A6000": {"models": {"find": {}}}}, "pools.A6000: a pool name must be a DNS-1035"),
        ({"6000": {"models": {"find": {}}}}, "pools.6000: a pool name must be a DNS-1035"),
        ({"big_gpu": {"models": {"find": {}}}}, "pools.big_gpu: a pool name must be a DNS-1035"),
        ({"big": ["find"]}, "pools.big: expected a mapping with keys ['models', 'service']"),
        ({"big": {"modles": {"find": {}}}}, "pools.big: unknown key(s) ['modles']"),
        ({"big": {"models": {"find": {}}, "service": "Triton"}}, "pools.big.service: must be"),
        ({"big": {"models": {"find": {}}, "service": "triton_big"}}, "pools.big.service: must"),
        ({"big": {"models": {"find": {}}, "service": "t" * 64}}, "pools.big.service: must be"),
        ({"big": {"models": {"find": {}}, "service": 8001}}, "pools.big.service: must be"),
        ({"big": {"service": "triton-big"}}, "pools.big.models: expected a non-empty mapping"),
        ({"big": {"models": {}}}, "pools.big.models: expected a non-empty mapping"),
        ({"big": {"models": ["find"]}}, "pools.big.models: expected a non-empty mapping"),
        ({"big": {"models": {"find": {"cuont": 1}}}}, "pools.big.models.find: unknown key(s)"),
        ({"big": {"models": {"find": {"count": 0}}}}, "pools.big.models.find.count: must be"),
        ({"big": {"models": {"find": 2}}}, "pools.big.models.find: expected a mapping"),
        (
            {"a": {"models": {"find": {}}}, "b": {"service": "triton-a", "models": {"find": {}}}},
            "pools.b.service: 'triton-a' is already the Service of pool 'a'",
        ),
        # kind: cpu from models.greyscale, gpus from the pool: contradictory once merged
        ({"big": {"models": {"greyscale": {"gpus": [0]}}}}, "pools.big.models.greyscale:"),
    ],
)
def test_malformed_pools(pools: object, fragment: str) -> None:
    document = {"models": {"greyscale": {"kind": "cpu"}}, "pools": pools}
    with pytest.raises(PlacementError) as caught:
        parse_placement(document, source="bad.yaml")
    assert str(caught.value).startswith("bad.yaml: ")
    assert fragment in str(caught.value)


def test_an_unknown_pool_lists_the_pools() -> None:
    placement = parse_placement(POOLS, source="pools.yaml")
    with pytest.raises(PlacementError) as caught:
        placement.for_pool("medium")
    assert "pools.yaml: there is no pool 'medium'" in str(caught.value)
    assert "['big', 'small']" in str(caught.value)
    with pytest.raises(PlacementError, match="has no 'pools:' section"):
        load_placement().for_pool("big")


def test_a_pool_naming_a_model_the_repository_lacks_is_refused(tmp_path: Path) -> None:
    document = {"pools": {"big": {"models": {"caption": {}, "captoin": {}}}}}
    placement = parse_placement(document, source="typo.yaml")
    with pytest.raises(PlacementError, match=r"typo\.yaml: pools\.big\.models: \['captoin'\]"):
        check_placement(placement)
    # rendering another pool of the same file fails too: the file is checked as a whole
    document["pools"]["ok"] = {"models": {"rotate": {}}}
    with pytest.raises(PlacementError, match="captoin"):
        render_repository(tmp_path / "r", placement=parse_placement(document), gpus=[], pool="ok")


def model_code_calls_find(model: str) -> bool:
    """Whether the model's code calls find inside Triton (the bls module's only entry)."""
    code = (REPOSITORY / model / "1" / "model.py").read_text(encoding="utf-8")
    return re.search(r"\bbls\.find\(", code) is not None


@pytest.mark.parametrize("model", available_models())
def test_bls_dependencies_are_declared_where_the_code_calls_them(model: str) -> None:
    """The renderer trusts config.pbtxt's bls_models; it must say what model.py does."""
    assert bls_models(model) == ({"find"} if model_code_calls_find(model) else set())


def test_the_bls_callers_are_the_ones_the_pools_must_colocate() -> None:
    # the control for the test above: the scan does find the callers it should
    callers = [m for m in available_models() if model_code_calls_find(m)]
    assert callers == ["count", "exists", "verify_property"]


@pytest.mark.parametrize("caller", ["exists", "count", "verify_property"])
def test_a_pool_without_what_its_models_call_is_refused(caller: str, tmp_path: Path) -> None:
    document = {"pools": {"small": {"models": {caller: {}, "greyscale": {}}}}}
    with pytest.raises(PlacementError) as caught:
        render_repository(
            tmp_path / "r", placement=parse_placement(document, source="p.yaml"), gpus=[],
            pool="small",
        )  # fmt: skip
    message = str(caught.value)
    assert message.startswith("p.yaml: pools.small loads")
    assert repr(caller) in message and "'find'" in message
    assert not (tmp_path / "r").exists()
    # with find beside it the same pool renders
    document["pools"]["small"]["models"]["find"] = {}
    names = render_repository(
        tmp_path / "r", placement=parse_placement(document), gpus=[], pool="small"
    )
    assert names == sorted([caller, "find", "greyscale"])


def test_an_undeclared_model_in_bls_models_is_a_repository_error(tmp_path: Path) -> None:
    source = tmp_path / "source"
    for name, extra in (("a", 'parameters { key: "bls_models" value: { string_value: "b, z" } }'),
                        ("b", "")):  # fmt: skip
        (source / name).mkdir(parents=True)
        (source / name / "config.pbtxt").write_text(f'name: "{name}"\nbackend: "python"\n{extra}')
    assert bls_models("a", source) == {"b", "z"}
    placement = parse_placement({"pools": {"p": {"models": {"a": {}, "b": {}}}}})
    with pytest.raises(
        RepositoryError, match=r"a/config\.pbtxt: parameter 'bls_models' names \['z'\]"
    ):
        check_placement(placement, source)


def rendered(repository: Path) -> dict[str, list[tuple[int, int, list[int]]]]:
    """Each rendered model's instance groups, parsed from the written config.pbtxt files."""
    groups = {}
    for config_path in sorted(repository.glob("*/config.pbtxt")):
        config = model_config_pb2.ModelConfig()
        text_format.Parse(config_path.read_text(encoding="utf-8"), config)
        assert config.name == config_path.parent.name
        groups[config.name] = [(g.kind, g.count, list(g.gpus)) for g in config.instance_group]
    return groups


def test_rendering_a_pool_writes_only_its_models(tmp_path: Path) -> None:
    placement = parse_placement(POOLS, source="pools.yaml")
    small = render_repository(tmp_path / "small", placement=placement, gpus=[0, 1], pool="small")
    assert small == ["count", "find", "greyscale", "rotate"]
    assert sorted(p.name for p in (tmp_path / "small").iterdir() if p.is_dir()) == small
    assert rendered(tmp_path / "small") == {
        "count": [(GPU, 1, [0]), (GPU, 1, [1])],
        "find": [(GPU, 1, [0]), (GPU, 1, [1])],  # the pool's count 1, not models.find's 2
        "greyscale": [(CPU, 3, [])],
        "rotate": [(CPU, 1, [])],
    }
    # batching: gpu comes from models.find (the pool entry does not repeat it): kept on GPUs
    assert read_config(tmp_path / "small" / "find" / "config.pbtxt").HasField("dynamic_batching")
    big = render_repository(
        tmp_path / "big", placement=placement.for_pool("big"), gpus=[], source=REPOSITORY
    )
    assert big == ["caption", "find", "verify_property"]
    assert rendered(tmp_path / "big") == {
        "caption": [(CPU, 4, [])],
        "find": [(CPU, 2, [])],
        "verify_property": [(CPU, 1, [])],
    }
    assert not read_config(tmp_path / "big" / "find" / "config.pbtxt").HasField("dynamic_batching")


def test_a_pool_and_a_model_list_narrow_together(tmp_path: Path) -> None:
    placement = parse_placement(POOLS, source="pools.yaml")
    names = render_repository(
        tmp_path / "r", placement=placement, gpus=[], pool="small", models=["rotate"]
    )
    assert names == ["rotate"]
    with pytest.raises(PlacementError, match=r"models \['caption'\] are not in pool 'small'"):
        render_repository(
            tmp_path / "r", placement=placement, gpus=[], pool="small", models=["caption"]
        )


def test_command_line_renders_one_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "placement.yaml"
    path.write_text(
        "models:\n  find: {count: 2}\n"
        "pools:\n"
        "  big:\n    models: {caption: {}}\n"
        "  small:\n    models: {find: {count: 1}, greyscale: {kind: cpu}}\n"
    )
    out = tmp_path / "repo"
    common = [f"--placement={path}", "--gpus=0", f"--out={out}"]
    assert main([*common, "--pool=small"]) == 0
    assert rendered(out) == {"find": [(GPU, 1, [0])], "greyscale": [(CPU, 1, [])]}
    assert "(pool small)" in capsys.readouterr().out
    assert main([*common, "--pool=medium"]) == 2
    error = capsys.readouterr().err
    assert "there is no pool 'medium'" in error and "['big', 'small']" in error
    # without --pool: every model, as before pools existed (models.find's count)
    assert main(common) == 0
    everything = rendered(out)
    assert sorted(everything) == available_models()
    assert everything["find"] == [(GPU, 2, [0])]
