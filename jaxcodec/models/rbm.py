"""Restricted Boltzmann machines trained with one-step contrastive divergence (CD-1).

An RBM with visible units ``v`` and hidden units ``h`` has the energy
(Hinton & Salakhutdinov 2006, Science 313:504, note 8 / Eq. 1)::

    E(v, h) = -v·b_vis - h·b_hid - v W h                      (binary hidden units)
    E(v, h) = -v·b_vis - h·b_hid - v W h + ½‖h‖²              (linear, unit-variance
                                                               Gaussian hidden units)

Visible units are Bernoulli; as in H&S the first RBM reads MNIST pixel intensities in
``[0, 1]`` directly as the probabilities of the visible units, and each higher RBM reads
the hidden *probabilities* of the RBM below.

CD-1 (Hinton 2002; the update of H&S's ``rbm.m`` / ``rbmhidlinear.m``):

1. positive phase: ``p0 = σ(v0 W + b_hid)`` (linear units: ``p0 = v0 W + b_hid``);
2. sample ``h0``: binary ``h0 = [u < p0]`` with ``u = uniform(rng)``; linear
   ``h0 = p0 + n`` with ``n = normal(rng)``;
3. reconstruction ``v1 = σ(h0 Wᵀ + b_vis)`` (probabilities, not sampled, as in H&S);
4. negative phase ``p1 = σ(v1 W + b_hid)`` (linear: ``p1 = v1 W + b_hid``);
5. ``ΔW ∝ (v0ᵀ p0 − v1ᵀ p1) / B − λ W``, ``Δb_vis ∝ mean(v0 − v1)``,
   ``Δb_hid ∝ mean(p0 − p1)``, applied with momentum (velocity ``m·vel + lr·Δ``).

H&S's hyper-parameters (their ``rbm.m``): learning rate 0.1 (0.001 for the linear top
layer), weight cost λ = 0.0002, momentum 0.5 for the first 5 epochs then 0.9, mini-batches
of 100, initial weights ``0.1·N(0, 1)``, zero biases.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

RBMParams = dict[str, jax.Array]  # {"W": (V, H), "b_vis": (V,), "b_hid": (H,)}

HIDDEN_TYPES = ("binary", "linear")


def _check_hidden(hidden: str) -> None:
    if hidden not in HIDDEN_TYPES:
        raise ValueError(f"hidden must be one of {HIDDEN_TYPES}, got {hidden!r}")


def rbm_init(rng: jax.Array, n_visible: int, n_hidden: int, scale: float = 0.1) -> RBMParams:
    """Initial RBM parameters: ``W ~ scale·N(0, 1)``, zero biases (H&S ``rbm.m``)."""
    return {
        "W": scale * jax.random.normal(rng, (n_visible, n_hidden), jnp.float32),
        "b_vis": jnp.zeros((n_visible,), jnp.float32),
        "b_hid": jnp.zeros((n_hidden,), jnp.float32),
    }


def hidden_mean(params: RBMParams, v: jax.Array, hidden: str = "binary") -> jax.Array:
    """``E[h | v]``: ``σ(v W + b_hid)`` for binary units, ``v W + b_hid`` for linear ones."""
    _check_hidden(hidden)
    x = v @ params["W"] + params["b_hid"]
    return jax.nn.sigmoid(x) if hidden == "binary" else x


def visible_mean(params: RBMParams, h: jax.Array) -> jax.Array:
    """``E[v | h] = σ(h Wᵀ + b_vis)`` (Bernoulli visible units)."""
    return jax.nn.sigmoid(h @ params["W"].T + params["b_vis"])


def free_energy(params: RBMParams, v: jax.Array, hidden: str = "binary") -> jax.Array:
    """Free energy ``F(v) = -log Σ_h exp(-E(v, h))`` per example (up to a constant).

    Binary hidden units: ``F(v) = -v·b_vis - Σ_j softplus(b_hid_j + (v W)_j)``.
    Linear unit-variance Gaussian hidden units (integrating ``h`` out):
    ``F(v) = -v·b_vis - ½‖b_hid + v W‖²`` (dropping ``-H/2·log 2π``).
    Lower free energy means higher probability under the model, so training should
    lower ``F`` on data relative to inputs that are not digits.
    """
    _check_hidden(hidden)
    x = v @ params["W"] + params["b_hid"]
    vis_term = v @ params["b_vis"]
    if hidden == "binary":
        return -vis_term - jnp.sum(jax.nn.softplus(x), axis=-1)
    return -vis_term - 0.5 * jnp.sum(x * x, axis=-1)


def sample_hidden(rng: jax.Array, p: jax.Array, hidden: str = "binary") -> jax.Array:
    """Samples ``h ~ p(h | v)`` given ``p = E[h | v]``.

    Binary: ``[uniform(rng, p.shape) < p]``; linear: ``p + normal(rng, p.shape)``. The draw
    is exactly this, so a test can replay it from the same ``rng``.
    """
    _check_hidden(hidden)
    if hidden == "binary":
        return (jax.random.uniform(rng, p.shape, p.dtype) < p).astype(p.dtype)
    return p + jax.random.normal(rng, p.shape, p.dtype)


def cd1_gradient(
    params: RBMParams, v0: jax.Array, rng: jax.Array, hidden: str = "binary"
) -> tuple[RBMParams, jax.Array]:
    """The CD-1 estimate of the log-likelihood gradient on a batch (no weight cost).

    Returns ``(grads, recon_mse)`` where ``grads`` are ascent directions
    ``<v h>_data - <v h>_recon`` averaged over the batch and ``recon_mse`` is the mean
    squared error of the one-step reconstruction ``v1`` (a training monitor).
    """
    p0 = hidden_mean(params, v0, hidden)
    h0 = sample_hidden(rng, p0, hidden)
    v1 = visible_mean(params, h0)
    p1 = hidden_mean(params, v1, hidden)
    n = v0.shape[0]
    grads = {
        "W": (v0.T @ p0 - v1.T @ p1) / n,
        "b_vis": jnp.mean(v0 - v1, axis=0),
        "b_hid": jnp.mean(p0 - p1, axis=0),
    }
    return grads, jnp.mean((v0 - v1) ** 2)


def cd1_step(
    params: RBMParams,
    velocity: RBMParams,
    v0: jax.Array,
    rng: jax.Array,
    *,
    learning_rate: float | jax.Array,
    momentum: float | jax.Array,
    weight_cost: float = 2e-4,
    hidden: str = "binary",
) -> tuple[RBMParams, RBMParams, dict[str, jax.Array]]:
    """One CD-1 update with momentum and weight cost, as H&S's ``rbm.m``.

    ``vel_W ← momentum·vel_W + lr·(grad_W − weight_cost·W)``; the biases get no weight
    cost. ``params ← params + vel``. Pure; jit it with ``hidden`` static.
    """
    grads, recon = cd1_gradient(params, v0, rng, hidden)
    grads = dict(grads, W=grads["W"] - weight_cost * params["W"])
    velocity = jax.tree.map(lambda m, g: momentum * m + learning_rate * g, velocity, grads)
    params = jax.tree.map(lambda p, m: p + m, params, velocity)
    return params, velocity, {"recon_mse": recon}


def _flat(batch: np.ndarray | jax.Array) -> jax.Array:
    batch = jnp.asarray(batch, jnp.float32)
    return batch.reshape(batch.shape[0], -1)


def pretrain_stack(
    layer_sizes: Sequence[int],
    batches: Iterable[np.ndarray],
    *,
    rng: jax.Array,
    steps_per_layer: int,
    learning_rate: float = 0.1,
    top_learning_rate: float | None = None,
    weight_cost: float = 2e-4,
    initial_momentum: float = 0.5,
    final_momentum: float = 0.9,
    momentum_switch_step: int | None = None,
    top_hidden: str = "binary",
    log_fn: Callable[[int, int, float], None] | None = None,
    log_every: int = 100,
) -> list[tuple[jax.Array, jax.Array, jax.Array]]:
    """Greedy layer-wise pre-training of a stack of RBMs (H&S 2006, Fig. 1 "Pretraining").

    ``layer_sizes = [784, 1000, 500, 196]`` trains RBMs 784-1000, 1000-500 and 500-196 in
    turn, each for ``steps_per_layer`` mini-batches drawn from ``batches`` (any shape
    ``(B, ...)``, flattened; values in ``[0, 1]``). Each RBM after the first is trained on
    the hidden probabilities the trained RBMs below produce for fresh batches. The top RBM
    uses ``top_hidden`` units (H&S: ``"linear"``) and ``top_learning_rate`` (H&S: 0.001 for
    linear units; defaults to ``learning_rate``). Momentum is ``initial_momentum`` for the
    first ``momentum_switch_step`` steps (default: ``steps_per_layer // 10``, H&S: 5 of 50
    epochs) and ``final_momentum`` after. ``log_fn(layer, step, recon_mse)`` is called
