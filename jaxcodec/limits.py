"""What a reader checks before it allocates: declared image sizes and payload lengths.

A file's header is read before its pixels, and a stream's header before its payload; a
hostile or damaged one can declare an image far larger than its bytes could hold (a
518 KB PNG of 13000 × 13000 pixels, a 193-byte ``.jxc`` of 23168 × 23168). Two checks
refuse such files before any large array exists:

* **a pixel limit**: an image file or a stream may declare at most :func:`max_pixels`
  pixels (:data:`DEFAULT_MAX_PIXELS`, 134 megapixels, unless a caller sets another with
  :func:`pixel_limit`; ``python -m jaxcodec compress/decompress/info --max-pixels``);
* **a payload bound**: an entropy-coded payload cannot hold more symbols than its length
  allows at the cheapest cost the coder can give a symbol. The tables are integers
  (:mod:`jaxcodec.entropy.coder`), and constriction's ANS coder gives symbol ``k`` of a table
  of ``K`` symbols at ``precision`` bits the 24-bit weight ``w_k = p_{k+1} - p_k``, with
  ``p_k = floor(C_k (2**24 - K) / 2**precision) + k`` (``C_k`` the cumulative
  frequency), so a table's cheapest symbol costs exactly ``24 - log2(max_k w_k)`` bits
  (:func:`symbol_costs`). Coding a symbol of weight ``w`` turns the coder's state ``x``
  into ``floor(x / w) 2**24 + (x mod w) + c``, which grows ``log2 x`` by at least
  ``(1 - 2**-8)`` times the symbol's cost once ``x >= 2**32`` (the coder keeps it there
  after its first word), and the stream holds ``log2 x`` in its last words: so ``n``
  symbols need at least ``0.99 * Σ cost - 96`` bits of payload (:func:`check_payload`).

The bound holds for every stream the encoders write, except that the coder starts from
the state 0, which the lowest symbol of every table (an offset with ``C_0 = 0``) leaves at
0: a payload of version 1 (:mod:`jaxcodec.codecs.container`) whose symbols were all their
tables' lowest values would be shorter. No trained encoder produces that latent (those
values carry the tables' tail mass, ~1e-9); version-2 payloads first code a guard symbol
that moves the state off 0, so for them the bound has no exception.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Iterator

import numpy as np

from jaxcodec.errors import BitstreamError, ImageError, JaxcodecError

__all__ = ["DEFAULT_MAX_PIXELS", "check_payload", "check_pixels", "max_pixels", "pixel_limit", "symbol_costs"]

#: The largest image (height × width) read or decoded unless a caller sets another limit:
#: 2**27 pixels, a 100-megapixel photo with room to spare (Pillow's own guard refuses
#: 179 megapixels).
DEFAULT_MAX_PIXELS = 1 << 27
_MAX_PIXELS: contextvars.ContextVar[int] = contextvars.ContextVar("jaxcodec_max_pixels", default=DEFAULT_MAX_PIXELS)
_PRECISION = 24  # constriction's fixed-point probabilities
_SLACK = 0.99  # share of the summed cost a payload must carry (module docstring)
_SLACK_BITS = 96


def max_pixels() -> int:
    """The pixel limit in force (:data:`DEFAULT_MAX_PIXELS` unless :func:`pixel_limit` set one)."""
    return _MAX_PIXELS.get()


@contextlib.contextmanager
def pixel_limit(pixels: int) -> Iterator[None]:
    """Reads and decodes inside the block accept images of up to ``pixels`` pixels."""
    if isinstance(pixels, bool) or not isinstance(pixels, (int, np.integer)) or pixels < 1:
        raise JaxcodecError(f"the pixel limit must be a whole number >= 1, got {pixels!r}")
    token = _MAX_PIXELS.set(int(pixels))
    try:
        yield
    finally:
        _MAX_PIXELS.reset(token)


def check_pixels(height: int, width: int, what: str, error: type[JaxcodecError] = ImageError) -> None:
    """Raises ``error`` when ``what`` declares more than :func:`max_pixels` pixels."""
    limit = max_pixels()
    if int(height) * int(width) > limit:
        raise error(
            f"{what} declares {width}x{height} pixels ({height * width / 1e6:.1f} megapixels), more than the "
            f"limit of {limit / 1e6:.1f} megapixels (--max-pixels)"
        )


def symbol_costs(freqs: np.ndarray) -> np.ndarray:
    """The cost in bits of each table's cheapest symbol under the coder's 24-bit weights,
    ``float64 (T,)`` for integer tables ``freqs (T, K)`` (module docstring)."""
    f = np.asarray(freqs, np.int64)
    total = int(f[0].sum())
    precision = total.bit_length() - 1
    k = f.shape[1]
    cumulative = np.concatenate([np.zeros((f.shape[0], 1), np.int64), np.cumsum(f, axis=1)], axis=1)
    positions = (cumulative * ((1 << _PRECISION) - k)) >> precision
    positions += np.arange(k + 1, dtype=np.int64)
    weights = np.diff(positions, axis=1)
    return _PRECISION - np.log2(weights.max(axis=1).astype(np.float64))


def min_payload_bits(costs: np.ndarray, counts: np.ndarray) -> float:
    """The fewest payload bits that can code ``counts[t]`` symbols of each table ``t``."""
    total = float(np.dot(np.asarray(costs, np.float64), np.asarray(counts, np.float64)))
    return _SLACK * total - _SLACK_BITS


def check_payload(nbytes: int, costs: np.ndarray, counts: np.ndarray, what: str) -> None:
    """Raises :class:`BitstreamError` when ``nbytes`` cannot code ``counts[t]`` symbols of
    each table ``t`` (tables whose cheapest symbol costs ``costs[t]`` bits)."""
    need = min_payload_bits(costs, counts)
    if 8 * int(nbytes) < need:
        raise BitstreamError(
            f"{what}: the header declares {int(np.sum(counts))} latent symbols, which need at least "
            f"{math.ceil(need / 8)} payload bytes; the stream has {int(nbytes)} (a damaged or forged header)"
        )
