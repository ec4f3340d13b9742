"""A small dense autoencoder Task for the engine tests, with every optional hook.

784 → ``model.latent`` → 784 with a linear output, trained with Adam on the MSE.
Options under ``config.model`` exercise the engine:

* ``nan_at`` (int, 0 = off): the loss is NaN from that (1-based) step on;
* ``quantize_levels`` (int, 0 = off): ``host_transform`` rounds inputs to that many
  grey levels, and the metric ``host_error`` is the distance to that grid (0 when
  the transform ran);
* ``warm_shift`` (float, 0 = off): ``warm_start`` adds it to the decoder bias copied by
  ``config.init_from``;
* ``optimizer``: ``"adam"`` (default) or ``"sgd"``, whose state has another structure;
* ``pretrain``: counts its calls in ``state["pretrain_calls"]``;
* ``finalize``: returns the decoder bias and the number of batches it read.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax


class DenseAE(nn.Module):
    latent: int

    @nn.compact
    def __call__(self, x):
        shape = x.shape
        init = nn.initializers.variance_scaling(1.0, "fan_in", "uniform")  # compiles faster than normal
        z = nn.tanh(nn.Dense(self.latent, kernel_init=init, name="enc")(x.reshape(shape[0], -1)))
        return nn.Dense(int(np.prod(shape[1:])), kernel_init=init, name="dec")(z).reshape(shape)


class EngineTestTask:
    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config
        self.model = DenseAE(config.model.get("latent", 16))
        self.tx = (optax.sgd if config.model.get("optimizer", "adam") == "sgd" else optax.adam)(config.learning_rate)
        self.nan_at = int(config.model.get("nan_at", 0))
        self.levels = int(config.model.get("quantize_levels", 0))

    def init_state(self, rng, batch):
        params = self.model.init(rng, batch)
        return {
            "step": jnp.zeros((), jnp.int32),
            "params": params,
            "opt": self.tx.init(params),
            "pretrain_calls": jnp.zeros((), jnp.int32),
        }

    def _metrics(self, params, batch):
        y = self.model.apply(params, batch)
        mse = jnp.mean((y - batch) ** 2)
        out = {"mse": mse}
        if self.levels:
            grid = jnp.round(batch * (self.levels - 1)) / (self.levels - 1)
            out["host_error"] = jnp.max(jnp.abs(batch - grid))
        return mse, out

    def train_step(self, state, batch, rng):
        (loss, metrics), grads = jax.value_and_grad(self._metrics, has_aux=True)(state["params"], batch)
        updates, opt = self.tx.update(grads, state["opt"], state["params"])
        step = state["step"] + 1
        if self.nan_at:
            loss = jnp.where(step >= self.nan_at, jnp.nan, loss)
        new = dict(state, step=step, params=optax.apply_updates(state["params"], updates), opt=opt)
        return new, {"loss": loss, **metrics}

    def eval_step(self, state, batch):
        loss, metrics = self._metrics(state["params"], batch)
        return {"loss": loss, **metrics}

    def host_transform(self, state, batch, rng):
        if not self.levels:
            return batch
        return (np.round(batch * (self.levels - 1)) / (self.levels - 1)).astype(np.float32)

    def warm_start(self, params):
        shift = float(self.config.model.get("warm_shift", 0.0))
        dec = params["params"]["dec"]
        return {"params": {**params["params"], "dec": {**dec, "bias": dec["bias"] + shift}}}

    def pretrain(self, state, batches, config):
        next(batches)
        return dict(state, pretrain_calls=state["pretrain_calls"] + 1)

    def finalize(self, state, batches):
        seen = sum(1 for _, _ in zip(range(2), batches))
        return {"decoder_bias": np.asarray(state["params"]["params"]["dec"]["bias"]), "batches": np.int64(seen)}


def config(**overrides) -> ml_collections.ConfigDict:
    """A tiny MNIST run: 8-image batches of the packaged MNIST sample."""
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict({"name": "engine_test", "latent": 16, "nan_at": 0, "quantize_levels": 0,
                                   "warm_shift": 0.0})
    c.data = ml_collections.ConfigDict(
        {"train": "sample:mnist", "train_split": "train", "eval": "sample:mnist", "eval_split": "test",
         "image_size": None, "crop": None}
    )
    c.batch_size = 8
    c.num_steps = 20
    c.learning_rate = 3e-3
    c.seed = 0
    c.log_every = 5
    c.eval_every = 10
    c.eval_batches = 2
    c.checkpoint_every = 10
    c.keep_checkpoints = 2
    for k, v in overrides.items():
        target = c
        *path, last = k.split(".")
        for p in path:
            target = target[p]
        target[last] = v
    return c
