"""The ``.jxc`` codec of ComCNN + JPEG + RecCNN (:mod:`jaxcodec.models.comrec`; Jiang et al.,
IEEE TCSVT 2018): ComCNN → 8 bits → a baseline JPEG of the compact image by libjpeg
(Pillow) as the payload → bicubic up-sampling + RecCNN, in tiles with exact halos
(:mod:`jaxcodec.tiling`).

The stream's symbols are the compact image the JPEG decodes to (libjpeg's integer decoding,
the same on every machine). Its header carries the content check over them
(:func:`jaxcodec.codecs.container.content_check`, fed the compact pixels as little-endian
``int32`` in C order), computed by the encoder from its own decoding of the JPEG and verified
before RecCNN runs, so a payload edited and given a new CRC is an error, not another image.
Streams written without the check decode as before.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxcodec import limits, tiling
from jaxcodec.codecs import container
from jaxcodec.entropy import coder as entropy
from jaxcodec.errors import BitstreamError, ConfigError, ImageError, ModelError
from jaxcodec.models.comrec import MODEL_NAME, to_uint8
from jaxcodec.ops.conv import full_precision_jit


SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def jpeg_encode(compact: np.ndarray, quality: int, subsampling: str = "4:2:0") -> bytes:
    """Baseline JPEG of a ``uint8`` ``(h, w, 3)`` image by libjpeg (Pillow), optimised Huffman."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(compact, np.uint8)).save(
        buffer, format="JPEG", quality=int(quality), subsampling=SUBSAMPLING[subsampling], optimize=True
    )
    return buffer.getvalue()


