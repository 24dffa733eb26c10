"""Which torch device a Triton instance's transformer model runs on (vision.torch_device).

Runs on the CPU: CUDA's presence is simulated, so the selection logic a GPU machine
uses is checked everywhere. perf/gpu_proof.py checks the real thing on a GPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from toolmesh_models.store import ModelStore  # noqa: E402
from toolmesh_models.vision import load_clip, torch_device  # noqa: E402


@pytest.fixture
def cuda(monkeypatch: pytest.MonkeyPatch):
    """Pretend CUDA has ``count`` devices: returns a setter."""

    def simulate(count: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)

    return simulate


@pytest.fixture(autouse=True)
def _keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_cpu_when_cuda_is_unavailable(cuda) -> None:
    cuda(0)
    assert torch_device("GPU", 0) == "cpu"
    assert torch_device("CPU", 0) == "cpu"


def test_gpu_instance_gets_its_own_device(cuda) -> None:
    cuda(2)
    assert torch_device("GPU", 0) == "cuda:0"
    assert torch_device("GPU", 1) == "cuda:1"


def test_cpu_instance_stays_on_the_cpu_with_cuda(cuda) -> None:
    cuda(1)
    assert torch_device("CPU", 0) == "cpu"


def test_device_beyond_the_visible_ones_falls_back_to_the_cpu(cuda) -> None:
    cuda(1)
    assert torch_device("GPU", 1) == "cpu"


def test_threads_bound_intra_op_parallelism(cuda) -> None:
    cuda(0)
    torch_device("CPU", 0, threads=2)
    assert torch.get_num_threads() == 2
    torch_device("CPU", 0, threads=0)  # never below one
    assert torch.get_num_threads() == 1


class _Instance:
    """The attributes load_clip reads from a Triton model instance."""

    name = "best_image_match"
    instance_kind = "GPU"
    device_id = 0
    parameters = {"intra_op_threads": "1"}  # noqa: RUF012

    def __init__(self) -> None:
        self.messages: list[str] = []

    def log(self, message: str) -> None:
        self.messages.append(message)


def test_load_clip_places_a_gpu_instance_on_the_cpu_without_cuda(
    cuda, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.triton_models.tiny_models import install_tiny_models

    store = ModelStore(tmp_path / "store")
    install_tiny_models(store, ["clip"])
    monkeypatch.setenv("TOOLMESH_MODEL_DIR", str(store.root))
    cuda(0)
    instance = _Instance()
    clip = load_clip(instance)
    assert clip.device == "cpu"
    assert {p.device.type for p in clip.model.parameters()} == {"cpu"}
    assert instance.messages and instance.messages[-1].endswith("on cpu")
