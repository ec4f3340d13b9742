"""The down-sampling baseline of seed 000 as a real codec (Tan, "Smooth compression and
reconstruction of human portrait image using convolutional auto-encoder", CS230 poster): the
image is shrunk by a factor ``f`` (2, 4, 8) by area averaging and grown back with bicubic
interpolation. The small image is stored losslessly.

Streams start with the tag ``B``; sizes are unsigned LEB128 varints
(:mod:`jaxcodec.codecs.baseline_stream`), so a 28x28 image costs one byte per dimension.
"""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np
from PIL import Image

from jaxcodec.codecs.baseline_stream import read_size, size_header
from jaxcodec.codecs.byte_reader import ByteReader
from jaxcodec.codecs.protocol import check_image
from jaxcodec.errors import BitstreamError, ConfigError

_RAW, _PNG, _WEBP = 0, 1, 2
_FORMAT_NAMES = {_RAW: "raw", _PNG: "PNG", _WEBP: "lossless WebP"}


def area_downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Means of ``factor x factor`` blocks, rounded half up to ``uint8``.

    Sizes that are not multiples of ``factor`` are padded by edge replication first, so the
    result has ``ceil(H / factor) x ceil(W / factor)`` pixels.
    """
    image = check_image(image)
    height, width, channels = image.shape
    small_h, small_w = -(-height // factor), -(-width // factor)
    padded = np.pad(
        image, ((0, small_h * factor - height), (0, small_w * factor - width), (0, 0)), mode="edge"
    )
    blocks = padded.reshape(small_h, factor, small_w, factor, channels).astype(np.float64)
    return np.floor(blocks.mean(axis=(1, 3)) + 0.5).astype(np.uint8)


def bicubic_upsample(small: np.ndarray, factor: int, height: int, width: int) -> np.ndarray:
    """Grows ``small`` by ``factor`` with Pillow's bicubic filter and crops to ``height x width``.

    Pillow's ``BICUBIC`` is Keys' cubic convolution with ``a = -0.5`` (Keys, "Cubic
    convolution interpolation for digital image processing", IEEE TASSP 29(6), 1981), applied
    separably with pixel centres at ``(i + 0.5) / factor``. Growing to the padded size and
    cropping keeps each small pixel centred on the block it averages.
    """
    small_h, small_w, channels = small.shape
    mode = "L" if channels == 1 else "RGB"
    grown = Image.fromarray(small[..., 0] if channels == 1 else small, mode=mode).resize(
        (small_w * factor, small_h * factor), resample=Image.Resampling.BICUBIC
    )
    out = np.asarray(grown)
    if out.ndim == 2:
        out = out[..., None]
    return np.ascontiguousarray(out[:height, :width])


def _lossless_candidates(small: np.ndarray) -> dict[int, bytes]:
    """The small image as raw bytes, optimised PNG and lossless WebP (grey replicated)."""
    channels = small.shape[2]
    pil = Image.fromarray(small[..., 0] if channels == 1 else small)
    png = io.BytesIO()
    pil.save(png, format="PNG", optimize=True)
    webp = io.BytesIO()
    rgb = pil.convert("RGB") if channels == 1 else pil
    rgb.save(webp, format="WEBP", lossless=True, quality=100, method=4)
    return {_RAW: small.tobytes(), _PNG: png.getvalue(), _WEBP: webp.getvalue()}


def _decode_lossless(fmt: int, payload: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    if fmt == _RAW:
        if len(payload) != shape[0] * shape[1] * shape[2]:
            raise BitstreamError("bicubic stream has a raw payload of the wrong length")
        return np.frombuffer(payload, dtype=np.uint8).reshape(shape).copy()
    expected = "PNG" if fmt == _PNG else "WEBP"
    try:
        with Image.open(io.BytesIO(payload)) as pil:
            if pil.format != expected:
                raise BitstreamError(f"bicubic stream payload is not {expected}")
            pil.load()
            array = np.asarray(pil)
    except BitstreamError:
        raise
    except Exception as e:
        raise BitstreamError(f"bicubic stream payload does not decode: {type(e).__name__}") from None
    if array.dtype != np.uint8:
        raise BitstreamError("bicubic stream payload is not 8-bit")
    if array.ndim == 2:
        array = array[..., None]
    if shape[2] == 1 and array.shape[2] == 3:
        array = array[..., :1]
    if array.shape != shape:
        raise BitstreamError(f"bicubic payload is {array.shape}, header says {shape}")
    return np.ascontiguousarray(array)


class BicubicCodec:
    """Area-average down-sampling by ``factor`` plus bicubic up-sampling (Tan's baseline).

    Quality = the factor; ``qualities`` run from the largest factor (lowest rate) down.
    Stream: ``b"B"``, the factor (1 byte), ``format | (C == 3) << 7`` (1 byte), varint H,
    varint W, then the small image in whichever of raw bytes, optimised PNG or lossless WebP
    is smallest (raw wins on tiny images, where PNG's and WebP's fixed headers dominate).
    """

    def __init__(self, factors: Sequence[int] = (8, 4, 2), name: str = "bicubic"):
        for factor in factors:
            self._check_factor(factor)
        self.qualities = sorted((int(f) for f in factors), reverse=True)
        self.name = name
        self.description = (
            "area down-sampling by " + "/".join(f"{f}x" for f in self.qualities)
            + ", bicubic up-sampling; small image stored losslessly"
        )

    @staticmethod
    def _check_factor(factor: Any) -> None:
        if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or not 0 < factor < 256:
            raise ConfigError(f"bicubic factor must be an integer in [1, 255], got {factor!r}")

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        """Shrinks by ``quality`` and stores the small image losslessly."""
        image = check_image(image)
        self._check_factor(quality)
        factor = int(quality)
        small = area_downsample(image, factor)
        candidates = _lossless_candidates(small)
        fmt = min(candidates, key=lambda f: (len(candidates[f]), f))
        flags = fmt | (0x80 if image.shape[2] == 3 else 0)
        return b"B" + bytes([factor, flags]) + size_header(image.shape) + candidates[fmt]

    def decode(self, data: bytes) -> np.ndarray:
        """Reads the small image and grows it back to the stored size."""
        reader = ByteReader(data, "bicubic")
        if reader.take(1) != b"B":
            raise BitstreamError("not a bicubic stream (bad tag)")
        factor, flags = reader.take(2)
        fmt, channels = flags & 0x7F, 3 if flags & 0x80 else 1
        if factor < 1 or fmt not in _FORMAT_NAMES:
            raise BitstreamError("bicubic stream has an invalid factor or payload format")
        height, width = read_size(reader)
        shape = (-(-height // factor), -(-width // factor), channels)
        small = _decode_lossless(fmt, reader.rest(), shape)
        return bicubic_upsample(small, factor, height, width)
