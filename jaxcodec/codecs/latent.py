"""A codec for models that map an image to one flat, bounded latent vector.

Autoencoders with a fixed-size code (the MNIST autoencoders of
:mod:`jaxcodec.models.mnist_conv_ae` and :mod:`jaxcodec.models.mnist_deep_ae`) and
generators whose latent is recovered by optimisation (:mod:`jaxcodec.models.gan`) all
turn an image into a vector ``z`` of ``D`` numbers in a known interval ``[lo, hi]``.
This module turns such a model into a real byte-producing codec:

1. ``z = encode_fn(image)`` (jitted);
2. uniform scalar quantisation to ``L = 2**bits`` levels spanning the interval,
   ``q = clip(round((z - lo) / Δ), 0, L - 1)`` with ``Δ = (hi - lo) / (L - 1)``, so
   both ends of the range are reconstruction levels (Gersho & Gray, "Vector
   Quantization and Signal Compression", 1992, Sec. 5.4, uniform quantiser);
3. entropy coding of the ``D`` integers with a per-dimension empirical histogram
   (:class:`jaxcodec.entropy.histogram.HistogramModel`) fitted on the quantised latents of
   training images, one histogram per bit depth;
4. a ``.jxc`` container (:mod:`jaxcodec.codecs.container`) carrying the model name, a hash of
   the tables, the image size, the latent shape and the bit depth (the quality).

Decoding reverses it: ``ẑ = lo + q·Δ`` and ``image = decode_fn(ẑ)``, rounded to 8 bits.
One trained model gives a whole rate-distortion curve, one point per bit depth.

The tables are plain integer arrays (:func:`fit_tables` → ``dict`` → ``.npz``) so the
encoder and the decoder use identical probabilities on any machine.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.codecs import container
from jaxcodec.codecs.protocol import check_image
from jaxcodec.entropy import coder as entropy
from jaxcodec.entropy.histogram import HistogramModel
from jaxcodec.errors import BitstreamError, ModelError
from jaxcodec.ops.conv import full_precision_jit

__all__ = ["LatentCodec", "collect_latents", "dequantize", "fit_tables", "quantize"]

_RANGE_KEY = "latent_range"
_BITS_KEY = "bit_depths"
MAX_BITS = 15


def quantize(z: jax.Array, latent_range: Sequence[float], bits: int) -> jax.Array:
    """Uniform quantisation of ``z`` to integers ``0 .. 2**bits - 1`` over ``latent_range``.

    ``q = clip(round((z - lo) / Δ), 0, 2**bits - 1)``, ``Δ = (hi - lo) / (2**bits - 1)``;
    values outside the range are clipped to its ends. Works on NumPy and JAX arrays
    (inside ``jit`` too); returns int32.
    """
    lo, hi = float(latent_range[0]), float(latent_range[1])
    levels = 2 ** int(bits) - 1
    scaled = (jnp.asarray(z, jnp.float32) - lo) * (levels / (hi - lo))
    return jnp.clip(jnp.round(scaled), 0, levels).astype(jnp.int32)


def dequantize(q: jax.Array, latent_range: Sequence[float], bits: int) -> jax.Array:
    """Reconstruction levels of :func:`quantize`: ``lo + q · (hi - lo) / (2**bits - 1)``."""
    lo, hi = float(latent_range[0]), float(latent_range[1])
    levels = 2 ** int(bits) - 1
    return lo + jnp.asarray(q, jnp.float32) * ((hi - lo) / levels)


def collect_latents(
    encode_fn: Callable[[jax.Array], jax.Array], batches: Iterable[np.ndarray], num_batches: int
) -> np.ndarray:
    """Stacks ``encode_fn(batch)`` over ``num_batches`` batches into ``(N, D)`` float32."""
    out = []
    iterator = iter(batches)
    for _ in range(int(num_batches)):
        try:
            batch = next(iterator)
        except StopIteration:
            break
        z = np.asarray(encode_fn(jnp.asarray(batch, jnp.float32)), np.float32)
        out.append(z.reshape(z.shape[0], -1))
    if not out:
        raise ValueError("no batches to fit the latent histograms on")
    return np.concatenate(out, axis=0)


def fit_model_tables(
    encode_latent: Callable[[Any, Any], Any], params: Any, batches: Iterator, model_config: Any, value_range
) -> dict[str, np.ndarray]:
    """A task's ``finalize``: encodes ``model_config.finalize_batches`` training batches
    with ``encode_latent(params, x)`` (jitted once) and fits one histogram table per bit
    depth in ``model_config.bit_depths`` (:func:`fit_tables`)."""
    encode = jax.jit(encode_latent)
    latents = collect_latents(lambda x: encode(params, x), batches, model_config.finalize_batches)
    return fit_tables(latents, value_range, model_config.bit_depths)


def fit_tables(
    latents: np.ndarray, latent_range: Sequence[float], bit_depths: Sequence[int]
) -> dict[str, np.ndarray]:
    """Fits one per-dimension histogram per bit depth on training latents ``(N, D)``.

    Each histogram covers all ``2**bits`` levels (Laplace-smoothed, so a level never seen
    in training still has a code). Returns flat arrays for ``codec_tables.npz``:
    ``latent_range`` (2,), ``bit_depths`` (k,) and ``bits{b}_{name}`` for each array of
    :meth:`jaxcodec.entropy.histogram.HistogramModel.to_arrays`.
    """
    bit_depths = sorted({int(b) for b in bit_depths})
    if not bit_depths or bit_depths[0] < 1 or bit_depths[-1] > MAX_BITS:
        raise ValueError(f"bit depths must lie in 1..{MAX_BITS}, got {bit_depths}")
    latents = np.asarray(latents, np.float32).reshape(len(latents), -1)
    tables = {
        _RANGE_KEY: np.asarray(latent_range, np.float32),
        _BITS_KEY: np.asarray(bit_depths, np.int32),
    }
    for bits in bit_depths:
        q = np.asarray(quantize(latents, latent_range, bits))
        model = HistogramModel.fit(q, min_value=0, max_value=2**bits - 1)
        for key, array in model.to_arrays().items():
            tables[f"bits{bits}_{key}"] = array
    return tables


def _histograms(tables: Mapping[str, np.ndarray]) -> dict[int, HistogramModel]:
    try:
        bit_depths = [int(b) for b in np.asarray(tables[_BITS_KEY]).reshape(-1)]
        out = {}
        for bits in bit_depths:
            prefix = f"bits{bits}_"
            arrays = {k[len(prefix):]: np.asarray(v) for k, v in tables.items() if k.startswith(prefix)}
            out[bits] = HistogramModel.from_arrays(arrays)
        return out
    except (KeyError, ValueError) as error:
        raise ModelError(f"codec tables are incomplete or invalid ({error})") from None


class LatentCodec:
    """A :class:`jaxcodec.codecs.protocol.Codec` for a flat-latent model; qualities are bit depths.

    Args:
      name: model name written into (and required from) every stream.
      encode_fn: ``(N, H, W, C)`` floats in ``[0, 1]`` → ``(N, D)`` latents in the range.
      decode_fn: ``(N, D)`` latents → ``(N, H, W, C)`` floats in ``[0, 1]``.
      latent_range: ``(lo, hi)`` of the latent.
      histograms_by_bits: ``{bits: HistogramModel}`` fitted on quantised training latents.
      image_shape: the only ``(H, W, C)`` the model accepts.
      description: one line for listings.
    """

    def __init__(
        self,
        name: str,
        encode_fn: Callable[[jax.Array], jax.Array],
        decode_fn: Callable[[jax.Array], jax.Array],
        latent_range: Sequence[float],
        histograms_by_bits: Mapping[int, HistogramModel],
        image_shape: Sequence[int],
        description: str = "",
    ):
        if not histograms_by_bits:
            raise ModelError(f"{name}: no entropy tables; was the model finalized?")
        self.name = name
        self.description = description or f"{name}: uniform latent quantisation + histogram coding"
        self.latent_range = (float(latent_range[0]), float(latent_range[1]))
        self.image_shape = tuple(int(s) for s in image_shape)
        self._hist = {int(b): h for b, h in histograms_by_bits.items()}
        self.qualities = sorted(self._hist)
        dims = {h.num_dims for h in self._hist.values()}
        if len(dims) != 1:
            raise ModelError(f"{name}: histograms disagree on the latent size ({sorted(dims)})")
        self.latent_dim = dims.pop()
        range_array = np.asarray(self.latent_range, np.float32)
        self._hash = {
            b: entropy.table_hash(h.freqs, h.offsets, range_array, np.asarray([b], np.int32))
            for b, h in self._hist.items()
        }
        self._encode = full_precision_jit(encode_fn)
        self._decode = full_precision_jit(decode_fn)

    @classmethod
    def from_tables(
        cls,
        name: str,
        *,
        encode_fn: Callable[[jax.Array], jax.Array],
        decode_fn: Callable[[jax.Array], jax.Array],
        tables: Mapping[str, np.ndarray] | None,
        image_shape: Sequence[int],
        description: str = "",
    ) -> "LatentCodec":
        """Builds the codec from the arrays :func:`fit_tables` returned."""
        if tables is None or _RANGE_KEY not in tables:
            raise ModelError(f"{name}: codec tables are missing; was the model finalized?")
        latent_range = np.asarray(tables[_RANGE_KEY], np.float64).reshape(-1)
        return cls(name, encode_fn, decode_fn, latent_range, _histograms(tables), image_shape, description)

    def table_hash(self, bits: int) -> bytes:
        """The 8-byte hash a stream at ``bits`` carries (tables, range and bit depth)."""
        return self._hash[int(bits)]

    def _check_bits(self, quality: Any) -> int:
        try:
            bits = int(quality)
        except (TypeError, ValueError):
            bits = None
        if bits not in self._hist:
            raise ValueError(f"{self.name}: quality must be a bit depth in {self.qualities}, got {quality!r}")
        return bits

    def _check_image(self, image: np.ndarray) -> np.ndarray:
        return check_image(image, self.image_shape, self.name)

    def latent(self, image: np.ndarray) -> np.ndarray:
        """The unquantised latent ``(D,)`` of one ``uint8`` image."""
        x = self._check_image(image).astype(np.float32)[None] / 255.0
        return np.asarray(self._encode(jnp.asarray(x)), np.float32).reshape(-1)

    def reconstruct(self, symbols: np.ndarray, bits: int) -> np.ndarray:
        """The ``uint8`` image the decoder makes from quantised symbols ``(D,)`` at ``bits``."""
        z = dequantize(np.asarray(symbols, np.int32).reshape(1, -1), self.latent_range, bits)
        x = np.asarray(self._decode(z), np.float32)[0]
        return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)

    def encode(self, image: np.ndarray, quality: Any) -> bytes:
        """Compresses a ``uint8`` image of :attr:`image_shape` at bit depth ``quality``."""
        bits = self._check_bits(quality)
        q = np.asarray(quantize(self.latent(image), self.latent_range, bits))
        payload = self._hist[bits].encode(q)
        h, w, c = self.image_shape
        header = container.Header(
            model=self.name,
            table_hash=self._hash[bits],
            height=h,
            width=w,
            channels=c,
            latent_shape=(self.latent_dim,),
            quality=bits,
        )
        return container.pack(header, payload)

    def decode_symbols(self, data: bytes) -> np.ndarray:
        """The quantised latent ``(D,)`` of a stream from :meth:`encode` (what the entropy
        decoder recovers, identical on every machine)."""
        return self._symbols(data)[1]

    def _symbols(self, data: bytes) -> tuple[int, np.ndarray]:
        header, payload = container.unpack(data)
        if header.model != self.name:
            raise ModelError(f"stream was made by model {header.model!r}, this codec is {self.name!r}")
        bits = header.quality
        if bits not in self._hist or not header.tables_match(self._hash[bits]):
            raise ModelError(
                f"stream's entropy tables (hash {header.table_hash.hex()}, {bits} bits) "
                f"do not match this {self.name} model's"
            )
        h, w, c = self.image_shape
        if (header.height, header.width, header.channels) != (h, w, c) or header.latent_shape != (self.latent_dim,):
            raise BitstreamError(
                f"stream header says a {header.height}x{header.width}x{header.channels} image with latent "
                f"{header.latent_shape}; {self.name} makes {h}x{w}x{c} with ({self.latent_dim},)"
            )
        symbols = self._hist[bits].decode(payload)
        if symbols.min() < 0 or symbols.max() > 2**bits - 1:
            raise BitstreamError(f"corrupt stream: latent symbols outside 0..{2**bits - 1}")
        return bits, symbols

    def decode(self, data: bytes) -> np.ndarray:
        """Decompresses a stream from :meth:`encode` into a ``uint8`` ``(H, W, C)`` image.

        Raises:
          BitstreamError: corrupt or truncated data, or a header that does not fit.
          ModelError: the stream was made by another model or with other tables.
        """
        bits, symbols = self._symbols(data)
        return self.reconstruct(symbols, bits)
