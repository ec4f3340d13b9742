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
* hyper-analysis ``h_a``: ``3×3`` stride 1, two ``5×5`` stride 2, LeakyReLU between.
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

Training minimises ``E_q[λ(q)·255²·MSE + bpp]``. The rate is taken at the noisy
``ỹ = y + u`` and ``z̃ = z + u``; the synthesis receives ``round(y − μ) + μ`` with a
straight-through gradient (Minnen & Singh, "Channel-wise autoregressive entropy models",
ICIP 2020, Sec. 3.1), the symbol the decoder really gets.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxcodec.entropy import deep_factorized as factorized_prior
from jaxcodec.entropy import gaussian_conditional
from jaxcodec.errors import ConfigError
from jaxcodec.layers import DownConv, SubPixelConv
from jaxcodec.models.factorized import AnalysisTransform, SynthesisTransform, learning_rate_schedule

MODEL_NAME = "mbt2018_mean"
# CompressAI's λ ladder for MSE, qualities 1..8.
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932, 0.18)


def interpolate_log(table: jax.Array, quality: jax.Array) -> jax.Array:
    """Exponential interpolation between the rows of ``table`` (log values, ``(Q, ...)``)
    at real 1-based ``quality`` (any shape): ``exp((1−l)·t_r + l·t_{r+1})`` (Cui 2021, eq. 7)."""
    q = jnp.clip(jnp.asarray(quality, jnp.float32) - 1.0, 0.0, table.shape[0] - 1.0)
    low = jnp.clip(jnp.floor(q).astype(jnp.int32), 0, table.shape[0] - 2)
    frac = (q - low.astype(jnp.float32)).reshape(q.shape + (1,) * (table.ndim - 1))
    return jnp.exp((1.0 - frac) * table[low] + frac * table[low + 1])


def lambda_for_quality(quality: Any) -> jax.Array:
    """λ of a real quality in ``[1, 8]``: CompressAI's ladder, interpolated exponentially."""
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
    filters: Sequence[int] = (3, 3, 3)
    lambdas: Sequence[float] = LAMBDAS

    def setup(self):
        n, m, q = self.features, self.latent_channels, len(self.lambdas)
        self.g_a = AnalysisTransform(n, m)
        self.g_s = SynthesisTransform(n, 3)
        self.h_a = HyperAnalysis(n)
        self.h_s = HyperSynthesis(m)
        self.gain = self.param("gain", _log_gain_init(self.lambdas, m, 0.5), (q, m))
        self.inverse_gain = self.param("inverse_gain", _log_gain_init(self.lambdas, m, -0.5), (q, m))
        self.entropy_bottleneck = factorized_prior.DeepFactorized(n, tuple(self.filters))

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
        return self.g_s(y_hat * self._per_image(interpolate_log(self.inverse_gain, quality)))

    def hyper_likelihood(self, z: jax.Array) -> jax.Array:
        return self.entropy_bottleneck(z)

    def __call__(self, x: jax.Array, quality: jax.Array):
        y = self.analysis(x, quality)
        z = self.hyper_analysis(y)
        mean, scale = self.entropy_parameters(jnp.round(z))
        return self.synthesis(y, quality), self.hyper_likelihood(z), gaussian_conditional.likelihood(y, mean, scale)


def _bits(likelihoods: jax.Array) -> jax.Array:
    """Per-image ``Σ −log2 p`` over all but the batch axis."""
    return -jnp.sum(jnp.log(likelihoods), axis=tuple(range(1, likelihoods.ndim))) / math.log(2.0)


def _ste_round(x: jax.Array) -> jax.Array:
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


