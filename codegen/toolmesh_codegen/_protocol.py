"""The sandbox's pipe protocol: length-prefixed ``toolmesh.v1.Value`` messages.

Both directions use the SDK's own wire types, so images and bytes cross without
base64, and the host never unpickles anything the child wrote: a compromised child
can at worst send a malformed message, which the host treats as a crash (it kills
the child).

Messages, host → child: ``{"run": {...}}`` then ``{"reply": id, "value"|"error": ...}``
for each call; child → host: ``{"call": {"id", "function", "arguments"}}`` and at last
``{"done": {...}}``. The zygote speaks a line protocol of its own (``_zygote``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from toolmesh.v1 import values_pb2
from toolmesh.wire import RawImage, decode_value, encode_value, raw_image_to_pil

__all__ = [
    "HEADER",
    "MAX_FRAME",
    "MAX_MESSAGE_CHARS",
    "MAX_RESULT",
    "decode",
    "encode",
    "keep_raw",
]

HEADER = struct.Struct(">I")
#: Largest frame either side accepts (inputs and call results can be large images).
MAX_FRAME = 256 * 1024 * 1024
#: Largest result (or call arguments) a child may send back.
MAX_RESULT = 16 * 1024 * 1024
#: Exception messages and stderr tails are cut to this many characters.
MAX_MESSAGE_CHARS = 64 * 1024


def encode(payload: dict[str, Any], limit: int = MAX_FRAME) -> bytes:
    """A frame: 4-byte big-endian length, then the serialized Value.

    Raises:
        ValueError: the message is longer than ``limit`` bytes.
    """
    data: bytes = encode_value(payload).SerializeToString()
    if len(data) > limit:
        raise ValueError(f"message of {len(data)} bytes exceeds the {limit}-byte limit")
    return HEADER.pack(len(data)) + data


def keep_raw(image: RawImage) -> RawImage:
    """Image decoder that keeps wire images as they are (the host forwards them)."""
    return image


def decode(data: bytes, images: Callable[[RawImage], Any] = raw_image_to_pil) -> dict[str, Any]:
    """The payload of a frame's body; images through ``images`` (default PIL images).

    Raises:
        ValueError: the body is not a mapping (a protobuf ``DecodeError`` is raised as
            is; callers treat both as a broken peer).
    """
    value = values_pb2.Value()
    value.ParseFromString(data)
    payload = decode_value(value, images)
    if not isinstance(payload, dict):
        raise ValueError("a sandbox message must be a mapping")
    return payload
