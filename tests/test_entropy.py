"""Tests for jaxcodec.entropy.coder: integer tables, ANS round trips, rates, corrupt input."""

import heapq
import math
import time

import constriction
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jaxcodec.entropy import coder as entropy
from jaxcodec.errors import BitstreamError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def laplace_tables(scales: np.ndarray, half_width: int, precision: int = 16):
    """Tables of discretised Laplace pmfs over -half_width..half_width plus escape."""
    values = np.arange(-half_width, half_width + 1)
    cdf = lambda x: np.where(x < 0, 0.5 * np.exp(x / scales[:, None]), 1 - 0.5 * np.exp(-x / scales[:, None]))
    pmf = cdf(values[None, :] + 0.5) - cdf(values[None, :] - 0.5)
    tail = 1.0 - pmf.sum(axis=1, keepdims=True)
    pmf = np.concatenate([pmf, np.maximum(tail, 1e-9)], axis=1)
    return pmf, entropy.quantize_pmf(pmf, precision), np.full(len(scales), -half_width)


def reference_bits(symbols, table_ids, freqs, offsets) -> float:
    """Independent per-symbol computation of the ideal code length, with Python ints."""
    precision = int(freqs[0].sum()).bit_length() - 1
    k = freqs.shape[1]
    bits = 0.0
    for v, t in zip(symbols.tolist(), table_ids.tolist()):
        index = v - int(offsets[t])
        if 0 <= index <= k - 2:
            bits += -math.log2(int(freqs[t, index]) / 2**precision)
        else:
            distance = int(offsets[t]) - 1 - v if index < 0 else v - (int(offsets[t]) + k - 1)
            bits += -math.log2(int(freqs[t, k - 1]) / 2**precision)
            bits += math.log2(66) + ((distance + 1).bit_length() - 1)
    return bits


# ---------------------------------------------------------------- quantize_pmf


def optimal_freqs(p: np.ndarray, precision: int) -> np.ndarray:
    """Reference: integer frequencies >= 1 minimising the cross-entropy to ``p``.

    Maximising sum_k p_k log f_k is separable and concave in each f_k, so adding the
    counts one at a time to the entry with the largest gain is optimal.
    """
    freqs = [1] * len(p)
    heap = [(-pk * math.log2(2.0), k) for k, pk in enumerate(p)]
    heapq.heapify(heap)
    for _ in range(2**precision - len(p)):
        _, k = heapq.heappop(heap)
        freqs[k] += 1
        heapq.heappush(heap, (-p[k] * math.log2(1 + 1 / freqs[k]), k))
    return np.array(freqs)


def cross_entropy(p: np.ndarray, freqs: np.ndarray, precision: int) -> float:
    return float(-np.sum(np.where(p > 0, p * np.log2(freqs / 2**precision), 0.0)))


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    rows=st.integers(1, 3),
    k=st.integers(1, 48),
    precision=st.integers(8, 12),
)
def test_quantize_pmf_properties(data, rows, k, precision):
    pmf = data.draw(
        hnp.arrays(np.float64, (rows, k), elements=st.floats(0, 1e6, allow_subnormal=False))
    )
    pmf[:, 0] += 1e-3  # every row needs a positive sum
    freqs = entropy.quantize_pmf(pmf, precision)
    assert freqs.dtype == np.int32 and freqs.shape == (rows, k)
    assert np.all(freqs >= 1)
    assert np.all(freqs.sum(axis=1, dtype=np.int64) == 2**precision)
    # Close to the pmf: within 0.01 bit/symbol of the best possible integer table.
    for p, f in zip(pmf / pmf.sum(axis=1, keepdims=True), freqs):
        best = cross_entropy(p, optimal_freqs(p, precision), precision)
        assert cross_entropy(p, f, precision) <= best + 0.01


