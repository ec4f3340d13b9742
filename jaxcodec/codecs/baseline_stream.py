"""The image size every baseline stream (bicubic, k-means) carries: two unsigned LEB128
varints, height then width, bounded so that a forged header cannot make a decoder allocate
more than :data:`MAX_PIXELS` pixels."""

from __future__ import annotations

from jaxcodec.codecs.byte_reader import ByteReader, varint
from jaxcodec.errors import BitstreamError, ImageError

MAX_SIDE, MAX_PIXELS = 65535, 2**26  # bounds what a decoder allocates for a forged header


def size_header(image_shape: tuple[int, ...]) -> bytes:
    """``varint(H) + varint(W)`` of an image of ``image_shape``; an :class:`ImageError` beyond the bounds."""
    height, width = image_shape[:2]
    if height > MAX_SIDE or width > MAX_SIDE or height * width > MAX_PIXELS:
        raise ImageError(f"image of {height}x{width} is larger than the baselines take ({MAX_PIXELS} px)")
    return varint(height) + varint(width)


def read_size(reader: ByteReader) -> tuple[int, int]:
    """The ``(H, W)`` a stream declares, read at the reader's cursor and checked against the bounds."""
    height, width = reader.varint(), reader.varint()
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE and height * width <= MAX_PIXELS):
        raise BitstreamError(f"{reader.codec} stream has an invalid image size {height}x{width}")
    return height, width
