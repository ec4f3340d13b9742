"""Integer entropy tables and ANS coding of integer symbols.

Learned codecs (Ballé et al., "End-to-end optimized image compression", ICLR 2017;
"Variational image compression with a scale hyperprior", ICLR 2018) code each
quantised latent with a discrete probability table. CompressAI and TensorFlow
Compression compute the cumulative tables in floating point at coding time, and a
stream encoded on one device then sometimes fails to decode on another. Here a
table is computed **once** in NumPy float64 by :func:`quantize_pmf`, stored with the
model as integers, and both encoder and decoder use only those integers:

* ``freqs`` -- ``(T, K)`` integer frequencies, every entry ``>= 1``, each row summing
  to ``2**precision`` (``precision <= 24``); table ``t`` gives symbol ``k`` the
  probability ``freqs[t, k] / 2**precision``.
* ``offsets`` -- ``(T,)`` integers; a value ``v`` coded with table ``t`` has index
  ``v - offsets[t]``. Indices ``0 .. K-2`` are regular symbols; index ``K-1`` is the
  ESCAPE symbol. A value outside ``offsets[t] .. offsets[t] + K - 2`` is coded as the
  escape followed by its exact value (CompressAI's "overflow" coding), so any
  ``int32`` survives the round trip and nothing is ever clipped.

The coder is the Asymmetric Numeral Systems (ANS) stack coder of ``constriction``
(Duda, "Asymmetric numeral systems: entropy coding combining speed of Huffman coding
with compression rate of arithmetic coding", arXiv:1311.2540, 2013; Bamler,
"Understanding entropy coding with asymmetric numeral systems", 2022). It is fed the
exact dyadic probabilities ``freqs / 2**precision`` through
``Categorical(..., perfect=False)``. Its re-quantisation to constriction's 24-bit
fixed point puts symbol ``k`` at ``floor(C_k * (2**24 - K) / 2**precision) + k``
(``C_k`` the integer cumulative frequency); every step is exact in float64, so the
24-bit model is an exact integer function of ``freqs`` (checked in the tests),
every symbol keeps a weight of at least 1, and the coded size stays within a
fraction of a percent of :func:`entropy_bits`. ``perfect=True`` would also keep all
symbols but runs an iterative float optimisation; ``perfect=False`` is both faster
and easier to reason about.

Byte layout of :func:`encode_symbols`
-------------------------------------
The bytes are constriction's ANS words as **little-endian uint32** (the last word is
the top of the stack and is never zero). Nothing else is stored: the number of
symbols, their table ids and the tables come from the caller. Decoding pops, in
this order:

1. for ``t = 0 .. T-1``: the indices of all symbols with ``table_ids == t``, in their
   original order, each under ``Categorical(freqs[t] / 2**precision)``;
2. for every escaped symbol, in original order, a head ``h = 33 * below + L``
   uniform over ``0 .. 65``, where ``below`` says the value lies under the table's
   range and ``m = d + 1`` (``d >= 0`` the distance beyond the range) has
   ``L = floor(log2 m)`` (``0 .. 32``), as in Elias's gamma code (Elias, IEEE Trans.
   Inf. Theory 21(2), 1975);
3. for every escaped symbol, in original order, the ``L`` bits of ``m - 2**L``:
   a high chunk of ``L - 16`` bits when ``L > 16``, then a low chunk of
   ``min(L, 16)`` bits when ``L >= 1``, each uniform.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
from typing import Iterator

import numpy as np
import constriction

from jaxcodec.errors import BitstreamError

__all__ = [
    "DEFAULT_PRECISION",
    "check_tables",
    "decode_symbols",
    "encode_symbols",
    "entropy_bits",
    "quantize_pmf",
    "table_hash",
]

DEFAULT_PRECISION = 16
MAX_PRECISION = 24  # constriction's AnsCoder works with 24-bit probabilities.
_HEAD_SIZE = 66  # escape head: below (2) x L in 0..32 (33)
_CHUNK_BITS = 16
_MAX_SYMBOLS = 1 << 20  # per table, escape included
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1

_stream = constriction.stream


def quantize_pmf(pmf: np.ndarray, precision: int = DEFAULT_PRECISION) -> np.ndarray:
    """Turns probability rows into integer frequencies summing to ``2**precision``.

    Entries whose share of ``2**precision`` would be below one count are pinned to 1
    (so every symbol stays codable, as in CompressAI's ``pmf_to_quantized_cdf``); the
    other entries share the remaining counts in proportion to their probability by
    the largest-remainder method (floor first, then one more count to the largest
    fractional parts, ties to the lower index). The result is within a tiny fraction
    of a bit per symbol of the cross-entropy-optimal integer table. Unlike
    CompressAI's tables it is computed once, in float64, and the integers are what is
    stored and used on both sides.

    Args:
      pmf: ``(T, K)`` (or ``(K,)``) non-negative finite weights; each row is
        normalised, so it need not sum to one but must have a positive sum.
      precision: bits of the fixed-point probabilities, ``1 <= precision <= 24``.

    Returns:
      ``np.int32`` frequencies with the shape of ``pmf``.

    Raises:
      ValueError: NaN/inf/negative entries, a zero row, an empty table, or
        ``K > 2**precision``.
    """
    if not isinstance(precision, (int, np.integer)) or not 1 <= precision <= MAX_PRECISION:
        raise ValueError(f"precision must be an integer in 1..{MAX_PRECISION}, got {precision!r}")
    p = np.asarray(pmf, dtype=np.float64)
    squeeze = p.ndim == 1
    if squeeze:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] == 0:
        raise ValueError(f"pmf must have shape (T, K) with K >= 1, got {np.shape(pmf)}")
    total = 1 << int(precision)
    num_symbols = p.shape[1]
    if num_symbols > total:
        raise ValueError(f"{num_symbols} symbols do not fit a {precision}-bit table")
    if not np.all(np.isfinite(p)):
        raise ValueError("pmf contains NaN or infinite values")
    if np.any(p < 0):
        raise ValueError("pmf contains negative values")
    sums = p.sum(axis=1, keepdims=True)
    if np.any(sums <= 0) or not np.all(np.isfinite(sums)):
        raise ValueError("every pmf row needs a positive, finite sum")
    p = p / sums
    # Entries whose share would fall below one count are pinned to 1; the others
    # share what is left in proportion to their probability. Pinning can push more
    # entries below 1, so repeat until stable (at most K rounds, usually 1-2).
    pinned = np.zeros(p.shape, dtype=bool)
    while True:
        budget = total - pinned.sum(axis=1, keepdims=True)
        free_mass = np.where(pinned, 0.0, p).sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = np.where(pinned, 1.0, p * (budget / free_mass))
        newly = ~pinned & (scaled < 1.0)
        if not newly.any():
            break
        pinned |= newly
    base = np.where(pinned, 1.0, np.floor(scaled))
    frac = np.where(pinned, -1.0, scaled - base)
    remainder = total - base.sum(axis=1).astype(np.int64)
    rank = np.empty(p.shape, dtype=np.int64)
    order = np.argsort(-frac, axis=1, kind="stable")
    np.put_along_axis(rank, order, np.arange(num_symbols)[None, :], axis=1)
    freqs = base.astype(np.int64) + (rank < remainder[:, None])
    # Float rounding can leave the row a count or two over; take them from the top.
    for row in np.flatnonzero(remainder < 0):
        for _ in range(-int(remainder[row])):
            freqs[row, int(np.argmax(freqs[row]))] -= 1
    freqs = freqs.astype(np.int32)
    return freqs[0] if squeeze else freqs


def table_hash(*arrays: np.ndarray) -> bytes:
    """First 8 bytes of SHA-256 over the dtype, shape and little-endian bytes of arrays.

    Streams carry this hash (see :mod:`jaxcodec.codecs.container`) so a decoder can refuse
    tables that differ from the encoder's instead of producing garbage.
    """
    digest = hashlib.sha256()
    for array in arrays:
        a = np.ascontiguousarray(array)
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        dtype = a.dtype.str.encode("ascii")
        digest.update(struct.pack("<B", len(dtype)) + dtype)
        digest.update(struct.pack(f"<B{a.ndim}Q", a.ndim, *a.shape))
        digest.update(struct.pack("<Q", a.nbytes))
        digest.update(a.tobytes())
    return digest.digest()[:8]


#: The guard symbol's value (:func:`guarded_tables`).
GUARD_VALUE = 1


def guarded_tables(freqs: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tables followed by a **guard** table (its id is ``T``): the value
    :data:`GUARD_VALUE` takes every count but one for each other symbol. A codec codes it
    once per coded part, before any other symbol is popped: it costs almost nothing and
    moves the ANS state off 0, so no payload is shorter than its symbols' cheapest cost
    (:mod:`jaxcodec.limits`), and the decoder checks that it comes out last."""
    freqs, offsets = np.asarray(freqs), np.asarray(offsets)
    if freqs.shape[1] < 3:
        raise ValueError(f"tables of {freqs.shape[1]} symbols leave no room for the guard")
    guard = np.ones((1, freqs.shape[1]), freqs.dtype)
    guard[0, GUARD_VALUE] = int(freqs[0].sum()) - (freqs.shape[1] - 1)
    return np.concatenate([freqs, guard]), np.append(offsets, np.zeros(1, offsets.dtype))


def check_tables(freqs: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Validates integer tables; returns ``(freqs as int64, offsets as int64, precision)``.

    Raises:
      ValueError: tables that :func:`encode_symbols` cannot use (see the module docstring).
    """
    f = np.asarray(freqs)
    o = np.asarray(offsets)
    if f.ndim != 2 or f.shape[0] == 0 or not 2 <= f.shape[1] <= _MAX_SYMBOLS:
        raise ValueError(f"freqs must have shape (T, K) with T >= 1, 2 <= K <= 2**20, got {f.shape}")
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"freqs must be integers, got dtype {f.dtype}")
    if o.shape != (f.shape[0],) or not np.issubdtype(o.dtype, np.integer):
        raise ValueError(f"offsets must be {f.shape[0]} integers, got shape {o.shape} {o.dtype}")
    f = f.astype(np.int64)
    o = o.astype(np.int64)
    if np.any(f < 1):
        raise ValueError("every table frequency must be >= 1")
    sums = f.sum(axis=1)
    total = int(sums[0])
    precision = total.bit_length() - 1
    if np.any(sums != total) or total != 1 << precision or precision > MAX_PRECISION:
        raise ValueError(f"freqs rows must all sum to the same 2**precision, precision <= {MAX_PRECISION}")
    if np.any(o < _INT32_MIN) or np.any(o > _INT32_MAX):
        raise ValueError("offsets must fit in int32")
    return f, o, precision


def _check_table_ids(table_ids: np.ndarray, num_tables: int) -> np.ndarray:
    ids = np.asarray(table_ids)
    if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0):
        raise ValueError(f"table_ids must be a 1-D integer array, got shape {ids.shape} {ids.dtype}")
    ids = ids.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= num_tables):
        raise ValueError(f"table_ids must lie in 0..{num_tables - 1}")
    return ids


def _group_order(ids: np.ndarray, num_tables: int) -> np.ndarray | None:
    """Stable permutation that groups symbols by table, or ``None`` when the ids are
    already grouped (non-decreasing). Ids that cycle through ``0 .. T-1`` (a channel-last
    latent: ``tile(arange(T), n)``) give the transpose of an ``(n, T)`` grid at once;
    others are sorted (narrow keys sort faster)."""
    if np.all(ids[1:] >= ids[:-1]):
        return None
    n, t = ids.size, num_tables
    if n % t == 0 and np.array_equal(ids.reshape(-1, t), np.broadcast_to(np.arange(t), (n // t, t))):
        return np.arange(n).reshape(-1, t).T.ravel()
    keys = ids.astype(np.int16 if num_tables <= np.iinfo(np.int16).max else np.int32)
    return np.argsort(keys, kind="stable")


def _models(freqs: np.ndarray, precision: int, used: np.ndarray) -> dict[int, object]:
    """One concrete constriction model per used table, fed exact dyadic probabilities."""
    scale = 1.0 / float(1 << precision)
    return {
        int(t): _stream.model.Categorical(freqs[t] * scale, perfect=False)
        for t in np.flatnonzero(used)
    }


def _indices(values: np.ndarray, ids: np.ndarray, offsets: np.ndarray, k: int):
    """Table indices with escapes folded into index ``k-1``, plus the escape mask."""
    idx = values - offsets[ids]
    escaped = (idx < 0) | (idx > k - 2)
    idx[escaped] = k - 1
    return idx, escaped


def _escape_parts(values: np.ndarray, offsets: np.ndarray, k: int):
    """Splits escaped values into (head, L, m) of the Elias-gamma-style code."""
    below = values < offsets
    d = np.where(below, offsets - 1 - values, values - (offsets + k - 1))
    m = d + 1
    powers = np.int64(1) << np.arange(1, 34, dtype=np.int64)
    exponent = (m[:, None] >= powers[None, :]).sum(axis=1)
    return below.astype(np.int64) * 33 + exponent, exponent, m


def _chunk_layout(exponent: np.ndarray) -> np.ndarray:
    """Bit widths of the (high, low) payload chunks of each escape; 0 = absent."""
    hi_bits = np.maximum(exponent - _CHUNK_BITS, 0)
    lo_bits = np.minimum(exponent, _CHUNK_BITS)
    return np.stack([hi_bits, lo_bits], axis=1)


@contextlib.contextmanager
def _wrapped_coder_errors() -> Iterator[None]:
    """Turns anything constriction raises on bad data into a BitstreamError.

    constriction reports some misuse as a Rust panic, which arrives as pyo3's
    ``PanicException`` -- a ``BaseException``, not an ``Exception`` -- hence the
    name check below.
    """
    try:
        yield
    except BitstreamError:
        raise
    except Exception as error:
        raise BitstreamError(f"corrupt entropy-coded data ({error})") from error
    except BaseException as error:
        if type(error).__name__ == "PanicException":
            raise BitstreamError("corrupt entropy-coded data (coder panicked)") from None
        raise


def encode_symbols(
    symbols: np.ndarray, table_ids: np.ndarray, freqs: np.ndarray, offsets: np.ndarray
) -> bytes:
    """Entropy-codes integer ``symbols``, symbol ``i`` with table ``table_ids[i]``.

    Symbols are grouped by table and each group is coded with one constriction model,
    which keeps coding ~300k symbols well under a tenth of a second. See the module
    docstring for the byte layout. Out-of-range values are escaped, never clipped.

    Args:
      symbols: ``(N,)`` integers within int32.
      table_ids: ``(N,)`` integers in ``0 .. T-1``.
      freqs: ``(T, K)`` integer frequencies (see :func:`quantize_pmf`).
      offsets: ``(T,)`` integer value of index 0 of each table.

    Returns:
      The coded bytes (empty for ``N == 0``).
    """
    f, o, precision = check_tables(freqs, offsets)
    num_tables, k = f.shape
    values = np.asarray(symbols)
    if values.ndim != 1 or not (np.issubdtype(values.dtype, np.integer) or values.size == 0):
        raise ValueError(f"symbols must be a 1-D integer array, got shape {values.shape} {values.dtype}")
    values = values.astype(np.int64)
    ids = _check_table_ids(table_ids, num_tables)
    if ids.shape != values.shape:
        raise ValueError(f"{values.size} symbols but {ids.size} table ids")
    if values.size == 0:
        return b""
    if values.min() < _INT32_MIN or values.max() > _INT32_MAX:
        raise ValueError("symbols must fit in int32")

    idx, escaped = _indices(values.copy(), ids, o, k)
    order = _group_order(ids, num_tables)
    counts = np.bincount(ids, minlength=num_tables)
    starts = np.concatenate([[0], np.cumsum(counts)])
    grouped = (idx if order is None else idx[order]).astype(np.int32)
    models = _models(f, precision, counts > 0)

    coder = _stream.stack.AnsCoder()
    if escaped.any():
        esc_ids = ids[escaped]
        head, exponent, m = _escape_parts(values[escaped], o[esc_ids], k)
        layout = _chunk_layout(exponent)
        rest = m - (np.int64(1) << exponent)
        chunks = np.stack([rest >> _CHUNK_BITS, rest & ((1 << _CHUNK_BITS) - 1)], axis=1)
        present = layout > 0
        sizes = (np.int64(1) << layout[present]).astype(np.int32)
        if sizes.size:
            coder.encode_reverse(chunks[present].astype(np.int32), _stream.model.Uniform(), sizes)
        coder.encode_reverse(head.astype(np.int32), _stream.model.Uniform(_HEAD_SIZE))
    for t in range(num_tables - 1, -1, -1):
        if counts[t]:
            coder.encode_reverse(grouped[starts[t] : starts[t + 1]], models[t])
    return coder.get_compressed().astype("<u4").tobytes()


def decode_symbols(
    data: bytes, table_ids: np.ndarray, freqs: np.ndarray, offsets: np.ndarray
) -> np.ndarray:
    """Inverts :func:`encode_symbols` given the same ``table_ids`` and tables.

    Raises:
      BitstreamError: the bytes are not a stream these tables produced for these
        table ids (bad length, undecodable words, out-of-range escapes, or data left
        over after the last symbol).
    """
    f, o, precision = check_tables(freqs, offsets)
    num_tables, k = f.shape
    ids = _check_table_ids(table_ids, num_tables)
    raw = bytes(data)
    if len(raw) % 4:
        raise BitstreamError(f"entropy-coded data is {len(raw)} bytes, not a whole number of 32-bit words")
    if ids.size == 0:
        if raw:
            raise BitstreamError(f"{len(raw)} bytes of entropy-coded data but no symbols to decode")
        return np.zeros(0, dtype=np.int32)
    words = np.frombuffer(raw, dtype="<u4").astype(np.uint32)

    order = _group_order(ids, num_tables)
    counts = np.bincount(ids, minlength=num_tables)
    models = _models(f, precision, counts > 0)
    with _wrapped_coder_errors():
        coder = _stream.stack.AnsCoder(words)
        grouped = np.concatenate(
            [coder.decode(models[t], int(counts[t])) for t in range(num_tables) if counts[t]]
        )
        if order is None:
            idx = grouped.astype(np.int64)
        else:
            idx = np.empty(ids.size, dtype=np.int64)
            idx[order] = grouped
        values = o[ids] + idx
        escaped = idx == k - 1
        num_escaped = int(escaped.sum())
        if num_escaped:
            head = coder.decode(_stream.model.Uniform(_HEAD_SIZE), num_escaped).astype(np.int64)
            if head.min() < 0 or head.max() >= _HEAD_SIZE:
                raise BitstreamError("corrupt entropy-coded data (bad escape header)")
            below, exponent = head // 33, head % 33
            layout = _chunk_layout(exponent)
            present = layout > 0
            chunks = np.zeros(layout.shape, dtype=np.int64)
            sizes = (np.int64(1) << layout[present]).astype(np.int32)
            if sizes.size:
                chunks[present] = coder.decode(_stream.model.Uniform(), sizes)
            if np.any(chunks >= (np.int64(1) << layout)):
                raise BitstreamError("corrupt entropy-coded data (bad escape payload)")
            m = (np.int64(1) << exponent) + (chunks[:, 0] << _CHUNK_BITS) + chunks[:, 1]
            esc_offsets = o[ids[escaped]]
            values[escaped] = np.where(below == 1, esc_offsets - m, esc_offsets + k - 2 + m)
        if not coder.is_empty():
            raise BitstreamError("corrupt entropy-coded data (data left over after the last symbol)")
    if values.min() < _INT32_MIN or values.max() > _INT32_MAX:
        raise BitstreamError("corrupt entropy-coded data (escaped value outside int32)")
    return values.astype(np.int32)


def entropy_bits(
    symbols: np.ndarray, table_ids: np.ndarray, freqs: np.ndarray, offsets: np.ndarray
) -> float:
    """Ideal information content, in bits, of ``symbols`` under the integer tables.

    Sums ``-log2(freqs[t, index] / 2**precision)`` over all symbols (Shannon, 1948)
    plus, for every escape, the exact cost of its value code: ``log2(66)`` for the
    head and ``L`` bits for the payload. Real streams from :func:`encode_symbols`
    exceed this by constriction's 24-bit re-quantisation (a fraction of a percent)
    and by the final ANS state (at most about 64 bits).
    """
    f, o, precision = check_tables(freqs, offsets)
    k = f.shape[1]
    values = np.asarray(symbols).astype(np.int64).reshape(-1)
    ids = _check_table_ids(table_ids, f.shape[0])
    if ids.shape != values.shape:
        raise ValueError(f"{values.size} symbols but {ids.size} table ids")
    if values.size == 0:
        return 0.0
    idx, escaped = _indices(values.copy(), ids, o, k)
    bits = float(np.sum(precision - np.log2(f[ids, idx].astype(np.float64))))
    if escaped.any():
        _, exponent, _ = _escape_parts(values[escaped], o[ids[escaped]], k)
        bits += escaped.sum() * np.log2(_HEAD_SIZE) + float(exponent.sum())
    return bits
