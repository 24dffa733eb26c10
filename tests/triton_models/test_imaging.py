"""Decoding untrusted image bytes and converting between the contract's layouts."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from toolmesh.data import STREET_FRAMES
from toolmesh_models.errors import ArgumentError
from toolmesh_models.imaging import check_array, decode, decode_reduced, to_rgb8, to_uint8

STREET = STREET_FRAMES
ADAM7 = [
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
]


def encode(array: np.ndarray, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def filtered(rows: np.ndarray, bpp: int) -> bytes:
    """PNG-filter byte rows, cycling through the five filter types (an independent encoder)."""
    out = bytearray()
    prior = np.zeros(rows.shape[1], dtype=np.int32)
    for index, row in enumerate(rows.astype(np.int32)):
        kind = index % 5
        left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        upper_left = np.concatenate([np.zeros(bpp, np.int32), prior[:-bpp]])
        if kind == 0:
            predicted = np.zeros_like(row)
        elif kind == 1:
            predicted = left
        elif kind == 2:
            predicted = prior
        elif kind == 3:
            predicted = (left + prior) // 2
        else:
            estimate = left + prior - upper_left
            pa, pb, pc = abs(estimate - left), abs(estimate - prior), abs(estimate - upper_left)
            predicted = np.where(
                (pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prior, upper_left)
            )
        out.append(kind)
        out += ((row - predicted) & 0xFF).astype(np.uint8).tobytes()
        prior = row
    return bytes(out)


def png16(array: np.ndarray, *, interlace: bool = False, exif: bytes = b"") -> bytes:
    """A 16-bit PNG written without Pillow (which cannot write 16-bit colour)."""
    height, width, channels = array.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    data = b""
    for x0, y0, dx, dy in ADAM7 if interlace else [(0, 0, 1, 1)]:
        sub = array[y0::dy, x0::dx]
        if sub.shape[0] and sub.shape[1]:
            rows = sub.astype(">u2").view(np.uint8).reshape(sub.shape[0], -1)
            data += filtered(rows, 2 * channels)
    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, int(interlace))
    extra = chunk(b"eXIf", exif) if exif else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", zlib.compress(data))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (23, 41, 3), dtype=np.uint8)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png_roundtrip(channels: int) -> None:
    array = np.random.default_rng(channels).integers(0, 256, (9, 13, channels), dtype=np.uint8)
    decoded = decode(encode(array))
    assert decoded.dtype == np.uint8
    assert np.array_equal(decoded, array)


def test_jpeg() -> None:
    y, x = np.mgrid[0:30, 0:50]
    smooth = np.stack([x * 5, y * 8, x + y], axis=2).astype(np.uint8)
    decoded = decode(encode(smooth, "JPEG", quality=95))
    assert decoded.shape == smooth.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - smooth).mean() < 3  # lossy, but the same picture


def test_street_jpeg() -> None:
    decoded = decode((STREET / "frame_000.jpg").read_bytes())
    assert decoded.shape == (576, 768, 3)


def test_palette_with_transparency_becomes_rgba() -> None:
    image = Image.new("P", (4, 3))
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.putpixel((1, 1), 1)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)
    decoded = decode(buffer.getvalue())
    assert decoded.shape == (3, 4, 4)
    assert tuple(decoded[1, 1]) == (255, 0, 0, 255)
    assert decoded[0, 0, 3] == 0


def test_cmyk_becomes_rgb() -> None:
    buffer = io.BytesIO()
    Image.new("CMYK", (5, 4), (0, 255, 255, 0)).save(buffer, "JPEG")
    decoded = decode(buffer.getvalue())
    assert decoded.shape == (4, 5, 3)
    assert decoded[0, 0, 0] > 200 and decoded[0, 0, 1] < 60  # red


def test_exif_orientation_is_applied(rgb: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90° clockwise turn
    data = encode(rgb, "PNG", exif=exif.tobytes())
    assert np.array_equal(decode(data), np.rot90(rgb, -1))


def test_grey_16bit_png_stays_uint16() -> None:
    grey = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)
    decoded = decode(encode(grey[:, :, np.newaxis]))
    assert decoded.dtype == np.uint16 and decoded.shape == (16, 16, 1)
    assert np.array_equal(decoded[:, :, 0], grey)


@pytest.mark.parametrize("channels", [2, 3, 4])
@pytest.mark.parametrize("interlace", [False, True])
def test_colour_16bit_png_is_exact(channels: int, interlace: bool) -> None:
    array = np.random.default_rng(channels).integers(0, 65536, (13, 11, channels), dtype=np.uint16)
    data = png16(array, interlace=interlace)
    decoded = decode(data)
    expected = array if channels != 2 else array[:, :, [0, 0, 0, 1]]  # grey+alpha → RGBA
    assert decoded.dtype == np.uint16
    assert np.array_equal(decoded, expected)
    # Pillow's own decoder keeps the high bytes: an independent check of the test encoder.
    with Image.open(io.BytesIO(data)) as pillow:
        assert np.array_equal(np.asarray(pillow.convert("RGBA"))[..., :3], expected[..., :3] >> 8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_colour_16bit_png_exif_orientation_matches_pillow(orientation: int) -> None:
    array = np.random.default_rng(orientation).integers(0, 65536, (5, 8, 3), dtype=np.uint16)
    exif = Image.Exif()
    exif[0x0112] = orientation
    raw_exif = exif.tobytes().removeprefix(b"Exif\x00\x00")
    deep = decode(png16(array, exif=raw_exif))
    shallow = decode(encode((array >> 8).astype(np.uint8), "PNG", exif=exif.tobytes()))
    assert np.array_equal(deep >> 8, shallow)


def tiff16(array: np.ndarray) -> bytes:
    """An uncompressed 16-bit TIFF written by hand (Pillow cannot write 16-bit colour)."""
    height, width, channels = array.shape
    pixels = array.astype("<u2").tobytes()
    bits_at = 8 + len(pixels)
    fields = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, channels, bits_at if channels > 2 else 16),
        (259, 3, 1, 1),
        (262, 3, 1, 2 if channels == 3 else 1),
        (273, 4, 1, 8),
        (277, 3, 1, channels),
        (278, 4, 1, height),
        (279, 4, 1, len(pixels)),
        (284, 3, 1, 1),
    ]
    ifd = struct.pack("<H", len(fields)) + b"".join(struct.pack("<HHII", *f) for f in fields)
    bits = struct.pack(f"<{channels}H", *[16] * channels)
    ifd_at = bits_at + len(bits)
    return b"II*\x00" + struct.pack("<I", ifd_at) + pixels + bits + ifd + b"\x00" * 4


def test_16bit_tiff() -> None:
    array = np.random.default_rng(8).integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    grey = decode(tiff16(array[:, :, :1]))
    assert grey.dtype == np.uint16 and np.array_equal(grey, array[:, :, :1])
    with pytest.raises(ArgumentError, match="16-bit colour TIFF cannot be decoded exactly"):
        decode(tiff16(array))  # Pillow would silently keep 8 of the 16 bits


def test_truncated_16bit_png() -> None:
    data = png16(np.full((40, 40, 3), 1000, dtype=np.uint16))
    cut = data[: len(data) // 2]
    with pytest.raises(ArgumentError, match="cannot decode the image"):
        decode(cut)
    broken = bytearray(data)
    broken[60] ^= 0xFF  # inside IDAT: the CRC no longer matches
    with pytest.raises(ArgumentError, match="CRC"):
        decode(bytes(broken))


def test_truncated_jpeg() -> None:
    data = (STREET / "frame_000.jpg").read_bytes()
    with pytest.raises(ArgumentError, match="truncated"):
        decode(data[: len(data) // 3])


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"hello, world", "not a known image format"),
        (b"\x89PNG\r\n\x1a\n", "cannot decode"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "cannot decode"),
    ],
)
def test_garbage(data: bytes, fragment: str) -> None:
    with pytest.raises(ArgumentError, match=fragment):
        decode(data)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    small = bytearray(encode(np.zeros((4, 4, 1), np.uint8)))
    body = struct.pack(">II", 20_000, 20_000) + bytes(small[24:29])  # claim 400 MP
    small[16:29] = body
    small[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + body))
    with pytest.raises(ArgumentError, match="more than the limit"):
        decode(bytes(small))
    with pytest.raises(ArgumentError, match="more than the limit of 100"):
        decode(encode(np.zeros((20, 20, 3), np.uint8)), max_pixels=100)
    header = struct.pack(">IIBBBBB", 20_000, 20_000, 16, 2, 0, 0, 0)
    bomb16 = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    with pytest.raises(ArgumentError, match="more than the limit"):
        decode(bomb16)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_only_raise_argument_error(data: bytes) -> None:
    try:
        array = decode(data)
    except ArgumentError:
        return
    assert array.ndim == 3 and array.shape[2] in (1, 3, 4)


HEADERS = [
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(HEADERS), st.binary(max_size=2048))
def test_random_bytes_behind_real_headers(header: bytes, rest: bytes) -> None:
    try:
        array = decode(header + rest)
    except ArgumentError:
        return
    assert array.ndim == 3 and array.shape[2] in (1, 3, 4)


SAMPLES = [
    png16(np.random.default_rng(5).integers(0, 65536, (6, 7, 3), dtype=np.uint16)),
    encode(np.random.default_rng(6).integers(0, 256, (6, 7, 3), dtype=np.uint8)),
    encode(np.random.default_rng(7).integers(0, 256, (16, 16, 3), dtype=np.uint8), "JPEG"),
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(SAMPLES), st.data())
def test_corrupted_files_only_raise_argument_error(sample: bytes, data: st.DataObject) -> None:
    corrupt = bytearray(sample)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(corrupt) - 1))
        corrupt[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(corrupt)))
    try:
        array = decode(bytes(corrupt[:cut]))
    except ArgumentError:
        return
    assert array.ndim == 3 and array.shape[2] in (1, 3, 4)


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.zeros((4, 4), np.uint8), "must have shape"),
        (np.zeros((4, 4, 2), np.uint8), "got [4, 4, 2]"),
        (np.zeros((0, 4, 3), np.uint8), "is empty"),
        (np.zeros((4, 4, 3), np.float32), "uint8 or uint16"),
    ],
)
def test_check_array(array: np.ndarray, fragment: str) -> None:
    with pytest.raises(ArgumentError) as caught:
        check_array(array, name="image_array")
    assert fragment in str(caught.value) and "image_array" in str(caught.value)


def test_to_uint8_and_rgb8() -> None:
    deep = np.array([[[0], [257], [65535], [32896]]], dtype=np.uint16)
    assert to_uint8(deep).ravel().tolist() == [0, 1, 255, 128]
    grey = np.array([[[7]]], dtype=np.uint8)
    assert to_rgb8(grey).tolist() == [[[7, 7, 7]]]
    rgba = np.array([[[1, 2, 3, 4]]], dtype=np.uint8)
    assert to_rgb8(rgba).tolist() == [[[1, 2, 3]]]


def _jpeg(size: tuple[int, int], *, exif: Image.Exif | None = None) -> bytes:
    frame = Image.open(STREET_FRAMES / "frame_000.jpg").convert("RGB").resize(size)
    out = io.BytesIO()
    frame.save(out, format="JPEG", quality=90, **({"exif": exif} if exif is not None else {}))
    return out.getvalue()


def test_decode_reduced_uses_jpeg_dct_scaling_at_twice_the_target() -> None:
    reduced = decode_reduced(_jpeg((1536, 1152)), (512, 512))
    assert reduced is not None
    assert reduced.size == (1536, 1152)  # what boxes are reported in
    assert reduced.image.size == (768, 576) and reduced.image.mode == "RGB"  # libjpeg's 1/2


def test_decode_reduced_below_twice_the_target_is_the_full_decode() -> None:
    data = (STREET_FRAMES / "frame_000.jpg").read_bytes()
    reduced = decode_reduced(data, (512, 512))
    assert reduced is not None and reduced.size == (768, 576)
    assert np.array_equal(np.asarray(reduced.image), decode(data))


def test_decode_reduced_leaves_every_other_file_to_decode() -> None:
    rgba = io.BytesIO()
    Image.new("RGBA", (8, 8), (1, 2, 3, 4)).save(rgba, format="PNG")
    rotated = Image.Exif()
    rotated[0x0112] = 6
    deep = io.BytesIO()
    Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16)).save(deep, format="PNG")
    for data in (rgba.getvalue(), _jpeg((64, 48), exif=rotated), deep.getvalue(), b"garbage"):
        assert decode_reduced(data, (512, 512)) is None


def test_decode_reduced_refuses_oversized_images() -> None:
    with pytest.raises(ArgumentError, match="more than the limit of 1,000"):
        decode_reduced(_jpeg((64, 48)), (512, 512), max_pixels=1000)
