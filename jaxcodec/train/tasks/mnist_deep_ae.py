"""Training of the MNIST deep autoencoder (:mod:`jaxcodec.models.mnist_deep_ae`): RBM
pre-training unrolled into the autoencoder (Hinton & Salakhutdinov, Science 313:504,
2006, Fig. 1), then fine-tuning with Adam; its codec is
:class:`jaxcodec.codecs.latent.LatentCodec` (the parts shared with seed 004:
:mod:`jaxcodec.train.tasks.mnist_latent`).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.models import rbm
from jaxcodec.models.mnist_deep_ae import LATENT_RANGE, MODEL_NAME, DeepAutoencoder
from jaxcodec.train.tasks.mnist_latent import LatentHistogramTask, image_metrics


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


class DeepAETask(LatentHistogramTask):
    """Training task for :class:`DeepAutoencoder` (seed 003); see :mod:`jaxcodec.models.mnist_deep_ae`."""

    name = MODEL_NAME
    latent_range = LATENT_RANGE

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

    def loss_fn(self, params: Any, batch: jax.Array, rng: jax.Array) -> tuple[jax.Array, dict]:
        """Pixel-wise binary cross-entropy (mean over pixels and images)."""
        del rng  # deterministic network
        logits, _ = self.model.apply(params, batch)
        metrics = image_metrics(batch, logits)
        return metrics["bce"], dict(metrics, loss=metrics["bce"])

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

    def codec_description(self) -> str:
        return (
            f"deep autoencoder {'-'.join(str(s) for s in self.config.model.layer_sizes)}, "
            "sigmoid code, uniform quantisation + per-dimension histograms"
        )
