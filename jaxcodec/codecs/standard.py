"""Standard image codecs behind the :class:`~jaxcodec.codecs.protocol.Codec` protocol.

The five standard codecs are the anchors learned codecs are measured against:

* ``jpeg``: libjpeg through Pillow, Huffman tables optimised per image (``optimize=True``,
  the "JPEG (optimized)" baseline of Tolunay & Ghalayini), 4:2:0 chroma subsampling for RGB,
  and a one-component JPEG for grey images. Quality is libjpeg's 1..100 scale.
* ``webp``: libwebp through Pillow, lossy, ``method=6`` (slowest, best). Quality 0..100.
* ``jpeg2000``: OpenJPEG through imagecodecs, a bare J2K codestream (no JP2 boxes, which add
  about 85 bytes that matter on 28x28 images). Quality is OpenJPEG's fixed-quality target,
  the PSNR in dB the encoder aims for (``tcp_distoratio``), so higher means better.
* ``avif``: libavif through imagecodecs, ``speed=6``. Quality 0..100.
* ``jpegxl``: libjxl through imagecodecs, ``effort=7``. Quality 0..100 (mapped by libjxl to
  a Butteraugli distance).

Every codec takes ``uint8`` ``(H, W, C)`` images with C = 1 or 3 and decodes to the same
shape. libwebp has no grey mode and imagecodecs encodes grey AVIF losslessly whatever the
quality, so for those two a grey image is replicated to RGB, the stream gets a one-byte
``b"G"`` prefix, and the decoder averages the three channels back into one. RGB streams
are plain files any viewer opens. Every codec works down to 1x1 pixels, but fixed headers
dominate tiny images: the smallest 28x28 grey streams are about 165 bytes for JPEG (its
tables), 60 for WebP and JPEG XL, 140 for JPEG 2000 and 300 for AVIF (1.7, 0.6, 1.4 and
3.1 bpp).

:mod:`jaxcodec.codecs.registry` builds them, and the papers' baselines, by name.
"""

from __future__ import annotations

import io
from typing import Any, Callable, Sequence

import imagecodecs
import numpy as np
from PIL import Image, UnidentifiedImageError

from jaxcodec.codecs.protocol import check_image
from jaxcodec.errors import BitstreamError, ConfigError

_GREY_PREFIX = b"G"


def check_quality(name: str, quality: Any, low: float, high: float) -> None:
    """Raises :class:`ConfigError` unless ``low <= quality <= high``."""
    if isinstance(quality, bool) or not isinstance(quality, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} quality must be a number in [{low}, {high}], got {quality!r}")
    if not low <= quality <= high:
        raise ConfigError(f"{name} quality must be in [{low}, {high}], got {quality!r}")


def _as_hwc(decoded: Any, data_name: str) -> np.ndarray:
    """Validates a decoder's output and gives it a channel axis."""
    array = np.asarray(decoded)
    if array.ndim == 2:
        array = array[..., None]
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] not in (1, 3):
        raise BitstreamError(
            f"{data_name} stream decodes to {array.dtype} {array.shape}, not a uint8 grey or RGB image"
        )
    return np.ascontiguousarray(array)


def _grey_to_rgb(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(image, 3, axis=2))


def _rgb_to_grey(image: np.ndarray) -> np.ndarray:
    """Averages the channels back; exact when the decoder returns equal channels."""
    return np.round(image.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)


class StandardCodec:
    """A standard codec: validation, grey handling and error wrapping around two functions.

    Args:
      name: registry name.
      description: one line for reports.
      qualities: default operating points, low rate to high rate.
      quality_range: the valid ``(low, high)`` range of ``quality``.
      encode_fn: ``(uint8 (H, W) or (H, W, 3), quality) -> bytes``.
      decode_fn: ``bytes -> array``.
      rgb_only: replicate grey images to RGB (see the module docstring).
    """

    def __init__(
        self,
        name: str,
        description: str,
        qualities: Sequence[Any],
        quality_range: tuple[float, float],
        encode_fn: Callable[[np.ndarray, Any], bytes],
        decode_fn: Callable[[bytes], Any],
        rgb_only: bool = False,
    ):
        self.name = name
        self.description = description
        self.quality_range = quality_range
        for quality in qualities:
            check_quality(name, quality, *quality_range)
        self.qualities = list(qualities)
        self._encode_fn = encode_fn
        self._decode_fn = decode_fn
        self._rgb_only = rgb_only

    def encode(self, image: np.ndarray, quality: Any) -> bytes:
        """Compresses a ``uint8`` ``(H, W, C)`` image at ``quality``."""
        image = check_image(image)
        check_quality(self.name, quality, *self.quality_range)
        grey = image.shape[2] == 1
        if grey and self._rgb_only:
            return _GREY_PREFIX + bytes(self._encode_fn(_grey_to_rgb(image), quality))
        return bytes(self._encode_fn(image[..., 0] if grey else image, quality))

    def decode(self, data: bytes) -> np.ndarray:
        """Decompresses a stream from :meth:`encode`; raises :class:`BitstreamError` on bad data."""
        data = bytes(data)
        grey = self._rgb_only and data[:1] == _GREY_PREFIX
        if grey:
            data = data[1:]
        try:
            decoded = self._decode_fn(data)
        except BitstreamError:
            raise
        except Exception as e:  # every library has its own exception types
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise BitstreamError(f"not a valid {self.name} stream: {message}") from None
        image = _as_hwc(decoded, self.name)
        if grey:
            if image.shape[2] != 3:
                raise BitstreamError(f"grey {self.name} stream does not hold an RGB image")
            image = _rgb_to_grey(image)
        return image

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _pil_encode(fmt: str, **options: Any) -> Callable[[np.ndarray, Any], bytes]:
    def encode(image: np.ndarray, quality: Any) -> bytes:
        buffer = io.BytesIO()
        extra = dict(options)
        if fmt == "JPEG" and image.ndim == 3:
            extra["subsampling"] = 2  # 4:2:0, libjpeg's default, stated explicitly
        Image.fromarray(image).save(buffer, format=fmt, quality=int(quality), **extra)
        return buffer.getvalue()

    return encode


