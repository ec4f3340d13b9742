"""Mean-scale hyperprior with continuous rate: one model for the whole λ ladder.

Minnen, Ballé & Toderici, "Joint autoregressive and hierarchical priors for learned
image compression", NeurIPS 2018 (the mean-scale hyperprior without its context model;
CompressAI's ``mbt2018-mean``), with the gain units of Cui, Wang, Gao, Bai & Shi,
"Asymmetric gained deep image compression with continuous rate adaptation", CVPR 2021:

* analysis ``g_a`` and synthesis ``g_s`` as Ballé 2018 (four stride-2 ``5×5`` layers with
  GDN/IGDN, ``N`` hidden and ``M`` latent channels; :mod:`jaxcodec.models.factorized`);
* the latent is multiplied by a per-channel **gain** ``m(q) ∈ R^M`` before rounding and
  by an **inverse gain** ``m'(q)`` after it (Cui 2021, Sec. 3.1): a larger gain is a finer
  quantisation step, so one set of transforms serves every rate. The gains of the
  ladder's ``Q`` rungs are learned; a real quality ``q ∈ [1, Q]`` uses the exponential
  interpolation ``m(q) = m_r^{1−l} · m_{r+1}^{l}`` of its two neighbours (Cui 2021,
  eq. 7), and so does λ: training draws ``q`` uniformly per example and weighs its
  distortion with ``λ(q) = λ_r^{1−l} λ_{r+1}^{l}``;
* optionally (``synthesis_modulation``) a **conditional decoder**: after each of ``g_s``'s
  hidden IGDN layers a per-channel affine map ``a ↦ a·s_l(q) + b_l(q)`` whose log-scales
  and biases are learned per rung and interpolated like the gains (Choi, El-Khamy & Lee,
  "Variable rate deep image compression with a conditional autoencoder", ICCV 2019:
  channel-wise scale and bias as a function of the rate). They start at the identity, so a
  model trained without them starts unchanged, and they leave ``g_a`` and the entropy
  model alone (the encoder's latent stays the same for every quality up to its gain);
* hyper-analysis ``h_a``: ``3×3`` stride 1, two ``5×5`` stride 2, LeakyReLU between, with
  ``hyper_features`` channels (``N`` unless set: a widened model keeps its hyper-networks).
  Unlike Cui 2021, the hyper-latent has no gain of its own: ``h_a`` sees the gained latent,
  so ``z`` already carries the rate, and the decoder's path from the rounded ``z`` to the
  entropy parameters stays free of any real-valued factor (it runs in integer arithmetic,
  :mod:`jaxcodec.entropy.integer_net`);
* hyper-synthesis ``h_s``: two 2× sub-pixel up-samplings (``N → M → 3M/2``) with ReLU,
  then a ``3×3`` convolution to ``2M`` channels: a mean ``μ`` and a scale ``σ`` per latent
  element (Minnen 2018, Sec. 3, Fig. 2; the scale bounded below by 0.11, CompressAI's
  ``SCALES_MIN``);
* the hyper-latent ``z`` has the deep factorized density (:mod:`jaxcodec.entropy.deep_factorized`),
  the gained latent the discretised Gaussian ``p(ŷ | μ, σ) = Φ((ŷ − μ + ½)/σ) − Φ((ŷ − μ − ½)/σ)``
  (Ballé 2018, eq. 11, with the mean of Minnen 2018).

The Flax modules only: training is :mod:`jaxcodec.train.tasks.hyperprior`, the ``.jxc``
codec :mod:`jaxcodec.codecs.hyperprior`.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.entropy import deep_factorized as factorized_prior
from jaxcodec.entropy import gaussian_conditional
from jaxcodec.layers import DownConv, SubPixelConv
from jaxcodec.models.factorized import AnalysisTransform, SynthesisTransform

MODEL_NAME = "mbt2018_mean"
# CompressAI's λ ladder for MSE, qualities 1..8.
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932, 0.18)


def interpolate(table: jax.Array, quality: jax.Array) -> jax.Array:
    """Linear interpolation ``(1−l)·t_r + l·t_{r+1}`` between the rows of ``table`` (``(Q, ...)``)
    at real 1-based ``quality`` (any shape), clipped to ``[1, Q]``."""
    q = jnp.clip(jnp.asarray(quality, jnp.float32) - 1.0, 0.0, table.shape[0] - 1.0)
    low = jnp.clip(jnp.floor(q).astype(jnp.int32), 0, table.shape[0] - 2)
    frac = (q - low.astype(jnp.float32)).reshape(q.shape + (1,) * (table.ndim - 1))
    return (1.0 - frac) * table[low] + frac * table[low + 1]


def interpolate_log(table: jax.Array, quality: jax.Array) -> jax.Array:
    """Exponential interpolation between the rows of ``table`` (log values, ``(Q, ...)``)
    at real 1-based ``quality`` (any shape): ``exp((1−l)·t_r + l·t_{r+1})`` (Cui 2021, eq. 7)."""
    return jnp.exp(interpolate(table, quality))


def lambda_for_quality(quality: jax.Array) -> jax.Array:
    """λ of a real quality in ``[1, 8]``: CompressAI's ladder, interpolated exponentially
    (the weight training gives a drawn quality, and refinement's objective)."""
    return interpolate_log(jnp.log(jnp.asarray(LAMBDAS, jnp.float32)), quality)


class HyperAnalysis(nn.Module):
    """``h_a``: ``3×3`` stride 1, ``5×5`` stride 2, ``5×5`` stride 2 (``N`` channels), LeakyReLU between."""

    features: int = 128

    @nn.compact
    def __call__(self, y: jax.Array) -> jax.Array:
        x = nn.Conv(self.features, (3, 3), padding="SAME", name="conv0")(y)
        x = DownConv(self.features, 5, name="conv1")(nn.leaky_relu(x))
        return DownConv(self.features, 5, name="conv2")(nn.leaky_relu(x))


class HyperSynthesis(nn.Module):
    """``h_s``: 2× up (``M``), ReLU, 2× up (``3M/2``), ReLU, ``3×3`` to ``2M``: ``(μ, σ)``."""

    latent_channels: int = 192

    @nn.compact
    def __call__(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        m = self.latent_channels
        x = nn.relu(SubPixelConv(m, 3, name="conv0")(z))
        x = nn.relu(SubPixelConv(m * 3 // 2, 3, name="conv1")(x))
        x = nn.Conv(2 * m, (3, 3), padding="SAME", name="conv2")(x)
        return x[..., :m], x[..., m:]


def _log_gain_init(lambdas: Sequence[float], channels: int, exponent: float):
    """Gains starting at ``(λ_q / λ_mid)^exponent`` per rung: high-rate theory (``D ∝ Δ²``,
    the optimal step ``Δ ∝ λ^{−½}``) gives ``½`` for the latent's gain, ``−½`` for its inverse."""

    def init(key, shape, dtype=jnp.float32):
        logs = np.log(np.asarray(lambdas, np.float64))
        rows = exponent * (logs - np.median(logs))
        return jnp.asarray(np.repeat(rows[:, None], channels, axis=1), dtype)

    return init


class MeanScaleHyperprior(nn.Module):
    """The networks, gains and the hyper-latent's density; see the module docstring."""

    features: int = 128
    latent_channels: int = 192
    hyper_features: int = 0  # channels of h_a and of the hyper-latent; 0: ``features``
    filters: Sequence[int] = (3, 3, 3)
    lambdas: Sequence[float] = LAMBDAS
    synthesis_modulation: bool = False

    def setup(self):
        n, m, q = self.features, self.latent_channels, len(self.lambdas)
        self.g_a = AnalysisTransform(n, m)
        self.g_s = SynthesisTransform(n, 3)
        self.h_a = HyperAnalysis(self.hyper_channels)
        self.h_s = HyperSynthesis(m)
        self.gain = self.param("gain", _log_gain_init(self.lambdas, m, 0.5), (q, m))
        self.inverse_gain = self.param("inverse_gain", _log_gain_init(self.lambdas, m, -0.5), (q, m))
        self.entropy_bottleneck = factorized_prior.DeepFactorized(self.hyper_channels, tuple(self.filters))
        if self.synthesis_modulation:  # (Q, hidden layers of g_s, N), identity at the start
            hidden = len(self.g_s.kernel_sizes) - 1
            self.synthesis_log_scale = self.param("synthesis_log_scale", nn.initializers.zeros, (q, hidden, n))
            self.synthesis_bias = self.param("synthesis_bias", nn.initializers.zeros, (q, hidden, n))

    @property
    def hyper_channels(self) -> int:
        """Channels of ``h_a`` and of the hyper-latent ``z``: ``hyper_features``, or ``N``."""
        return int(self.hyper_features or self.features)

    @staticmethod
    def _per_image(gains: jax.Array) -> jax.Array:
        return gains[:, None, None, :]  # (B, C) -> broadcast over (B, H, W, C)

    def analysis(self, x: jax.Array, quality: jax.Array) -> jax.Array:
        """Gained latent ``y·m(q)`` of images ``x`` at per-image qualities ``quality (B,)``."""
        return self.apply_gain(self.g_a(x), quality)

    def transform(self, x: jax.Array) -> jax.Array:
        """``g_a(x)`` before the gain: the same for every quality."""
        return self.g_a(x)

    def apply_gain(self, y: jax.Array, quality: jax.Array) -> jax.Array:
        return y * self._per_image(interpolate_log(self.gain, quality))

    def hyper_analysis(self, y: jax.Array) -> jax.Array:
        return self.h_a(y)

    def entropy_parameters(self, z_hat: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(μ, σ)`` of the gained latent from the rounded hyper-latent."""
        return self.h_s(z_hat)

    def synthesis(self, y_hat: jax.Array, quality: jax.Array) -> jax.Array:
        """Images from the gained latent ``ŷ`` at per-image qualities ``quality (B,)``."""
        modulation = None
        if self.synthesis_modulation:
            modulation = (interpolate_log(self.synthesis_log_scale, quality),
                          interpolate(self.synthesis_bias, quality))
        return self.g_s(y_hat * self._per_image(interpolate_log(self.inverse_gain, quality)), modulation)

    def hyper_likelihood(self, z: jax.Array) -> jax.Array:
        return self.entropy_bottleneck(z)

    def __call__(self, x: jax.Array, quality: jax.Array):
        y = self.analysis(x, quality)
        z = self.hyper_analysis(y)
        mean, scale = self.entropy_parameters(jnp.round(z))
        return self.synthesis(y, quality), self.hyper_likelihood(z), gaussian_conditional.likelihood(y, mean, scale)
