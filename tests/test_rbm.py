"""Tests of jaxcodec.models.rbm against NumPy references and on real MNIST digits."""

import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcodec
from jaxcodec.models import rbm

SAMPLE = Path(jaxcodec.__file__).parent / "samples" / "mnist_sample.npz"


@pytest.fixture(scope="module")
def digits():
    """Real MNIST digits as ``(N, 784)`` float32 in [0, 1] (train, test)."""
    with np.load(SAMPLE) as d:
        train = d["x_train"][:2000].reshape(-1, 784).astype(np.float32) / 255.0
        test = d["x_test"][:500].reshape(-1, 784).astype(np.float32) / 255.0
    return train, test


def _random_params(seed, v, h, scale=0.5):
    r = np.random.default_rng(seed)
    return {
        "W": jnp.asarray(scale * r.standard_normal((v, h)), jnp.float32),
        "b_vis": jnp.asarray(r.standard_normal(v), jnp.float32),
        "b_hid": jnp.asarray(r.standard_normal(h), jnp.float32),
    }


def test_free_energy_binary_matches_enumeration():
    """F(v) = -log Σ_h exp(-E(v, h)), summed over all 2^H hidden states by brute force."""
    params = _random_params(0, 6, 4)
    v = np.random.default_rng(1).random((5, 6)).astype(np.float32)
    W, b, c = (np.asarray(params[k], np.float64) for k in ("W", "b_vis", "b_hid"))
    states = np.array(list(itertools.product([0, 1], repeat=4)), np.float64)  # (16, 4)
    energy = -(v @ b)[:, None] - (states @ c)[None, :] - np.einsum("ni,ij,sj->ns", v, W, states)
    expected = -np.log(np.exp(-energy).sum(axis=1))
    np.testing.assert_allclose(rbm.free_energy(params, jnp.asarray(v)), expected, rtol=1e-5, atol=1e-5)


def test_free_energy_linear_matches_gaussian_integral():
    """Linear units: F(v) = -v·b - ½‖c + vW‖² (the Gaussian integral over h, -H/2·log 2π dropped)."""
    params = _random_params(2, 7, 3)
    v = np.random.default_rng(3).random((4, 7))
    W, b, c = (np.asarray(params[k], np.float64) for k in ("W", "b_vis", "b_hid"))
    # Numerical integral over a grid of h for one example as an independent check of the formula.
    grid = np.linspace(-12, 12, 401)
    dh = grid[1] - grid[0]
    x = c + v[0] @ W
    integral = np.prod([np.sum(np.exp(-(grid**2) / 2 + grid * xj)) * dh for xj in x])
    f_numeric = -v[0] @ b - np.log(integral) + 3 / 2 * np.log(2 * np.pi)
    f = np.asarray(rbm.free_energy(params, jnp.asarray(v, jnp.float32), hidden="linear"))
    np.testing.assert_allclose(f[0], f_numeric, rtol=1e-4)
    np.testing.assert_allclose(f, -v @ b - 0.5 * ((c + v @ W) ** 2).sum(1), rtol=1e-5)


