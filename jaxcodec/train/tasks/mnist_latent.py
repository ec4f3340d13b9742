"""What the two MNIST autoencoder tasks share (seeds 003 and 004): the image metrics, the
optimiser step, the evaluation with a quantised latent, and the codec, a bounded latent
uniformly quantised and coded with per-dimension histograms
(:class:`jaxcodec.codecs.latent.LatentCodec`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.codecs import latent as latent_codec


def image_metrics(x: jax.Array, logits: jax.Array) -> dict[str, jax.Array]:
    """Batch means of MSE, PSNR (peak 1.0, per image then averaged) and per-pixel BCE."""
    import optax

    y = jax.nn.sigmoid(logits)
    mse_per = jnp.mean((x - y) ** 2, axis=(1, 2, 3))
    psnr_per = -10.0 * jnp.log10(jnp.maximum(mse_per, 1e-10))
    bce = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, x))
    return {"mse": jnp.mean(mse_per), "psnr": jnp.mean(psnr_per), "bce": bce}


class LatentHistogramTask:
    """Base of an MNIST autoencoder task. A subclass sets ``name``, ``latent_range`` and
    ``self.model`` (a module with ``encode`` and ``decode_logits``), and defines ``tx``,
    ``loss_fn`` and :meth:`codec_description`."""

    name: str
    latent_range: tuple[float, float]
    config: Any
    model: Any
    tx: Any

    # -- pure functions of params, for Colab and the codec ----------------------------
    def encode_latent(self, params: Any, x: jax.Array) -> jax.Array:
        """``(N, 28, 28, 1)`` floats in ``[0, 1]`` → ``(N, D)`` latents inside ``latent_range``."""
        return self.model.apply(params, x, method="encode")

    def decode_logits(self, params: Any, z: jax.Array) -> jax.Array:
        """``(N, D)`` latents → ``(N, 28, 28, 1)`` logits of the pixels."""
        return self.model.apply(params, z, method="decode_logits")

    def decode_latent(self, params: Any, z: jax.Array) -> jax.Array:
        """``(N, D)`` latents → ``(N, 28, 28, 1)`` images in ``[0, 1]``."""
        return jax.nn.sigmoid(self.decode_logits(params, z))

    # -- Task protocol ------------------------------------------------------------------
    def init_state(self, rng: jax.Array, batch: jax.Array) -> dict[str, Any]:
        params = self.model.init(rng, jnp.asarray(batch[:1], jnp.float32))
        return {"step": jnp.zeros((), jnp.int32), "params": params, "opt": self.tx.init(params)}

    def train_step(self, state: dict, batch: jax.Array, rng: jax.Array) -> tuple[dict, dict]:
        import optax

        grads, metrics = jax.grad(self.loss_fn, has_aux=True)(state["params"], batch, rng)
        updates, opt = self.tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {"step": state["step"] + 1, "params": params, "opt": opt}, metrics

    def eval_step(self, state: dict, batch: jax.Array) -> dict[str, jax.Array]:
        """MSE, PSNR, BCE of the unquantised reconstruction, PSNR after quantising the
        latent to ``config.model.eval_bits`` bits, and the latent's mean magnitude."""
        params = state["params"]
        z = self.encode_latent(params, batch)
        metrics = image_metrics(batch, self.decode_logits(params, z))
        bits = self.config.model.eval_bits
        z_q = latent_codec.dequantize(latent_codec.quantize(z, self.latent_range, bits), self.latent_range, bits)
        metrics[f"psnr_{bits}bit"] = image_metrics(batch, self.decode_logits(params, z_q))["psnr"]
        metrics["latent_abs"] = jnp.mean(jnp.abs(z))
        return metrics

    def finalize(self, state: dict, batches: Any) -> dict[str, np.ndarray]:
        """Fits one latent histogram per bit depth on ``config.model.finalize_batches``
        training batches; returns the arrays :meth:`make_codec` needs."""
        return latent_codec.fit_model_tables(
            self.encode_latent, state["params"], batches, self.config.model, self.latent_range
        )

    def make_codec(self, state: dict, tables: dict[str, np.ndarray]) -> latent_codec.LatentCodec:
        """The ``.jxc`` codec of the trained model; qualities are latent bit depths."""
        params = state["params"]
        return latent_codec.LatentCodec.from_tables(
            self.name,
            encode_fn=lambda x: self.encode_latent(params, x),
            decode_fn=lambda z: self.decode_latent(params, z),
            tables=tables,
            image_shape=tuple(self.config.model.image_shape),
            description=self.codec_description(),
        )

    def codec_description(self) -> str:
        raise NotImplementedError
