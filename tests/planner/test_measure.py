"""What a profile keeps of its measurements: the split of latency into occupancy and hop,
the device's parallelism, and the files' round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolmesh_planner.measure import _occupancy, _parallelism
from toolmesh_planner.profile import (
    ConcurrencyPoint,
    DeviceProfile,
    ModelProfile,
    ProfileError,
    ServiceTime,
    load_profile,
    save_profile,
)


def measured(
    latency: float, instances: int, loaded_rate: float, hop: float = 0.001
) -> ModelProfile:
    return ModelProfile(
        ("f",),
        {1: ServiceTime.constant(latency)},
        instances,
        concurrency={
            1: ConcurrencyPoint(1 / latency, latency),
            4: ConcurrencyPoint(loaded_rate, 4 / loaded_rate),
        },
        hop_s=hop,
    )


def test_latency_beyond_the_loaded_occupancy_is_hop() -> None:
    # 1 instance: 0.010 s a request alone, but 125/s under load: it occupies 0.008 s
    split = _occupancy(measured(0.010, 1, 125.0), parallelism=2.0)
    assert split.service[1].mean == pytest.approx(0.008)
    assert split.hop_s == pytest.approx(0.001 + 0.002)
    # 2 instances on a device of parallelism 2, 190/s: each 2 / 190 s
    split = _occupancy(measured(0.011, 2, 190.0), parallelism=2.0)
    assert split.service[1].mean == pytest.approx(2 / 190)
    # a loaded rate no better than one at a time changes nothing
    same = measured(0.010, 1, 90.0)
    assert _occupancy(same, parallelism=2.0) == same


def test_parallelism_is_read_from_multi_instance_models() -> None:
    models = {"find": measured(0.05, 2, 36.0), "grey": measured(0.005, 1, 150.0)}
    assert _parallelism(models, fallback=8.0) == pytest.approx(1.8)
    assert _parallelism({"grey": measured(0.005, 1, 150.0)}, fallback=8.0) == 8.0


def test_profiles_round_trip_through_yaml_and_json(tmp_path: Path) -> None:
    profile = DeviceProfile(
        "a6000",
        {"find": measured(0.05, 2, 36.0)},
        1.8,
        "an RTX A6000 node",
        {"host": "gpu-1"},
        hop_s=0.002,
    )
    for name in ("p.yaml", "p.json"):
        save_profile(profile, tmp_path / name)
        loaded = load_profile(tmp_path / name)
        assert loaded.device_type == "a6000" and loaded.parallelism == pytest.approx(1.8)
        assert loaded.hop_s == pytest.approx(0.002)
        assert loaded.machine["host"] == "gpu-1"
        model = loaded.models["find"]
        assert model.instances == 2 and model.hop_s == pytest.approx(0.001)
        assert model.service[1].mean == pytest.approx(0.05)
        assert model.concurrency[4].throughput_per_s == pytest.approx(36.0)
    (tmp_path / "bad.yaml").write_text("toolmesh_profile: 1\ndevice: {}\n")
    with pytest.raises(ProfileError, match=r"bad\.yaml"):
        load_profile(tmp_path / "bad.yaml")
