"""Training of the MNIST deep autoencoder (:mod:`jaxcodec.models.mnist_deep_ae`): RBM
pre-training unrolled into the autoencoder (Hinton & Salakhutdinov, Science 313:504,
2006, Fig. 1), then fine-tuning with Adam; its codec is
:class:`jaxcodec.codecs.latent.LatentCodec`.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.codecs import latent as latent_codec
from jaxcodec.models import rbm
from jaxcodec.train.tasks.mnist_conv_ae import image_metrics
from jaxcodec.models.mnist_deep_ae import LATENT_RANGE, MODEL_NAME, DeepAutoencoder


def unroll(params: Any, stack: Sequence[tuple[jax.Array, jax.Array, jax.Array]]) -> Any:
    """Copies RBM weights into the autoencoder (H&S 2006, Fig. 1 "Unrolling").

    ``stack[i] = (W_i, b_vis_i, b_hid_i)`` bottom first. Encoder layer ``i`` gets kernel
    ``W_i`` and bias ``b_hid_i``; decoder layer ``n-1-i`` gets ``W_iᵀ`` and ``b_vis_i``.
    """
    inner = dict(params["params"])
    n = len(stack)
    for i, (w, b_vis, b_hid) in enumerate(stack):
        inner[f"enc_{i}"] = {"kernel": jnp.asarray(w), "bias": jnp.asarray(b_hid)}
        inner[f"dec_{n - 1 - i}"] = {"kernel": jnp.asarray(w).T, "bias": jnp.asarray(b_vis)}
    return {**params, "params": inner}


class DeepAETask:
    """Training task for :class:`DeepAutoencoder` (seed 003); see :mod:`jaxcodec.models.mnist_deep_ae`."""

    name = MODEL_NAME

    def __init__(self, config: Any):
        self.config = config
        m = config.model
        self.model = DeepAutoencoder(layer_sizes=tuple(m.layer_sizes), image_shape=tuple(m.image_shape))
        if int(np.prod(m.image_shape)) != m.layer_sizes[0]:
            raise ValueError(f"config.model.layer_sizes[0] must be {int(np.prod(m.image_shape))}")

    @functools.cached_property
    def tx(self) -> Any:
        """Adam (built on first use: a codec built from shipped weights needs no optimiser)."""
        import optax

        return optax.adam(self.config.learning_rate)

    # -- pure functions of params, for Colab and the codec ----------------------------
    def encode_latent(self, params: Any, x: jax.Array) -> jax.Array:
        """``(N, 28, 28, 1)`` floats in ``[0, 1]`` → ``(N, 196)`` codes in ``(0, 1)``."""
        return self.model.apply(params, x, method=DeepAutoencoder.encode)

    def decode_latent(self, params: Any, z: jax.Array) -> jax.Array:
        """``(N, 196)`` codes → ``(N, 28, 28, 1)`` images in ``[0, 1]``."""
        return jax.nn.sigmoid(self.model.apply(params, z, method=DeepAutoencoder.decode_logits))

    # -- Task protocol ------------------------------------------------------------------
    def init_state(self, rng: jax.Array, batch: jax.Array) -> dict[str, Any]:
        params = self.model.init(rng, jnp.asarray(batch[:1], jnp.float32))
        return {"step": jnp.zeros((), jnp.int32), "params": params, "opt": self.tx.init(params)}

    def loss_fn(self, params: Any, batch: jax.Array) -> tuple[jax.Array, dict]:
        """Pixel-wise binary cross-entropy (mean over pixels and images)."""
        logits, _ = self.model.apply(params, batch)
        metrics = image_metrics(batch, logits)
        return metrics["bce"], dict(metrics, loss=metrics["bce"])

    def train_step(self, state: dict, batch: jax.Array, rng: jax.Array) -> tuple[dict, dict]:
        import optax

        del rng  # deterministic network
        grads, metrics = jax.grad(self.loss_fn, has_aux=True)(state["params"], batch)
        updates, opt = self.tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {"step": state["step"] + 1, "params": params, "opt": opt}, metrics

    def eval_step(self, state: dict, batch: jax.Array) -> dict[str, jax.Array]:
        """MSE, PSNR, BCE of the unquantised reconstruction, and PSNR with the code
        quantised to ``config.model.eval_bits`` bits."""
        params = state["params"]
        z = self.encode_latent(params, batch)
        metrics = image_metrics(batch, self.model.apply(params, z, method=DeepAutoencoder.decode_logits))
        bits = self.config.model.eval_bits
        z_q = latent_codec.dequantize(latent_codec.quantize(z, LATENT_RANGE, bits), LATENT_RANGE, bits)
        logits_q = self.model.apply(params, z_q, method=DeepAutoencoder.decode_logits)
        metrics[f"psnr_{bits}bit"] = image_metrics(batch, logits_q)["psnr"]
        return metrics

    def pretrain(self, state: dict, batches: Any, config: Any) -> dict:
        """Greedy RBM pre-training and unrolling when ``config.model.pretrain`` is set;
        otherwise returns ``state`` unchanged. The optimiser state is reset."""
        m = config.model
        if not m.pretrain:
            return state

        def log(layer: int, step: int, recon: float) -> None:
            if jax.process_index() == 0:
                sizes = m.layer_sizes
                print(f"rbm {sizes[layer]}-{sizes[layer + 1]} step {step + 1}/{m.rbm_steps}: "
                      f"reconstruction mse {recon:.5f}", flush=True)

        stack = rbm.pretrain_stack(
            list(m.layer_sizes),
            batches,
            rng=jax.random.key(config.seed + 1),
            steps_per_layer=m.rbm_steps,
            learning_rate=m.rbm_learning_rate,
            weight_cost=m.rbm_weight_cost,
            initial_momentum=m.rbm_initial_momentum,
            final_momentum=m.rbm_final_momentum,
            top_hidden="binary",
            log_fn=log,
            log_every=m.rbm_log_every,
        )
        params = unroll(jax.device_get(state["params"]), stack)
        return {"step": state["step"], "params": params, "opt": self.tx.init(params)}

    def finalize(self, state: dict, batches: Any) -> dict[str, np.ndarray]:
        """Fits one code histogram per bit depth on ``config.model.finalize_batches``
        training batches; returns the arrays :meth:`make_codec` needs."""
        return latent_codec.fit_model_tables(
            self.encode_latent, state["params"], batches, self.config.model, LATENT_RANGE
        )

    def make_codec(self, state: dict, tables: dict[str, np.ndarray]) -> latent_codec.LatentCodec:
        """The ``.jxc`` codec of the trained model; qualities are code bit depths."""
        params = state["params"]
        return latent_codec.LatentCodec.from_tables(
            MODEL_NAME,
            encode_fn=lambda x: self.encode_latent(params, x),
            decode_fn=lambda z: self.decode_latent(params, z),
            tables=tables,
            image_shape=tuple(self.config.model.image_shape),
            description=(
                f"deep autoencoder {'-'.join(str(s) for s in self.config.model.layer_sizes)}, "
                "sigmoid code, uniform quantisation + per-dimension histograms"
            ),
        )