def test_quantize_pmf_near_optimal_at_16_bits():
    pmf, freqs, _ = laplace_tables(np.array([0.5, 2.0, 10.0]), 40)
    # Pinning 80 tail entries to 1/2**16 costs ~0.0015 bit for the narrowest table;
    # largest remainder stays within 1e-4 bit of the optimal 16-bit table.
    for p, f in zip(pmf / pmf.sum(axis=1, keepdims=True), freqs):
        best = cross_entropy(p, optimal_freqs(p, 16), 16)
        assert cross_entropy(p, f, 16) <= best + 1e-4
        kl = best - cross_entropy(p, np.where(p > 0, p, 1.0) * 2**16, 16)
        assert kl < 2e-3


def test_quantize_pmf_one_dimensional_and_exact_input():
    freqs = entropy.quantize_pmf(np.array([0.5, 0.25, 0.25]), precision=4)
    assert freqs.tolist() == [8, 4, 4]  # dyadic probabilities are kept exactly
    assert entropy.quantize_pmf(np.array([1.0, 0.0]), precision=4).tolist() == [15, 1]
    assert entropy.quantize_pmf(np.ones(16), precision=4).tolist() == [1] * 16


@pytest.mark.parametrize(
    "pmf, precision",
    [
        (np.array([[0.5, np.nan]]), 16),
        (np.array([[0.5, np.inf]]), 16),
        (np.array([[0.5, -0.1]]), 16),
        (np.array([[0.0, 0.0]]), 16),
        (np.ones((1, 17)), 4),
        (np.ones((1, 0)), 16),
        (np.ones((2, 2, 2)), 16),
        (np.ones((1, 3)), 0),
        (np.ones((1, 3)), 25),
    ],
)
def test_quantize_pmf_rejects_bad_input(pmf, precision):
    with pytest.raises(ValueError):
        entropy.quantize_pmf(pmf, precision)


# ---------------------------------------------------------------- round trips


@st.composite
def coding_problems(draw):
    num_tables = draw(st.integers(1, 5))
    k = draw(st.integers(2, 40))
    precision = draw(st.integers(max(6, k.bit_length() + 1), 24))
    pmf = draw(hnp.arrays(np.float64, (num_tables, k), elements=st.floats(0.01, 100)))
    freqs = entropy.quantize_pmf(pmf, precision)
    offsets = draw(hnp.arrays(np.int64, num_tables, elements=st.integers(-1000, 1000)))
    n = draw(st.integers(0, 60))
    ids = draw(hnp.arrays(np.int64, n, elements=st.integers(0, num_tables - 1)))
    near = st.integers(-1100, 1100)
    far = st.sampled_from([INT32_MIN, INT32_MIN + 1, -(2**20), -65537, 65536, 2**24, INT32_MAX - 1, INT32_MAX])
    symbols = draw(hnp.arrays(np.int64, n, elements=st.one_of(near, near, near, far)))
    return symbols, ids, freqs, offsets


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=coding_problems())
def test_round_trip_with_escapes_property(problem):
    symbols, ids, freqs, offsets = problem
    data = entropy.encode_symbols(symbols, ids, freqs, offsets)
    assert data == entropy.encode_symbols(symbols, ids, freqs, offsets)  # deterministic
    assert len(data) % 4 == 0
    decoded = entropy.decode_symbols(data, ids, freqs, offsets)
    assert decoded.dtype == np.int32
    np.testing.assert_array_equal(decoded, symbols)
    bits = entropy.entropy_bits(symbols, ids, freqs, offsets)
    assert bits == pytest.approx(reference_bits(symbols, ids, freqs, offsets), rel=1e-9, abs=1e-9)
    # The ANS state costs at most ~two words beyond the ideal information content.
    assert len(data) * 8 <= bits * 1.01 + 64


