"""Training of the DCGAN-style pair (:mod:`jaxcodec.models.gan`) for GAN-reversal
compression; its codec is :mod:`jaxcodec.codecs.gan_reversal`.

The non-saturating loss (Goodfellow et al. 2014, Sec. 3), Adam with β1 = 0.5 (DCGAN,
Sec. 4) and the R1 gradient penalty on real data (Mescheder, Geiger & Nowozin 2018,
"Which training methods for GANs actually converge?", Eq. 9), which keeps the
discriminator from growing sharp around the data without spectral normalisation's
power-iteration state.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxcodec.codecs import inversion
from jaxcodec.codecs import latent as latent_codec
from jaxcodec.codecs.gan_reversal import GANReversalCodec
from jaxcodec.errors import ConfigError
from jaxcodec.models.gan import LATENT_RANGE, Discriminator, Generator, sample_latents

_EVAL_KEY = 0  # eval_step has no rng: it draws its latents from this fixed seed.


def _d_loss_terms(d_logits_real: jax.Array, d_logits_fake: jax.Array) -> jax.Array:
    """Discriminator's binary cross-entropy: -log D(x) - log(1 - D(G(z))) (Goodfellow 2014, Eq. 1)."""
    return jnp.mean(jax.nn.softplus(-d_logits_real)) + jnp.mean(jax.nn.softplus(d_logits_fake))


def _g_loss_terms(d_logits_fake: jax.Array) -> jax.Array:
    """Non-saturating generator loss -log D(G(z)) (Goodfellow 2014, Sec. 3)."""
    return jnp.mean(jax.nn.softplus(-d_logits_fake))