@pytest.mark.parametrize("hidden", ["binary", "linear"])
def test_cd1_step_matches_numpy(hidden):
    """One CD-1 update (momentum, weight cost) equals a NumPy CD-1 with the same sampled h0."""
    params = _random_params(4, 12, 5, scale=0.3)
    velocity = jax.tree.map(lambda p: 0.01 * jnp.ones_like(p), params)
    v0 = np.random.default_rng(5).random((8, 12)).astype(np.float32)
    key = jax.random.key(6)
    lr, mom, wc = 0.1, 0.5, 2e-4
    new, new_vel, metrics = rbm.cd1_step(
        params, velocity, jnp.asarray(v0), key, learning_rate=lr, momentum=mom, weight_cost=wc, hidden=hidden
    )

    W, b, c = (np.asarray(params[k], np.float64) for k in ("W", "b_vis", "b_hid"))
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    x0 = v0 @ W + c
    p0 = sig(x0) if hidden == "binary" else x0
    if hidden == "binary":  # the documented draw: h0 = [uniform(rng) < p0]
        h0 = (np.asarray(jax.random.uniform(key, p0.shape)) < p0).astype(np.float64)
    else:  # h0 = p0 + normal(rng)
        h0 = p0 + np.asarray(jax.random.normal(key, p0.shape))
    v1 = sig(h0 @ W.T + b)
    x1 = v1 @ W + c
    p1 = sig(x1) if hidden == "binary" else x1
    n = len(v0)
    grad_w = (v0.T @ p0 - v1.T @ p1) / n - wc * W
    expected_vel = {
        "W": mom * 0.01 + lr * grad_w,
        "b_vis": mom * 0.01 + lr * (v0 - v1).mean(0),
        "b_hid": mom * 0.01 + lr * (p0 - p1).mean(0),
    }
    for k in ("W", "b_vis", "b_hid"):
        np.testing.assert_allclose(new_vel[k], expected_vel[k], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(new[k], np.asarray(params[k]) + expected_vel[k], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(metrics["recon_mse"], ((v0 - v1) ** 2).mean(), rtol=1e-4)


def test_cd1_learns_digits(digits):
    """CD-1 on real digits opens a free-energy gap between digits and pixel-shuffled digits
    (same intensities, no strokes), on held-out digits too, and lowers reconstruction error."""
    train, test = digits
    perm = np.random.default_rng(0).permutation(784)
    shuffled = test[:, perm]
    params = rbm.rbm_init(jax.random.key(0), 784, 64)
    velocity = jax.tree.map(jnp.zeros_like, params)
    step = jax.jit(lambda p, m, v, k: rbm.cd1_step(p, m, v, k, learning_rate=0.1, momentum=0.5))

    def gap(p):
        return float(jnp.mean(rbm.free_energy(p, shuffled)) - jnp.mean(rbm.free_energy(p, test)))

    def recon(p):
        return float(jnp.mean((rbm.visible_mean(p, rbm.hidden_mean(p, test)) - test) ** 2))

    gap0, recon0 = gap(params), recon(params)
    for i in range(60):
        batch = train[i * 30 : i * 30 + 30]
        params, velocity, _ = step(params, velocity, jnp.asarray(batch), jax.random.key(i))
    assert abs(gap0) < 20
    assert gap(params) > 40, (gap0, gap(params))
    assert recon(params) < 0.3 * recon0, (recon0, recon(params))


def test_pretrain_stack_shapes_and_greedy_inputs(digits):
    """Stack shapes; the second RBM is trained on the first RBM's hidden probabilities."""
    train, _ = digits
    batches = [train[i : i + 50] for i in range(0, 1000, 50)]
    stack = rbm.pretrain_stack(
        [784, 32, 16, 8], iter(batches * 3), rng=jax.random.key(0), steps_per_layer=20, top_hidden="linear"
    )
    assert [tuple(w.shape) for w, _, _ in stack] == [(784, 32), (32, 16), (16, 8)]
    assert [b.shape[0] for _, b, _ in stack] == [784, 32, 16]
    # Deterministic given rng and batches.
    again = rbm.pretrain_stack(
        [784, 32, 16, 8], iter(batches * 3), rng=jax.random.key(0), steps_per_layer=20, top_hidden="linear"
    )
    for a, b in zip(stack, again):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    # RBM 2's visible bias moved towards the mean of layer-1 probabilities (its data),
    # which lie in (0, 1); trained on raw pixels it could not match them.
    w1, _, c1 = stack[0]
    h1 = np.asarray(jax.nn.sigmoid(train[:1000] @ w1 + c1))
    v1_mean = np.asarray(jax.nn.sigmoid(stack[1][1]))
    assert np.corrcoef(v1_mean, h1.mean(0))[0, 1] > 0.8


def test_bad_hidden_type_is_rejected():
    params = _random_params(0, 3, 2)
    with pytest.raises(ValueError, match="hidden"):
        rbm.free_energy(params, jnp.zeros((1, 3)), hidden="gaussian")