@pytest.mark.parametrize("precision", [8, 16, 24])
def test_constriction_cdf_is_exact_integer_function_of_freqs(precision):
    """Encoding one symbol on an empty ANS coder leaves exactly its 24-bit left CDF.

    That exposes the fixed-point model constriction builds from ``freqs / 2**p``;
    it must equal floor(C_k * (2**24 - K) / 2**p) + k computed with Python ints, so
    no float rounding can differ between machines.
    """
    rng = np.random.default_rng(precision)
    k = 40
    freqs = entropy.quantize_pmf(rng.exponential(size=k) ** 3, precision).astype(np.int64)
    model = entropy._models(freqs[None, :], precision, np.array([True]))[0]
    cumulative = [0] + np.cumsum(freqs).tolist()
    for symbol in range(k):
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(np.array([symbol], dtype=np.int32), model)
        words = coder.get_compressed()
        left = int(words[0]) if len(words) else 0
        assert left == cumulative[symbol] * (2**24 - k) // 2**precision + symbol


def test_empty_input():
    freqs = entropy.quantize_pmf(np.ones((2, 5)))
    empty = np.zeros(0, dtype=np.int32)
    assert entropy.encode_symbols(empty, empty, freqs, [0, 0]) == b""
    assert entropy.decode_symbols(b"", empty, freqs, [0, 0]).shape == (0,)
    assert entropy.entropy_bits(empty, empty, freqs, [0, 0]) == 0.0


def test_golden_stream_is_stable():
    """Pins the byte format: the same integers must give these bytes on any machine."""
    freqs = np.array([[30000, 20000, 10000, 5536], [1, 1, 65533, 1], [16384] * 4])
    offsets = np.array([-1, 0, 7])
    symbols = np.array([-1, 0, 1, 2, -2, 5, 2, 0, 1, 2, 7, 8, 9, 10, 6, -100000, INT32_MAX, INT32_MIN])
    ids = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 0, 1, 2])
    golden = bytes.fromhex("00fdffffff46bed92937c24f42b12fd279cef1e8d9de2ae558030000")
    assert entropy.encode_symbols(symbols, ids, freqs, offsets) == golden
    np.testing.assert_array_equal(entropy.decode_symbols(golden, ids, freqs, offsets), symbols)


def test_large_laplacian_rate_and_speed():
    """~300k latents of a 512x768 image (32x48x192), one table per channel."""
    rng = np.random.default_rng(0)
    num_tables, half_width = 192, 31
    scales = rng.uniform(0.2, 8.0, num_tables)
    pmf, freqs, offsets = laplace_tables(scales, half_width)
    ids = np.tile(np.arange(num_tables), 32 * 48)  # HWC order, channels interleaved
    symbols = np.round(rng.laplace(0.0, scales[ids])).astype(np.int32)
    symbols[::9973] = rng.integers(-(10**6), 10**6, symbols[::9973].size)  # forced escapes
    times = []
    for _ in range(3):
        start = time.perf_counter()
        data = entropy.encode_symbols(symbols, ids, freqs, offsets)
        middle = time.perf_counter()
        decoded = entropy.decode_symbols(data, ids, freqs, offsets)
        times.append((middle - start, time.perf_counter() - middle))
    np.testing.assert_array_equal(decoded, symbols)
    enc, dec = min(t[0] for t in times), min(t[1] for t in times)
    print(f"\n{symbols.size} symbols, {num_tables} tables: encode {enc * 1e3:.1f} ms, decode {dec * 1e3:.1f} ms")

    bits = entropy.entropy_bits(symbols, ids, freqs, offsets)
    assert len(data) * 8 == pytest.approx(bits, rel=0.003)
    # Shannon bound of the true distribution: the empirical rate of a sample is
    # within a fraction of a percent of N * H (plus the rare escapes).
    p = pmf / pmf.sum(axis=1, keepdims=True)
    true_entropy = -np.sum(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0), axis=1)
    shannon = float(np.sum(true_entropy[ids]))
    assert len(data) * 8 == pytest.approx(shannon, rel=0.02)


