"""Training of the mean-scale hyperprior with continuous rate
(:mod:`jaxcodec.models.hyperprior`: Minnen, Ballé & Toderici, NeurIPS 2018, with the gain
units of Cui et al., CVPR 2021).

Training minimises ``E_q[λ(q)·255²·MSE + bpp]``. The rate is taken at the noisy
``ỹ = y + u`` and ``z̃ = z + u``; the synthesis receives ``round(y − μ) + μ`` with a
straight-through gradient (Minnen & Singh, "Channel-wise autoregressive entropy models",
ICIP 2020, Sec. 3.1), the symbol the decoder really gets.

With ``model.trainable = "analysis"`` only the encoder's parameters learn (``g_a``, the gains
and ``h_a``); the synthesis, its inverse gains and modulation, ``h_s`` and the hyper-latent's
density keep their exact values, so the integer network and the coding tables are unchanged
and the model's streams stay decodable by the original decoder. That is the second stage of
Guo, Zhang, Feng & Chen, "Soft then hard: rethinking the quantization in neural image
compression", ICML 2021: the encoder fine-tuned against the decoder it will be paired with.

With ``model.free_latents_from = K`` and ``model.free_latents_steps = S``, for the first ``S``
steps the latent channels from ``K`` on are trained *free*: the synthesis receives them with the
additive noise (``y + u``, no rounding) and the rate leaves them out. It wakes the channels that
a widening added to a trained model (:func:`_live_new_latents`): under the mixed quantisation
their small values round to zero, so ``g_s``'s weights from them get no gradient and the rate
holds them at their mean (measured: no symbol in 2,000 steps). Free, they learn what the
synthesis can use, as a linear autoencoder of the residual would; after ``S`` steps the rate
prices them like the others (docs/training.md, "The transforms' ceiling").

With ``model.quantizer = "sga"`` the latent is instead quantised, for the rate and the
synthesis alike, by stochastic Gumbel annealing (Yang, Bamler & Mandt, "Improving inference
for neural image compression", NeurIPS 2020, Sec. 3.2): ``ŷ = μ + SGA(y − μ, τ)``, a soft
rounding that turns hard as the temperature ``τ`` falls linearly over the run
(``model.sga_temperature``, from its first value to its second). It is the objective the
encoder-side search minimises per image (:mod:`jaxcodec.codecs.refinement`), here taught to
the encoder itself; the hyper-latent keeps the mixed quantisation.

A run can start from the trained transforms of a factorized-prior model with the same
``N`` and ``M`` (``model.init_transforms_from``): ``g_a`` and ``g_s`` are copied, and the
gains start at ``(λ_q/λ_source)^{±½}`` (the high-rate rule of
:func:`jaxcodec.models.hyperprior._log_gain_init`), so the source's own quality is reproduced
exactly and the others start as its latent rescaled. With ``model.freeze_transforms_steps``
the copied transforms stay fixed while the new hyper-networks and gains learn the
entropy model the transforms already have (a hyperprior needs no other change to them,
Ballé et al. 2018, Sec. 3).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxcodec.codecs.refinement import sga_round
from jaxcodec.entropy import deep_factorized as factorized_prior
from jaxcodec.entropy import gaussian_conditional
from jaxcodec.errors import ConfigError, JaxcodecError, one_line
from jaxcodec.models.hyperprior import LAMBDAS, MODEL_NAME, MeanScaleHyperprior, lambda_for_quality
from jaxcodec.ops.conv import conv_dtype
from jaxcodec.train.tasks.factorized import compute_dtype, learning_rate_schedule, only_parts_learn


def _bits(likelihoods: jax.Array) -> jax.Array:
    """Per-image ``Σ −log2 p`` over all but the batch axis."""
    return -jnp.sum(jnp.log(likelihoods), axis=tuple(range(1, likelihoods.ndim))) / math.log(2.0)


def _ste_round(x: jax.Array) -> jax.Array:
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


# Training proxies of rounding the latent (module docstring).
QUANTIZERS = ("mixed", "sga")
# The parameter groups that learn (``model.trainable``): everything, or the encoder's side only.
TRAINABLE = ("all", "analysis")
ENCODER_PARTS = ("g_a", "gain", "h_a")  # the parameters only the encoder uses


def _live_new_latents(g_s: Any, h_s: Any, fresh_g_s: Any, old: int, new: int) -> tuple[dict, dict]:
    """New latent channels ``old..new`` made trainable without changing what the model codes.

    Silenced on the way out like hidden channels (zero weights into ``g_s``), a latent channel
    stays dead: the training rate pins it at its mean under the smallest scale, and its only
    pull the other way runs through those zero weights (measured: after 3,500 steps from the
    shipped model, not one new symbol at any quality, the channels' spread shrinking). So
    ``g_s`` takes the new channels with fresh, full-scale weights, and ``h_s`` predicts them a
    mean of exactly zero (zero weights and bias): their small values round to zero symbols
    about a zero mean, ``ŷ = 0`` exactly, so the pixels are unchanged, while the distortion's
    gradient reaches them at full strength from the first step."""
    conv0 = dict(g_s["conv0"])
    kernel = np.array(conv0["kernel"], np.float32)
    kernel[:, :, old:new, :] = np.asarray(fresh_g_s["conv0"]["kernel"], np.float32)[:, :, old:new, :]
    conv0["kernel"] = kernel
    conv2 = dict(h_s["conv2"])
    kernel2, bias2 = np.array(conv2["kernel"], np.float32), np.array(conv2["bias"], np.float32)
    kernel2[..., old:new], bias2[old:new] = 0.0, 0.0  # outputs [μ (new channels), σ (new channels)]
    conv2["kernel"], conv2["bias"] = kernel2, bias2
    return {**g_s, "conv0": conv0}, {**h_s, "conv2": conv2}


class MeanScaleTask:
    """Training task of :class:`MeanScaleHyperprior` (one model, every quality)."""

    name = MODEL_NAME

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        m = config.model
        self.model = MeanScaleHyperprior(
            features=int(m.features),
            latent_channels=int(m.latent_channels),
            hyper_features=int(m.get("hyper_features", 0) or 0),
            filters=tuple(int(f) for f in m.filters),
            synthesis_modulation=bool(m.get("synthesis_modulation", False)),
        )
        self.qualities = len(LAMBDAS)
        self.downsampling = 64  # g_a's 16 times h_a's 4
        self.compute_dtype = compute_dtype(config)
        self.freeze_transforms_steps = int(m.get("freeze_transforms_steps", 0) or 0)
        self.transforms_lr_scale = float(m.get("transforms_lr_scale", 1.0))
        if not 0.0 <= self.transforms_lr_scale <= 1.0:
            raise ConfigError(f"model.transforms_lr_scale must be in [0, 1], got {self.transforms_lr_scale:g}")
        low, high = (float(v) for v in m.get("quality_range", (1.0, float(self.qualities))))
        if not 1.0 <= low <= high <= self.qualities:
            raise ConfigError(f"model.quality_range must be LOW,HIGH with 1 <= LOW <= HIGH <= {self.qualities}, "
                              f"got {low:g},{high:g}")
        self.quality_range = (low, high)
        self.quality_margin = float(m.get("quality_margin", 0.0) or 0.0)
        if not 0.0 <= self.quality_margin <= 1.0:
            raise ConfigError(f"model.quality_margin must be in [0, 1], got {self.quality_margin:g}")
        self.rate_balance = float(m.get("rate_balance", 0.0) or 0.0)
        if not 0.0 <= self.rate_balance <= 1.0:
            raise ConfigError(f"model.rate_balance must be in [0, 1], got {self.rate_balance:g}")
        self.quantizer = str(m.get("quantizer", "mixed") or "mixed")
        if self.quantizer not in QUANTIZERS:
            raise ConfigError(f"model.quantizer must be one of {', '.join(QUANTIZERS)}, got {self.quantizer!r}")
        tau = tuple(float(v) for v in m.get("sga_temperature", (0.5, 0.05)))
        if len(tau) != 2 or not all(0.0 < v for v in tau):
            raise ConfigError(f"model.sga_temperature must be two positive values START,END, got {tau}")
        self.sga_temperature = tau
        self.trainable = str(m.get("trainable", "all") or "all")
        if self.trainable not in TRAINABLE:
            raise ConfigError(f"model.trainable must be one of {', '.join(TRAINABLE)}, got {self.trainable!r}")
        if self.freeze_transforms_steps < 0:
            raise ConfigError(f"model.freeze_transforms_steps must be >= 0, got {self.freeze_transforms_steps}")
        self.free_latents_from = int(m.get("free_latents_from", 0) or 0)
        self.free_latents_steps = int(m.get("free_latents_steps", 0) or 0)
        if not 0 <= self.free_latents_from < int(m.latent_channels) or self.free_latents_steps < 0:
            raise ConfigError(f"model.free_latents_from must lie in 0..{int(m.latent_channels) - 1} and "
                              f"model.free_latents_steps be >= 0, got {self.free_latents_from}, {self.free_latents_steps}")
        if self.free_latents_from and self.quantizer != "mixed":
            raise ConfigError("model.free_latents_from needs model.quantizer=mixed")

    @functools.cached_property
    def tx(self) -> Any:
        """Adam with clipping (built on first use: decoding needs no optimiser)."""
        import optax

        tx = optax.adam(learning_rate_schedule(self.config))
        if self.config.model.get("clip_norm"):
            tx = optax.chain(optax.clip_by_global_norm(float(self.config.model.clip_norm)), tx)
        if self.trainable == "analysis":  # the decoder, h_s and the densities get no updates
            tx = only_parts_learn(tx, ENCODER_PARTS)
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

    def initial_params(self, params: Any) -> Any:
        """``params`` with ``g_a``/``g_s`` of ``model.init_transforms_from`` (a factorized-prior
        model: shipped name or workdir) and the gains set for its λ; unchanged when unset."""
        source = str(self.config.model.get("init_transforms_from", "") or "")
        if not source:
            return params
        from jaxcodec import zoo

        try:
            codec = zoo.get_codec(source)
        except JaxcodecError as error:
            raise ConfigError(f"model.init_transforms_from: {one_line(error)}") from None
        source_params = getattr(codec, "params", None)
        source_lmbda = getattr(codec, "lmbda", None)
        tree = source_params.get("params", {}) if isinstance(source_params, dict) else {}
        if source_lmbda is None or "g_a" not in tree or "g_s" not in tree:
            raise ConfigError(f"model.init_transforms_from: {source} is not one factorized-prior model "
                              "(name a single rung, e.g. bmshj2017-factorized-q5)")
        own = params["params"]

        def layout(t):
            return jax.tree.map(lambda a: tuple(np.shape(a)), t)

        for part in ("g_a", "g_s"):
            if layout(tree[part]) != layout(own[part]):
                raise ConfigError(f"model.init_transforms_from: {source}'s {part} does not fit this model "
                                  f"(features {self.config.model.features}, latent_channels "
                                  f"{self.config.model.latent_channels})")
        log_ratio = 0.5 * (np.log(np.asarray(LAMBDAS, np.float64)) - np.log(float(source_lmbda)))
        rows = np.repeat(log_ratio[:, None], own["gain"].shape[1], axis=1).astype(np.float32)
        copied = {part: jax.tree.map(lambda a: np.asarray(a, np.float32), tree[part]) for part in ("g_a", "g_s")}
        return {**params, "params": {**own, **copied, "gain": rows, "inverse_gain": -rows}}

    def complete_start(self, params: Any, fresh: Any) -> Any:
        """``params`` of a start (``config.init_from``) completed to this run's model, which
        reproduces the start: a start trained without ``model.synthesis_modulation`` gains this
        run's fresh, identity modulation; a start with fewer hidden channels in ``g_a``/``g_s``
        (``model.features``) or fewer latent channels (``model.latent_channels``) is embedded in
        the wider networks (:func:`jaxcodec.train.widening.widen`; new latent channels code as
        zero symbols about a zero mean, almost no bits and no change to the pixels, and reach
        the synthesis through live weights, :func:`_live_new_latents`; the hyper-latent keeps
        its width, ``model.hyper_features``)."""
        from jaxcodec.train import widening

        own, new = dict(params["params"]), fresh["params"]
        old_latents, new_latents = np.shape(own["gain"])[-1], np.shape(new["gain"])[-1]
        for name in ("synthesis_log_scale", "synthesis_bias"):
            if name in new and name not in own:
                own[name] = np.asarray(new[name])
        for part in ("g_a", "g_s", "h_a"):
            if part in own and part in new and widening.can_widen(own[part], new[part]):
                own[part] = widening.widen(own[part], new[part], subpixel=part == "g_s")
        if "h_s" in own and "h_s" in new and widening.can_widen(own["h_s"], new["h_s"]):
            hidden = {name: layer for name, layer in own["h_s"].items() if name != "conv2"}
            own["h_s"] = {  # sub-pixel up-samplings, then one convolution out to [μ, σ]
                **widening.widen(hidden, {name: new["h_s"][name] for name in hidden}, subpixel=True),
                "conv2": widening.widen(own["h_s"]["conv2"], new["h_s"]["conv2"], output_groups=2),
            }
        for name in ("gain", "inverse_gain", "synthesis_log_scale", "synthesis_bias"):
            if name in own and name in new and widening.can_widen(own[name], new[name]):
                own[name] = widening.widen_table(own[name], new[name])
        if new_latents > old_latents:
            own["g_s"], own["h_s"] = _live_new_latents(own["g_s"], own["h_s"], new["g_s"], old_latents, new_latents)
        return {**params, "params": own}

    def temperature(self, step: jax.Array) -> jax.Array:
        """SGA temperature at ``step``: linear over ``config.num_steps`` between the two values of
        ``model.sga_temperature``, then held at the second."""
        start, end = self.sga_temperature
        share = jnp.clip(jnp.asarray(step, jnp.float32) / max(int(self.config.num_steps) - 1, 1), 0.0, 1.0)
        return start + (end - start) * share

    def forward(self, params: Any, x: jax.Array, quality: jax.Array, rng: jax.Array | None,
                step: jax.Array | int = 0):
        """``(x̂, bits per image, MSE per image)``: the training quantiser (``model.quantizer``, at
        the temperature of ``step`` for SGA) with ``rng``, rounded latents without."""
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
        elif self.quantizer == "sga":
            y_rate = y_hat = sga_round(y - mean, self.temperature(step), jax.random.fold_in(rng, 1)) + mean
        else:
            noise = jax.random.uniform(jax.random.fold_in(rng, 1), y.shape, y.dtype, -0.5, 0.5)
            y_rate, y_hat = y + noise, _ste_round(y - mean) + mean
        likelihood = gaussian_conditional.likelihood(y_rate, mean, scale)
        if rng is not None and self.free_latents_from:  # the mixed quantiser (checked in __init__)
            free = (jnp.arange(y.shape[-1]) >= self.free_latents_from) & (jnp.asarray(step) < self.free_latents_steps)
            y_hat = jnp.where(free, y_rate, y_hat)
            likelihood = jnp.where(free, 1.0, likelihood)
        x_hat = apply(params, y_hat, quality, method=MeanScaleHyperprior.synthesis)
        bits = _bits(apply(params, z_rate, method=MeanScaleHyperprior.hyper_likelihood))
        bits = bits + _bits(likelihood)
        return x_hat, bits, jnp.mean((x_hat - x) ** 2, axis=(1, 2, 3))

    def draw_qualities(self, rng: jax.Array, count: int) -> jax.Array:
        """``count`` qualities, uniform on ``model.quality_range`` widened by ``model.quality_margin``
        at both ends and clipped back to it.

        A real quality trains the two rungs around it with weights ``1−l`` and ``l`` (the
        interpolation of :func:`jaxcodec.models.hyperprior.interpolate_log`), so under a plain
        uniform draw every inner rung's gains are trained with weight 1 and the two end rungs'
        with only ½. A margin of ½ puts that missing half on the ends exactly (probability
        ``½/(high−low+1)`` each), so every rung's gains, and the shared transforms, see each rate alike."""
        low, high = self.quality_range
        margin = self.quality_margin if high > low else 0.0
        drawn = jax.random.uniform(rng, (count,), jnp.float32, low - margin, high + margin)
        return jnp.clip(drawn, low, high)

    def quality_weights(self, quality: jax.Array) -> jax.Array:
        """Each image's weight in the objective: ``λ(q_i)^(−β)`` over its batch mean, with
        ``β = model.rate_balance`` (all ones for β = 0 or a single rung).

        An image's ``λ(q)·255²·MSE + bpp`` grows about as ``λ^0.6`` over CompressAI's ladder
        (on photos, about 0.7 at quality 1 and 11 at quality 8), so in a plain mean the top
        rates steer the parameters every quality shares and the bottom ones pay for it. A
        positive factor per quality leaves each quality's own optimum where it was and evens
        their pull."""
        weights = lambda_for_quality(quality) ** (-self.rate_balance)
        return weights / jnp.mean(weights)

    def loss_fn(self, params: Any, x: jax.Array, rng: jax.Array, step: jax.Array | int = 0) -> tuple[jax.Array, dict]:
        """``mean_i w_i·(λ(q_i)·255²·MSE_i + bpp_i)`` with ``q_i ~ U[model.quality_range]`` per
        image (``[1, Q]`` by default; one value trains a single rung) and ``w_i`` of
        :meth:`quality_weights`; the ``loss`` it reports is the plain mean."""
        self._check_batch(x)
        q_rng, noise_rng = jax.random.split(rng)
        quality = self.draw_qualities(q_rng, x.shape[0])
        x_hat, bits, mse = self.forward(params, x, quality, noise_rng, step)
        bpp = bits / (x.shape[1] * x.shape[2])
        per_image = lambda_for_quality(quality) * 255.0**2 * mse + bpp
        objective = jnp.mean(self.quality_weights(quality) * per_image)
        psnr = jnp.mean(-10.0 * jnp.log10(jnp.maximum(mse, 1e-10)))
        return objective, {"loss": jnp.mean(per_image), "mse": jnp.mean(mse), "bpp": jnp.mean(bpp), "psnr": psnr}

    def train_step(self, state: dict, batch: jax.Array, rng: jax.Array) -> tuple[dict, dict]:
        import optax

        with conv_dtype(self.compute_dtype):  # mixed precision: model.compute_dtype
            grads, metrics = jax.grad(self.loss_fn, has_aux=True)(state["params"], batch, rng, state["step"])
        updates, opt = self.tx.update(grads, state["opt"], state["params"])
        if self.freeze_transforms_steps or self.transforms_lr_scale != 1.0:
            # copied transforms held while the entropy model learns, then (optionally) slower
            factor = jnp.where(state["step"] >= self.freeze_transforms_steps, self.transforms_lr_scale, 0.0)
            inner = dict(updates["params"])
            for part in ("g_a", "g_s"):
                inner[part] = jax.tree.map(lambda u: (factor * u).astype(u.dtype), inner[part])
            updates = {**updates, "params": inner}
        params = optax.apply_updates(state["params"], updates)
        return {"step": state["step"] + 1, "params": params, "opt": opt}, metrics

    def eval_step(self, state: dict, batch: jax.Array) -> dict[str, jax.Array]:
        """Rounded latents at the ladder's middle quality (4, or the nearest trained one),
        reconstruction clipped."""
        self._check_batch(batch)
        quality = jnp.full((batch.shape[0],), min(max(4.0, self.quality_range[0]), self.quality_range[1]), jnp.float32)
        x_hat, bits, _ = self.forward(state["params"], batch, quality, None)
        mse = jnp.mean((jnp.clip(x_hat, 0.0, 1.0) - batch) ** 2)
        bpp = jnp.mean(bits) / (batch.shape[1] * batch.shape[2])
        return {"loss": lambda_for_quality(quality[0]) * 255.0**2 * mse + bpp, "mse": mse, "bpp": bpp,
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
        """The ``.jxc`` codec (:class:`jaxcodec.codecs.hyperprior.MeanScaleCodec`)."""
        from jaxcodec.codecs.hyperprior import MeanScaleCodec

        return MeanScaleCodec(self, state["params"], self.finalize(state) if tables is None else tables)


def default_config() -> ml_collections.ConfigDict:
    """``mbt2018-mean`` with continuous rate: N=128, M=192, qualities 1..8 in one model."""
    config = ml_collections.ConfigDict()
    config.model = ml_collections.ConfigDict()
    config.model.name = MODEL_NAME  # jaxcodec.train.tasks registry key
    config.model.features = 128  # N: hidden channels of g_a/g_s (and of the hyper-latent unless hyper_features)
    config.model.latent_channels = 192  # M: latent channels
    config.model.hyper_features = 0  # channels of h_a and the hyper-latent; 0: N
    config.model.filters = (3, 3, 3)  # hidden widths of the hyper-latent's deep factorized density
    config.model.clip_norm = 1.0  # global gradient-norm clipping; 0 disables
    config.model.tail_mass = 1e-9  # density mass left to the escape symbol of each integer table
    config.model.compute_dtype = "float32"  # "bfloat16": mixed-precision training (jaxcodec.ops.conv_dtype)
    config.model.init_transforms_from = ""  # factorized-prior rung (name or workdir) whose g_a/g_s start the run
    config.model.freeze_transforms_steps = 0  # with it: steps during which the copied g_a/g_s stay fixed
    config.model.transforms_lr_scale = 1.0  # g_a/g_s learn at this fraction of learning_rate (Adam's step)
    config.model.quality_range = (1.0, 8.0)  # qualities drawn in training; (q, q) trains one rung
    config.model.rate_balance = 0.0  # β: each image's loss weighted by λ(q)^−β (MeanScaleTask.quality_weights)
    config.model.quality_margin = 0.0  # qualities drawn this far beyond each end, clipped (MeanScaleTask.draw_qualities)
    config.model.synthesis_modulation = False  # per-quality affine maps inside g_s (a conditional decoder)
    config.model.quantizer = "mixed"  # "sga": the latent soft-rounded by SGA for rate and synthesis
    config.model.sga_temperature = (0.5, 0.05)  # SGA's τ, linear from the first to the second over the run
    config.model.trainable = "all"  # "analysis": only g_a, the gains and h_a learn (encoder fine-tuning)
    config.model.free_latents_from = 0  # K > 0: latent channels K.. train free (MeanScaleTask.forward) ...
    config.model.free_latents_steps = 0  # ... for this many first steps: waking channels added by widening

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
