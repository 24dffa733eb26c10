"""dominant_color and the colour names, on synthetic images."""

from __future__ import annotations

import numpy as np
import pytest

from toolmesh_models.color import NAMED_COLORS, color_name, dominant_color
from toolmesh_models.errors import ArgumentError


@pytest.mark.parametrize("name", sorted(NAMED_COLORS))
def test_every_anchor_names_itself(name: str) -> None:
    assert color_name(NAMED_COLORS[name]) == name


def test_most_common_not_average() -> None:
    image = np.zeros((10, 10, 3), np.uint8)
    image[:, :6] = (0, 160, 0)
    image[:, 6:] = (220, 20, 20)
    found = dominant_color(image)
    assert found.rgb == (0, 160, 0) and found.name == "green" and found.fraction == 0.6
    assert dominant_color(image, [6, 0, 10, 10]).name == "red"
    partial = dominant_color(image, [5.5, -3, 7.2, 20])  # columns 5..7 (pixels touched), all rows
    assert partial.name == "red" and partial.fraction == pytest.approx(2 / 3)


def test_grey_and_alpha_images() -> None:
    assert dominant_color(np.full((4, 4, 1), 250, np.uint8)).name == "white"
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 2] = 128
    assert dominant_color(rgba).name == "navy"


@pytest.mark.parametrize(
    "box", [[0, 0, 0, 5], [20, 20, 30, 30], [1, 2, 3], [0, 0, float("nan"), 3]]
)
def test_bad_boxes(box: list[float]) -> None:
    with pytest.raises(ArgumentError):
        dominant_color(np.zeros((10, 10, 3), np.uint8), box)