def jpeg_decode(data: bytes, shape: Sequence[int] | None = None) -> np.ndarray:
    """Decodes a JPEG into ``uint8`` ``(h, w, 3)``; BitstreamError if broken or of another shape."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG" or image.mode != "RGB":
                raise BitstreamError(f"payload is not an RGB JPEG ({image.format} {image.mode})")
            image.load()
            decoded = np.asarray(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise BitstreamError(f"payload is not a decodable JPEG: {str(error).splitlines()[0]}") from None
    if shape is not None and decoded.shape != tuple(shape):
        raise BitstreamError(f"JPEG payload is {decoded.shape}, header says {tuple(shape)}")
    return decoded


def jpeg_round_trip(compact: np.ndarray, qualities: Sequence[int], subsampling: str = "4:2:0"):
    """Codes each ``uint8`` compact image ``(N, h, w, 3)`` at its quality; ``(decoded, nbytes)``."""
    decoded, nbytes = np.empty_like(compact), np.empty(len(compact), np.int32)
    for i, (image, q) in enumerate(zip(compact, qualities)):
        data = jpeg_encode(image, int(q), subsampling)
        decoded[i], nbytes[i] = jpeg_decode(data), len(data)
    return decoded, nbytes


def check_quality(quality: Any) -> int:
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ConfigError(f"comrec quality must be a JPEG quality, an integer in 1..100, got {quality!r}")
    return int(quality)


class ComRecCodec:
    """A :class:`jaxcodec.codecs.protocol.Codec`: ComCNN → 8 bits → JPEG in a ``.jxc`` → RecCNN.

    ``encode`` pads to even size, runs ComCNN, and stores the compact image's JPEG as
    the payload; ``decode`` decodes it, up-samples, adds RecCNN's residual and crops.
    Qualities are libjpeg qualities (any of 1..100 is accepted; :attr:`qualities` is the
    RD ladder).
    """

    def __init__(self, task: Any, com_params: Any, rec_params: Any, name: str = MODEL_NAME):
        self.name = name
        m = task.config.model
        self.qualities = list(task.qualities)
        self.subsampling = m.subsampling
        self.description = (
            f"ComCNN + JPEG ({m.subsampling}) of a half-size compact image + bicubic + "
            f"{m.rec_depth}-layer RecCNN (Jiang et al. 2017)"
        )
        self.com_params, self.rec_params = com_params, rec_params
        leaves = jax.tree.leaves((com_params, rec_params))
        self.table_hash = entropy.table_hash(*(np.asarray(a, np.float32) for a in leaves))
        self._compact = full_precision_jit(task.compact_uint8)
        self._reconstruct = full_precision_jit(lambda p, d: to_uint8(task.reconstruct(p, d.astype(jnp.float32) / 255.0)))
        self.halo = -(-(int(m.rec_depth) + 4) // 2) + 2  # compact pixels (module docstring)
        # Working memory per full-resolution pixel: RecCNN's activations, a few alive at once.
        self.bytes_per_pixel = 16 * max(int(m.rec_features), int(m.com_features))

    def windows(self, h: int, w: int) -> tuple[list[tiling.Span], list[tiling.Span]]:
        """Tiles and windows, in compact pixels, of an ``(h, w)`` compact image
        (:func:`jaxcodec.tiling.spans`; tiles as large as :func:`jaxcodec.tiling.budget` allows)."""
        tile = tiling.tile_for(4 * self.bytes_per_pixel, self.halo)
        return tiling.spans(h, tile, self.halo), tiling.spans(w, tile, self.halo)

    def compact(self, image: np.ndarray) -> np.ndarray:
        """The ``uint8`` compact image ``(ceil(H/2), ceil(W/2), 3)`` of a ``uint8`` image."""
        image = _check_image(image, self.name)
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        h, w, _ = image.shape
        rows, cols = self.windows((h + 1) // 2, (w + 1) // 2)
        if len(rows) == len(cols) == 1:
            padded = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            x = padded.astype(np.float32)[None] / np.float32(255.0)
            return np.asarray(self._compact(self.com_params, x))[0]
        out = np.empty((rows[-1].stop, cols[-1].stop, 3), np.uint8)
        for ys in rows:
            for xs in cols:
                r0, r1, c0, c1 = 2 * ys.window_start, 2 * ys.window_stop, 2 * xs.window_start, 2 * xs.window_stop
                part = image[r0:min(r1, h), c0:min(c1, w)]
                part = np.pad(part, ((0, r1 - min(r1, h)), (0, c1 - min(c1, w)), (0, 0)), mode="edge")
                x = part.astype(np.float32)[None] / np.float32(255.0)
                out[ys.tile, xs.tile] = np.asarray(self._compact(self.com_params, x))[0][ys.inner, xs.inner]
        return out

    def reconstruct(self, decoded: np.ndarray, height: int, width: int) -> np.ndarray:
        """RGB ``uint8`` ``(height, width, 3)`` from a decoded ``uint8`` compact image;
        window by window for an image larger than one window (:meth:`windows`)."""
        decoded = np.asarray(decoded, np.uint8)
        rows, cols = self.windows(decoded.shape[0], decoded.shape[1])
        if len(rows) == len(cols) == 1:
            out = np.asarray(self._reconstruct(self.rec_params, decoded[None]))[0]
            return out[:height, :width]
        out = np.empty((height, width, 3), np.uint8)
        for ys in rows:
            for xs in cols:
                x = np.asarray(self._reconstruct(self.rec_params, decoded[None, ys.window, xs.window]))[0]
                r0, r1 = 2 * ys.start, min(2 * ys.stop, height)
                c0, c1 = 2 * xs.start, min(2 * xs.stop, width)
                dy, dx = 2 * ys.window_start, 2 * xs.window_start
                out[r0:r1, c0:c1] = x[r0 - dy : r1 - dy, c0 - dx : c1 - dx]
        return out

    def encode(self, image: np.ndarray, quality: Any) -> bytes:
        """Compresses a ``uint8`` ``(H, W, C)`` image (C = 1 or 3) at JPEG quality ``quality``."""
        quality = check_quality(quality)
        image = _check_image(image, self.name)
        compact = self.compact(image)
        payload = jpeg_encode(compact, quality, self.subsampling)
        header = container.Header(
            model=self.name,
            table_hash=self.table_hash,
            height=image.shape[0],
            width=image.shape[1],
            channels=image.shape[2],
            latent_shape=compact.shape,
            quality=quality,
            check=b"\0" * container.CHECK_SIZE,
        )
        header = dataclasses.replace(header, check=container.content_check(header, jpeg_decode(payload, compact.shape)))
        return container.pack(header, payload)

    def decode_symbols(self, data: bytes) -> np.ndarray:
        """The decoded ``uint8`` compact image of a stream of :meth:`encode`: libjpeg's
        integer decoding, identical on every machine (RecCNN's float work comes after)."""
        return self._symbols(data)[1]

    def _symbols(self, data: bytes) -> tuple[container.Header, np.ndarray]:
        header, payload = container.unpack(data)
        if header.model != self.name:
            raise ModelError(f"stream was made by model {header.model!r}, this codec is {self.name!r}")
        if not header.tables_match(self.table_hash):
            raise ModelError(
                f"stream was made with other {self.name} weights (hash {header.table_hash.hex()}, "
                f"these are {self.table_hash.hex()})"
            )
        expected = ((header.height + 1) // 2, (header.width + 1) // 2, 3)
        if header.latent_shape != expected:
            raise BitstreamError(
                f"header's compact shape {header.latent_shape} does not fit a {header.height}x{header.width} image"
            )
        limits.check_pixels(header.height, header.width, "the stream", BitstreamError)
        compact = jpeg_decode(payload, expected)
        if header.check and container.content_check(header, compact) != header.check:
            raise BitstreamError(f"{self.name}: content check failed: the payload does not decode to the "
                                 "compact image that was coded (a damaged or edited stream)")
        return header, compact

    def decode(self, data: bytes) -> np.ndarray:
        """Decompresses a stream of :meth:`encode` into ``uint8`` ``(H, W, C)``.

        Raises:
          BitstreamError: corrupt container, broken JPEG payload, or inconsistent header.
          ModelError: the stream was made by another model or other weights.
        """
        header, compact = self._symbols(data)
        out = self.reconstruct(compact, header.height, header.width)
        if header.channels == 1:  # the mean of the three channels, a band of rows at a time
            grey = np.empty(out.shape[:2] + (1,), np.uint8)
            for r in range(0, out.shape[0], 256):
                grey[r : r + 256] = np.round(out[r : r + 256].astype(np.float32).mean(axis=2, keepdims=True))
            out = grey
        return out


def _check_image(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ImageError(f"{name} codes uint8 images, got dtype {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3) or min(image.shape[:2]) < 1:
        raise ImageError(f"{name} codes (H, W, 1) or (H, W, 3) images, got shape {image.shape}")
    return image
