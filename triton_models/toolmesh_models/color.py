"""``dominant_color``: the most common colour in an image region, with a plain name.

NumPy only. Pixels are quantised to a 4-bit-per-channel grid (4,096 bins); the
fullest bin wins and its pixels' mean is the answer, so a flat region gives its
exact colour and a textured one its most frequent shade (not the average of
everything, which would turn a red-and-green flag brown).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .errors import ArgumentError
from .imaging import to_rgb8

__all__ = ["NAMED_COLORS", "DominantColor", "color_name", "crop", "dominant_color", "region"]

#: Basic colour names and their sRGB anchors (CSS values), the vocabulary of the answer.
NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
    "silver": (192, 192, 192),
    "white": (255, 255, 255),
    "red": (220, 20, 20),
    "maroon": (128, 0, 0),
    "orange": (255, 140, 0),
    "brown": (139, 69, 19),
    "beige": (200, 170, 130),
    "yellow": (255, 220, 0),
    "olive": (128, 128, 0),
    "green": (0, 160, 0),
    "lime": (50, 205, 50),
    "teal": (0, 128, 128),
    "cyan": (0, 220, 220),
    "blue": (20, 40, 220),
    "navy": (0, 0, 128),
    "purple": (128, 0, 128),
    "magenta": (220, 0, 220),
    "pink": (255, 160, 190),
}

_NAMES = list(NAMED_COLORS)
_ANCHORS = np.array([NAMED_COLORS[n] for n in _NAMES], dtype=np.float64)


class DominantColor(NamedTuple):
    rgb: tuple[int, int, int]
    name: str
    fraction: float
    """Share of the region's pixels in the winning colour bin, in (0, 1]."""


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB (0–255, [..., 3]) → CIE L*a*b* (D65): distances there follow perception."""
    c = rgb / 255.0
    linear = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = linear @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )


_ANCHORS_LAB = _to_lab(_ANCHORS)


def color_name(rgb: Sequence[int]) -> str:
    """The nearest basic colour name (CIE L*a*b* distance)."""
    lab = _to_lab(np.asarray(rgb, dtype=np.float64))
    return _NAMES[int(np.argmin(((_ANCHORS_LAB - lab) ** 2).sum(axis=1)))]


def region(height: int, width: int, box: Sequence[float]) -> tuple[slice, slice]:
    """Row and column slices of ``box`` (x1, y1, x2, y2 in pixels) clipped to a height × width image.

    Raises:
        ArgumentError: The box has not 4 numbers, or holds no pixel after clipping.
    """
    if len(box) != 4:
        raise ArgumentError(f"box must be [x1, y1, x2, y2], got {len(box)} numbers")
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(np.isfinite([x1, y1, x2, y2])):
        raise ArgumentError(f"box {[x1, y1, x2, y2]} has a non-finite coordinate")
    left, top = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
    right, bottom = min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2)))
    if right <= left or bottom <= top:
        raise ArgumentError(
            f"box {[x1, y1, x2, y2]} holds no pixel of the {width}×{height} image "
            "(need x1 < x2, y1 < y2, overlapping the image)"
        )
    return slice(top, bottom), slice(left, right)


def crop(image: np.ndarray, box: Sequence[float] | None) -> np.ndarray:
    """The pixels of ``box`` (x1, y1, x2, y2 in pixels, clipped to the image); all if None/empty.

    Raises:
        ArgumentError: See :func:`region`.
    """
    if box is None or len(box) == 0:
        return image
    rows, columns = region(image.shape[0], image.shape[1], box)
    return image[rows, columns]


def dominant_color(image: np.ndarray, box: Sequence[float] | None = None) -> DominantColor:
    """The most common colour of ``image`` inside ``box`` (the whole image by default)."""
    pixels = to_rgb8(crop(image, box)).reshape(-1, 3)
    bins = (pixels >> 4).astype(np.int32)
    keys = (bins[:, 0] << 8) | (bins[:, 1] << 4) | bins[:, 2]
    counts = np.bincount(keys, minlength=4096)
    winner = int(np.argmax(counts))
    mean = pixels[keys == winner].mean(axis=0)
    rgb = tuple(round(float(v)) for v in mean)
    return DominantColor(
        (rgb[0], rgb[1], rgb[2]), color_name(rgb), float(counts[winner] / len(keys))
    )
