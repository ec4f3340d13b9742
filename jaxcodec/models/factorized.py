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
  :func:`jaxcodec.ops.conv.transposed_conv2d`);
* entropy model: one deep factorized density per latent channel (Ballé et al. 2018,
  Appendix 6.1; :mod:`jaxcodec.entropy.deep_factorized`).

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
(:func:`jaxcodec.entropy.deep_factorized.build_tables`, float64, built once by
:meth:`FactorizedTask.finalize`) and stores a ``.jxc`` container. A grey image is coded
as RGB with three equal channels and decoded back to one channel (mean of the three).

Large images are transformed in tiles (:mod:`jaxcodec.tiling`): ``g_a`` and ``g_s``
are convolutional, so each tile is analysed or synthesised inside a window with a halo of
:attr:`FactorizedCodec.halo` latent positions (4 for the shipped models: the analysis
reads 30 pixels beyond a latent's 16, the synthesis under 2 latents beyond a pixel's), and
gives the whole image's latent and pixels up to float rounding, with memory for one
window (:func:`jaxcodec.tiling.budget`; ``--max-memory``).

The stream (``.jxc`` version 2, :mod:`jaxcodec.codecs.container`) codes the latent in square
tiles of :data:`STREAM_TILE` = 64 latent positions (1024 × 1024 pixels) from the top
left, in raster order, the last row and column of tiles cut short; the header's tile
field holds that side. Each tile is coded on its own (:func:`jaxcodec.entropy.coder.encode_symbols`
over its ``(h, w, M)`` symbols in C order, each with its channel's table, then one guard
symbol), so a decoder holds one tile's coder at a time. The payload is the tiles' bytes
in order, each but the last preceded by its length (u32, little-endian); the last runs
to the end. The **guard** is the value 1 under an extra table whose every other symbol
has frequency 1: it costs nothing, moves the coder's state off 0 before any symbol, so
a payload is never shorter than its symbols' cheapest cost (:mod:`jaxcodec.limits`), and
the decoder checks it comes out last. The header's **content check**
(:func:`jaxcodec.codecs.container.content_digest`) covers the header and every tile's symbols
in coding order, as little-endian int32.

Before it allocates anything the size of the image, the decoder checks the declared
size against :func:`jaxcodec.limits.max_pixels` and every tile's payload against the
fewest bytes its symbols can take (:func:`jaxcodec.limits.check_payload`); after
entropy decoding it checks the guards and the content check, before ``g_s`` runs.
Version-1 streams (one untiled payload, no guard, no check; every stream written
before tiling, such as ``tests/vectors``) decode as they always did, with the same
size checks.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxcodec import limits, tiling
from jaxcodec.codecs import container
from jaxcodec.entropy import coder as entropy
from jaxcodec.entropy import deep_factorized as factorized_prior
from jaxcodec.codecs import refinement
from jaxcodec.errors import BitstreamError, ConfigError, ImageError, ModelError
from jaxcodec.layers import GDN, DownConv, SubPixelConv, TransposedConv
from jaxcodec.ops.conv import conv_impl

