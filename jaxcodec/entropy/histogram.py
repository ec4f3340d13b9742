"""Per-dimension empirical histograms of integer vectors, coded with the integer tables of
:mod:`jaxcodec.entropy.coder`.

Codecs whose code is one short vector per image -- the MNIST autoencoders and the GAN's
recovered latents (:mod:`jaxcodec.codecs.latent`), the PCA baseline's coefficients
(:mod:`jaxcodec.codecs.pca`) -- have no learned density for their symbols. Their entropy
model is the one :class:`HistogramModel` fits on training symbols: dimension ``d`` gets its
own table, the frequency of each value in its range plus an escape for values outside it.
The counts are smoothed additively (Laplace's rule of succession, Laplace, *Essai
philosophique sur les probabilités*, 1814: ``alpha`` pseudo-counts per value), so a value
in range that never occurred in training stays cheap, and quantised to integers once by
:func:`jaxcodec.entropy.coder.quantize_pmf`. The model is nothing but those
integer tables (:meth:`HistogramModel.to_arrays`, ready for ``np.savez``), so encoder and
decoder use identical probabilities on any machine.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from jaxcodec.entropy import coder

__all__ = ["HistogramModel"]


class HistogramModel:
    """Per-dimension empirical histograms over integer vectors, as integer tables.

    Fitted on training symbols of shape ``(N, D)`` (autoencoder latents, PCA
    coefficients, GAN latents), dimension ``d`` gets its own table over the values
    ``offsets[d] .. offsets[d] + K - 2`` plus the escape. Counts are smoothed
    additively (Laplace's rule, ``alpha`` pseudo-counts per value and for the escape)
    so values that never occurred in training but lie in range stay cheap, and values
    out of range are still coded exactly through the escape.

    ``encode`` takes one vector ``(D,)`` or a batch ``(n, D)``; ``decode(data, n)``
    returns ``(n, D)``, or ``(D,)`` when ``n`` is ``None`` (the single-vector form).
    """

    def __init__(self, freqs: np.ndarray, offsets: np.ndarray):
        f, o, precision = coder.check_tables(freqs, offsets)
        self.freqs = f.astype(np.int32)
        self.offsets = o.astype(np.int32)
        self.precision = precision

    @classmethod
    def fit(
        cls,
        symbols: np.ndarray,
        *,
        min_value: int | np.ndarray | None = None,
        max_value: int | np.ndarray | None = None,
        alpha: float = 1.0,
        precision: int = coder.DEFAULT_PRECISION,
    ) -> "HistogramModel":
        """Fits one histogram per dimension of integer ``symbols`` ``(N, D)``.

        Args:
          symbols: training symbols; values outside the range are ignored by the
            histogram (they will be escaped when coded).
          min_value, max_value: inclusive range, a scalar or one value per dimension;
            by default each dimension's observed minimum and maximum.
          alpha: additive smoothing pseudo-count (> 0).
          precision: bits of the integer tables.
        """
        x = np.asarray(symbols)
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"symbols must have shape (N, D) with N, D >= 1, got {x.shape}")
        if not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"symbols must be integers, got dtype {x.dtype}")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        x = x.astype(np.int64)
        num_dims = x.shape[1]
        lo = x.min(axis=0) if min_value is None else np.asarray(min_value, np.int64)
        hi = x.max(axis=0) if max_value is None else np.asarray(max_value, np.int64)
        lo, hi = np.broadcast_to(lo, (num_dims,)), np.broadcast_to(hi, (num_dims,))
        if np.any(hi < lo):
            raise ValueError("max_value must be >= min_value")
        num_values = int((hi - lo).max()) + 1
        if num_values + 1 > 1 << precision:
            raise ValueError(
                f"value range of {num_values} does not fit a {precision}-bit table; pass min_value/max_value"
            )
        rel = x - lo[None, :]
        inside = (rel >= 0) & (x <= hi[None, :])
        flat = (np.arange(num_dims)[None, :] * (num_values + 1) + rel)[inside]
        counts = np.bincount(flat, minlength=num_dims * (num_values + 1)).astype(np.float64)
        counts = counts.reshape(num_dims, num_values + 1)
        valid = np.arange(num_values)[None, :] <= (hi - lo)[:, None]
        counts[:, :num_values] += alpha * valid
        counts[:, num_values] += alpha
        return cls(coder.quantize_pmf(counts, precision), lo.astype(np.int32))

    @property
    def num_dims(self) -> int:
        return int(self.freqs.shape[0])

    @property
    def table_hash(self) -> bytes:
        """8-byte hash of the tables (see :func:`jaxcodec.entropy.coder.table_hash`)."""
        return coder.table_hash(self.freqs, self.offsets)

    def _flatten(self, symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(symbols)
        if x.ndim not in (1, 2) or x.shape[-1] != self.num_dims:
            raise ValueError(
                f"symbols must have shape ({self.num_dims},) or (n, {self.num_dims}), got {x.shape}"
            )
        x = x.reshape(-1, self.num_dims)
        ids = np.broadcast_to(np.arange(self.num_dims), x.shape).reshape(-1)
        return x.reshape(-1), ids

    def encode(self, symbols: np.ndarray) -> bytes:
        """Codes one vector ``(D,)`` or a batch ``(n, D)`` of integer vectors."""
        values, ids = self._flatten(symbols)
        return coder.encode_symbols(values, ids, self.freqs, self.offsets)

    def decode(self, data: bytes, n: int | None = None) -> np.ndarray:
        """Decodes ``n`` vectors as ``(n, D)``; ``n=None`` decodes one vector as ``(D,)``."""
        count = 1 if n is None else int(n)
        if count < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        ids = np.tile(np.arange(self.num_dims), count)
        values = coder.decode_symbols(data, ids, self.freqs, self.offsets)
        return values if n is None else values.reshape(count, self.num_dims)

    def entropy_bits(self, symbols: np.ndarray) -> float:
        """Ideal code length in bits of ``symbols`` (see :func:`jaxcodec.entropy.coder.entropy_bits`)."""
        values, ids = self._flatten(symbols)
        return coder.entropy_bits(values, ids, self.freqs, self.offsets)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The tables as plain arrays, ready for ``np.savez``."""
        return {"freqs": self.freqs.copy(), "offsets": self.offsets.copy()}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> "HistogramModel":
        """Rebuilds a model from :meth:`to_arrays` output (e.g. a loaded ``.npz``)."""
        try:
            return cls(np.asarray(arrays["freqs"]), np.asarray(arrays["offsets"]))
        except KeyError as error:
            raise ValueError(f"histogram model arrays lack {error.args[0]!r}") from None
