"""The sandbox's pipe protocol: length-prefixed ``toolmesh.v1.Value`` messages.

Both directions use the SDK's own wire types, so images and bytes cross without
base64, and the host never unpickles anything the child wrote: a compromised child
can at worst send a malformed message, which decodes to an error.
"""

from __future__ import annotations

import struct
from typing import Any

from toolmesh.v1 import values_pb2
from toolmesh.wire import decode_value, encode_value, raw_image_to_pil

__all__ = ["HEADER", "MAX_FRAME", "decode", "encode"]

HEADER = struct.Struct(">I")
MAX_FRAME = 512 * 1024 * 1024


def encode(payload: dict[str, Any]) -> bytes:
    """A frame: 4-byte big-endian length, then the serialized Value."""
    data: bytes = encode_value(payload).SerializeToString()
    if len(data) > MAX_FRAME:
        raise ValueError(f"message of {len(data)} bytes exceeds the {MAX_FRAME}-byte limit")
    return HEADER.pack(len(data)) + data


def decode(data: bytes) -> dict[str, Any]:
    """The payload of a frame's body; images become PIL images."""
    value = values_pb2.Value()
    value.ParseFromString(data)
    payload = decode_value(value, raw_image_to_pil)
    if not isinstance(payload, dict):
        raise ValueError("a sandbox message must be a mapping")
    return payload