class GANTask:
    """DCGAN training as a :class:`jaxcodec.train.task.Task`; its codec is GAN reversal.

    Reads ``config.model``: ``image_shape`` (square, C = 1 or 3), ``latent_dim``,
    ``g_width``, ``d_width``, ``max_width``, ``convs_per_stage``, ``r1_gamma``,
    ``adam_b1``, ``adam_b2``, ``d_learning_rate`` (defaults to
    ``config.learning_rate``), and for the codec ``bit_depths``, ``finalize_batches``
    and ``inversion`` (``steps``, ``lr``, ``loss``, ``restarts``, ``clip``,
    ``schedule``, ``refine``, ``seed``; see :func:`jaxcodec.codecs.inversion.invert`).

    State: ``{"step", "g_params", "d_params", "g_opt", "d_opt"}``.
    """

    #: What its codec needs of a trained state (the discriminator is left out of a shipped model).
    codec_state_keys = ("g_params",)

    def __init__(self, config: Any):
        self.config = config
        m = config.model
        self.latent_dim = int(m.latent_dim)
        shape = tuple(int(s) for s in m.image_shape)
        if len(shape) != 3 or shape[0] != shape[1] or shape[2] not in (1, 3):
            raise ConfigError(f"model.image_shape must be (S, S, 1) or (S, S, 3), got {shape}")
        self.image_shape = shape
        self.image_size, self.channels = shape[0], shape[2]
        self.r1_gamma = float(m.get("r1_gamma", 0.0))
        self.generator = Generator(
            image_size=self.image_size,
            channels=self.channels,
            width=int(m.get("g_width", 32)),
            max_width=int(m.get("max_width", 256)),
            convs_per_stage=int(m.get("convs_per_stage", 1)),
        )
        self.discriminator = Discriminator(
            image_size=self.image_size,
            width=int(m.get("d_width", 32)),
            max_width=int(m.get("max_width", 256)),
        )

    def _adam(self, lr: float) -> Any:
        import optax

        m = self.config.model
        return optax.adam(lr, b1=float(m.get("adam_b1", 0.5)), b2=float(m.get("adam_b2", 0.999)))

    @functools.cached_property
    def g_tx(self) -> Any:
        """The generator's Adam (built on first use: decoding needs no optimiser)."""
        return self._adam(float(self.config.learning_rate))

    @functools.cached_property
    def d_tx(self) -> Any:
        """The discriminator's Adam."""
        return self._adam(float(self.config.model.get("d_learning_rate", None) or self.config.learning_rate))

    # -- Task protocol ------------------------------------------------------------

    def init_state(self, rng: jax.Array, batch: jax.Array) -> dict:
        """Initialises both networks and their Adam states for batches shaped like ``batch``."""
        expected = self.image_shape
        if tuple(batch.shape[1:]) != expected:
            raise ConfigError(
                f"batch images are {tuple(batch.shape[1:])} but model.image_shape is {expected}"
            )
        g_rng, d_rng = jax.random.split(rng)
        z = jnp.zeros((1, self.latent_dim), jnp.float32)
        g_params = self.generator.init(g_rng, z)
        d_params = self.discriminator.init(d_rng, jnp.zeros((1, *expected), jnp.float32))
        return {
            "step": jnp.zeros((), jnp.int32),
            "g_params": g_params,
            "d_params": d_params,
            "g_opt": self.g_tx.init(g_params),
            "d_opt": self.d_tx.init(d_params),
        }

    def _d_loss(self, d_params, g_params, real, z):
        fake = self.generator.apply(g_params, z)
        logits_fake = self.discriminator.apply(d_params, fake)
        if self.r1_gamma > 0:
            # R1 = gamma/2 * E ||grad_x D(x)||^2 on real data (Mescheder et al. 2018, Eq. 9).
            def d_sum(x):
                logits = self.discriminator.apply(d_params, x)
                return jnp.sum(logits), logits

            grad_x, logits_real = jax.grad(d_sum, has_aux=True)(real)
            r1 = jnp.mean(jnp.sum(jnp.square(grad_x), axis=(1, 2, 3)))
        else:
            logits_real = self.discriminator.apply(d_params, real)
            r1 = jnp.zeros(())
        loss = _d_loss_terms(logits_real, logits_fake) + 0.5 * self.r1_gamma * r1
        aux = {
            "d_real": jnp.mean(jax.nn.sigmoid(logits_real)),
            "d_fake": jnp.mean(jax.nn.sigmoid(logits_fake)),
            "r1": r1,
        }
        return loss, aux

    def _g_loss(self, g_params, d_params, z):
        fake = self.generator.apply(g_params, z)
        return _g_loss_terms(self.discriminator.apply(d_params, fake))

    def train_step(self, state: dict, batch: jax.Array, rng: jax.Array) -> tuple[dict, dict]:
        """One discriminator update, then one generator update with fresh latents."""
        import optax

        n = batch.shape[0]
        d_rng, g_rng = jax.random.split(rng)
        z_d = sample_latents(d_rng, n, self.latent_dim)
        (d_loss, aux), d_grads = jax.value_and_grad(self._d_loss, has_aux=True)(
            state["d_params"], state["g_params"], batch, z_d
        )
        d_updates, d_opt = self.d_tx.update(d_grads, state["d_opt"], state["d_params"])
        d_params = optax.apply_updates(state["d_params"], d_updates)

        z_g = sample_latents(g_rng, n, self.latent_dim)
        g_loss, g_grads = jax.value_and_grad(self._g_loss)(state["g_params"], d_params, z_g)
        g_updates, g_opt = self.g_tx.update(g_grads, state["g_opt"], state["g_params"])
        g_params = optax.apply_updates(state["g_params"], g_updates)

        new_state = {
            "step": state["step"] + 1,
            "g_params": g_params,
            "d_params": d_params,
            "g_opt": g_opt,
            "d_opt": d_opt,
        }
        metrics = {"d_loss": d_loss, "g_loss": g_loss, **aux}
        return new_state, metrics

    def eval_step(self, state: dict, batch: jax.Array) -> dict:
        """``d_loss`` (without R1), ``g_loss`` and the mean D(real) / D(fake) probabilities."""
        z = sample_latents(jax.random.PRNGKey(_EVAL_KEY), batch.shape[0], self.latent_dim)
        fake = self.generator.apply(state["g_params"], z)
        logits_real = self.discriminator.apply(state["d_params"], batch)
        logits_fake = self.discriminator.apply(state["d_params"], fake)
        return {
            "d_loss": _d_loss_terms(logits_real, logits_fake),
            "g_loss": _g_loss_terms(logits_fake),
            "d_real": jnp.mean(jax.nn.sigmoid(logits_real)),
            "d_fake": jnp.mean(jax.nn.sigmoid(logits_fake)),
        }

    # -- generation and compression -----------------------------------------------

    def generate(self, g_params: Any, z: jax.Array) -> jax.Array:
        """Runs the generator: latents ``(B, d)`` → images ``(B, S, S, C)`` in [0, 1]."""
        return self.generator.apply(g_params, z)

    def invert(
        self, g_params: Any, images: jax.Array, rng: jax.Array | None = None, loop: str | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """Recovers latents ``(B, d)`` of images ``(B, S, S, C)`` with the settings of
        ``config.model.inversion`` (see :func:`jaxcodec.codecs.inversion.invert`).

        Returns ``(z, final_loss)``. Without ``rng`` every image uses the key
        ``PRNGKey(inversion.seed)``, so encoding an image is deterministic and does not
        depend on the other images of the batch. ``loop="scan"`` makes it traceable.
        """
        inv = self.config.model.inversion
        if rng is None:
            key = jax.random.PRNGKey(int(inv.get("seed", 0)))
            keys = jnp.broadcast_to(key, (images.shape[0], *key.shape))
        else:
            keys = jax.random.split(rng, images.shape[0])
        return inversion.invert(
            self.generator.apply,
            g_params,
            images,
            latent_dim=self.latent_dim,
            steps=int(inv.steps),
            lr=float(inv.lr),
            loss=inv.loss if isinstance(inv.loss, str) else dict(inv.loss),
            restarts=int(inv.get("restarts", 1)),
            clip=inv.get("clip", "stochastic"),
            schedule=inv.get("schedule", "cosine"),
            refine=int(inv.get("refine", 0)),
            rng=keys,
            loop=loop,
        )

    def prior_tables(self) -> dict[str, np.ndarray]:
        """Entropy tables that give every quantisation level the same probability.

        Built for each bit depth from equally many latents at every reconstruction
        level, so no data is needed and the tables are identical everywhere; a latent
        then costs about ``bits`` bits per value. The copies (4096 per bit depth in
        all) keep the smoothing pseudo-count of the escape symbol near 0.02%.
        """
        bit_depths = sorted({int(b) for b in self.config.model.bit_depths})
        tables: dict[str, np.ndarray] = {}
        for bits in bit_depths:
            levels = np.asarray(latent_codec.dequantize(np.arange(2**bits), LATENT_RANGE, bits))
            copies = 2 ** max(0, 12 - bits)
            latents = np.repeat(np.tile(levels, copies)[:, None], self.latent_dim, axis=1)
            tables.update(latent_codec.fit_tables(latents, LATENT_RANGE, [bits]))
        tables["bit_depths"] = np.asarray(bit_depths, np.int32)
        return tables

    def finalize(self, state: dict, batches: Any) -> dict[str, np.ndarray]:
        """Entropy tables for the codec.

        With ``model.finalize_batches == 0`` (the default) the tables are the uniform
        prior's (:meth:`prior_tables`); otherwise the latents recovered from that many
        training batches are quantised and their per-dimension histograms fitted.
        """
        num = int(self.config.model.get("finalize_batches", 0))
        if num <= 0:
            return self.prior_tables()
        latents = latent_codec.collect_latents(lambda x: self.invert(state["g_params"], x)[0], batches, num)
        return latent_codec.fit_tables(latents, LATENT_RANGE, self.config.model.bit_depths)

    def make_codec(self, state: dict, tables: dict[str, np.ndarray] | None = None) -> GANReversalCodec:
        """The GAN-reversal ``.jxc`` codec: encode = latent recovery + uniform quantisation
        + histogram coding; decode = the generator. Qualities are bits per latent value.

        ``tables`` defaults to :meth:`prior_tables` when the run saved none.
        """
        return GANReversalCodec.build(self, state["g_params"], self.prior_tables() if tables is None else tables)


def default_config() -> ml_collections.ConfigDict:
    """DCGAN on MNIST digits (28×28, 32 latents, 500 inversion steps per digit); the
    CelebA configurations override the image shape, widths and data."""
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict()
    config.model.name = "gan"  # jaxcodec.train.tasks registry key
    config.model.image_shape = (28, 28, 1)  # generated / coded image shape (square, C = 1 or 3)
    config.model.latent_dim = 32  # d: z ~ U[-1, 1]^d
    config.model.g_width = 16  # generator channels at full resolution, doubled per halving
    config.model.d_width = 16  # discriminator channels at full resolution, doubled per halving
    config.model.max_width = 256  # cap on channels at the coarse resolutions
    config.model.convs_per_stage = 1  # 3x3 convolutions after each generator up-sampling
    config.model.r1_gamma = 1.0  # R1 penalty weight on real data (Mescheder et al. 2018); 0 = off
    config.model.adam_b1 = 0.5  # Adam beta1 for both networks (DCGAN)
    config.model.adam_b2 = 0.999  # Adam beta2 for both networks
    config.model.d_learning_rate = None  # None = config.learning_rate
    config.model.bit_depths = (3, 4, 5, 6, 8)  # codec qualities: bits per latent value
    config.model.finalize_batches = 0  # 0 = uniform-prior entropy tables; N = fit on N inverted batches

    config.model.inversion = ml_collections.ConfigDict()
    config.model.inversion.steps = 500  # Adam steps per image
    config.model.inversion.lr = 0.05  # peak learning rate (cosine-decayed to 1%)
    config.model.inversion.schedule = "cosine"  # "cosine" or None (constant)
    config.model.inversion.loss = "l2"  # "l1", "l2", "ssim", "ms_ssim" or a dict of weights
    config.model.inversion.restarts = 4  # random starts per image, best final loss kept
    config.model.inversion.clip = "stochastic"  # "stochastic" (Lipton & Tripathi 2017), "project" or None
    config.model.inversion.refine = 0  # Levenberg-Marquardt iterations after Adam ("l2" loss only); 0 = Adam only
    config.model.inversion.seed = 0  # key of the starts and the clipping noise (encoding is deterministic)

    config.data = ml_collections.ConfigDict()
    config.data.train = "sample:mnist"  # training set spec (npz:PATH or tfds:mnist for all 60000 digits)
    config.data.train_split = "train"  # split of the training set
    config.data.eval = "sample:mnist"  # evaluation set spec ("" to skip evaluation)
    config.data.eval_split = "test"  # split of the evaluation set
    config.data.image_size = None  # native 28x28
    config.data.crop = None  # no random crops

    config.batch_size = 32  # images per step (global, over all devices)
    config.num_steps = 5000  # steps (one D and one G update each)
    config.learning_rate = 2e-4  # Adam learning rate (DCGAN)
    config.seed = 0  # seed of parameter init, data order and latents
    config.log_every = 100  # steps between progress lines
    config.eval_every = 1000  # steps between evaluations
    config.eval_batches = 10  # evaluation batches per evaluation
    config.checkpoint_every = 1000  # steps between checkpoints
    config.keep_checkpoints = 3  # checkpoints kept on disk
    return config