MODEL_NAME = "factorized"
# CompressAI's λ ladder for MSE (qualities 1..8 of bmshj2018-factorized), and one more rung
# at twice its top λ (the ladder roughly doubles λ per quality) to reach ~1.5 bpp.
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932, 0.18, 0.36)
# Training proxies of rounding (module docstring) and the parameter groups that learn.
QUANTIZERS = ("noise", "ste")
TRAINABLE = ("all", "analysis")
#: Side of the square tiles a stream codes the latent in, in latent positions (module docstring).
STREAM_TILE = 64
GUARD_VALUE = 1  # the guard symbol closing every coded tile (module docstring)
#: Working memory of ``g_a`` or ``g_s`` per window pixel, in bytes per hidden channel
#: (about 500 bytes per pixel at N = 64, measured with ``bench/memory.py``), and how many
#: times more latent refinement takes (its gradient keeps every activation).
BYTES_PER_PIXEL_PER_FEATURE = 8
REFINE_MEMORY_FACTOR = 4


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

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n = len(self.kernel_sizes)
        for i, k in enumerate(self.kernel_sizes):
            last = i == n - 1
            features = self.latent_channels if last else self.features
            x = DownConv(features, k, name=f"conv{i}")(x)
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

    @nn.compact
    def __call__(self, y: jax.Array) -> jax.Array:
        n = len(self.kernel_sizes)
        x = y
        for i, k in enumerate(self.kernel_sizes):
            last = i == n - 1
            features = self.out_channels if last else self.features
            if self.upsample == "subpixel":
                x = SubPixelConv(features, k // 2 + 1, name=f"conv{i}")(x)
            elif self.upsample == "transposed":
                x = TransposedConv(features, k, name=f"conv{i}")(x)
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

    def setup(self):
        self.g_a = AnalysisTransform(self.features, self.latent_channels, tuple(self.kernel_sizes), self.activation)
        self.g_s = SynthesisTransform(
            self.features, 3, tuple(reversed(self.kernel_sizes)), self.activation, self.upsample
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
        """:meth:`synthesis` with XLA's own convolutions (``conv_impl("direct")``).
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
        computed in float64 NumPy (:func:`jaxcodec.entropy.deep_factorized.build_tables`)."""
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
        analysis = functools.partial(model.apply, method=FactorizedPriorModel.analysis)
        synthesis = functools.partial(model.apply, method=FactorizedPriorModel.synthesis)
        likelihood = functools.partial(model.apply, method=FactorizedPriorModel.likelihood)

        def direct_synthesis(p, y):
            # Latent refinement's decoder, XLA's own convolutions (FactorizedTask.direct_synthesis
            # says why), chosen while the refinement step is traced.
            with conv_impl("direct"):
                return synthesis(p, y)

        self.direct_synthesis = direct_synthesis
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
    coding with the channel's integer table, tile by tile → ``.jxc`` (module docstring).
    Decoding checks the model name, the table hash, the declared size and the payload's
    length, decodes the integers, checks the content check, runs ``g_s``, crops, clips and
    rounds to 8 bits. Both transforms run in windows of one size per image (tiles with
    halos, :mod:`jaxcodec.tiling`), jitted once per window shape and architecture (the
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
        if self.freqs.shape[1] < 3:
            raise ModelError(f"{MODEL_NAME}: tables of {self.freqs.shape[1]} symbols leave no room for the guard")
        guard = np.ones((1, self.freqs.shape[1]), np.int32)
        guard[0, GUARD_VALUE] = int(self.freqs[0].sum()) - (self.freqs.shape[1] - 1)
        self.guarded_tables = (np.concatenate([self.freqs, guard]), np.append(self.offsets, np.int32(0)))
        self._costs = limits.symbol_costs(self.freqs)  # bits of each channel's cheapest symbol
        # Halo of the tiled transforms: the analysis reads sum_i (k_i // 2) 2**i pixels beyond
        # a latent's own; the synthesis reads less (module docstring); two positions to spare.
        reach = sum((int(k) // 2) << i for i, k in enumerate(task.config.model.kernel_sizes))
        self.halo = -(-reach // self.downsampling) + 2
        self.bytes_per_pixel = BYTES_PER_PIXEL_PER_FEATURE * int(task.model.features)
        self._params = params
        self._task = task
        self._programs = programs(task.model)
        self.refine_steps = 0
        self.refine_lr = task.refine_lr  # the model's own step size (config.model.refine_lr)

    def refined(self, steps: int = refinement.DEFAULT_STEPS, lr: float | None = None) -> "FactorizedCodec":
        """The same codec whose encoder refines each image's latent with ``steps`` SGA steps
        of size ``lr`` (default: the model's ``refine_lr``; :mod:`jaxcodec.codecs.refinement`); its
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
        (:func:`jaxcodec.codecs.refinement.refine_latents`). An image larger than one window is
        analysed (and refined) window by window (:meth:`windows`)."""
        image = self._check_image(image)
        height, width = image.shape[:2]
        d = self.downsampling
        rows, cols = self.windows(-(-height // d), -(-width // d), refine=bool(self.refine_steps))
        if len(rows) == len(cols) == 1:  # the whole image at once
            return self._window_latents(self.padded(image), height, width)
        out = np.empty((rows[-1].stop, cols[-1].stop, self.latent_channels), np.int32)
        for ys in rows:
            for xs in cols:
                x = self._window_pixels(image, ys, xs)
                y = self._window_latents(x, height - ys.window_start * d, width - xs.window_start * d)
                out[ys.tile, xs.tile] = y[ys.inner, xs.inner]
        return out

    def windows(self, h: int, w: int, refine: bool = False) -> tuple[list[tiling.Span], list[tiling.Span]]:
        """The tiles and windows, in latent positions, that the transforms of an ``(h, w)``
        latent run over (:func:`jaxcodec.tiling.spans`): tiles as large as the memory budget
        allows (:func:`jaxcodec.tiling.budget`), with :attr:`halo` positions around them."""
        per_pixel = self.bytes_per_pixel * (REFINE_MEMORY_FACTOR if refine else 1)
        tile = tiling.tile_for(per_pixel * self.downsampling**2, self.halo)
        return tiling.spans(h, tile, self.halo), tiling.spans(w, tile, self.halo)

    def _window_pixels(self, image: np.ndarray, ys: tiling.Span, xs: tiling.Span) -> np.ndarray:
        """The float32 ``(1, h', w', 3)`` input of one window: the image's pixels under it,
        RGB, edge-replicated where the window passes the image's bottom or right edge (the
        padding :meth:`padded` gives the whole image)."""
        d = self.downsampling
        height, width = image.shape[:2]
        r0, r1, c0, c1 = ys.window_start * d, ys.window_stop * d, xs.window_start * d, xs.window_stop * d
        part = image[r0:min(r1, height), c0:min(c1, width)]
        part = np.pad(part, ((0, r1 - min(r1, height)), (0, c1 - min(c1, width)), (0, 0)), mode="edge")
        if part.shape[2] == 1:
            part = np.repeat(part, 3, axis=2)
        return (part.astype(np.float32) / 255.0)[None]

    def _window_latents(self, x: np.ndarray, height: int, width: int) -> np.ndarray:
        """The symbols ``(h', w', M)`` of one window ``x``, whose first ``height`` × ``width``
        pixels are the image's (the rest is padding, not scored by refinement)."""
        if not self.refine_steps:
            return np.asarray(self._programs.analysis(self._params, x))[0]
        target = x[:, :height, :width]
        symbols, _ = refinement.refine_latents(
            self._programs.direct_synthesis, self._programs.rate, self._task.lmbda, self._params,
            self._programs.continuous(self._params, x), jnp.asarray(target),
            steps=self.refine_steps, lr=self.refine_lr,
        )
        return np.asarray(symbols)[0]

    def reconstruct(self, symbols: np.ndarray, height: int, width: int) -> np.ndarray:
        """``g_s`` of integer latents ``(h, w, M)``, cropped, as uint8 ``(height, width, 3)``;
        window by window for a latent larger than one window (:meth:`windows`)."""
        symbols = np.asarray(symbols, np.int32)
        rows, cols = self.windows(symbols.shape[0], symbols.shape[1])
        if len(rows) == len(cols) == 1:
            x = np.asarray(self._programs.synthesis(self._params, symbols[None]))[0]
            return x[:height, :width]
        d = self.downsampling
        out = np.empty((height, width, 3), np.uint8)
        for ys in rows:
            for xs in cols:
                x = np.asarray(self._programs.synthesis(self._params, symbols[None, ys.window, xs.window]))[0]
                r0, r1 = ys.start * d, min(ys.stop * d, height)
                c0, c1 = xs.start * d, min(xs.stop * d, width)
                dy, dx = ys.window_start * d, xs.window_start * d
                out[r0:r1, c0:c1] = x[r0 - dy : r1 - dy, c0 - dx : c1 - dx]
        return out

    def estimate_bits(self, image: np.ndarray) -> float:
        """Model estimate of the payload: ``Σ −log2 p(round(y))`` under the continuous density."""
        return float(self._programs.bits(self._params, self.latents(image)[None]))

    def _table_ids(self, h: int, w: int) -> np.ndarray:
        return np.tile(np.arange(self.latent_channels, dtype=np.int32), h * w)

    def tile_table_ids(self, count: int) -> np.ndarray:
        """Table ids of a coded tile of ``count`` latent positions: the channels', then the
        guard's (table ``M`` of :attr:`guarded_tables`: the channels' tables, then the guard's)."""
        return np.append(self._table_ids(count, 1), np.int32(self.latent_channels))

    @staticmethod
    def stream_tiles(h: int, w: int, tile: int) -> list[tuple[slice, slice]]:
        """The coded tiles of an ``(h, w)`` latent, in raster order (module docstring);
        ``tile`` 0 is one tile."""
        tile = tile or max(h, w)
        return [(slice(y, min(y + tile, h)), slice(x, min(x + tile, w)))
                for y in range(0, h, tile) for x in range(0, w, tile)]

    # -- Codec protocol -----------------------------------------------------------------
    def encode(self, image: np.ndarray, quality: Any) -> bytes:
        """Compresses a uint8 ``(H, W, C)`` image (C = 1 or 3) into a ``.jxc`` stream."""
        if quality not in self.qualities:
            raise ConfigError(f"{self.name}: this model codes quality {self.quality} only, got {quality!r}")
        image = self._check_image(image)
        symbols = self.latents(image)
        h, w, m = symbols.shape
        header = container.Header(
            model=self.name,
            table_hash=self.table_hash,
            height=image.shape[0],
            width=image.shape[1],
            channels=image.shape[2],
            latent_shape=(h, w, m),
            quality=self.quality,
            tile=STREAM_TILE,
            check=b"\0" * container.CHECK_SIZE,
        )
        digest = container.content_digest(header)
        chunks = []
        for rows, cols in self.stream_tiles(h, w, STREAM_TILE):
            tile = symbols[rows, cols]
            digest.update(tile.astype("<i4").tobytes())
            values = np.append(tile.reshape(-1), np.int32(GUARD_VALUE))
            chunks.append(entropy.encode_symbols(values, self.tile_table_ids(tile.shape[0] * tile.shape[1]),
                                                 *self.guarded_tables))
        lengths = [len(chunk).to_bytes(4, "little") for chunk in chunks[:-1]] + [b""]
        payload = b"".join(length + chunk for chunk, length in zip(chunks, lengths))
        return container.pack(dataclasses.replace(header, check=digest.digest()), payload)

    def decode_symbols(self, data: bytes) -> np.ndarray:
        """The integer latents ``(h, w, M)`` of a stream from :meth:`encode`: what the
        entropy decoder recovers, identical on every machine (integer tables)."""
        return self._symbols(data)[1]

    def check_stream(self, data: bytes) -> container.Header:
        """Everything the decoder checks before it allocates (model, tables, the declared
        size against :func:`jaxcodec.limits.max_pixels`, the latent shape, every tile's
        payload against the fewest bytes its symbols can take), without decoding; returns
        the header. Raises as :meth:`decode` would."""
        header, payload = container.unpack(data)
        self._check_header(header)
        for _ in self._tile_payloads(header, payload):
            pass
        return header

    def _check_header(self, header: container.Header) -> None:
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
        limits.check_pixels(header.height, header.width, "the stream", BitstreamError)

    def _tile_payloads(self, header: container.Header, payload: bytes):
        """``(rows, cols, bytes)`` of each coded tile, each checked against the fewest bytes
        its symbols can take before it is yielded (the whole payload first)."""
        h, w, m = header.latent_shape
        costs = self._costs
        limits.check_payload(len(payload), costs, np.full(m, h * w), f"{self.name}: the payload")
        if not header.check:  # version 1: one payload for the whole latent, no guard
            yield slice(0, h), slice(0, w), payload
            return
        side = header.tile or max(h, w)
        count = -(-h // side) * -(-w // side)
        if len(payload) < 4 * (count - 1):
            raise BitstreamError(f"{self.name}: truncated payload: {count} tiles need "
                                 f"{4 * (count - 1)} bytes of lengths, the payload has {len(payload)}")
        tiles = self.stream_tiles(h, w, header.tile)
        pos = 0
        for i, (rows, cols) in enumerate(tiles):
            if i == len(tiles) - 1:
                chunk, pos = payload[pos:], len(payload)
            else:
                size = int.from_bytes(payload[pos : pos + 4], "little")
                if pos + 4 + size > len(payload):
                    raise BitstreamError(f"{self.name}: truncated payload: tile {i + 1} of {len(tiles)} "
                                         f"says {size} bytes, {len(payload) - pos - 4} are left")
                chunk, pos = payload[pos + 4 : pos + 4 + size], pos + 4 + size
            count = (rows.stop - rows.start) * (cols.stop - cols.start)
            limits.check_payload(len(chunk), costs, np.full(m, count),
                                 f"{self.name}: tile {i + 1} of {len(tiles)}")
            yield rows, cols, chunk

    def _symbols(self, data: bytes) -> tuple[container.Header, np.ndarray]:
        header, payload = container.unpack(data)
        self._check_header(header)
        h, w, m = header.latent_shape
        tiles = list(self._tile_payloads(header, payload))  # every size check before any allocation
        if not header.check:
            symbols = entropy.decode_symbols(payload, self._table_ids(h, w), self.freqs, self.offsets)
            return header, symbols.reshape(h, w, m)
        symbols = np.empty((h, w, m), np.int32)
        digest = container.content_digest(header)
        for i, (rows, cols, chunk) in enumerate(tiles):
            shape = (rows.stop - rows.start, cols.stop - cols.start, m)
            values = entropy.decode_symbols(chunk, self.tile_table_ids(shape[0] * shape[1]), *self.guarded_tables)
            if values[-1] != GUARD_VALUE:
                raise BitstreamError(f"{self.name}: corrupt entropy-coded data (tile {i + 1} of {len(tiles)} "
                                     "does not end with its guard)")
            tile = values[:-1].reshape(shape)
            digest.update(tile.astype("<i4").tobytes())
            symbols[rows, cols] = tile
        if digest.digest() != header.check:
            raise BitstreamError(f"{self.name}: content check failed: the payload does not decode to the "
                                 "symbols that were coded (a damaged or edited stream)")
        return header, symbols

    def decode(self, data: bytes) -> np.ndarray:
        """Decompresses a stream from :meth:`encode` into a uint8 ``(H, W, C)`` image.

        Raises:
          BitstreamError: corrupt or truncated stream, a declared size beyond
            :func:`jaxcodec.limits.max_pixels` or beyond what the payload can hold.
          ModelError: the stream was made by another model or with other tables.
        """
        header, symbols = self._symbols(data)
        image = self.reconstruct(symbols, header.height, header.width)
        if header.channels == 1:  # the mean of the three channels, a band of rows at a time
            grey = np.empty(image.shape[:2] + (1,), np.uint8)
            for r in range(0, image.shape[0], 256):
                band = image[r : r + 256].astype(np.float32)
                grey[r : r + 256] = np.round(band.mean(axis=2, keepdims=True)).astype(np.uint8)
            image = grey
        return image


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------


def default_config(quality: int = 3) -> ml_collections.ConfigDict:
    """The ``bmshj2018-factorized`` configuration at CompressAI's quality ``1 .. 8`` (or 9).

    ``configs/factorized.py:QUALITY`` returns this; every field can
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
    config.model.filters = (3, 3, 3)  # hidden widths of each channel's deep factorized density
    config.model.quantizer = "noise"  # training proxy of rounding: "noise" (uniform) or "ste" (straight-through)
    config.model.trainable = "all"  # "analysis": only g_a learns (encoder fine-tuning, Guo et al. 2021)
    config.model.tail_mass = 1e-9  # density mass left to the escape symbol of each integer table
    config.model.clip_norm = 1.0  # global gradient-norm clipping (CompressAI's train.py); 0 disables
    config.model.init_latent_scale = 1.0  # with init_from: start from the copy with its latent ×s (rescale_latents)
    # Adam step size of encoder-side latent refinement (jaxcodec.codecs.refinement) for this model;
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