def test_coded_size_tracks_entropy_bits_for_many_escapes():
    rng = np.random.default_rng(1)
    freqs = entropy.quantize_pmf(np.ones((3, 4)))
    ids = rng.integers(0, 3, 5000)
    symbols = rng.integers(INT32_MIN, INT32_MAX, 5000, endpoint=True)
    data = entropy.encode_symbols(symbols, ids, freqs, np.zeros(3, np.int64))
    np.testing.assert_array_equal(entropy.decode_symbols(data, ids, freqs, np.zeros(3, np.int64)), symbols)
    bits = entropy.entropy_bits(symbols, ids, freqs, np.zeros(3, np.int64))
    assert len(data) * 8 == pytest.approx(bits, rel=0.01)


def test_symbol_order_does_not_change_table_assignment():
    """Table ids interleaved arbitrarily must decode to the same positions."""
    rng = np.random.default_rng(2)
    _, freqs, offsets = laplace_tables(np.array([0.3, 3.0, 30.0]), 50)
    offsets = offsets + np.array([0, 100, -100])
    ids = rng.permutation(np.repeat(np.arange(3), 700))
    symbols = (np.round(rng.laplace(0, [0.3, 3.0, 30.0])[ids]) + np.array([0, 100, -100])[ids]).astype(np.int64)
    data = entropy.encode_symbols(symbols, ids, freqs, offsets)
    np.testing.assert_array_equal(entropy.decode_symbols(data, ids, freqs, offsets), symbols)
    # Decoding with the wrong table assignment does not reproduce the symbols.
    try:
        other = entropy.decode_symbols(data, rng.permutation(ids), freqs, offsets)
        assert not np.array_equal(other, symbols)
    except BitstreamError:
        pass


@pytest.mark.parametrize(
    "symbols, ids, freqs, offsets",
    [
        ([1, 2], [0], np.full((1, 4), 2**14), [0]),  # length mismatch
        ([1], [1], np.full((1, 4), 2**14), [0]),  # table id out of range
        ([1], [0], np.array([[2**15, 2**15 - 1, 1, 0]]), [0]),  # zero frequency
        ([1], [0], np.array([[3, 3, 3]]), [0]),  # rows do not sum to a power of two
        ([1], [0], np.full((1, 4), 2**14), [0, 0]),  # offsets shape
        ([2**31], [0], np.full((1, 4), 2**14), [0]),  # not int32
        ([1.5], [0], np.full((1, 4), 2**14), [0]),  # not integer
        ([1], [0], np.full((1, 1), 2**14), [0]),  # K < 2
    ],
)
def test_encode_rejects_bad_arguments(symbols, ids, freqs, offsets):
    with pytest.raises(ValueError):
        entropy.encode_symbols(np.asarray(symbols), np.asarray(ids), np.asarray(freqs), np.asarray(offsets))


# ---------------------------------------------------------------- corrupt input


_PMF, _FREQS, _OFFSETS = laplace_tables(np.array([0.5, 2.0, 6.0]), 12)
_RNG = np.random.default_rng(3)
_IDS = _RNG.integers(0, 3, 400)
_SYMBOLS = np.round(_RNG.laplace(0, 3.0, 400)).astype(np.int64)
_SYMBOLS[::37] = _RNG.integers(INT32_MIN, INT32_MAX, _SYMBOLS[::37].size)
_VALID = entropy.encode_symbols(_SYMBOLS, _IDS, _FREQS, _OFFSETS)


def _decode_or_bitstream_error(data, ids):
    try:
        out = entropy.decode_symbols(data, ids, _FREQS, _OFFSETS)
    except BitstreamError as error:
        assert "\n" not in str(error)
        return None
    assert out.dtype == np.int32 and out.shape == ids.shape
    return out


@settings(max_examples=400, deadline=2000)
@given(data=st.binary(max_size=200), n=st.integers(0, 300), seed=st.integers(0, 2**32 - 1))
def test_random_bytes_only_raise_bitstream_error(data, n, seed):
    ids = np.random.default_rng(seed).integers(0, 3, n)
    _decode_or_bitstream_error(data, ids)


