"""Reading a stream front to back: fixed-size fields, LEB128 varints and the rest, where
every shortfall is one :class:`~jaxcodec.errors.BitstreamError` line."""

from __future__ import annotations

import struct

from jaxcodec.errors import BitstreamError

MAX_VARINT_BITS = 35  # five bytes: the largest size field a stream may carry


def varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, high bit set on all but the last byte."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class ByteReader:
    """A cursor over ``data``. ``codec`` names the stream in errors (``"k-means stream is
    truncated"``); without it, a shortfall names the field it ends in and the length."""

    def __init__(self, data: bytes, codec: str | None = None):
        self.data, self.pos, self.codec = bytes(data), 0, codec

    def take(self, size: int, field: str = "") -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            if self.codec:
                raise BitstreamError(f"{self.codec} stream is truncated")
            raise BitstreamError(f"truncated stream: it ends after {len(self.data)} bytes, inside the {field}")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt: str, field: str) -> tuple:
        """Little-endian ``struct`` fields."""
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), field))

    def varint(self, field: str = "size field") -> int:
        value = 0
        for shift in range(0, MAX_VARINT_BITS, 7):
            byte = self.take(1, field)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise BitstreamError(f"{self.codec or 'the'} stream has a malformed {field}")

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk
