"""The vision toolbox end to end: SDK → gateway → Triton → model, on real and tiny weights.

Two meshes: the suite's main one (empty model store: the transformer functions
are listed as unavailable and answer FAILED_PRECONDITION; the real-weight
functions read_text, dominant_color, exists and count run), and one for this
module whose store holds tiny random-weight models of the real architectures
(OWLv2, BLIP-VQA, BLIP captioning, BLIP-ITM, CLIP, Depth Anything), so the full
loading and serving path runs. Random weights make answers meaningless: those
tests check types, shapes, ranges and coordinates, never accuracy.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

import toolmesh
from tests.triton_models.tiny_models import install_tiny_models
from toolmesh_local.mesh import LocalMesh
from toolmesh_models.store import ModelStore

TRANSFORMER_FUNCTIONS = {
    "simple_query": "blip-vqa",
    "caption": "blip-caption",
    "verify_property": "blip-itm",
    "best_image_match": "clip",
    "best_text_match": "clip",
    "compute_depth": "depth",
}
TOOLBOX_MODELS = ["find", "exists", "count", *TRANSFORMER_FUNCTIONS]


@pytest.fixture(scope="module")
def toolbox_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    """A mesh whose model store holds tiny models of every transformer backend (one instance each)."""
    store = ModelStore(tmp_path_factory.mktemp("tiny-store"))
    install_tiny_models(store)
    placement = tmp_path_factory.mktemp("placement") / "placement.yaml"
    placement.write_text("defaults: {count: 1}\n")
    local = LocalMesh(
        run_dir=tmp_path_factory.mktemp("toolbox-mesh"),
        placement=placement,
        models=TOOLBOX_MODELS,
        env={"TOOLMESH_MODEL_DIR": str(store.root)},
    )
    local.start(timeout=300)
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
async def tiny(toolbox_mesh: LocalMesh) -> AsyncIterator[toolmesh.Client]:
    async with toolmesh.Client(toolbox_mesh.address, timeout=120) as c:
        yield c


def inside(box: list[float], width: int, height: int) -> bool:
    x1, y1, x2, y2 = box
    return 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height


RNG = np.random.default_rng(11)
PICTURE = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)


# --- the main mesh: empty store, real-weight functions --------------------------------------


async def test_missing_weights_are_listed_and_refused(
    client: toolmesh.Client, street_jpeg: bytes
) -> None:
    functions = {f.name: f for f in await client.functions()}
    for name, weights in TRANSFORMER_FUNCTIONS.items():
        info = functions[name]
        assert not info.available, name
        assert f"toolmesh models pull {weights}" in info.unavailable_reason
    for name in ("find", "exists", "count", "read_text", "dominant_color", "greyscale"):
        assert functions[name].available and not functions[name].unavailable_reason, name
    with pytest.raises(toolmesh.FailedPrecondition) as caught:
        await client.call("caption", image=street_jpeg)
    assert "toolmesh models pull blip-caption" in caught.value.details
    with pytest.raises(toolmesh.FailedPrecondition, match="toolmesh models pull clip"):
        await client.call("best_text_match", image=street_jpeg, texts=["a street", "a beach"])
    # the rest of the mesh keeps working
    assert await client.call("count", image=street_jpeg, object_name="person") >= 3


async def test_exists_and_count_agree_with_find(
    client: toolmesh.Client, street_paths: list[Path]
) -> None:
    for path in street_paths[:3]:
        people = await client.call("find", image=path, object_name="person", threshold=0.4)
        assert await client.call("count", image=path, object_name="people", threshold=0.4) == len(
            people
        )
        assert await client.call("exists", image=path, object_name="person") is True
    assert await client.call("exists", image=street_paths[0], object_name="toothbrush") is False
    with pytest.raises(toolmesh.InvalidArgument, match="unicorn"):
        await client.call("count", image=street_paths[0], object_name="unicorn")


async def test_find_under_concurrency_equals_serial(
    client: toolmesh.Client, street_paths: list[Path]
) -> None:
    """Dynamic batching groups concurrent requests; each still gets its own answer."""
    frames = street_paths[:8]
    serial = [await client.call("find", image=f, object_name="person") for f in frames]
    together = await asyncio.gather(
        *(client.call("find", image=f, object_name="person") for f in frames)
    )
    assert list(together) == serial


def rendered_text(text: str, size: int = 48) -> np.ndarray:
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox(
        (0, 0), text, font=font
    )
    image = Image.new("RGB", (right - left + 80, bottom - top + 60), "white")
    ImageDraw.Draw(image).text((40 - left, 30 - top), text, fill="black", font=font)
    return np.asarray(image)


async def test_read_text_reads_rendered_text(client: toolmesh.Client) -> None:
    image = rendered_text("TOOLMESH 2025")
    lines = await client.call("read_text", image=image)
    # RapidOCR may split a line at a wide word gap: the words, in order, are what counts.
    assert " ".join(line["text"] for line in lines) == "TOOLMESH 2025"
    height, width = image.shape[:2]
    for line in lines:
        assert inside(line["box"], width, height) and line["score"] >= 0.8
    assert await client.call("read_text", image=np.full((60, 80, 3), 255, np.uint8)) == []


async def test_read_text_two_lines_top_to_bottom(client: toolmesh.Client) -> None:
    image = Image.new("RGB", (420, 200), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=40)
    draw.text((20, 20), "OPEN DAILY", fill="black", font=font)
    draw.text((20, 110), "NO PARKING", fill="black", font=font)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    lines = await client.call("read_text", image=buffer.getvalue())
    assert [line["text"] for line in lines] == ["OPEN DAILY", "NO PARKING"]


async def test_dominant_color_on_synthetic_images(client: toolmesh.Client) -> None:
    flag = np.zeros((60, 90, 3), np.uint8)
    flag[:, :30] = (200, 20, 30)  # red third
    flag[:, 30:] = (20, 60, 200)  # blue two thirds
    whole = await client.call("dominant_color", image=flag)
    assert whole["name"] == "blue" and whole["rgb"] == [20, 60, 200]
    assert whole["fraction"] == pytest.approx(2 / 3, abs=1e-3)
    left = await client.call("dominant_color", image=flag, box=[0, 0, 30, 60])
    assert left == {"rgb": [200, 20, 30], "name": "red", "fraction": 1.0}
    noisy = np.clip(
        np.full((50, 50, 3), (40, 170, 40), np.int16) + RNG.integers(-6, 7, (50, 50, 3)), 0, 255
    ).astype(np.uint8)
    assert (await client.call("dominant_color", image=noisy))["name"] == "green"
    with pytest.raises(toolmesh.InvalidArgument, match="holds no pixel"):
        await client.call("dominant_color", image=flag, box=[100, 100, 120, 120])


# --- the toolbox mesh: tiny random-weight models ----------------------------------------------


async def test_every_toolbox_function_is_available(tiny: toolmesh.Client) -> None:
    functions = {f.name: f for f in await tiny.functions()}
    for name in TOOLBOX_MODELS:
        assert functions[name].available, (name, functions[name].unavailable_reason)


async def test_find_on_owlv2_takes_any_phrase(tiny: toolmesh.Client) -> None:
    height, width = PICTURE.shape[:2]
    found = await tiny.call("find", image=PICTURE, object_name="red umbrella", threshold=0.0)
    assert found, "threshold 0 keeps every query box of the random model"
    scores = [f["score"] for f in found]
    assert scores == sorted(scores, reverse=True)
    for detection in found:
        assert inside(detection["box"], width, height)
        assert detection["label"] == "red umbrella" and 0 <= detection["score"] <= 1
    strict = await tiny.call("find", image=PICTURE, object_name="red umbrella", threshold=0.9)
    assert strict == [f for f in found if f["score"] >= 0.9]


async def test_exists_and_count_use_owlv2_through_bls(tiny: toolmesh.Client) -> None:
    found = await tiny.call("find", image=PICTURE, object_name="teapot", threshold=0.5)
    assert await tiny.call("count", image=PICTURE, object_name="teapot", threshold=0.5) == len(
        found
    )
    assert await tiny.call("exists", image=PICTURE, object_name="teapot", threshold=0.5) is bool(
        found
    )


async def test_simple_query_and_caption_return_text(tiny: toolmesh.Client) -> None:
    answer = await tiny.call("simple_query", image=PICTURE, question="what color is the car?")
    caption = await tiny.call("caption", image=Image.fromarray(PICTURE))
    assert isinstance(answer, str) and isinstance(caption, str)


async def test_verify_property(tiny: toolmesh.Client) -> None:
    height, width = PICTURE.shape[:2]
    result = await tiny.call("verify_property", image=PICTURE, object_name="car", property="red")
    assert set(result) == {"holds", "probability", "box"}
    assert 0 <= result["probability"] <= 1
    assert result["holds"] is (result["probability"] >= 0.5)
    assert inside(result["box"], width, height)


async def test_best_image_match_takes_a_list_of_images(
    tiny: toolmesh.Client, street_paths: list[Path]
) -> None:
    images = [PICTURE, Image.fromarray(PICTURE[::-1]), street_paths[0], PICTURE[:, :, :1]]
    result = await tiny.call("best_image_match", images=images, text="a red car")
    assert len(result["scores"]) == 4 and sum(result["scores"]) == pytest.approx(1, abs=1e-4)
    assert result["index"] == int(np.argmax(result["scores"]))
    with pytest.raises(toolmesh.InvalidArgument, match="images"):
        await tiny.call("best_image_match", images=[], text="a red car")


async def test_best_text_match_batches_concurrent_calls(tiny: toolmesh.Client) -> None:
    choices = [["a cat", "a dog"], ["a car"], ["red", "a photo", "the dog"]]
    alone = [await tiny.call("best_text_match", image=PICTURE, texts=t) for t in choices]
    together = await asyncio.gather(
        *(tiny.call("best_text_match", image=PICTURE, texts=t) for t in choices * 3)
    )
    for result, texts in zip(together, choices * 3, strict=True):
        assert len(result["scores"]) == len(texts)
        assert sum(result["scores"]) == pytest.approx(1, abs=1e-4)
    for result, expected in zip(together[:3], alone, strict=True):
        assert result["index"] == expected["index"]
        assert result["scores"] == pytest.approx(expected["scores"], abs=1e-4)


async def test_compute_depth_map_and_box_medians(tiny: toolmesh.Client) -> None:
    height, width = PICTURE.shape[:2]
    result = await tiny.call(
        "compute_depth", image=PICTURE, boxes=[[0, 0, 32, 24], [10.5, 5, 64, 48]]
    )
    depth = np.asarray(result["depth"])
    assert result["depth"].mode == "I;16" and depth.shape == (height, width)
    assert depth.min() == 0 and depth.max() == 65535  # rescaled per image
    assert 0 <= result["median"] <= 1
    assert len(result["box_medians"]) == 2 and all(0 <= m <= 1 for m in result["box_medians"])
    expected = np.median(depth[0:24, 0:32] / 65535)
    assert result["box_medians"][0] == pytest.approx(expected, abs=1e-3)
    plain = await tiny.call("compute_depth", image=PICTURE)
    assert plain["box_medians"] == []
    with pytest.raises(toolmesh.InvalidArgument, match="holds no pixel"):
        await tiny.call("compute_depth", image=PICTURE, boxes=[[70, 0, 80, 10]])


def test_load_failure_reason_is_cleaned_for_callers() -> None:
    from toolmesh_gateway.endpoints import clean_load_failure

    reason = (
        "Internal: WeightsMissing: caption needs the weights 'blip-caption': run "
        "`toolmesh models pull blip-caption`\n\nAt:\n  /repo/caption/1/model.py(20): initialize\n"
    )
    assert clean_load_failure(reason) == (
        "caption needs the weights 'blip-caption': run `toolmesh models pull blip-caption`"
    )
    assert clean_load_failure("Internal: ImportError: no torch\n\nAt:\n  x") == (
        "ImportError: no torch"
    )
