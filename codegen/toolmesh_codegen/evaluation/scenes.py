"""Synthetic pictures the question set asks about, drawn with Pillow from a fixed
description, so the right answer is known by construction (the colour of a quarter,
the number of red cells) rather than by a model's guess.

Colours are drawn at the anchors a colour namer would use (pure enough that any
nearest-colour naming agrees); every scene is the same image on every run.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageDraw

__all__ = ["COLOURS", "SCENES", "scene", "scene_png"]

#: The colours scenes are drawn in, by the name a question's answer uses.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 20, 20),
    "green": (0, 160, 0),
    "blue": (20, 40, 220),
    "yellow": (255, 220, 0),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
}


def _canvas(width: int, height: int, colour: str = "white") -> Image.Image:
    return Image.new("RGB", (width, height), COLOURS[colour])


def _cells(columns: int, rows: int, colours: list[str], size: int = 80) -> Image.Image:
    """A grid of equal cells, coloured row by row, left to right."""
    image = _canvas(columns * size, rows * size)
    draw = ImageDraw.Draw(image)
    for index, colour in enumerate(colours):
        x, y = (index % columns) * size, (index // columns) * size
        draw.rectangle((x, y, x + size - 1, y + size - 1), fill=COLOURS[colour])
    return image


def _quadrants() -> Image.Image:
    """200×200: red top-left, green top-right, blue bottom-left, yellow bottom-right."""
    return _cells(2, 2, ["red", "green", "blue", "yellow"], size=100)


def _stripes() -> Image.Image:
    """300×100: three vertical stripes, blue, white, red."""
    return _cells(3, 1, ["blue", "white", "red"], size=100)


def _shapes() -> Image.Image:
    """240×160 white: a large red rectangle filling most of the left half, a small blue
    square in the right half."""
    image = _canvas(240, 160)
    draw = ImageDraw.Draw(image)
    draw.rectangle((8, 8, 111, 151), fill=COLOURS["red"])
    draw.rectangle((160, 60, 189, 89), fill=COLOURS["blue"])
    return image


def _dark_over_light() -> Image.Image:
    """160×120: black top half, white bottom half."""
    image = _canvas(160, 120)
    ImageDraw.Draw(image).rectangle((0, 0, 159, 59), fill=COLOURS["black"])
    return image


def _portrait() -> Image.Image:
    """120×200 (taller than wide), green."""
    return _canvas(120, 200, "green")


def _grid() -> Image.Image:
    """240×160: 3 columns × 2 rows: red, green, red / blue, red, yellow."""
    return _cells(3, 2, ["red", "green", "red", "blue", "red", "yellow"])


SCENES: dict[str, Callable[[], Image.Image]] = {
    "quadrants": _quadrants,
    "stripes": _stripes,
    "shapes": _shapes,
    "dark_over_light": _dark_over_light,
    "portrait": _portrait,
    "grid": _grid,
}


def scene(name: str) -> Image.Image:
    """The scene ``name`` (a key of :data:`SCENES`), freshly drawn.

    Raises:
        KeyError: no such scene.
    """
    return SCENES[name]()


def scene_png(name: str) -> bytes:
    """The scene as PNG bytes (lossless: the colours stay exact)."""
    buffer = io.BytesIO()
    scene(name).save(buffer, format="PNG")
    return buffer.getvalue()
