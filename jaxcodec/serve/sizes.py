"""The size an image file or a compressed stream declares, read from its header alone.

A decompression bomb is a small file whose header declares an enormous image: decoding
it would allocate gigabytes. The server reads the declared size first and refuses the
file (413) before any pixel is decoded:

* image files (PNG, JPEG, WebP, TIFF, BMP, PNM, AVIF, JPEG 2000, GIF): Pillow parses only
  the header when it opens a file; its own bomb guard (``Image.MAX_IMAGE_PIXELS``) counts as
  a refusal too;
* ``.jxc`` streams: the container's header (:func:`jaxcodec.codecs.container.unpack`, which checks
  the CRC but decodes nothing);
* standard codecs' streams (:func:`jaxcodec.codecs.standard.identify`): Pillow's header for JPEG,
  WebP, AVIF and JPEG 2000, and the codestream's ``SizeHeader`` for JPEG XL, which Pillow
  does not read (ISO/IEC 18181-1, Sec. A.2).
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from jaxcodec.codecs import standard as classical
from jaxcodec.codecs import container
from jaxcodec.errors import BitstreamError, ImageError, one_line
from jaxcodec.serve.errors import TooLarge

_JXL_CODESTREAM = b"\xff\x0a"
_JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
# Width / height of the preset aspect ratios of a JPEG XL SizeHeader (Sec. A.2, Table A.1).
_JXL_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


def image_size(data: bytes, what: str = "upload") -> tuple[int, int]:
    """``(width, height)`` an image file declares, without decoding its pixels.

    Raises:
      ImageError: not an image file Pillow recognises.
      TooLarge: Pillow's own guard refused the declared size as a decompression bomb.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return int(image.width), int(image.height)
    except Image.DecompressionBombError:
        raise TooLarge(f"{what} declares more than {Image.MAX_IMAGE_PIXELS} pixels") from None
    except UnidentifiedImageError:
        raise ImageError(f"{what} is not an image file (unrecognised data)") from None
    except Exception as error:  # Pillow's plugins raise many types on a damaged header
        raise ImageError(f"{what} is not a readable image: {one_line(error)}") from None


class _Bits:
    """Reads a byte string's bits, least significant first (JPEG XL's order)."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> int:
        value = 0
        for i in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise BitstreamError("JPEG XL header is truncated")
            value |= ((self.data[byte] >> (self.pos & 7)) & 1) << i
            self.pos += 1
        return value

    def u32_size(self) -> int:
        """``U32(1 + u(9), 1 + u(13), 1 + u(18), 1 + u(30))`` (Sec. A.2)."""
        return 1 + self.take((9, 13, 18, 30)[self.take(2)])


def _jxl_codestream(data: bytes) -> bytes:
    """The codestream of a bare JPEG XL file or of its ISO BMFF container (``jxlc`` box, or
    the first ``jxlp`` box)."""
    if data.startswith(_JXL_CODESTREAM):
        return data
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        if kind == b"jxlc":
            return data[pos + header:]
        if kind == b"jxlp":
            return data[pos + header + 4:]
        if size < header:
            break
        pos += size
    raise BitstreamError("JPEG XL container holds no codestream box")


def jpegxl_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of a JPEG XL file from its codestream's ``SizeHeader``."""
    stream = _jxl_codestream(bytes(data))
    if not stream.startswith(_JXL_CODESTREAM):
        raise BitstreamError("not a JPEG XL codestream (bad signature)")
    bits = _Bits(stream[2:])
    div8 = bits.take(1)
    height = 8 * (1 + bits.take(5)) if div8 else bits.u32_size()
    ratio = bits.take(3)
    if ratio:
        num, den = _JXL_RATIOS[ratio]
        width = height * num // den
    else:
        width = 8 * (1 + bits.take(5)) if div8 else bits.u32_size()
    return width, height


def stream_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` a ``.jxc`` stream or a standard codec's stream declares.

    Raises:
      BitstreamError: a damaged header or unrecognised data.
    """
    standard = classical.identify(data)
    if standard is None:
        header = container.unpack(data)[0]  # the container's header: nothing is decoded
        return int(header.width), int(header.height)
    body = bytes(data)
    if classical.identify(body[1:]) == standard and body[:1] == b"G":  # a grey stream's prefix
        body = body[1:]
    if standard == "jpegxl":
        return jpegxl_size(body)
    try:
        return image_size(body, what=f"{standard} stream")
    except ImageError as error:
        raise BitstreamError(str(error)) from None


def check_pixels(width: int, height: int, limit: int, what: str) -> None:
    """Raises :class:`TooLarge` when ``width × height`` exceeds ``limit``."""
    if width * height > limit:
        raise TooLarge(f"{what} declares {width}x{height} = {width * height} pixels; the limit is {limit}")