class MeanScaleTask:
    """Training task of :class:`MeanScaleHyperprior` (one model, every quality)."""

    name = MODEL_NAME

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        m = config.model
        self.model = MeanScaleHyperprior(
            features=int(m.features),
            latent_channels=int(m.latent_channels),
            filters=tuple(int(f) for f in m.filters),
        )
        self.qualities = len(LAMBDAS)
        self.downsampling = 64  # g_a's 16 times h_a's 4

    @functools.cached_property
    def tx(self) -> Any:
        """Adam with clipping (built on first use: decoding needs no optimiser)."""
        import optax

        tx = optax.adam(learning_rate_schedule(self.config))
        if self.config.model.get("clip_norm"):
            tx = optax.chain(optax.clip_by_global_norm(float(self.config.model.clip_norm)), tx)
        return tx

    def _check_batch(self, x: jax.Array) -> None:
        h, w, c = x.shape[1:]
        if c != 3 or h % self.downsampling or w % self.downsampling:
            raise ConfigError(
                f"{MODEL_NAME} trains on RGB images with sides divisible by {self.downsampling}, got {h}x{w}x{c}"
            )

    def init_state(self, rng: jax.Array, batch: jax.Array) -> dict[str, Any]:
        x = jnp.zeros((1,) + tuple(batch.shape[1:3]) + (3,), jnp.float32)
        self._check_batch(x)
        params = self.model.init(rng, x, jnp.ones((1,), jnp.float32))
        return {"step": jnp.zeros((), jnp.int32), "params": params, "opt": self.tx.init(params)}

    def forward(self, params: Any, x: jax.Array, quality: jax.Array, rng: jax.Array | None):
        """``(x̂, bits per image, MSE per image)``: noisy rates with ``rng``, rounded without."""
        apply = self.model.apply
        y = apply(params, x, quality, method=MeanScaleHyperprior.analysis)
        z = apply(params, y, method=MeanScaleHyperprior.hyper_analysis)
        if rng is None:
            z_rate = z_hat = jnp.round(z)
        else:
            z_rate, z_hat = z + jax.random.uniform(rng, z.shape, z.dtype, -0.5, 0.5), _ste_round(z)
        mean, scale = apply(params, z_hat, method=MeanScaleHyperprior.entropy_parameters)
        if rng is None:
            y_rate = y_hat = jnp.round(y - mean) + mean
        else:
            noise = jax.random.uniform(jax.random.fold_in(rng, 1), y.shape, y.dtype, -0.5, 0.5)
            y_rate, y_hat = y + noise, _ste_round(y - mean) + mean
        x_hat = apply(params, y_hat, quality, method=MeanScaleHyperprior.synthesis)
        bits = _bits(apply(params, z_rate, method=MeanScaleHyperprior.hyper_likelihood))
        bits = bits + _bits(gaussian_conditional.likelihood(y_rate, mean, scale))
        return x_hat, bits, jnp.mean((x_hat - x) ** 2, axis=(1, 2, 3))

    def loss_fn(self, params: Any, x: jax.Array, rng: jax.Array) -> tuple[jax.Array, dict]:
        """``mean_i λ(q_i)·255²·MSE_i + bpp_i`` with ``q_i ~ U[1, Q]`` per image."""
        self._check_batch(x)
        q_rng, noise_rng = jax.random.split(rng)
        quality = jax.random.uniform(q_rng, (x.shape[0],), jnp.float32, 1.0, float(self.qualities))
        x_hat, bits, mse = self.forward(params, x, quality, noise_rng)
        bpp = bits / (x.shape[1] * x.shape[2])
        loss = jnp.mean(lambda_for_quality(quality) * 255.0**2 * mse + bpp)
        psnr = jnp.mean(-10.0 * jnp.log10(jnp.maximum(mse, 1e-10)))
        return loss, {"loss": loss, "mse": jnp.mean(mse), "bpp": jnp.mean(bpp), "psnr": psnr}

    def train_step(self, state: dict, batch: jax.Array, rng: jax.Array) -> tuple[dict, dict]:
        import optax

        grads, metrics = jax.grad(self.loss_fn, has_aux=True)(state["params"], batch, rng)
        updates, opt = self.tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {"step": state["step"] + 1, "params": params, "opt": opt}, metrics

    def eval_step(self, state: dict, batch: jax.Array) -> dict[str, jax.Array]:
        """Rounded latents at the ladder's middle quality (4), reconstruction clipped."""
        self._check_batch(batch)
        quality = jnp.full((batch.shape[0],), 4.0, jnp.float32)
        x_hat, bits, _ = self.forward(state["params"], batch, quality, None)
        mse = jnp.mean((jnp.clip(x_hat, 0.0, 1.0) - batch) ** 2)
        bpp = jnp.mean(bits) / (batch.shape[1] * batch.shape[2])
        return {"loss": LAMBDAS[3] * 255.0**2 * mse + bpp, "mse": mse, "bpp": bpp,
                "psnr": -10.0 * jnp.log10(jnp.maximum(mse, 1e-10))}


    def finalize(self, state: dict, batches: Any = None) -> dict[str, np.ndarray]:
        """Integer tables, float64: the hyper-latent's deep factorized density per channel
        (:func:`jaxcodec.entropy.deep_factorized.build_tables`) and the Gaussian conditional's
        table of scales (:func:`jaxcodec.entropy.gaussian_conditional.build_tables`)."""
        tail_mass = float(self.config.model.get("tail_mass", factorized_prior.DEFAULT_TAIL_MASS))
        eb = jax.device_get(state["params"]["params"]["entropy_bottleneck"])
        z_freqs, z_offsets = factorized_prior.build_tables(eb, tail_mass=tail_mass)
        y_freqs, y_offsets = gaussian_conditional.build_tables(tail_mass)
        return {"z_freqs": z_freqs, "z_offsets": z_offsets, "y_freqs": y_freqs, "y_offsets": y_offsets}

    def make_codec(self, state: dict, tables: dict[str, np.ndarray] | None = None):
        """The ``.jxc`` codec (:class:`jaxcodec.models.hyperprior_codec.MeanScaleCodec`)."""
        from jaxcodec.models.hyperprior_codec import MeanScaleCodec

        return MeanScaleCodec(self, state["params"], self.finalize(state) if tables is None else tables)


def default_config() -> ml_collections.ConfigDict:
    """``mbt2018-mean`` with continuous rate: N=128, M=192, qualities 1..8 in one model."""
    config = ml_collections.ConfigDict()
    config.model = ml_collections.ConfigDict()
    config.model.name = MODEL_NAME  # jaxcodec.models registry key
    config.model.features = 128  # N: hidden channels of g_a/g_s and the hyper-latent's channels
    config.model.latent_channels = 192  # M: latent channels
    config.model.filters = (3, 3, 3)  # hidden widths of the hyper-latent's deep factorized density
    config.model.clip_norm = 1.0  # global gradient-norm clipping; 0 disables
    config.model.tail_mass = 1e-9  # density mass left to the escape symbol of each integer table

    config.data = ml_collections.ConfigDict()
    config.data.train = ""  # required: folder:PATH of training photos
    config.data.train_split = "train"
    config.data.eval = ""  # "" skips in-training evaluation (eval.py measures real streams)
    config.data.eval_split = "test"
    config.data.image_size = None
    config.data.crop = 256  # random square training patches (128 on 2 CPU cores)
    config.data.downscale = 1.0  # >1: each patch a random square up to this many times larger, shrunk

    config.batch_size = 8
    config.num_steps = 1_000_000
    config.learning_rate = 1e-4
    config.lr_decay_at = 0.0
    config.init_from = ""
    config.seed = 0
    config.log_every = 100
    config.eval_every = 5000
    config.eval_batches = 1
    config.checkpoint_every = 5000
    config.keep_checkpoints = 3
    return config
