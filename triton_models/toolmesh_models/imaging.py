"""Image decoding, validation and conversion shared by the image models.

Pure NumPy/Pillow code with no Triton import, so it is unit-tested directly.
Images travel as NumPy arrays of shape height × width × channels (1, 3 or 4
channels; ``uint8``, or ``uint16`` for 16-bit sources), the layout of the
tensor contract's ``P_array`` inputs, so an encoded file and a pixel array
reach a model's ``run`` in the same form.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ArgumentError

__all__ = [
    "CHANNELS",
    "MAX_PIXELS",
    "Reduced",
    "check_array",
    "decode",
    "decode_reduced",
    "from_pil",
    "to_pil",
    "to_rgb8",
    "to_uint8",
]

MAX_PIXELS = 50_000_000
"""Largest image (width × height) accepted: a 50 MP photo decodes to 150 MB of RGB,
and a tiny crafted file can claim far more (a decompression bomb)."""

CHANNELS = (1, 3, 4)
"""Channel counts an image may have: grey, RGB, RGBA."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_ORIENTATION = 0x0112
_TIFF_BITS_PER_SAMPLE = 258
# Adam7 passes as (x start, y start, x step, y step).
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)
# EXIF orientation → the array operation that ImageOps.exif_transpose applies.
_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def decode(data: bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an encoded image file into an H × W × C array.

    EXIF orientation is applied, so the array is the picture as a viewer shows it.
    16-bit PNGs stay ``uint16`` (Pillow alone would cut 16-bit colour PNGs to 8
    bits, which would make ``color_depth`` silently wrong); everything else is
    ``uint8``. Palette images become RGB (RGBA when they have transparency),
    CMYK and other colour spaces RGB, grey with alpha RGBA, grey one channel.
    Animated files give their first frame.

    Args:
        data: The file's bytes (JPEG, PNG, WebP, BMP, TIFF, GIF, …).
        max_pixels: Largest width × height accepted, checked before decoding.

    Returns:
        A C-contiguous array of shape (height, width, channels), channels in
        :data:`CHANNELS`.

    Raises:
        ArgumentError: The data is empty, not an image, truncated, corrupt,
            larger than ``max_pixels`` or in an unsupported sample format.
    """
    if not data:
        raise ArgumentError("the image is empty (0 bytes)")
    data = bytes(data)
    if data.startswith(_PNG_SIGNATURE):
        deep = _decode_png16_colour(data, max_pixels)
        if deep is not None:
            return deep
    try:
        with Image.open(io.BytesIO(data)) as opened:
            _check_size(opened.size, max_pixels)
            _refuse_deep_tiff(opened)
            image = ImageOps.exif_transpose(opened)
            array = _pil_to_array(image)
    except ArgumentError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own, higher limit, hit in open()
        raise ArgumentError(
            f"the image has more than the limit of {max_pixels:,} pixels ({exc}); "
            "scale it down first"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ArgumentError(
            f"cannot decode the image: not a known image format ({len(data)} bytes starting "
            f"{data[:8]!r}); send JPEG, PNG, WebP, BMP, TIFF or GIF"
        ) from exc
    except Exception as exc:
        # Pillow's format plugins report malformed input with many exception types
        # (OSError, SyntaxError, ValueError, struct.error, EOFError, ...); to the
        # caller each one means the same thing: these bytes are not a usable image.
        raise ArgumentError(f"cannot decode the image: {_describe(exc)}") from exc
    return np.ascontiguousarray(array)


class Reduced(NamedTuple):
    """An image decoded for a model that resizes it next (see :func:`decode_reduced`)."""

    image: Image.Image
    """RGB, at least the requested size in each dimension unless the file is smaller."""
    size: tuple[int, int]
    """The file's own width and height (what boxes are reported in)."""


def decode_reduced(
    data: bytes, size: tuple[int, int], *, max_pixels: int = MAX_PIXELS
) -> Reduced | None:
    """Decode 8-bit RGB or grey files straight to RGB, JPEGs at a reduced DCT scale.

    A model that resizes every image to ``size`` need not decode more pixels than
    that: libjpeg decodes at 1/2, 1/4 or 1/8 scale for the cost of the smaller
    image (Pillow's ``draft``), which it uses whenever the file is at least twice
    ``size`` in both dimensions. No array is made on the way: the caller resizes
    the Pillow image and converts once.

    Returns:
        The decoded image and the file's size, or None when the file needs
        :func:`decode`'s general path (EXIF rotation, 16 bits, alpha, palettes,
        CMYK, anything unreadable): call it, and it reports the errors.

    Raises:
        ArgumentError: The file claims more than ``max_pixels``.
    """
    try:
        opened = Image.open(io.BytesIO(data))
    except Exception:
        return None
    with opened:
        _check_size(opened.size, max_pixels)
        if opened.mode not in ("RGB", "L") or _orientation(opened) != 1:
            return None
        width, height = opened.size
        try:
            if opened.format == "JPEG":
                opened.draft("RGB", size)
            image = opened.convert("RGB")
        except Exception:
            return None
    return Reduced(image, (width, height))


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block: let decode() deal with the file
        return 0


def check_array(
    array: np.ndarray, *, name: str = "image_array", max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Check that ``array`` is an image in the contract's pixel layout.

    Args:
        array: The candidate image.
        name: The input's name, for the error message.
        max_pixels: Largest width × height accepted.

    Returns:
        ``array`` itself, so the call can be used inline.

    Raises:
        ArgumentError: Not H × W × C with C in (1, 3, 4), empty, too large, or
            neither ``uint8`` nor ``uint16``.
    """
    if array.ndim != 3 or array.shape[2] not in CHANNELS:
        raise ArgumentError(
            f"{name} must have shape [height, width, channels] with 1, 3 or 4 channels, "
            f"got {list(array.shape)}"
        )
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise ArgumentError(f"{name} is empty: shape {list(array.shape)}")
    _check_size((width, height), max_pixels)
    if array.dtype not in (np.uint8, np.uint16):
        raise ArgumentError(f"{name} must be uint8 or uint16, got {array.dtype}")
    return array


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Return ``array`` as ``uint8``, scaling 16-bit samples (0–65535 → 0–255, rounded).

    Raises:
        ArgumentError: The dtype is neither ``uint8`` nor ``uint16``.
    """
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    raise ArgumentError(f"image samples must be uint8 or uint16, got {array.dtype}")


def to_rgb8(array: np.ndarray) -> np.ndarray:
    """Return an H × W × 3 ``uint8`` RGB view of any contract image.

    Grey is repeated into the three channels and alpha is dropped (not
    composited), which is what a detector trained on opaque RGB photos expects.
    """
    array = to_uint8(check_array(array, name="image"))
    channels = array.shape[2]
    if channels == 1:
        return np.repeat(array, 3, axis=2)
    if channels == 4:
        return np.ascontiguousarray(array[:, :, :3])
    return array


def to_pil(array: np.ndarray) -> Image.Image:
    """Return a Pillow image (mode L, RGB or RGBA) for an H × W × C array.

    16-bit samples are scaled to 8 bits first: Pillow has no 16-bit colour mode,
    and the models' image outputs are ``uint8``.
    """
    array = to_uint8(check_array(array, name="image"))
    if array.shape[2] == 1:
        return Image.fromarray(np.ascontiguousarray(array[:, :, 0]))
    return Image.fromarray(np.ascontiguousarray(array))


def from_pil(image: Image.Image) -> np.ndarray:
    """Return a Pillow image's pixels as an H × W × C array (C = 1 for one band)."""
    array = np.asarray(image)
    return array[:, :, np.newaxis] if array.ndim == 2 else array


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ArgumentError(
            f"the image is {width}×{height} = {width * height:,} pixels, more than the "
            f"limit of {max_pixels:,}; scale it down first"
        )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _refuse_deep_tiff(image: Image.Image) -> None:
    """Refuse TIFFs with more than 8 bits per colour sample.

    Pillow decodes them to 8-bit RGB without saying so; ``color_depth`` would then
    map the wrong numbers. Grey 16-bit TIFFs decode exactly and pass.
    """
    tags = getattr(image, "tag_v2", None)
    if tags is None or image.mode not in ("RGB", "RGBA", "CMYK"):
        return
    bits = tags.get(_TIFF_BITS_PER_SAMPLE)
    depths = bits if isinstance(bits, tuple) else (bits,)
    if any(isinstance(d, int) and d > 8 for d in depths):
        raise ArgumentError(
            f"{max(depths)}-bit colour TIFF cannot be decoded exactly; send a 16-bit PNG "
            "or the pixels as an array"
        )


def _pil_to_array(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16"):
        array = np.asarray(image).astype(np.uint16)
    elif mode == "I":
        wide = np.asarray(image)
        if wide.size and (wide.min() < 0 or wide.max() > 65535):
            raise ArgumentError("32-bit integer images must hold values in 0..65535")
        array = wide.astype(np.uint16)
    elif mode == "F":
        raise ArgumentError("floating-point images are not supported")
    elif mode in ("L", "RGB", "RGBA"):
        array = np.asarray(image)
    elif mode in ("LA", "La", "PA"):
        array = np.asarray(image.convert("RGBA"))
    elif mode == "P":
        array = np.asarray(image.convert("RGBA" if "transparency" in image.info else "RGB"))
    elif mode == "1":
        array = np.asarray(image.convert("L"))
    else:  # CMYK, YCbCr, LAB, HSV, RGBX, RGBa, ...
        array = np.asarray(image.convert("RGB"))
    return array[:, :, np.newaxis] if array.ndim == 2 else array


def _decode_png16_colour(data: bytes, max_pixels: int) -> np.ndarray | None:
    """Decode a 16-bit RGB, RGBA or grey+alpha PNG exactly, or return None for other PNGs.

    Pillow keeps only the high byte of 16-bit colour PNGs. PNG's row filters work
    byte-wise between bytes that are one pixel apart, so each channel's two bytes
    form an independent stream: re-framed as a 16-bit grey PNG stream (which
    Pillow's C decoder reads exactly), each channel decodes at native speed.
    """
    if len(data) < 33 or data[12:16] != b"IHDR":
        return None  # let Pillow report what is wrong
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth != 16 or colour not in (2, 4, 6):
        return None
    if width == 0 or height == 0 or interlace not in (0, 1):
        raise ArgumentError(f"cannot decode the image: bad PNG header ({width}×{height})")
    _check_size((width, height), max_pixels)
    idat, exif = _png_chunks(data)
    channels = {2: 3, 4: 2, 6: 4}[colour]
    stride = 2 * channels
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    shapes = [
        ((height - y0 + dy - 1) // dy, (width - x0 + dx - 1) // dx) for x0, y0, dx, dy in passes
    ]
    shapes = [(rows, cols) for rows, cols in shapes if rows > 0 and cols > 0]
    expected = sum(rows * (1 + cols * stride) for rows, cols in shapes)
    try:
        raw = zlib.decompressobj().decompress(idat, expected)
    except zlib.error as exc:
        raise ArgumentError(f"cannot decode the image: corrupt PNG data ({exc})") from exc
    if len(raw) < expected:
        raise ArgumentError("cannot decode the image: the PNG data is truncated")
    flat = np.frombuffer(raw, dtype=np.uint8)
    planes = []
    for channel in range(channels):
        streams, offset = [], 0
        for rows, cols in shapes:
            block = flat[offset : offset + rows * (1 + cols * stride)].reshape(rows, -1)
            offset += block.size
            pixels = block[:, 1:].reshape(rows, cols, stride)[:, :, 2 * channel : 2 * channel + 2]
            streams.append(np.concatenate([block[:, :1], pixels.reshape(rows, 2 * cols)], axis=1))
        stream = b"".join(s.tobytes() for s in streams)
        try:
            plane = Image.frombytes(
                "I;16", (width, height), zlib.compress(stream, 0), "zip", "I;16B", interlace
            )
        except Exception as exc:  # e.g. an unknown filter type byte
            raise ArgumentError(f"cannot decode the image: {_describe(exc)}") from exc
        planes.append(np.asarray(plane).astype(np.uint16))
    if channels == 2:  # grey + alpha → RGBA, as for 8-bit LA images
        planes = [planes[0], planes[0], planes[0], planes[1]]
    array = np.stack(planes, axis=2)
    orient = _ORIENT.get(_exif_orientation(exif)) if exif else None
    return np.ascontiguousarray(orient(array) if orient else array)


def _png_chunks(data: bytes) -> tuple[bytes, bytes]:
    """Return the concatenated IDAT data and the eXIf chunk of a PNG, checking CRCs."""
    idat, exif, offset = [], b"", 8
    while offset + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        end = offset + 8 + length
        if end + 4 > len(data):
            break
        body = data[offset + 8 : end]
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(kind + body) != crc:
            raise ArgumentError(f"cannot decode the image: broken PNG chunk {kind!r} (CRC)")
        if kind == b"IDAT":
            idat.append(body)
        elif kind == b"eXIf":
            exif = body
        elif kind == b"IEND":
            break
        offset = end + 4
    if not idat:
        raise ArgumentError("cannot decode the image: the PNG has no image data (truncated?)")
    return b"".join(idat), exif


def _exif_orientation(exif: bytes) -> int:
    try:
        info = Image.Exif()
        info.load(exif)
        return int(info.get(_EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block does not make the pixels unusable
        return 1
