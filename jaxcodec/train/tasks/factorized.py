"""Training of the factorized-prior model (:mod:`jaxcodec.models.factorized`): Ballé,
Laparra & Simoncelli, "End-to-end optimized image compression", ICLR 2017, in the shape of
CompressAI's ``bmshj2018-factorized``.

Training minimises ``λ·255²·MSE + bpp`` (CompressAI's convention; MSE of ``[0, 1]``
pixels), with ``bpp = Σ −log2 p(ỹ) / pixels``. The latent ``ỹ`` is ``y + u``,
``u ~ U(−½, ½)`` (Ballé 2017, Sec. 2: additive uniform noise is the differentiable
proxy of rounding); ``model.quantizer = "ste"`` instead decodes ``round(y)`` with a
straight-through gradient and keeps the noisy ``ỹ`` for the rate, as in Minnen &
Singh, "Channel-wise autoregressive entropy models", ICIP 2020, Sec. 3.1.
With ``model.trainable = "analysis"`` only ``g_a`` learns; the synthesis and the
density (hence the coding tables) keep their exact values, so the model's streams stay
decodable by the original. With ``"ste"`` that is the second stage of Guo, Zhang, Feng &
Chen, "Soft then hard: rethinking the quantization in neural image compression", ICML
2021: after training with noise, fine-tune the encoder against the rounded latents the
decoder really receives. (Their rate is taken at ``round(y)`` too; the straight-through
gradient of that rate ignores where the bin edges are, and fine-tuning the shipped q1
that way raised its objective on the test photos by 1.1%, where the noisy rate lowered
it by 1.2%.)
At test time the latent is plainly rounded (Ballé 2017; no median offset: rounding
around each channel's median moved the shipped q1, q5 and q9's objective on the test
photos by under 0.1%), so the symbols are integers and the tables give the
probability of each integer bin.

:meth:`FactorizedTask.finalize` builds the integer coding tables and
:meth:`FactorizedTask.make_codec` the ``.jxc`` codec (:mod:`jaxcodec.codecs.factorized`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxcodec.codecs import refinement
from jaxcodec.codecs.factorized import FactorizedCodec
from jaxcodec.entropy import deep_factorized as factorized_prior
from jaxcodec.errors import ConfigError
from jaxcodec.models.factorized import MODEL_NAME, FactorizedPriorModel, total_bits
from jaxcodec.ops.conv import DTYPES, conv_dtype, conv_impl

if TYPE_CHECKING:
    import optax

# CompressAI's λ ladder for MSE (qualities 1..8 of bmshj2018-factorized), and one more rung
# at twice its top λ (the ladder roughly doubles λ per quality) to reach ~1.5 bpp.
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932, 0.18, 0.36)
# Training proxies of rounding (module docstring) and the parameter groups that learn.
QUANTIZERS = ("noise", "ste")
TRAINABLE = ("all", "analysis")


def only_parts_learn(tx: optax.GradientTransformation, parts: tuple[str, ...]) -> optax.GradientTransformation:
    """``tx`` for the leaves under ``params/PART/...`` for each of ``parts``; every other leaf gets
    no update (and no optimiser state)."""
    import optax

    def labels(params: Any) -> Any:
        return jax.tree_util.tree_map_with_path(lambda path, _: "train" if path[1].key in parts else "frozen", params)

    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)


def _per_image_psnr(x: jax.Array, x_hat: jax.Array) -> jax.Array:
    mse = jnp.mean((x - x_hat) ** 2, axis=(1, 2, 3))
    return -10.0 * jnp.log10(jnp.maximum(mse, 1e-10))


class FactorizedTask:
    """Training task of :class:`FactorizedPriorModel`; see the module docstring."""

    name = MODEL_NAME

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        m = config.model
        self.quality = int(m.quality)
        self.lmbda = float(m.get("lmbda") or 0.0) or lambda_for_quality(self.quality)
        if m.quantizer not in QUANTIZERS:
            raise ConfigError(f"model.quantizer must be one of {', '.join(QUANTIZERS)}, got {m.quantizer!r}")
        self.quantizer = m.quantizer
        self.trainable = m.get("trainable", "all")
        if self.trainable not in TRAINABLE:
            raise ConfigError(f"model.trainable must be one of {', '.join(TRAINABLE)}, got {self.trainable!r}")
        self.init_latent_scale = float(m.get("init_latent_scale", 1.0))
        if not np.isfinite(self.init_latent_scale) or self.init_latent_scale <= 0.0:
            raise ConfigError(f"model.init_latent_scale must be a positive number, got {self.init_latent_scale!r}")
        try:
            self.refine_lr = refinement.check_lr(m.get("refine_lr", refinement.DEFAULT_LR))
        except ConfigError as error:
            raise ConfigError(f"model.refine_lr: {error}") from None
        # A "model.conv_algorithm" key of older configs is ignored: the convolution algorithm is
        # chosen around the call (jaxcodec.ops.conv_impl), not by the model.
        self.model = FactorizedPriorModel(
            features=int(m.features),
            latent_channels=int(m.latent_channels),
            kernel_sizes=tuple(int(k) for k in m.kernel_sizes),
            activation=m.activation,
            upsample=m.upsample,
            filters=tuple(int(f) for f in m.filters),
        )
        self.downsampling = 2 ** len(m.kernel_sizes)
        self.compute_dtype = compute_dtype(config)

    @functools.cached_property
    def tx(self) -> Any:
        """Adam with the run's schedule and clipping (built on first use: a codec built
        from shipped weights needs no optimiser)."""
        import optax

        m = self.config.model
        tx = optax.adam(learning_rate_schedule(self.config))
        if m.get("clip_norm"):
            tx = optax.chain(optax.clip_by_global_norm(float(m.clip_norm)), tx)
        if self.trainable == "analysis":  # g_a learns; g_s and the density get no updates
            tx = only_parts_learn(tx, ("g_a",))
        return tx

    # -- pure functions of params -------------------------------------------------------
    def analysis(self, params: Any, x: jax.Array) -> jax.Array:
        """``(N, H, W, 3)`` in ``[0, 1]`` (H, W multiples of 16) → latents ``(N, H/16, W/16, M)``."""
        return self.model.apply(params, x, method=FactorizedPriorModel.analysis)

    def synthesis(self, params: Any, y: jax.Array) -> jax.Array:
        """Latents → reconstruction (not clipped)."""
        return self.model.apply(params, y, method=FactorizedPriorModel.synthesis)

    def direct_synthesis(self, params: Any, y: jax.Array) -> jax.Array:
        """:meth:`synthesis` with XLA's own convolutions (``conv_impl("direct")``).
        Latent refinement uses it: differentiating with respect to the latent alone,
        Winograd saves nothing there (570 vs 599 ms per step at 512×768 on 2 cores) and
        its gradient takes seconds longer to compile for every image size."""
        with conv_impl("direct"):
            return self.synthesis(params, y)

    def likelihood(self, params: Any, y: jax.Array) -> jax.Array:
        """Probability of the unit bin around each latent value."""
        return self.model.apply(params, y, method=FactorizedPriorModel.likelihood)

    def warm_start(self, params: Any) -> Any:
        """Parameters copied from another run (``config.init_from``), with the latent
        rescaled by ``model.init_latent_scale`` (:func:`rescale_latents`)."""
        scale = self.init_latent_scale
        return params if scale == 1.0 else rescale_latents(params, scale)

    # -- Task protocol ------------------------------------------------------------------
    def init_state(self, rng: jax.Array, batch: jax.Array) -> dict[str, Any]:
        x = jnp.zeros((1,) + tuple(batch.shape[1:3]) + (3,), jnp.float32)
        self._check_batch(x)
        params = self.model.init(rng, x)
        return {"step": jnp.zeros((), jnp.int32), "params": params, "opt": self.tx.init(params)}

    def _check_batch(self, x: jax.Array) -> None:
        h, w, c = x.shape[1:]
        if c != 3 or h % self.downsampling or w % self.downsampling:
            raise ConfigError(
                f"factorized model trains on RGB images with sides divisible by {self.downsampling}, "
                f"got {h}x{w}x{c}"
            )

    def loss_fn(self, params: Any, x: jax.Array, rng: jax.Array) -> tuple[jax.Array, dict]:
        """``λ·255²·MSE + bpp`` on noisy (or straight-through rounded) latents."""
        self._check_batch(x)
        y = self.analysis(params, x)
        y_noisy = y + jax.random.uniform(rng, y.shape, y.dtype, -0.5, 0.5)
        y_dec = y_noisy if self.quantizer == "noise" else y + jax.lax.stop_gradient(jnp.round(y) - y)
        x_hat = self.synthesis(params, y_dec)
        bpp = total_bits(self.likelihood(params, y_noisy)) / (x.shape[0] * x.shape[1] * x.shape[2])
        mse = jnp.mean((x_hat - x) ** 2)
        loss = self.lmbda * 255.0**2 * mse + bpp
        return loss, {"loss": loss, "mse": mse, "bpp": bpp, "psnr": jnp.mean(_per_image_psnr(x, x_hat))}

    def train_step(self, state: dict, batch: jax.Array, rng: jax.Array) -> tuple[dict, dict]:
        """One Adam step; the transforms' convolutions in ``model.compute_dtype`` (mixed precision)."""
        import optax

        with conv_dtype(self.compute_dtype):
            grads, metrics = jax.grad(self.loss_fn, has_aux=True)(state["params"], batch, rng)
        updates, opt = self.tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {"step": state["step"] + 1, "params": params, "opt": opt}, metrics

    def eval_step(self, state: dict, batch: jax.Array) -> dict[str, jax.Array]:
        """Test-time metrics: latents rounded, reconstruction clipped to ``[0, 1]``;
        ``bpp`` is the model's estimate ``Σ −log2 p(round(y)) / pixels``."""
        params = state["params"]
        self._check_batch(batch)
        y_hat = jnp.round(self.analysis(params, batch))
        x_hat = jnp.clip(self.synthesis(params, y_hat), 0.0, 1.0)
        bpp = total_bits(self.likelihood(params, y_hat)) / (batch.shape[0] * batch.shape[1] * batch.shape[2])
        mse = jnp.mean((x_hat - batch) ** 2)
        return {
            "loss": self.lmbda * 255.0**2 * mse + bpp,
            "mse": mse,
            "bpp": bpp,
            "psnr": jnp.mean(_per_image_psnr(batch, x_hat)),
        }

    def finalize(self, state: dict, batches: Any = None) -> dict[str, np.ndarray]:
        """Integer tables ``freqs (M, K)``, ``offsets (M,)`` of the trained density,
        computed in float64 NumPy (:func:`jaxcodec.entropy.deep_factorized.build_tables`)."""
        eb = jax.device_get(state["params"]["params"]["entropy_bottleneck"])
        freqs, offsets = factorized_prior.build_tables(eb, tail_mass=float(self.config.model.tail_mass))
        return {"freqs": freqs, "offsets": offsets}

    def make_codec(self, state: dict, tables: dict[str, np.ndarray] | None = None) -> FactorizedCodec:
        """The ``.jxc`` codec of the trained model (tables rebuilt if not given)."""
        if tables is None:
            tables = self.finalize(state)
        return FactorizedCodec(self, jax.device_get(state["params"]), tables)


