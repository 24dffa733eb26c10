"""The five image operations, as pure functions."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from toolmesh_models import ops
from toolmesh_models.errors import ArgumentError
from toolmesh_models.imaging import decode


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return np.random.default_rng(11).integers(0, 256, (37, 53, 3), dtype=np.uint8)


def test_greyscale_is_pillow_luma(rgb: np.ndarray) -> None:
    grey = ops.greyscale(rgb)
    assert grey.shape == (37, 53, 1) and grey.dtype == np.uint8
    assert np.array_equal(grey[:, :, 0], np.asarray(Image.fromarray(rgb).convert("L")))
    r, g, b = (rgb[:, :, i].astype(np.int64) for i in range(3))
    luma = (r * 299 + g * 587 + b * 114) / 1000
    assert np.abs(grey[:, :, 0] - luma).max() <= 1


def test_greyscale_ignores_alpha_and_keeps_grey(rgb: np.ndarray) -> None:
    rgba = np.concatenate([rgb, np.zeros((*rgb.shape[:2], 1), np.uint8)], axis=2)
    assert np.array_equal(ops.greyscale(rgba), ops.greyscale(rgb))
    grey = ops.greyscale(rgb)
    assert np.array_equal(ops.greyscale(grey), grey)


def test_resize(rgb: np.ndarray) -> None:
    out = ops.resize(rgb, 20, 10)
    assert out.shape == (10, 20, 3) and out.dtype == np.uint8
    expected = Image.fromarray(rgb).resize((20, 10), Image.Resampling.BILINEAR)
    assert np.array_equal(out, np.asarray(expected))
    assert ops.resize(rgb[:, :, :1], 7, 5).shape == (5, 7, 1)


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0), (8193, 10), (10, -1)])
def test_resize_bounds(rgb: np.ndarray, width: int, height: int) -> None:
    with pytest.raises(ArgumentError, match=r"must be in 1\.\.8192"):
        ops.resize(rgb, width, height)


def test_rotate_matches_pillow_and_is_exact(rgb: np.ndarray) -> None:
    pil = Image.fromarray(rgb)
    for angle in (90, 180, 270):
        assert np.array_equal(ops.rotate(rgb, angle), np.asarray(pil.rotate(angle, expand=True)))
    assert ops.rotate(rgb, 90).shape == (53, 37, 3)
    assert np.array_equal(ops.rotate(rgb, -90), ops.rotate(rgb, 270))
    assert np.array_equal(ops.rotate(rgb, 0), rgb)
    assert np.array_equal(ops.rotate(rgb, 450), ops.rotate(rgb, 90))
    result = rgb
    for _ in range(4):
        result = ops.rotate(result, 90)
    assert np.array_equal(result, rgb)


@pytest.mark.parametrize("angle", [45, 1, -30])
def test_rotate_refuses_other_angles(rgb: np.ndarray, angle: int) -> None:
    with pytest.raises(ArgumentError, match="multiple of 90"):
        ops.rotate(rgb, angle)


@pytest.mark.parametrize("bits", [1, 8, 10, 12, 16])
def test_color_depth_formula(bits: int) -> None:
    maximum = 2**bits - 1
    samples = np.unique(np.linspace(0, maximum, 500).round().astype(np.uint16))
    image = samples.reshape(1, -1, 1)
    out = ops.color_depth(image, bits)
    assert out.dtype == np.uint8 and out.shape == image.shape
    expected = [round(int(v) * 255 / maximum) for v in samples]
    assert out.ravel().tolist() == expected
    assert out.ravel()[0] == 0 and out.ravel()[-1] == 255


def test_color_depth_refuses_deeper_samples() -> None:
    image = np.array([[[0, 512, 1024]]], dtype=np.uint16)
    with pytest.raises(ArgumentError) as caught:
        ops.color_depth(image, 10)
    assert "1024" in str(caught.value) and "1023" in str(caught.value)


@pytest.mark.parametrize("bits", [0, 17])
def test_color_depth_bits_bounds(bits: int) -> None:
    with pytest.raises(ArgumentError, match=r"bits must be in 1\.\.16"):
        ops.color_depth(np.zeros((1, 1, 1), np.uint16), bits)


@pytest.mark.parametrize(
    ("fmt", "pillow", "media_type"),
    [
        ("png", "PNG", "image/png"),
        ("jpeg", "JPEG", "image/jpeg"),
        ("webp", "WEBP", "image/webp"),
        ("bmp", "BMP", "image/bmp"),
        ("tiff", "TIFF", "image/tiff"),
    ],
)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_convert_format(
    rgb: np.ndarray, fmt: str, pillow: str, media_type: str, channels: int
) -> None:
    alpha = np.full((*rgb.shape[:2], 1), 200, np.uint8)
    image = {1: rgb[:, :, :1], 3: rgb, 4: np.concatenate([rgb, alpha], axis=2)}[channels]
    data, media = ops.convert_format(image, fmt, 90)
    assert media == media_type
    with Image.open(io.BytesIO(data)) as opened:
        assert opened.format == pillow and opened.size == (53, 37)
    decoded = decode(data)
    if fmt in ("jpeg", "bmp"):
        assert decoded.shape[2] == (1 if channels == 1 else 3)  # alpha dropped
    if fmt in ("png", "tiff", "bmp"):
        assert np.array_equal(decoded, image[:, :, : decoded.shape[2]])  # lossless


def test_convert_format_quality_changes_jpeg(rgb: np.ndarray) -> None:
    small, _ = ops.convert_format(rgb, "jpeg", 10)
    large, _ = ops.convert_format(rgb, "jpeg", 95)
    assert len(small) < len(large)


@pytest.mark.parametrize(
    ("fmt", "quality", "fragment"),
    [("gif", 90, "unknown format 'gif'"), ("PNG", 90, "unknown format"), ("png", 0, "quality")],
)
def test_convert_format_errors(rgb: np.ndarray, fmt: str, quality: int, fragment: str) -> None:
    with pytest.raises(ArgumentError, match=fragment):
        ops.convert_format(rgb, fmt, quality)