every ``log_every`` steps (reading the metric back from the device only then).

    Returns ``[(W, b_vis, b_hid), ...]``, one triple per RBM, bottom first.
    """
    if len(layer_sizes) < 2:
        raise ValueError("layer_sizes needs at least a visible and a hidden size")
    _check_hidden(top_hidden)
    iterator: Iterator[np.ndarray] = iter(batches)
    switch = steps_per_layer // 10 if momentum_switch_step is None else momentum_switch_step
    trained: list[RBMParams] = []
    n_layers = len(layer_sizes) - 1

    @jax.jit
    def propagate(stack: list[RBMParams], v: jax.Array) -> jax.Array:
        for p in stack:
            v = hidden_mean(p, v, "binary")
        return v

    for layer in range(n_layers):
        is_top = layer == n_layers - 1
        hidden = top_hidden if is_top else "binary"
        lr = top_learning_rate if (is_top and top_learning_rate is not None) else learning_rate
        rng, init_rng = jax.random.split(rng)
        params = rbm_init(init_rng, layer_sizes[layer], layer_sizes[layer + 1])
        velocity = jax.tree.map(jnp.zeros_like, params)
        step_fn = jax.jit(
            lambda p, vel, v, r, m, _lr=lr, _h=hidden: cd1_step(
                p, vel, v, r, learning_rate=_lr, momentum=m, weight_cost=weight_cost, hidden=_h
            )
        )
        for step in range(steps_per_layer):
            try:
                v = _flat(next(iterator))
            except StopIteration:
                raise ValueError(
                    f"batches ran out after {layer * steps_per_layer + step} of "
                    f"{n_layers * steps_per_layer} pre-training steps"
                ) from None
            if v.shape[1] != layer_sizes[0]:
                raise ValueError(f"batches have {v.shape[1]} values per example, expected {layer_sizes[0]}")
            if trained:
                v = propagate(trained, v)
            momentum = initial_momentum if step < switch else final_momentum
            params, velocity, metrics = step_fn(
                params, velocity, v, jax.random.fold_in(rng, step), jnp.float32(momentum)
            )
            if log_fn is not None and log_every and (step + 1) % log_every == 0:
                log_fn(layer, step, float(metrics["recon_mse"]))
        trained.append(params)
    return [(p["W"], p["b_vis"], p["b_hid"]) for p in trained]