def compute_dtype(config: ml_collections.ConfigDict) -> str:
    """``config.model.compute_dtype`` (``"float32"`` when absent, as in older configs), checked."""
    dtype = config.model.get("compute_dtype", "float32")
    if dtype not in DTYPES:
        raise ConfigError(f"model.compute_dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def rescale_latents(params: Any, scale: float) -> Any:
    """The same codec with its latent multiplied by ``scale``: the warm start of a
    higher-rate (``scale > 1``) or lower-rate (``< 1``) rung of the λ ladder.

    The analysis's last convolution (kernel and bias) is multiplied by ``s``, the
    synthesis's first one (kernel only; it is linear in ``ŷ``) divided by ``s``, and
    each channel's density is stretched, ``F'(y) = F(y / s)``, by dividing its first
    matrix ``H_1 = softplus(Ĥ_1)`` by ``s``. Without quantisation the network is
    unchanged; with it, rounding ``s·y`` to integers is rounding ``y`` with the step
    ``1/s``, so the start point already spends more (or fewer) bits. Ballé, Laparra &
    Simoncelli 2017 (Sec. 2) quantise with a unit step because the transforms can absorb
    any step size; this absorbs a new one at once instead of leaving the fine-tuning to
    learn it slowly. In high-rate theory ``D ≈ Δ²/12``, so doubling λ halves the optimal
    distortion and shrinks the step by ``√2``: ``s = √2`` per rung of a ladder whose λ
    doubles.
    """
    scale = float(scale)
    tree = params["params"]
    g_a, g_s, density = tree["g_a"], tree["g_s"], tree["entropy_bottleneck"]
    last = max((name for name in g_a if name.startswith("conv")), key=lambda name: int(name[4:]))
    matrix = jnp.asarray(density["matrix_0"])
    stretched = jax.nn.softplus(matrix) / scale
    inverse_softplus = stretched + jnp.log(-jnp.expm1(-stretched))
    return {
        **params,
        "params": {
            **tree,
            "g_a": {**g_a, last: {k: v * scale for k, v in g_a[last].items()}},
            "g_s": {**g_s, "conv0": {**g_s["conv0"], "kernel": g_s["conv0"]["kernel"] / scale}},
            "entropy_bottleneck": {**density, "matrix_0": inverse_softplus.astype(matrix.dtype)},
        },
    }


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
    """``config.learning_rate``, divided by 10 once ``config.lr_decay_at`` of the steps are
    done (CompressAI's and Ballé et al.'s recipe of a late drop; ``0`` keeps it constant)."""
    import optax

    rate = float(config.learning_rate)
    decay_at = float(config.get("lr_decay_at", 0.0) or 0.0)
    if not 0.0 <= decay_at < 1.0:
        raise ConfigError(f"lr_decay_at must lie in [0, 1), got {decay_at!r}")
    if not decay_at:
        return optax.constant_schedule(rate)
    return optax.piecewise_constant_schedule(rate, {int(decay_at * int(config.num_steps)): 0.1})


def lambda_for_quality(quality: int) -> float:
    """λ of quality ``1 .. 9``: CompressAI's for ``1 .. 8``, twice its top one for 9."""
    if not 1 <= int(quality) <= len(LAMBDAS):
        raise ConfigError(f"model.quality must be in 1..{len(LAMBDAS)}, got {quality!r}")
    return LAMBDAS[int(quality) - 1]



def default_config(quality: int = 3) -> ml_collections.ConfigDict:
    """The ``bmshj2018-factorized`` configuration at CompressAI's quality ``1 .. 8`` (or 9).

    ``configs/factorized.py:QUALITY`` returns this; every field can
    be overridden on the command line (``--config.model.features=192``).
    """
    lambda_for_quality(quality)
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict()
    config.model.name = MODEL_NAME  # jaxcodec.train.tasks registry key
    config.model.quality = quality  # index into the λ ladder (1..9), stored in every stream
    config.model.lmbda = 0.0  # >0 overrides the ladder's λ of `quality`
    config.model.features = 128  # N: channels of the hidden layers (CompressAI: 128 for q1-5, 192 for q6+)
    config.model.latent_channels = 192  # M: latent channels (CompressAI: 192 for q1-5, 320 for q6+)
    config.model.kernel_sizes = (5, 5, 5, 5)  # analysis kernels, each with stride 2; the synthesis mirrors them
    config.model.activation = "gdn"  # "gdn" (GDN/IGDN, Ballé 2017) or "relu"
    config.model.upsample = "subpixel"  # "subpixel" (conv to 4·C + depth-to-space) or "transposed"
    config.model.filters = (3, 3, 3)  # hidden widths of each channel's deep factorized density
    config.model.quantizer = "noise"  # training proxy of rounding: "noise" (uniform) or "ste" (straight-through)
    config.model.trainable = "all"  # "analysis": only g_a learns (encoder fine-tuning, Guo et al. 2021)
    config.model.tail_mass = 1e-9  # density mass left to the escape symbol of each integer table
    config.model.clip_norm = 1.0  # global gradient-norm clipping (CompressAI's train.py); 0 disables
    config.model.init_latent_scale = 1.0  # with init_from: start from the copy with its latent ×s (rescale_latents)
    # Adam step size of encoder-side latent refinement (jaxcodec.codecs.refinement) for this model;
    # a shipped model carries the one that lowered its objective most on training photos.
    config.model.refine_lr = refinement.DEFAULT_LR
    # "bfloat16": training's convolutions compute in bfloat16 (parameters, optimiser, entropy
    # model and evaluation stay float32; jaxcodec.ops.conv_dtype). For accelerators.
    config.model.compute_dtype = "float32"

    config.data = ml_collections.ConfigDict()
    config.data.train = ""  # required: folder:PATH of training photos (or tfds:NAME)
    config.data.train_split = "train"  # split of the training set
    config.data.eval = ""  # evaluation set spec, >= batch_size images ("" skips; eval.py measures real streams)
    config.data.eval_split = "test"  # split of the evaluation set
    config.data.image_size = None  # native size
    config.data.crop = 256  # random square training patches (CompressAI: 256)
    config.data.downscale = 1.0  # >1: each patch is a random square up to this many times larger, shrunk to crop

    config.batch_size = 8  # patches per step (global)
    config.num_steps = 200_000  # optimisation steps
    config.learning_rate = 1e-4  # Adam learning rate (CompressAI's default)
    config.lr_decay_at = 0.0  # share of num_steps after which the rate drops 10x (0: constant)
    config.init_from = ""  # workdir whose parameters start the run (fine-tune one λ from another)
    config.seed = 0  # seed of parameter init, data order and quantisation noise
    config.log_every = 100  # steps between progress lines
    config.eval_every = 5000  # steps between evaluations
    config.eval_batches = 1  # evaluation batches per evaluation
    config.checkpoint_every = 5000  # steps between checkpoints
    config.keep_checkpoints = 3  # checkpoints kept on disk
    return config
