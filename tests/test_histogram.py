"""Tests for jaxcodec.entropy.histogram: fitting, smoothing, round trips, rates, stored tables."""

import math

import numpy as np
import pytest

from jaxcodec.entropy.histogram import HistogramModel

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _gaussian_latents(rng, n, stds):
    return np.round(rng.normal(0.0, stds, size=(n, len(stds)))).astype(np.int32)


def test_histogram_model_round_trip_and_rate():
    rng = np.random.default_rng(4)
    stds = np.array([0.3, 1.0, 2.0, 5.0, 12.0, 0.7, 3.0, 8.0])
    model = HistogramModel.fit(_gaussian_latents(rng, 20000, stds))
    test = _gaussian_latents(rng, 500, stds)
    data = model.encode(test)
    decoded = model.decode(data, 500)
    assert decoded.shape == (500, 8) and decoded.dtype == np.int32
    np.testing.assert_array_equal(decoded, test)
    # Rate close to the entropy of the rounded Gaussians (independent reference).
    edges = lambda x, s: 0.5 * (1 + np.vectorize(math.erf)(x / (s * math.sqrt(2))))
    h = 0.0
    for s in stds:
        v = np.arange(-80, 81)
        p = edges(v + 0.5, s) - edges(v - 0.5, s)
        p = p[p > 0]
        h += -np.sum(p * np.log2(p))
    assert len(data) * 8 == pytest.approx(500 * h, rel=0.03)
    assert len(data) * 8 == pytest.approx(model.entropy_bits(test), rel=0.003, abs=64)


def test_histogram_model_single_vector_and_escapes():
    rng = np.random.default_rng(5)
    model = HistogramModel.fit(_gaussian_latents(rng, 3000, np.array([1.0, 2.0, 3.0])))
    vector = np.array([10**6, -(10**9), 1], dtype=np.int64)  # far outside the fitted range
    decoded = model.decode(model.encode(vector), None)
    assert decoded.shape == (3,)
    np.testing.assert_array_equal(decoded, vector)
    batch = np.array([[INT32_MAX, INT32_MIN, 0], [0, 0, 0]])
    np.testing.assert_array_equal(model.decode(model.encode(batch), 2), batch)
    assert model.decode(model.encode(np.zeros((0, 3), np.int32)), 0).shape == (0, 3)
    with pytest.raises(ValueError):
        model.encode(np.zeros((2, 4), np.int32))


def test_histogram_model_smoothing_and_ranges():
    symbols = np.array([[0, 5], [0, 5], [2, 6], [2, 7]])
    model = HistogramModel.fit(symbols, alpha=1.0)
    assert model.offsets.tolist() == [0, 5]
    assert model.freqs.shape == (2, 4)  # widest range (3 values) + escape
    # Dimension 0: counts 2, 0 (unseen value 1), 2, escape 0; plus alpha = 1 each.
    expected = np.array([3, 1, 3, 1]) / 8
    np.testing.assert_allclose(model.freqs[0] / 2**16, expected, atol=2 / 2**16)
    # Explicit range: values outside [-1, 1] are not counted but still coded.
    wide = HistogramModel.fit(symbols, min_value=-1, max_value=1)
    assert wide.offsets.tolist() == [-1, -1] and wide.freqs.shape == (2, 4)
    np.testing.assert_array_equal(wide.decode(wide.encode(symbols), 4), symbols)
    with pytest.raises(ValueError):
        HistogramModel.fit(symbols.astype(np.float32))
    with pytest.raises(ValueError):
        HistogramModel.fit(symbols, min_value=3, max_value=1)
    with pytest.raises(ValueError):
        HistogramModel.fit(np.array([[0], [10**6]]))


def test_histogram_model_arrays_round_trip(tmp_path):
    rng = np.random.default_rng(6)
    model = HistogramModel.fit(_gaussian_latents(rng, 2000, np.array([1.0, 4.0, 0.5, 9.0])))
    np.savez(tmp_path / "tables.npz", **model.to_arrays())
    with np.load(tmp_path / "tables.npz") as arrays:
        restored = HistogramModel.from_arrays(dict(arrays))
    sample = _gaussian_latents(rng, 50, np.array([1.0, 4.0, 0.5, 9.0]))
    assert restored.encode(sample) == model.encode(sample)
    assert restored.table_hash == model.table_hash
    assert len(model.table_hash) == 8
    with pytest.raises(ValueError):
        HistogramModel.from_arrays({"freqs": model.freqs})
