"""Training of the MNIST convolutional autoencoder (:mod:`jaxcodec.models.mnist_conv_ae`;
the loss, regulariser and quantisation noise are described there); its codec is
:class:`jaxcodec.codecs.latent.LatentCodec`.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.codecs import latent as latent_codec
from jaxcodec.models.mnist_conv_ae import LATENT_RANGE, MODEL_NAME, ConvAutoencoder


def image_metrics(x: jax.Array, logits: jax.Array) -> dict[str, jax.Array]:
    """Batch means of MSE, PSNR (peak 1.0, per image then averaged) and per-pixel BCE."""
    import optax

    y = jax.nn.sigmoid(logits)
    mse_per = jnp.mean((x - y) ** 2, axis=(1, 2, 3))
    psnr_per = -10.0 * jnp.log10(jnp.maximum(mse_per, 1e-10))
    bce = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, x))
    return {"mse": jnp.mean(mse_per), "psnr": jnp.mean(psnr_per), "bce": bce}


class ConvAETask:
    """Training task for :class:`ConvAutoencoder` (seed 004); see :mod:`jaxcodec.models.mnist_conv_ae`."""

    name = MODEL_NAME

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

    # -- pure functions of params, for Colab and the codec ----------------------------
    def encode_latent(self, params: Any, x: jax.Array) -> jax.Array:
        """``(N, 28, 28, 1)`` floats in ``[0, 1]`` → ``(N, latent_dim)`` latents in ``(-1, 1)``."""
        return self.model.apply(params, x, method=ConvAutoencoder.encode)

    def decode_latent(self, params: Any, z: jax.Array) -> jax.Array:
        """``(N, latent_dim)`` latents → ``(N, 28, 28, 1)`` images in ``[0, 1]``."""
        return jax.nn.sigmoid(self.model.apply(params, z, method=ConvAutoencoder.decode_logits))

    # -- Task protocol ------------------------------------------------------------------
    def init_state(self, rng: jax.Array, batch: jax.Array) -> dict[str, Any]:
        params = self.model.init(rng, jnp.asarray(batch[:1], jnp.float32))
        return {"step": jnp.zeros((), jnp.int32), "params": params, "opt": self.tx.init(params)}

    def loss_fn(self, params: Any, batch: jax.Array, rng: jax.Array) -> tuple[jax.Array, dict]:
        """Reconstruction loss + ``latent_l2 · mean(z²)``; returns ``(loss, metrics)``."""
        m = self.config.model
        z = self.encode_latent(params, batch)
        z_hat = z
        if m.noise_bits:
            step = (LATENT_RANGE[1] - LATENT_RANGE[0]) / (2 ** m.noise_bits - 1)
            z_hat = z + step * jax.random.uniform(rng, z.shape, z.dtype, -0.5, 0.5)
        logits = self.model.apply(params, z_hat, method=ConvAutoencoder.decode_logits)
        metrics = image_metrics(batch, logits)
        recon = metrics["mse"] if m.loss == "mse" else metrics["bce"]
        reg = jnp.mean(z**2)
        loss = recon + m.latent_l2 * reg
        return loss, dict(metrics, loss=loss, latent_l2=reg)

    def train_step(self, state: dict, batch: jax.Array, rng: jax.Array) -> tuple[dict, dict]:
        import optax

        grads, metrics = jax.grad(self.loss_fn, has_aux=True)(state["params"], batch, rng)
        updates, opt = self.tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {"step": state["step"] + 1, "params": params, "opt": opt}, metrics

    def eval_step(self, state: dict, batch: jax.Array) -> dict[str, jax.Array]:
        """MSE, PSNR, BCE of the unquantised reconstruction, and PSNR after quantising
        the latent to ``config.model.eval_bits`` bits."""
        params = state["params"]
        z = self.encode_latent(params, batch)
        metrics = image_metrics(batch, self.model.apply(params, z, method=ConvAutoencoder.decode_logits))
        bits = self.config.model.eval_bits
        z_q = latent_codec.dequantize(latent_codec.quantize(z, LATENT_RANGE, bits), LATENT_RANGE, bits)
        logits_q = self.model.apply(params, z_q, method=ConvAutoencoder.decode_logits)
        metrics[f"psnr_{bits}bit"] = image_metrics(batch, logits_q)["psnr"]
        metrics["latent_abs"] = jnp.mean(jnp.abs(z))
        return metrics

    def finalize(self, state: dict, batches: Any) -> dict[str, np.ndarray]:
        """Fits one latent histogram per bit depth on ``config.model.finalize_batches``
        training batches; returns the arrays :meth:`make_codec` needs."""
        return latent_codec.fit_model_tables(
            self.encode_latent, state["params"], batches, self.config.model, LATENT_RANGE
        )

    def make_codec(self, state: dict, tables: dict[str, np.ndarray]) -> latent_codec.LatentCodec:
        """The ``.jxc`` codec of the trained model; qualities are latent bit depths."""
        params = state["params"]
        return latent_codec.LatentCodec.from_tables(
            MODEL_NAME,
            encode_fn=lambda x: self.encode_latent(params, x),
            decode_fn=lambda z: self.decode_latent(params, z),
            tables=tables,
            image_shape=tuple(self.config.model.image_shape),
            description=(
                f"convolutional autoencoder, {self.config.model.latent_dim} tanh latents, "
                "uniform quantisation + per-dimension histograms"
            ),
        )
