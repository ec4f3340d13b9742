"""What each endpoint computes, on a worker thread: coding, decoding, rates and metrics.

Everything goes through the library's public functions: :func:`jaxcodec.compress` and
:func:`jaxcodec.decompress` with the catalogue's codec objects, :mod:`jaxcodec.eval.metrics`
for PSNR and MS-SSIM (on ``[0, 1]`` floats), :func:`jaxcodec.eval.metrics.bpp` for the rate
(real bytes: ``len(stream) * 8 / pixels``).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
from typing import Any

import numpy as np
from PIL import Image

import jaxcodec
from jaxcodec import api
from jaxcodec import image as imageio
from jaxcodec.codecs import latent as latent_codec
from jaxcodec.eval import metrics
from jaxcodec.serve.catalog import Entry
from jaxcodec.serve.errors import Unprocessable


@dataclasses.dataclass
class Coded:
    """An image coded by one codec at one quality, decoded again and measured."""

    codec: str
    quality: int
    data: bytes
    decoded: np.ndarray
    bpp: float
    psnr: float
    ms_ssim: float | None

    def figures(self) -> dict[str, Any]:
        """The JSON figures: ``psnr`` null for a lossless result, ``ms_ssim`` null for
        images under 11 pixels a side (JSON has no infinity)."""
        return {"codec": self.codec, "quality": self.quality, "bytes": len(self.data), "bpp": self.bpp,
                "psnr": _finite(self.psnr), "ms_ssim": _finite(self.ms_ssim)}


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def decode_upload(data: bytes) -> np.ndarray:
    """An uploaded image file as ``uint8`` ``(H, W, C)``, C = 1 or 3, with the conversions
    of :mod:`jaxcodec.image` (alpha dropped, palette and CMYK to RGB, 16-bit rounded)."""
    return api.as_uint8_image(imageio.decode_image(data, name="upload"))


def png_bytes(image: np.ndarray) -> bytes:
    """Lossless PNG of a ``uint8`` image, at zlib's fastest level: an answer is sent once, so
    the 2x faster encoding (20 ms instead of 44 for 384x256 on 2 cores) is worth the 7% more
    bytes than Pillow's default level."""
    image = api.as_uint8_image(image)
    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def data_url(image: np.ndarray) -> str:
    """A ``data:image/png;base64,...`` URL of an image, for a JSON answer."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def measure(original: np.ndarray, decoded: np.ndarray) -> tuple[float, float | None]:
    """``(PSNR in dB, MS-SSIM)`` of a decoded image against the original (MS-SSIM None when
    a side is under 11 pixels, the SSIM window)."""
    x = original.astype(np.float32)[None] / 255.0
    y = decoded.astype(np.float32)[None] / 255.0
    psnr = float(metrics.psnr(x, y)[0])
    h, w = original.shape[:2]
    ms = float(metrics.ms_ssim(x, y)[0]) if min(h, w) >= metrics.SSIM_WINDOW else None
    return psnr, ms


def fit_to_entry(image: np.ndarray, entry: Entry) -> np.ndarray:
    """The image a model takes: a digit model's fixed shape (RGB is averaged to grey), any
    image otherwise (an :class:`Unprocessable` for a wrong size)."""
    if entry.image_shape is None:
        return image
    h, w, c = entry.image_shape
    if image.shape[:2] != (h, w):
        raise Unprocessable(f"{entry.name} codes {w}x{h} digits only, got a {image.shape[1]}x{image.shape[0]} image")
    if image.shape[2] != c:
        image = np.round(image.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)
    return image


def code(image: np.ndarray, entry: Entry, quality: int) -> Coded:
    """Codes ``image`` with ``entry`` at ``quality``, decodes the stream and measures it."""
    image = fit_to_entry(image, entry)
    data = jaxcodec.compress(image, entry.codec, quality)
    decoded = jaxcodec.decompress(data, entry.codec)
    psnr, ms = measure(image, decoded)
    h, w = image.shape[:2]
    return Coded(entry.name, quality, data, decoded, metrics.bpp(len(data), h, w), psnr, ms)


def below_size(image: np.ndarray, entry: Entry, target: int) -> Coded:
    """The standard codec's file for the highest quality whose size is at most ``target``
    bytes (bisection over the quality scale: size grows with quality), or its lowest
    quality when even that is larger."""
    sizes: dict[int, bytes] = {}

    def encode(q: int) -> bytes:
        if q not in sizes:
            sizes[q] = jaxcodec.compress(image, entry.codec, q)
        return sizes[q]

    qualities = entry.qualities
    lo, hi = 0, len(qualities) - 1
    if len(encode(qualities[lo])) > target:
        best = lo
    else:
        while lo < hi:  # invariant: qualities[lo] fits
            mid = (lo + hi + 1) // 2
            if len(encode(qualities[mid])) <= target:
                lo = mid
            else:
                hi = mid - 1
        best = lo
    quality = qualities[best]
    data = encode(quality)
    decoded = jaxcodec.decompress(data, entry.codec)
    psnr, ms = measure(image, decoded)
    h, w = image.shape[:2]
    return Coded(entry.name, quality, data, decoded, metrics.bpp(len(data), h, w), psnr, ms)


def compare(image: np.ndarray, entry: Entry, quality: int, standards: list[Entry],
            images: bool) -> dict[str, Any]:
    """The learned codec's figures, and each standard codec's at the file size closest to
    the learned one's from below (``below``: false when even its lowest quality is larger)."""
    learned = code(image, entry, quality)
    rows = []
    for standard in standards:
        other = below_size(image, standard, len(learned.data))
        row = other.figures() | {"below": len(other.data) <= len(learned.data)}
        if images:
            row["png"] = data_url(other.decoded)
        rows.append(row)
    h, w = image.shape[:2]
    return {"width": w, "height": h, "learned": learned.figures(), "standard": rows}


def nearest_quality(entry: Entry, wanted: int) -> int:
    """The entry's quality closest to ``wanted`` (the lower one on a tie)."""
    return min(entry.qualities, key=lambda q: (abs(q - wanted), q))


def digit_code(image: np.ndarray, entry: Entry, quality: int) -> list[int] | None:
    """The integers an autoencoder's stream codes for a digit (its latent, uniformly
    quantised to ``quality`` bits: :func:`jaxcodec.codecs.latent.quantize`); None for the
    GAN, whose latent is recovered by an optimisation too slow to run twice."""
    codec = entry.codec
    if type(codec).latent is not latent_codec.LatentCodec.latent:
        return None
    z = codec.latent(image)
    return [int(v) for v in np.asarray(latent_codec.quantize(z, codec.latent_range, quality))]


def digits(image: np.ndarray, entries: list[Entry], bits: int) -> dict[str, Any]:
    """A 28×28 digit through every digit model at the quality nearest ``bits``: bytes,
    bpp, PSNR, the code (autoencoders) and the reconstruction as a PNG data URL."""
    out = []
    for entry in entries:
        quality = nearest_quality(entry, bits)
        digit = fit_to_entry(image, entry)
        coded = code(digit, entry, quality)
        out.append(coded.figures() | {
            "bits": 8 * len(coded.data), "description": entry.description,
            "code": digit_code(digit, entry, quality), "code_levels": 2 ** quality,
            "png": data_url(coded.decoded),
        })
    return {"bits": bits, "models": out}
