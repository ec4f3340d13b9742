"""The hyper-latent search's rate (:mod:`jaxcodec.codecs.hyper_refinement`) against the
discretised Gaussian computed from its definition."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxcodec import tiling
from jaxcodec.codecs import hyper_refinement
from jaxcodec.entropy import gaussian_conditional


def test_coded_bits_are_the_bits_of_the_rounded_residual_under_the_table_scale():
    """``coded_bits`` counts ``−log2 P(round(y − μ))`` under the smallest table scale at
    least ``σ`` (scipy's normal CDF in float64, the table searched in Python), and its
    straight-through gradients reach ``σ`` everywhere and ``μ`` where the symbol is not 0 (bar the
    far tails, where the likelihood's lower bound stops it)."""
    rng = np.random.default_rng(3)
    y = rng.normal(0, 4, (1, 6, 5, 7)).astype(np.float32)
    mean = rng.normal(0, 2, y.shape).astype(np.float32)
    scale = np.exp(rng.uniform(np.log(0.2), np.log(30), y.shape)).astype(np.float32)
    table = gaussian_conditional.scale_table()
    expected = 0.0
    for yi, mi, si in zip(y.ravel().astype(np.float64), mean.ravel(), scale.ravel()):
        s = np.round(yi - mi)
        coded = next(t for t in table if t >= si)
        p = stats.norm.cdf((s + 0.5) / coded) - stats.norm.cdf((s - 0.5) / coded)
        expected -= np.log2(max(p, 1e-9))
    got = float(hyper_refinement.coded_bits(jnp.float32(12.5), jnp.asarray(mean), jnp.asarray(scale), jnp.asarray(y)))
    np.testing.assert_allclose(got, expected + 12.5, rtol=2e-4)
    grad_mean, grad_scale = jax.grad(
        lambda m, s: hyper_refinement.coded_bits(0.0, m, s, jnp.asarray(y)), argnums=(0, 1)
    )(jnp.asarray(mean), jnp.asarray(scale))
    off_centre = np.round(y.astype(np.float64) - mean) != 0  # at s = 0 the bin is the peak: no slope in μ
    assert off_centre.sum() > y.size // 2
    assert np.count_nonzero(np.asarray(grad_mean)[off_centre]) > 0.8 * off_centre.sum()  # rounding's own gradient is 0
    assert np.count_nonzero(np.asarray(grad_scale)) > 0.9 * y.size


def test_search_without_steps_rounds_and_with_steps_lowers_a_known_rate():
    """0 steps: ``round(z0)``. On a toy hyper-synthesis (``μ = z`` upsampled, ``σ = 1``), whose
    best hyper-latent is known (``y``'s 2×2 block means under a cheap ``z``), the search moves
    ``z`` from a far start to integers whose rate is lower than the start's."""
    rng = np.random.default_rng(0)
    y = rng.normal(0, 0.3, (1, 8, 8, 2)).astype(np.float32) + 6.0
    z0 = np.zeros((1, 4, 4, 2), np.float32) + 0.4

    def parameters(params, z):
        mean = jnp.repeat(jnp.repeat(z, 2, axis=1), 2, axis=2) * params
        return jnp.sum(0.5 * z**2) / jnp.log(2.0), mean, jnp.ones_like(mean)

    start = hyper_refinement.search(parameters, 2.0, z0, y, steps=0)
    np.testing.assert_array_equal(np.asarray(start), np.zeros(z0.shape, np.int32))
    found = hyper_refinement.search(parameters, 2.0, z0, y, steps=200, lr=0.1)
    rate = lambda z: float(hyper_refinement.coded_bits(*parameters(2.0, jnp.asarray(z, jnp.float32)), jnp.asarray(y)))
    assert rate(found) < 0.5 * rate(start)
    np.testing.assert_array_equal(np.asarray(found), np.full(z0.shape, 3, np.int32))


def test_search_windows_is_the_search_for_one_window_and_tiles_a_larger_hyper_latent():
    """Under the default budget a small hyper-latent is one window, searched exactly as by
    ``search``; under a budget of 2×2 tiles (windows of 8×8 with the halo of 3) each window
    is searched against the latent under it and the tiles give the toy's known optimum, which
    differs from position to position (so a window against the wrong part of ``y`` fails)."""
    rng = np.random.default_rng(1)
    best = rng.integers(1, 4, (1, 10, 10, 2)).astype(np.int32)
    y = (np.repeat(np.repeat(2.0 * best, 2, axis=1), 2, axis=2) + rng.normal(0, 0.3, (1, 20, 20, 2))).astype(np.float32)
    z0 = np.zeros((1, 10, 10, 2), np.float32) + 0.4

    def parameters(params, z):
        mean = jnp.repeat(jnp.repeat(z, 2, axis=1), 2, axis=2) * params
        return jnp.sum(0.5 * z**2) / jnp.log(2.0), mean, jnp.ones_like(mean)

    whole = hyper_refinement.search_windows(parameters, 2.0, z0, y, 2, steps=200, lr=0.1)
    np.testing.assert_array_equal(whole, np.asarray(hyper_refinement.search(parameters, 2.0, z0, y, steps=200, lr=0.1))[0])
    per_element = hyper_refinement.BYTES_PER_ELEMENT * 2 * 2 * 2
    with tiling.memory_budget(8 * 8 * per_element):
        rows, cols = tiling.windows(10, 10, per_element, hyper_refinement.HALO)
        assert (len(rows), len(cols)) == (5, 5) and rows[0].window_stop - rows[0].window_start == 8
        tiled = hyper_refinement.search_windows(parameters, 2.0, z0, y, 2, steps=200, lr=0.1)
    assert tiled.shape == (10, 10, 2) and tiled.dtype == np.int32
    np.testing.assert_array_equal(tiled, best[0])
