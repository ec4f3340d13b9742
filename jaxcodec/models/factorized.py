"""End-to-end optimised image compression with a factorized prior.

Ballé, Laparra & Simoncelli, "End-to-end optimized image compression", ICLR 2017
(arXiv:1611.01704), in the shape of CompressAI's ``bmshj2018-factorized``
(``FactorizedPrior(N, M)``):

* analysis ``g_a``: four ``5×5`` convolutions with stride 2 (``N, N, N, M`` channels)
  with GDN between them (Ballé 2017, Sec. 2; :class:`jaxcodec.layers.GDN`);
* synthesis ``g_s``: the mirror image with IGDN, each 2× up-sampling a ``3×3``
  sub-pixel convolution (:class:`jaxcodec.layers.SubPixelConv`, which contains every
  ``5×5`` stride-2 transposed convolution) -- ``model.upsample = "transposed"`` gives
  CompressAI's transposed convolutions instead (computed by phases,
  :func:`jaxcodec.layers.transposed_conv2d`);
* entropy model: one deep factorized density per latent channel (Ballé et al. 2018,
  Appendix 6.1; :mod:`jaxcodec.factorized_prior`).

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

``model.activation = "relu"`` replaces GDN/IGDN by ReLU and ``model.kernel_sizes``
sets the analysis kernels (the synthesis mirrors them), which gives seed 000's
"ReLU instead of GDN/IGDN, 5×5 and 3×3 instead of 9×9 and 5×5 filters" autoencoder for
192×192 CelebA faces (configs/seed000_celeba.py).

The codec (:class:`FactorizedCodec`) pads the image to a multiple of 16 (edge
replication), rounds ``g_a(x)``, codes every latent with its channel's integer table
(:func:`jaxcodec.factorized_prior.build_tables`, float64, built once by
:meth:`FactorizedTask.finalize`) and stores a ``.jxc`` container. A grey image is coded
as RGB with three equal channels and decoded back to one channel (mean of the three).
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

from jaxcodec import container, entropy, factorized_prior, refinement
from jaxcodec.errors import BitstreamError, ConfigError, ImageError, ModelError
from jaxcodec.layers import ALGORITHMS, GDN, DownConv, SubPixelConv, TransposedConv

MODEL_NAME = "factorized"
# CompressAI's λ ladder for MSE (qualities 1..8 of bmshj2018-factorized), and one more rung
# at twice its top λ (the ladder roughly doubles λ per quality) to reach ~1.5 bpp.
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932, 0.18, 0.36)
# Training proxies of rounding (module docstring) and the parameter groups that learn.
QUANTIZERS = ("noise", "ste")
TRAINABLE = ("all", "analysis")


def _analysis_labels(params: Any) -> Any:
    """``"train"`` for the analysis transform's leaves (``params/g_a/...``), ``"frozen"`` for the rest."""
    return jax.tree_util.tree_map_with_path(lambda path, _: "train" if path[1].key == "g_a" else "frozen", params)


# --------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------


def _activation(kind: str, inverse: bool, name: str):
    if kind == "gdn":
        return GDN(inverse=inverse, name=name)
    if kind == "relu":
        return nn.relu
    raise ConfigError(f"model.activation must be 'gdn' or 'relu', got {kind!r}")


class AnalysisTransform(nn.Module):
    """``g_a``: stride-2 convolutions ``N, …, N, M`` with GDN (or ReLU) between them."""

    features: int = 128
    latent_channels: int = 192
    kernel_sizes: Sequence[int] = (5, 5, 5, 5)
    activation: str = "gdn"
    conv_algorithm: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n = len(self.kernel_sizes)
        for i, k in enumerate(self.kernel_sizes):
            last = i == n - 1
            features = self.latent_channels if last else self.features
            x = DownConv(features, k, algorithm=self.conv_algorithm, name=f"conv{i}")(x)
            if not last:
                x = _activation(self.activation, False, f"gdn{i}")(x)
        return x


