"""The Gaussian conditional entropy model: each latent coded under its own mean and scale.

Ballé, Minnen, Singh, Hwang & Johnston, "Variational image compression with a scale
hyperprior", ICLR 2018 (eq. 11), with the mean of Minnen, Ballé & Toderici, NeurIPS 2018:
a symbol ``s = round(y − μ)`` has the probability of its unit bin under ``N(0, σ²)``,

    p(s | σ) = Φ((s + ½)/σ) − Φ((s − ½)/σ).

Training evaluates this density on the noisy latent (:func:`likelihood`). Coding uses a
fixed, logarithmically spaced table of scales (CompressAI's ``get_scale_table``: 64 scales
from 0.11 to 256): each element's scale picks the smallest table scale at least as large
(:func:`scale_indexes`), and every table scale has an integer frequency table built once,
in float64, by :func:`build_tables` and stored with the model, so encoder and decoder
share integers only (:mod:`jaxcodec.entropy.coder`; values beyond a table's range are escaped).
The tables are 24-bit: all of them share one length, wide enough for the largest scale,
and at that precision the small scales lose under 0.02% of their mass to the far symbols.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.entropy import coder as entropy
from jaxcodec.layers.bounds import lower_bound

SCALE_MIN, SCALE_MAX, NUM_SCALES = 0.11, 256.0, 64  # CompressAI's scale table
LIKELIHOOD_BOUND = 1e-9
TABLE_PRECISION = 24
DEFAULT_TAIL_MASS = 1e-9


def scale_table() -> np.ndarray:
    """The coding scales, float64 ``(64,)``: ``exp(linspace(log 0.11, log 256, 64))``."""
    return np.exp(np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), NUM_SCALES))


def likelihood(y: jax.Array, mean: jax.Array, scale: jax.Array) -> jax.Array:
    """Probability of the unit bin around ``y`` under ``N(mean, scale²)``, bounded below.

    Written on ``v = |y − μ|`` as ``Φ((½ − v)/σ) − Φ((−½ − v)/σ)``, two lower-tail values
    that float32 keeps accurate (CompressAI's ``GaussianConditional._likelihood``); the
    scale is bounded below by :data:`SCALE_MIN`.
    """
    scale = lower_bound(scale, SCALE_MIN)
    v = jnp.abs(y - mean)
    upper = jax.scipy.special.ndtr((0.5 - v) / scale)
    lower = jax.scipy.special.ndtr((-0.5 - v) / scale)
    return lower_bound(upper - lower, LIKELIHOOD_BOUND)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.vectorize(math.erfc)(-x / math.sqrt(2.0))


def build_tables(tail_mass: float = DEFAULT_TAIL_MASS) -> tuple[np.ndarray, np.ndarray]:
    """Integer tables of the discretised zero-mean Gaussian at each table scale.

    Table ``k`` covers ``−R .. R`` (``R`` from the largest scale: all but ``tail_mass`` of its
    mass) plus the escape symbol; float64 throughout, ``math.erfc`` for ``Φ``.

    Returns:
      ``(freqs (64, 2R + 2) int32, offsets (64,) int32)``, 24-bit frequencies.
    """
    scales = scale_table()
    # Φ⁻¹(tail/2) by bisection on math.erfc: a float64 function of the constants alone.
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if 0.5 * math.erfc(mid / math.sqrt(2.0)) > tail_mass / 2 else (lo, mid)
    radius = int(math.ceil(hi * scales[-1]))
    values = np.arange(-radius, radius + 1, dtype=np.float64)
    upper = _normal_cdf((values[None, :] + 0.5) / scales[:, None])
    lower = _normal_cdf((values[None, :] - 0.5) / scales[:, None])
    pmf = upper - lower
    escape = np.clip(1.0 - pmf.sum(axis=1, keepdims=True), 0.0, None)
    freqs = entropy.quantize_pmf(np.concatenate([pmf, escape], axis=1), TABLE_PRECISION)
    return freqs, np.full(len(scales), -radius, np.int32)


def scale_indexes(scale_fixed: np.ndarray, fraction_bits: int) -> np.ndarray:
    """Table index of each scale given in fixed point (``scale · 2^fraction_bits`` as
    integers): the smallest table scale at least as large, ``0`` below :data:`SCALE_MIN`,
    the last above :data:`SCALE_MAX`. An integer comparison against the table's scales
    rounded up to the same fixed point, so it is exact on every machine."""
    thresholds = np.ceil(scale_table()[:-1] * (1 << fraction_bits)).astype(np.int64)
    return np.searchsorted(thresholds, np.asarray(scale_fixed, np.int64), side="left").astype(np.int32)
