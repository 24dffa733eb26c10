"""The five image operations (greyscale, resize, rotate, color_depth, convert_format).

Pure functions on H × W × C arrays, kept out of the Triton ``model.py`` files so
they are unit-tested directly; each model only adapts one of them to tensors.
Every argument is checked here too, because Triton clients other than the
gateway (tritonclient, perf_analyzer) skip the gateway's JSON Schema checks.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .errors import ArgumentError
from .imaging import from_pil, to_pil, to_uint8

__all__ = [
    "FORMATS",
    "MAX_SIDE",
    "color_depth",
    "convert_format",
    "greyscale",
    "resize",
    "rotate",
]

MAX_SIDE = 8192
"""Largest width or height :func:`resize` produces."""

FORMATS: dict[str, tuple[str, str]] = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
    "bmp": ("BMP", "image/bmp"),
    "tiff": ("TIFF", "image/tiff"),
}
"""Formats of :func:`convert_format`: name → (Pillow format, media type)."""

_NO_ALPHA = frozenset({"jpeg", "bmp"})
"""Formats written without alpha: JPEG has none; BMP readers (Pillow's too) ignore it."""


def greyscale(image: np.ndarray) -> np.ndarray:
    """Return the H × W × 1 ``uint8`` luma of ``image``.

    ITU-R 601-2 luma, L = R·299/1000 + G·587/1000 + B·114/1000, computed by
    Pillow's ``convert("L")`` so results match what Pillow users get; alpha is
    ignored, grey input is returned as is.
    """
    return from_pil(to_pil(image).convert("L"))


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Return ``image`` resized to ``width`` × ``height`` pixels (bilinear, same channels).

    Raises:
        ArgumentError: ``width`` or ``height`` is outside 1..:data:`MAX_SIDE`.
    """
    for name, value in (("width", width), ("height", height)):
        if not 1 <= value <= MAX_SIDE:
            raise ArgumentError(f"{name} must be in 1..{MAX_SIDE} pixels, got {value}")
    resized = to_pil(image).resize((width, height), Image.Resampling.BILINEAR)
    return from_pil(resized)


def rotate(image: np.ndarray, angle: int) -> np.ndarray:
    """Return ``image`` rotated by ``angle`` degrees counter-clockwise (as Pillow's ``rotate``).

    Exact (a transpose of pixels, no resampling): four rotations of 90 give the
    original back, and 90 or 270 swap width and height.

    Raises:
        ArgumentError: ``angle`` is not a multiple of 90.
    """
    if angle % 90:
        raise ArgumentError(
            f"angle must be a multiple of 90 degrees (counter-clockwise), got {angle}"
        )
    return np.ascontiguousarray(np.rot90(to_uint8(image), k=(angle // 90) % 4))


def color_depth(image: np.ndarray, bits: int) -> np.ndarray:
    """Map an image whose samples are ``bits`` deep to 8 bits.

    Each sample v becomes round(v · 255 / (2^bits − 1)): 0 stays 0 and the
    largest ``bits``-bit value becomes 255. (The quotient is never exactly
    halfway between two integers, so the rounding rule does not matter.)

    Args:
        image: H × W × C ``uint8`` or ``uint16`` samples, e.g. 10-bit data in a
            16-bit PNG.
        bits: The samples' depth, 1..16.

    Raises:
        ArgumentError: ``bits`` is outside 1..16, or a sample exceeds 2^bits − 1
            (the image is deeper than ``bits`` says).
    """
    if not 1 <= bits <= 16:
        raise ArgumentError(f"bits must be in 1..16, got {bits}")
    maximum = (1 << bits) - 1
    peak = int(image.max())
    if peak > maximum:
        raise ArgumentError(
            f"the image has a sample of {peak}, more than {maximum}, the largest {bits}-bit "
            "value; pass the image's real bit depth as bits"
        )
    wide = image.astype(np.uint32)
    return ((wide * 510 + maximum) // (2 * maximum)).astype(np.uint8)


def convert_format(image: np.ndarray, format: str, quality: int) -> tuple[bytes, str]:
    """Encode ``image`` as a file of another format.

    Samples are written as 8 bits; JPEG and BMP drop the alpha channel (JPEG has
    none, and BMP readers ignore it).

    Args:
        image: H × W × C image.
        format: A key of :data:`FORMATS`.
        quality: 1..100, used by JPEG and WebP, ignored by the lossless formats.

    Returns:
        The file's bytes and its media type (e.g. ``image/png``).

    Raises:
        ArgumentError: Unknown format or quality out of range.
    """
    if format not in FORMATS:
        raise ArgumentError(f"unknown format {format!r}; expected one of: {', '.join(FORMATS)}")
    if not 1 <= quality <= 100:
        raise ArgumentError(f"quality must be in 1..100, got {quality}")
    pil_format, media_type = FORMATS[format]
    picture = to_pil(image)
    if format in _NO_ALPHA and picture.mode == "RGBA":
        picture = picture.convert("RGB")
    options = {"quality": quality} if format in ("jpeg", "webp") else {}
    buffer = io.BytesIO()
    picture.save(buffer, pil_format, **options)
    return buffer.getvalue(), media_type