class SynthesisTransform(nn.Module):
    """``g_s``: 2× up-sampling layers ``N, …, N, 3`` with IGDN (or ReLU) between them.

    ``kernel_sizes`` are the nominal (transposed-convolution) sizes, from the latent
    side; a sub-pixel layer for nominal size ``k`` uses a ``(k//2 + 1)``-tap kernel,
    exactly the taps the transposed convolution reads per output phase.
    """

    features: int = 128
    out_channels: int = 3
    kernel_sizes: Sequence[int] = (5, 5, 5, 5)
    activation: str = "gdn"
    upsample: str = "subpixel"
    conv_algorithm: str = "auto"

    @nn.compact
    def __call__(self, y: jax.Array) -> jax.Array:
        n = len(self.kernel_sizes)
        x = y
        for i, k in enumerate(self.kernel_sizes):
            last = i == n - 1
            features = self.out_channels if last else self.features
            if self.upsample == "subpixel":
                x = SubPixelConv(features, k // 2 + 1, algorithm=self.conv_algorithm, name=f"conv{i}")(x)
            elif self.upsample == "transposed":
                x = TransposedConv(features, k, algorithm=self.conv_algorithm, name=f"conv{i}")(x)
            else:
                raise ConfigError(f"model.upsample must be 'subpixel' or 'transposed', got {self.upsample!r}")
            if not last:
                x = _activation(self.activation, True, f"igdn{i}")(x)
        return x


class FactorizedPriorModel(nn.Module):
    """``g_a``, ``g_s`` and the per-channel deep factorized entropy model."""

    features: int = 128
    latent_channels: int = 192
    kernel_sizes: Sequence[int] = (5, 5, 5, 5)
    activation: str = "gdn"
    upsample: str = "subpixel"
    filters: Sequence[int] = (3, 3, 3)
    conv_algorithm: str = "auto"

    def setup(self):
        self.g_a = AnalysisTransform(
            self.features, self.latent_channels, tuple(self.kernel_sizes), self.activation, self.conv_algorithm
        )
        self.g_s = SynthesisTransform(
            self.features, 3, tuple(reversed(self.kernel_sizes)), self.activation, self.upsample, self.conv_algorithm
        )
        self.entropy_bottleneck = factorized_prior.DeepFactorized(self.latent_channels, tuple(self.filters))

    def analysis(self, x: jax.Array) -> jax.Array:
        return self.g_a(x)

    def synthesis(self, y: jax.Array) -> jax.Array:
        return self.g_s(y)

    def likelihood(self, y: jax.Array) -> jax.Array:
        return self.entropy_bottleneck(y)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        y = self.g_a(x)
        return self.g_s(y), self.entropy_bottleneck(y)


def _per_image_psnr(x: jax.Array, x_hat: jax.Array) -> jax.Array:
    mse = jnp.mean((x - x_hat) ** 2, axis=(1, 2, 3))
    return -10.0 * jnp.log10(jnp.maximum(mse, 1e-10))


def total_bits(likelihoods: jax.Array) -> jax.Array:
    """``Σ −log2 p``: the ideal code length of the latents, in bits."""
    return -jnp.sum(jnp.log(likelihoods)) / math.log(2.0)


# --------------------------------------------------------------------------------------
# Task
# --------------------------------------------------------------------------------------


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
        conv_algorithm = m.get("conv_algorithm", "auto")
        if conv_algorithm not in ALGORITHMS:
            raise ConfigError(
                f"model.conv_algorithm must be one of {', '.join(ALGORITHMS)}, got {conv_algorithm!r}"
            )
        self.model = FactorizedPriorModel(
            features=int(m.features),
            latent_channels=int(m.latent_channels),
            kernel_sizes=tuple(int(k) for k in m.kernel_sizes),
            activation=m.activation,
            upsample=m.upsample,
            filters=tuple(int(f) for f in m.filters),
            conv_algorithm=conv_algorithm,
        )
        self.downsampling = 2 ** len(m.kernel_sizes)

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
            tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, _analysis_labels)
        return tx

    # -- pure functions of params -------------------------------------------------------
    def analysis(self, params: Any, x: jax.Array) -> jax.Array:
        """``(N, H, W, 3)`` in ``[0, 1]`` (H, W multiples of 16) → latents ``(N, H/16, W/16, M)``."""
        return self.model.apply(params, x, method=FactorizedPriorModel.analysis)

    def synthesis(self, params: Any, y: jax.Array) -> jax.Array:
        """Latents → reconstruction (not clipped)."""
        return self.model.apply(params, y, method=FactorizedPriorModel.synthesis)

    def direct_synthesis(self, params: Any, y: jax.Array) -> jax.Array:
        """:meth:`synthesis` with XLA's own convolutions (``conv_algorithm="direct"``).
        Latent refinement uses it: differentiating with respect to the latent alone,
        Winograd saves nothing there (570 vs 599 ms per step at 512×768 on 2 cores) and
        its gradient takes seconds longer to compile for every image size."""
        return programs(self.model).direct_synthesis(params, y)

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
        import optax

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
        computed in float64 NumPy (:func:`jaxcodec.factorized_prior.build_tables`)."""
        eb = jax.device_get(state["params"]["params"]["entropy_bottleneck"])
        freqs, offsets = factorized_prior.build_tables(eb, tail_mass=float(self.config.model.tail_mass))
        return {"freqs": freqs, "offsets": offsets}

    def make_codec(self, state: dict, tables: dict[str, np.ndarray] | None = None) -> "FactorizedCodec":
        """The ``.jxc`` codec of the trained model (tables rebuilt if not given)."""
        if tables is None:
            tables = self.finalize(state)
        return FactorizedCodec(self, jax.device_get(state["params"]), tables)


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


# --------------------------------------------------------------------------------------
# Codec
# --------------------------------------------------------------------------------------


class _Programs:
    """The jitted pieces of one architecture's codec. Every model of a ladder has the same
    architecture and differs only in parameters, λ and tables, so its codecs share these
    (:func:`programs`): one compiled program per image size serves all qualities, instead
    of one per quality (each program is machine code mapped into the process; a long
    evaluation of many qualities, sizes and refined encoders otherwise ran out of the
    process's memory mappings)."""

    def __init__(self, model: FactorizedPriorModel):
        direct = model.clone(conv_algorithm="direct")
        analysis = functools.partial(model.apply, method=FactorizedPriorModel.analysis)
        synthesis = functools.partial(model.apply, method=FactorizedPriorModel.synthesis)
        likelihood = functools.partial(model.apply, method=FactorizedPriorModel.likelihood)
        # Latent refinement's decoder, XLA's own convolutions (FactorizedTask.direct_synthesis says why).
        self.direct_synthesis = functools.partial(direct.apply, method=FactorizedPriorModel.synthesis)
        self.rate = lambda p, y: total_bits(likelihood(p, y))  # Σ −log2 p(y)
        self.continuous = jax.jit(analysis)
        self.analysis = jax.jit(lambda p, x: jnp.round(analysis(p, x)).astype(jnp.int32))
        self.synthesis = jax.jit(
            lambda p, y: jnp.round(jnp.clip(synthesis(p, y.astype(jnp.float32)), 0.0, 1.0) * 255.0).astype(jnp.uint8)
        )
        self.bits = jax.jit(lambda p, y: self.rate(p, y.astype(jnp.float32)))


@functools.lru_cache(maxsize=16)
def programs(model: FactorizedPriorModel) -> _Programs:
    """The codec programs of ``model``'s architecture, shared by every codec built on an
    equal model (flax modules compare and hash by their fields)."""
    return _Programs(model)


class FactorizedCodec:
    """Real bytes from a trained :class:`FactorizedTask` model (one quality).

    Encoding: pad to a multiple of 16 (edge replication) → ``g_a`` → round → ANS
    coding with the channel's integer table → ``.jxc``. Decoding checks the model name
    and the table hash, decodes the integers, runs ``g_s``, crops, clips and rounds to
    8 bits. Both networks are jitted once per image shape and architecture (the
    qualities of a ladder share them: :func:`programs`).
    """

    def __init__(self, task: FactorizedTask, params: Any, tables: dict[str, np.ndarray]):
        try:
            self.freqs = np.asarray(tables["freqs"], np.int32)
            self.offsets = np.asarray(tables["offsets"], np.int32)
        except (KeyError, TypeError):
            raise ModelError(f"{MODEL_NAME}: codec tables need 'freqs' and 'offsets'; was the model finalized?") from None
        self.latent_channels = task.model.latent_channels
        if self.freqs.ndim != 2 or self.freqs.shape[0] != self.latent_channels or self.offsets.shape != (
            self.latent_channels,
        ):
            raise ModelError(
                f"{MODEL_NAME}: tables of shape {self.freqs.shape}/{self.offsets.shape} do not fit "
                f"{self.latent_channels} latent channels"
            )
        self.name = task.name
        self.quality = task.quality
        self.lmbda = task.lmbda  # the rate-distortion trade-off it was trained for
        self.qualities = [task.quality]
        m = task.config.model
        self.description = (
            f"Ballé 2017 factorized prior ({m.activation}, N={m.features}, M={m.latent_channels}, "
            f"λ={task.lmbda:g})"
        )
        self.table_hash = entropy.table_hash(self.freqs, self.offsets)
        self.downsampling = task.downsampling
        self._params = params
        self._task = task
        self._programs = programs(task.model)
        self.refine_steps = 0
        self.refine_lr = task.refine_lr  # the model's own step size (config.model.refine_lr)

    def refined(self, steps: int = refinement.DEFAULT_STEPS, lr: float | None = None) -> "FactorizedCodec":
        """The same codec whose encoder refines each image's latent with ``steps`` SGA steps
        of size ``lr`` (default: the model's ``refine_lr``; :mod:`jaxcodec.refinement`); its
        streams decode with any copy of the model."""
        import copy

        other = copy.copy(self)
        other.refine_steps = refinement.check_steps(steps)
        other.refine_lr = self._task.refine_lr if lr is None else refinement.check_lr(lr)
        return other

    # -- pieces, public for tests and analysis ------------------------------------------
    def _check_image(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ImageError(f"{self.name} expects a uint8 image, got dtype {image.dtype}")
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] not in (1, 3) or image.shape[0] < 1 or image.shape[1] < 1:
            raise ImageError(f"{self.name} expects an (H, W, 1) or (H, W, 3) image, got shape {image.shape}")
        return image

    def padded(self, image: np.ndarray) -> np.ndarray:
        """The float32 ``(1, H', W', 3)`` network input: RGB (grey replicated), edge-padded
        to multiples of 16."""
        image = self._check_image(image)
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        h, w = image.shape[:2]
        d = self.downsampling
        pad = ((0, -h % d), (0, -w % d), (0, 0))
        return (np.pad(image, pad, mode="edge").astype(np.float32) / 255.0)[None]

    def latents(self, image: np.ndarray) -> np.ndarray:
        """The symbols the encoder codes, int32 ``(h, w, M)``: ``round(g_a(x))`` of the
        padded image, or with :attr:`refine_steps` the refined latent
        (:func:`jaxcodec.refinement.refine_latents`)."""
        x = self.padded(image)
        if not self.refine_steps:
            return np.asarray(self._programs.analysis(self._params, x))[0]
        height, width = np.shape(image)[:2]  # checked by padded()
        target = x[:, :height, :width]
        symbols, _ = refinement.refine_latents(
            self._programs.direct_synthesis, self._programs.rate, self._task.lmbda, self._params,
            self._programs.continuous(self._params, x), jnp.asarray(target),
            steps=self.refine_steps, lr=self.refine_lr,
        )
        return np.asarray(symbols)[0]

    def reconstruct(self, symbols: np.ndarray, height: int, width: int) -> np.ndarray:
        """``g_s`` of integer latents ``(h, w, M)``, cropped, as uint8 ``(height, width, 3)``."""
        x = np.asarray(self._programs.synthesis(self._params, np.asarray(symbols, np.int32)[None]))[0]
        return x[:height, :width]

    def estimate_bits(self, image: np.ndarray) -> float:
        """Model estimate of the payload: ``Σ −log2 p(round(y))`` under the continuous density."""
        return float(self._programs.bits(self._params, self.latents(image)[None]))

    def _table_ids(self, h: int, w: int) -> np.ndarray:
        return np.tile(np.arange(self.latent_channels, dtype=np.int32), h * w)

    # -- Codec protocol -----------------------------------------------------------------
    def encode(self, image: np.ndarray, quality: Any) -> bytes:
        """Compresses a uint8 ``(H, W, C)`` image (C = 1 or 3) into a ``.jxc`` stream."""
        if quality not in self.qualities:
            raise ConfigError(f"{self.name}: this model codes quality {self.quality} only, got {quality!r}")
        image = self._check_image(image)
        symbols = self.latents(image)
        h, w, m = symbols.shape
        payload = entropy.encode_symbols(symbols.reshape(-1), self._table_ids(h, w), self.freqs, self.offsets)
        header = container.Header(
            model=self.name,
            table_hash=self.table_hash,
            height=image.shape[0],
            width=image.shape[1],
            channels=image.shape[2],
            latent_shape=(h, w, m),
            quality=self.quality,
        )
        return container.pack(header, payload)

    def decode_symbols(self, data: bytes) -> np.ndarray:
        """The integer latents ``(h, w, M)`` of a stream from :meth:`encode`: what the
        entropy decoder recovers, identical on every machine (integer tables)."""
        return self._symbols(data)[1]

    def _symbols(self, data: bytes) -> tuple[container.Header, np.ndarray]:
        header, payload = container.unpack(data)
        if header.model != self.name:
            raise ModelError(f"stream was made by model {header.model!r}, this codec is {self.name!r}")
        if header.table_hash != self.table_hash:
            raise ModelError(f"{self.name}: stream was coded with other entropy tables (another model or quality)")
        d = self.downsampling
        expected = (-(-header.height // d), -(-header.width // d), self.latent_channels)
        if tuple(header.latent_shape) != expected or header.channels not in (1, 3):
            raise BitstreamError(
                f"{self.name}: header latent shape {header.latent_shape} does not fit a "
                f"{header.height}x{header.width}x{header.channels} image"
            )
        h, w, m = expected
        symbols = entropy.decode_symbols(payload, self._table_ids(h, w), self.freqs, self.offsets)
        return header, symbols.reshape(h, w, m)

    def decode(self, data: bytes) -> np.ndarray:
        """Decompresses a stream from :meth:`encode` into a uint8 ``(H, W, C)`` image.

        Raises:
          BitstreamError: corrupt or truncated stream.
          ModelError: the stream was made by another model or with other tables.
        """
        header, symbols = self._symbols(data)
        image = self.reconstruct(symbols, header.height, header.width)
        if header.channels == 1:
            image = np.round(image.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)
        return image


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------


def default_config(quality: int = 3) -> ml_collections.ConfigDict:
    """The ``bmshj2018-factorized`` configuration at CompressAI's quality ``1 .. 8`` (or 9).

    The per-quality files ``configs/factorized_q{1..9}.py`` return this; every field can
    be overridden on the command line (``--config.model.features=192``).
    """
    lambda_for_quality(quality)
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict()
    config.model.name = MODEL_NAME  # jaxcodec.models registry key
    config.model.quality = quality  # index into the λ ladder (1..9), stored in every stream
    config.model.lmbda = 0.0  # >0 overrides the ladder's λ of `quality`
    config.model.features = 128  # N: channels of the hidden layers (CompressAI: 128 for q1-5, 192 for q6+)
    config.model.latent_channels = 192  # M: latent channels (CompressAI: 192 for q1-5, 320 for q6+)
    config.model.kernel_sizes = (5, 5, 5, 5)  # analysis kernels, each with stride 2; the synthesis mirrors them
    config.model.activation = "gdn"  # "gdn" (GDN/IGDN, Ballé 2017) or "relu"
    config.model.upsample = "subpixel"  # "subpixel" (conv to 4·C + depth-to-space) or "transposed"
    # Convolutions that can run as 3x3 Winograd (the sub-pixel layers, the merged phases of
    # transposed convolutions and of the strided layers' input gradient, the strided layers
    # over their space-to-depth input): "auto" (F(4x4, 3x3) Winograd on CPU for the wide
    # ones, jaxcodec.layers.winograd_pays), "direct" (XLA's convolution) or "winograd";
    # same parameters.
    config.model.conv_algorithm = "auto"
    config.model.filters = (3, 3, 3)  # hidden widths of each channel's deep factorized density
    config.model.quantizer = "noise"  # training proxy of rounding: "noise" (uniform) or "ste" (straight-through)
    config.model.trainable = "all"  # "analysis": only g_a learns (encoder fine-tuning, Guo et al. 2021)
    config.model.tail_mass = 1e-9  # density mass left to the escape symbol of each integer table
    config.model.clip_norm = 1.0  # global gradient-norm clipping (CompressAI's train.py); 0 disables
    config.model.init_latent_scale = 1.0  # with init_from: start from the copy with its latent ×s (rescale_latents)
    # Adam step size of encoder-side latent refinement (jaxcodec.refinement) for this model;
    # a shipped model carries the one that lowered its objective most on training photos.
    config.model.refine_lr = refinement.DEFAULT_LR

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
