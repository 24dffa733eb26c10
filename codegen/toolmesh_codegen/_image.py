"""The image type programs see: a proxy that exposes an allow-list of Pillow's reads.

Programs never hold a Pillow object. Pillow's surface is large and some of it reaches
the operating system (``tobytes("libtiff", ..., fd)`` writes to a raw file
descriptor, ``frombytes`` reads from one, ``save`` opens files), so a deny-list of
attribute names was one missed method away from the process's pipes. The proxy is
the allow-list instead: what the Function documents and the corpus use, with
arguments checked to be plain data before they reach Pillow.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

__all__ = ["IMAGE_ATTRIBUTES", "SandboxImage", "unwrap_image", "wrap_image"]

#: Attributes and methods a program may use on an image (also what the validator
#: lists in its messages).
IMAGE_ATTRIBUTES = frozenset(
    {
        "size", "width", "height", "mode", "crop", "resize", "rotate", "convert",
        "getpixel", "transpose", "getbbox", "getcolors", "getextrema", "histogram",
        "getbands", "getchannel", "getdata", "copy", "reduce",
    }
)  # fmt: skip

_MODES = frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "HSV", "I", "F"})


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, not {type(value).__name__}")
    return value


def _numbers(value: Any, count: int, what: str) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != count:
        raise TypeError(f"{what} must be a sequence of {count} numbers")
    return tuple(_number(v, what) for v in value)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an integer, not {type(value).__name__}")
    return value


class SandboxImage:
    """An image as a program sees it: size, mode, pixels and new images, nothing else.

    Every method returns plain data or a new ``SandboxImage``; the Pillow image
    inside is reachable only through names starting with ``_``, which programs
    cannot write.
    """

    __slots__ = ("_pil",)

    def __init__(self, pil: Image.Image) -> None:
        self._pil = pil

    def __repr__(self) -> str:
        return f"<image mode={self._pil.mode} size={self._pil.width}x{self._pil.height}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SandboxImage):
            return NotImplemented
        a, b = self._pil, other._pil
        return bool(a.mode == b.mode and a.size == b.size and a.tobytes() == b.tobytes())

    __hash__ = None  # type: ignore[assignment]

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return self._pil.size

    @property
    def width(self) -> int:
        return self._pil.width

    @property
    def height(self) -> int:
        return self._pil.height

    @property
    def mode(self) -> str:
        return self._pil.mode

    def crop(self, box: Any) -> SandboxImage:
        """The region ``(left, upper, right, lower)``."""
        left, upper, right, lower = _numbers(box, 4, "crop box")
        return SandboxImage(self._pil.crop((int(left), int(upper), int(right), int(lower))))

    def resize(self, size: Any, resample: Any = None) -> SandboxImage:
        width, height = _numbers(size, 2, "size")
        method = None if resample is None else _int(resample, "resample")
        return SandboxImage(self._pil.resize((int(width), int(height)), method))

    def rotate(self, angle: Any, expand: Any = False) -> SandboxImage:
        return SandboxImage(self._pil.rotate(_number(angle, "angle"), expand=bool(expand)))

    def convert(self, mode: Any) -> SandboxImage:
        if mode not in _MODES:
            raise ValueError(f"unsupported mode {mode!r}; use one of {', '.join(sorted(_MODES))}")
        return SandboxImage(self._pil.convert(str(mode)))

    def transpose(self, method: Any) -> SandboxImage:
        return SandboxImage(self._pil.transpose(Image.Transpose(_int(method, "method"))))

    def reduce(self, factor: Any) -> SandboxImage:
        return SandboxImage(self._pil.reduce(_int(factor, "factor")))

    def copy(self) -> SandboxImage:
        return SandboxImage(self._pil.copy())

    def getchannel(self, channel: Any) -> SandboxImage:
        if not isinstance(channel, (int, str)) or isinstance(channel, bool):
            raise TypeError("channel must be an index or a band name")
        return SandboxImage(self._pil.getchannel(channel))

    def getpixel(self, xy: Any) -> Any:
        x, y = _numbers(xy, 2, "xy")
        return self._pil.getpixel((int(x), int(y)))

    def getbbox(self) -> tuple[int, int, int, int] | None:
        return self._pil.getbbox()

    def getcolors(self, maxcolors: Any = 256) -> list[tuple[int, Any]] | None:
        return self._pil.getcolors(_int(maxcolors, "maxcolors"))

    def getextrema(self) -> Any:
        return self._pil.getextrema()

    def histogram(self) -> list[int]:
        return self._pil.histogram()

    def getbands(self) -> tuple[str, ...]:
        return self._pil.getbands()

    def getdata(self) -> list[Any]:
        """Every pixel, row by row, as a list."""
        return list(self._pil.getdata())


def wrap_image(pil: Image.Image) -> SandboxImage:
    """The program's view of ``pil``."""
    return SandboxImage(pil)


def unwrap_image(image: SandboxImage) -> Image.Image:
    """The Pillow image behind a proxy (runtime code only; programs cannot reach it)."""
    return image._pil
