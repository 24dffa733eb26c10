"""Every registered function, called through the SDK against the real gateway and Triton.

Expectations come from facts about the inputs (what the street frames show,
what a rotation does to a known pixel), never from a previous run's output.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import toolmesh
from tests.conftest import png_bytes

VEHICLES = {"bicycle", "car", "motorcycle", "bus", "truck"}


async def test_registry_lists_every_function_with_documents(client: toolmesh.Client) -> None:
    functions = {f.name: f for f in await client.functions()}
    assert {"find", "greyscale", "resize", "rotate", "color_depth", "convert_format"} <= set(
        functions
    )
    for info in functions.values():
        assert len(info.documentation) > 80, info.name
        assert info.parameters_schema["type"] == "object"
        assert {"image", "images"} & set(info.parameters_schema["properties"]), info.name
    assert functions["find"].signature() == "find(image, object_name, threshold=0.3)"


async def test_find_people_on_a_street_frame(client: toolmesh.Client, street_jpeg: bytes) -> None:
    width, height = Image.open(io.BytesIO(street_jpeg)).size
    people = await client.call("find", image=street_jpeg, object_name="person")
    assert len(people) >= 3
    scores = [p["score"] for p in people]
    assert scores == sorted(scores, reverse=True)
    for person in people:
        x1, y1, x2, y2 = person["box"]
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert person["label"] == "person"
        assert 0.3 <= person["score"] <= 1
    # Standing pedestrians: boxes are taller than wide.
    tall = [p for p in people if (p["box"][3] - p["box"][1]) > (p["box"][2] - p["box"][0])]
    assert len(tall) >= len(people) / 2


async def test_find_synonyms_and_threshold(client: toolmesh.Client, street_jpeg: bytes) -> None:
    people = await client.call("find", image=street_jpeg, object_name="person")
    pedestrians = await client.call("find", image=street_jpeg, object_name="Pedestrians")
    assert pedestrians == people
    strict = await client.call("find", image=street_jpeg, object_name="person", threshold=0.5)
    assert all(p["score"] >= 0.5 for p in strict)
    assert strict == [p for p in people if p["score"] >= 0.5]


async def test_find_vehicles_across_the_street_frames(
    client: toolmesh.Client, street_paths: list[Path]
) -> None:
    found = [
        v
        for path in street_paths[::3]
        for v in await client.call("find", image=path, object_name="vehicle")
    ]
    assert found, "the street frames show parked cars and a van"
    assert {v["label"] for v in found} <= VEHICLES


async def test_find_gives_the_same_answer_for_pixels_and_for_the_file(
    client: toolmesh.Client, street_paths: list[Path]
) -> None:
    path = street_paths[5]
    from_file = await client.call("find", image=path, object_name="person")
    from_pixels = await client.call("find", image=Image.open(path), object_name="person")
    assert from_pixels == from_file


async def test_greyscale_is_the_itu_601_luma(
    client: toolmesh.Client, rgb_pattern: np.ndarray
) -> None:
    grey = await client.call("greyscale", image=rgb_pattern)
    assert grey.mode == "L"
    assert grey.size == (rgb_pattern.shape[1], rgb_pattern.shape[0])
    r, g, b = (rgb_pattern[..., i].astype(np.float64) for i in range(3))
    expected = 0.299 * r + 0.587 * g + 0.114 * b
    assert np.abs(np.asarray(grey, dtype=np.float64) - expected).max() <= 1.0


async def test_rotate_90_moves_the_top_right_pixel_to_the_top_left(
    client: toolmesh.Client, rgb_pattern: np.ndarray
) -> None:
    rotated = np.asarray(await client.call("rotate", image=rgb_pattern, angle=90))
    h, w, _ = rgb_pattern.shape
    assert rotated.shape == (w, h, 3)
    # Counter-clockwise: the top-right corner becomes the top-left one.
    np.testing.assert_array_equal(rotated[0, 0], rgb_pattern[0, w - 1])
    np.testing.assert_array_equal(rotated[w - 1, 0], rgb_pattern[0, 0])


async def test_rotate_90_four_times_is_the_identity(
    client: toolmesh.Client, rgb_pattern: np.ndarray
) -> None:
    image: object = rgb_pattern
    for _ in range(4):
        image = await client.call("rotate", image=image, angle=90)
    np.testing.assert_array_equal(np.asarray(image), rgb_pattern)
    half = await client.call("rotate", image=png_bytes(rgb_pattern), angle=180)
    np.testing.assert_array_equal(np.asarray(half), rgb_pattern[::-1, ::-1])


async def test_resize_gives_the_requested_size(client: toolmesh.Client, street_jpeg: bytes) -> None:
    small = await client.call("resize", image=street_jpeg, width=200, height=150)
    assert small.size == (200, 150)
    flat = np.full((40, 60, 3), (10, 200, 90), dtype=np.uint8)
    resized = np.asarray(await client.call("resize", image=flat, width=17, height=9))
    assert resized.shape == (9, 17, 3)
    assert (resized == (10, 200, 90)).all()


async def test_color_depth_maps_10_bit_samples_to_8_bits(client: toolmesh.Client) -> None:
    samples = np.array([[0, 1, 512, 1023]], dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(samples).save(buffer, format="PNG")  # a 16-bit PNG holding 10-bit data
    for image in (buffer.getvalue(), samples):
        out = np.asarray(await client.call("color_depth", image=image, bits=10)).reshape(-1)
        expected = [round(v * 255 / 1023) for v in (0, 1, 512, 1023)]
        assert out.tolist() == expected


async def test_color_depth_refuses_samples_beyond_the_declared_depth(
    client: toolmesh.Client,
) -> None:
    with pytest.raises(toolmesh.InvalidArgument, match="1500"):
        await client.call("color_depth", image=np.array([[1500]], dtype=np.uint16), bits=10)


@pytest.mark.parametrize(
    ("fmt", "magic", "media_type"),
    [
        ("png", b"\x89PNG", "image/png"),
        ("jpeg", b"\xff\xd8\xff", "image/jpeg"),
        ("webp", b"RIFF", "image/webp"),
        ("bmp", b"BM", "image/bmp"),
        ("tiff", b"II*\x00", "image/tiff"),
    ],
)
async def test_convert_format_writes_real_files(
    client: toolmesh.Client, rgb_pattern: np.ndarray, fmt: str, magic: bytes, media_type: str
) -> None:
    result = await client.call("convert_format", image=rgb_pattern, format=fmt)
    assert result["data"].startswith(magic)
    assert result["media_type"] == media_type
    decoded = np.asarray(Image.open(io.BytesIO(result["data"])).convert("RGB"))
    assert decoded.shape == rgb_pattern.shape
    if fmt in ("png", "bmp", "tiff"):  # lossless
        np.testing.assert_array_equal(decoded, rgb_pattern)
