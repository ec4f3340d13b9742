"""Training of the MNIST convolutional autoencoder (:mod:`jaxcodec.models.mnist_conv_ae`;
the loss, regulariser and quantisation noise are described there); its codec is
:class:`jaxcodec.codecs.latent.LatentCodec` (the parts shared with seed 003:
:mod:`jaxcodec.train.tasks.mnist_latent`).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from jaxcodec.models.mnist_conv_ae import LATENT_RANGE, MODEL_NAME, ConvAutoencoder
from jaxcodec.train.tasks.mnist_latent import LatentHistogramTask, image_metrics


class ConvAETask(LatentHistogramTask):
    """Training task for :class:`ConvAutoencoder` (seed 004); see :mod:`jaxcodec.models.mnist_conv_ae`."""

    name = MODEL_NAME
    latent_range = LATENT_RANGE

    def __init__(self, config: Any):
        self.config = config
        m = config.model
        self.model = ConvAutoencoder(
            features=tuple(m.features),
            hidden=m.hidden,
            latent_dim=m.latent_dim,
            image_shape=tuple(m.image_shape),
            output_bias=m.output_bias,
        )
        if m.loss not in ("mse", "bce"):
            raise ValueError(f"config.model.loss must be 'mse' or 'bce', got {m.loss!r}")

    @functools.cached_property
    def tx(self) -> Any:
        """AdamW (built on first use: a codec built from shipped weights needs no optimiser)."""
        import optax

        return optax.adamw(self.config.learning_rate, weight_decay=self.config.model.weight_decay)

    def loss_fn(self, params: Any, batch: jax.Array, rng: jax.Array) -> tuple[jax.Array, dict]:
        """Reconstruction loss + ``latent_l2 · mean(z²)``; returns ``(loss, metrics)``."""
        m = self.config.model
        z = self.encode_latent(params, batch)
        z_hat = z
        if m.noise_bits:
            step = (LATENT_RANGE[1] - LATENT_RANGE[0]) / (2 ** m.noise_bits - 1)
            z_hat = z + step * jax.random.uniform(rng, z.shape, z.dtype, -0.5, 0.5)
        logits = self.decode_logits(params, z_hat)
        metrics = image_metrics(batch, logits)
        recon = metrics["mse"] if m.loss == "mse" else metrics["bce"]
        reg = jnp.mean(z**2)
        loss = recon + m.latent_l2 * reg
        return loss, dict(metrics, loss=loss, latent_l2=reg)

    def codec_description(self) -> str:
        return (
            f"convolutional autoencoder, {self.config.model.latent_dim} tanh latents, "
            "uniform quantisation + per-dimension histograms"
        )