def _pil_decode(fmt: str) -> Callable[[bytes], np.ndarray]:
    def decode(data: bytes) -> np.ndarray:
        try:
            opened = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise BitstreamError(f"not a {fmt} stream (unrecognised data)") from None
        with opened as image:
            if image.format != fmt:
                raise BitstreamError(f"stream is {image.format}, not {fmt}")
            if image.mode not in ("L", "RGB"):
                raise BitstreamError(f"{fmt} stream has mode {image.mode}, not L or RGB")
            image.load()
            return np.asarray(image)

    return decode


def _jpeg2000_encode(image: np.ndarray, quality: Any) -> bytes:
    return imagecodecs.jpeg2k_encode(
        image, level=float(quality), codecformat=imagecodecs.JPEG2K.CODEC.J2K
    )


def _avif_encode(image: np.ndarray, quality: Any) -> bytes:
    return imagecodecs.avif_encode(image, level=int(quality), speed=6)


def _jpegxl_encode(image: np.ndarray, quality: Any) -> bytes:
    return imagecodecs.jpegxl_encode(image, level=int(quality), effort=7)


_QUALITIES_0_100 = [5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95]


def jpeg(qualities: Sequence[Any] = (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)) -> StandardCodec:
    """libjpeg via Pillow: optimised Huffman tables, 4:2:0 for RGB, grey JPEG for C = 1."""
    return StandardCodec(
        "jpeg",
        "JPEG (libjpeg via Pillow, optimized Huffman, 4:2:0; grey as 1-component JPEG)",
        qualities, (1, 100), _pil_encode("JPEG", optimize=True), _pil_decode("JPEG"),
    )


def webp(qualities: Sequence[Any] = _QUALITIES_0_100) -> StandardCodec:
    """libwebp lossy via Pillow, ``method=6``; grey is replicated to RGB."""
    return StandardCodec(
        "webp",
        "WebP lossy (libwebp via Pillow, method=6; grey replicated to RGB, +1 byte)",
        qualities, (0, 100), _pil_encode("WEBP", method=6), _pil_decode("WEBP"), rgb_only=True,
    )


def jpeg2000(qualities: Sequence[Any] = (20, 25, 28, 30, 32, 35, 38, 40, 45, 50)) -> StandardCodec:
    """OpenJPEG via imagecodecs, bare J2K codestream; quality = target PSNR in dB."""
    return StandardCodec(
        "jpeg2000",
        "JPEG 2000 (OpenJPEG via imagecodecs, J2K codestream; quality = target PSNR dB)",
        qualities, (1, 100), _jpeg2000_encode, imagecodecs.jpeg2k_decode,
    )


def avif(qualities: Sequence[Any] = (20, 30, 40, 50, 60, 70, 80, 90)) -> StandardCodec:
    """libavif via imagecodecs, ``speed=6``; grey is replicated to RGB."""
    return StandardCodec(
        "avif",
        "AVIF (libavif via imagecodecs, speed=6; grey replicated to RGB, +1 byte)",
        qualities, (0, 100), _avif_encode, imagecodecs.avif_decode, rgb_only=True,
    )


def jpegxl(qualities: Sequence[Any] = (20, 30, 40, 50, 60, 70, 80, 90)) -> StandardCodec:
    """libjxl via imagecodecs, ``effort=7``, bare codestream; grey coded natively."""
    return StandardCodec(
        "jpegxl",
        "JPEG XL (libjxl via imagecodecs, effort=7)",
        qualities, (0, 100), _jpegxl_encode, imagecodecs.jpegxl_decode,
    )


# The first bytes of each standard codec's stream (the grey prefix of the RGB-only ones aside).
_SIGNATURES: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("jpeg", lambda d: d[:3] == b"\xff\xd8\xff"),
    ("webp", lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP"),
    ("avif", lambda d: d[4:8] == b"ftyp" and d[8:12] in (b"avif", b"avis")),
    ("jpegxl", lambda d: d[:2] == b"\xff\x0a" or d[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n"),
    ("jpeg2000", lambda d: d[:4] == b"\xff\x4f\xff\x51" or d[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n"),
)


def identify(data: bytes) -> str | None:
    """The standard codec (``jpeg``, ``webp``, ``avif``, ``jpegxl``, ``jpeg2000``) whose
    stream ``data`` is, by its signature, or None: what ``compress --model jpeg`` and the
    like write can be decoded without naming the codec again. None for anything not bytes."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return None
    data = bytes(data[:13])
    for name, matches in _SIGNATURES:
        if matches(data) or (data[:1] == _GREY_PREFIX and matches(data[1:])):
            return name
    return None
