"""The interface between a model family and the training engine.

A :class:`Task` bundles the pure functions the engine needs. The engine
(:mod:`jaxcodec.train.engine`) jits ``train_step`` once, donating the state, shards the
batch over a ``data`` mesh axis and replicates the state, folds the step number into
the rng, checkpoints the state with Orbax and logs the metrics.

The state is a plain pytree (a dict such as ``{"step", "params", "opt"}``): anything
Orbax can save. Metrics are dicts of scalar ``jax.Array`` values (batch means).

Optional hooks, looked up with ``getattr``:

* ``pretrain(state, batches, config) -> state``: a host loop run once before the main
  loop (e.g. greedy RBM pre-training, Hinton & Salakhutdinov 2006).
* ``warm_start(params) -> params``: adapts the parameters copied from another run
  (``config.init_from``), e.g. rescales the latent of a rate-distortion model.
* ``initial_params(params) -> params``: parameters a fresh run starts from instead of its
  random initialisation where the task's config names a source (e.g. the transforms of
  another family's trained model); called once, never on resume.
* ``host_transform(state, batch, rng) -> batch``: work that must run on the host
  between the data and the jitted step (e.g. a real JPEG round trip).
* ``finalize(state, batches) -> dict[str, np.ndarray]``: arrays the codec needs besides
  the parameters (e.g. entropy-model tables fitted on training latents), saved next to
  the checkpoint as ``codec_tables.npz``.
* ``make_codec(state, tables) -> jaxcodec.codecs.protocol.Codec``: the codec built from a
  trained state, used by ``eval.py`` and ``python -m jaxcodec compress``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax

State = Any
Metrics = dict[str, jax.Array]


@runtime_checkable
class Task(Protocol):
    """A trainable model family described by pure, jittable functions."""

    def init_state(self, rng: jax.Array, batch: jax.Array) -> State:
        """Returns the initial train state for a batch of the training data's shape."""
        ...

    def train_step(self, state: State, batch: jax.Array, rng: jax.Array) -> tuple[State, Metrics]:
        """One optimisation step; pure, so the engine can jit and donate it."""
        ...

    def eval_step(self, state: State, batch: jax.Array) -> Metrics:
        """Evaluation metrics (batch means) of the state on a batch; pure."""
        ...