@settings(max_examples=400, deadline=2000)
@given(
    mutation=st.one_of(
        st.tuples(st.just("truncate"), st.integers(0, len(_VALID) - 1)),
        st.tuples(st.just("flip"), st.integers(0, len(_VALID) * 8 - 1)),
        st.tuples(st.just("extend"), st.binary(min_size=1, max_size=12)),
    )
)
def test_mutated_streams_only_raise_bitstream_error(mutation):
    kind, arg = mutation
    data = bytearray(_VALID)
    if kind == "truncate":
        data = data[:arg]
    elif kind == "flip":
        data[arg // 8] ^= 1 << (arg % 8)
    else:
        data += arg
    out = _decode_or_bitstream_error(bytes(data), _IDS)
    # A valid stream that lost or gained whole words almost never decodes cleanly.
    if kind != "flip" and out is not None:
        assert not np.array_equal(out, _SYMBOLS)


def test_truncated_and_extended_streams_are_detected():
    detected = 0
    for cut in range(0, len(_VALID), 4):
        out = _decode_or_bitstream_error(_VALID[:cut], _IDS)
        assert out is None or not np.array_equal(out, _SYMBOLS)
        detected += out is None
    assert detected >= 0.9 * (len(_VALID) // 4)
    with pytest.raises(BitstreamError):
        entropy.decode_symbols(_VALID + b"\x01\x00\x00\x00", _IDS, _FREQS, _OFFSETS)
    with pytest.raises(BitstreamError):
        entropy.decode_symbols(_VALID[:-1], _IDS, _FREQS, _OFFSETS)
    with pytest.raises(BitstreamError):
        entropy.decode_symbols(_VALID[:-4] + b"\x00\x00\x00\x00", _IDS, _FREQS, _OFFSETS)
    with pytest.raises(BitstreamError):
        entropy.decode_symbols(b"\x01\x00\x00\x00", np.zeros(0, np.int64), _FREQS, _OFFSETS)


# ---------------------------------------------------------------- table_hash


def test_table_hash_distinguishes_values_shapes_and_dtypes():
    a = np.arange(12, dtype=np.int32)
    h = entropy.table_hash(a)
    assert isinstance(h, bytes) and len(h) == 8
    assert entropy.table_hash(a.copy()) == h
    assert entropy.table_hash(a.astype(">i4")) == h  # byte order does not matter
    assert entropy.table_hash(a.reshape(3, 4)) != h
    assert entropy.table_hash(a.astype(np.int64)) != h
    b = a.copy()
    b[5] += 1
    assert entropy.table_hash(b) != h
    assert entropy.table_hash(a[:6], a[6:]) != entropy.table_hash(a[:5], a[5:])


@pytest.mark.parametrize("pattern", ["random", "sorted", "tiled", "tiled-one-changed", "one-table", "two"])
def test_group_order_shortcuts_equal_a_stable_sort(pattern):
    """The shortcuts for grouped and channel-cycling ids give exactly the stable sort's
    permutation (so the same bytes), and such streams round-trip with escapes."""
    rng = np.random.default_rng(5)
    t = 7
    ids = {
        "random": rng.integers(0, t, 700),
        "sorted": np.sort(rng.integers(0, t, 700)),
        "tiled": np.tile(np.arange(t), 100),
        "tiled-one-changed": np.tile(np.arange(t), 100),
        "one-table": np.zeros(50, np.int64),
        "two": np.array([1, 0]),
    }[pattern]
    if pattern == "tiled-one-changed":
        ids[350] = (ids[350] + 1) % t
    order = entropy._group_order(ids, t)
    want = np.argsort(ids, kind="stable")
    np.testing.assert_array_equal(np.arange(ids.size) if order is None else order, want)
    freqs = entropy.quantize_pmf(rng.exponential(size=(t, 12)) + 0.01)
    offsets = rng.integers(-6, 0, t)
    symbols = rng.integers(-9, 9, ids.size)
    symbols[::37] = 10**6  # escapes
    data = entropy.encode_symbols(symbols, ids, freqs, offsets)
    np.testing.assert_array_equal(entropy.decode_symbols(data, ids, freqs, offsets), symbols)
