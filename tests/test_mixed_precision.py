"""Mixed precision: ``jaxcodec.ops.conv_dtype("bfloat16")`` runs the transforms'
convolutions in bfloat16 while parameters, gradients and everything else stay float32;
checked against float64 NumPy convolutions of the bfloat16-rounded operands."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcodec import data
from jaxcodec.errors import ConfigError
from jaxcodec.ops import conv, conv_dtype
from jaxcodec.train.tasks import factorized as factorized_task
from jaxcodec.train.tasks import hyperprior as hyperprior_task


def _bf16(a: np.ndarray) -> np.ndarray:
    """``a`` rounded to bfloat16 and back, as float64."""
    return np.asarray(jnp.asarray(a, jnp.float32).astype(jnp.bfloat16).astype(jnp.float32), np.float64)


def np_conv(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """Float64 correlation, NHWC × HWIO, padding k//2 before and after, by explicit sums."""
    k = w.shape[0]
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    ho, wo = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    out = np.zeros((x.shape[0], ho, wo, w.shape[3]))
    for i in range(k):
        for j in range(k):
            patch = xp[:, i : i + stride * ho : stride, j : j + stride * wo : stride]
            out += np.einsum("nhwc,co->nhwo", patch, w[i, j])
    return out


def np_transposed(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Float64 stride-2 transposed convolution, ``out[o] = Σ_i x[i]·w[o − 2i + k//2]`` per axis."""
    k = w.shape[0]
    n, h, wd, _ = x.shape
    out = np.zeros((n, 2 * h + k, 2 * wd + k, w.shape[3]))
    for i in range(k):
        for j in range(k):
            contrib = np.einsum("nhwc,co->nhwo", x, w[i, j])
            out[:, i : i + 2 * h : 2, j : j + 2 * wd : 2] += contrib
    p = k // 2
    return out[:, p : p + 2 * h, p : p + 2 * wd]


OPS = {
    "down_conv2d": (conv.down_conv2d, lambda x, w: np_conv(x, w, 2), 5),
    "stride1_conv": (conv.stride1_conv, lambda x, w: np_conv(x, w, 1), 3),
    "transposed_conv2d": (conv.transposed_conv2d, np_transposed, 5),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_bfloat16_convolutions_compute_on_rounded_operands_and_return_float32(name):
    op, reference, k = OPS[name]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 12, 10, 64)).astype(np.float32)
    w = (rng.normal(size=(k, k, 64, 64)) / (8 * k)).astype(np.float32)
    # a fresh function for each jit: jax.jit caches traces by function, and the dtype is
    # read when tracing
    with conv_dtype("bfloat16"):
        out = jax.jit(lambda a, b: op(a, b))(x, w)
    plain = jax.jit(lambda a, b: op(a, b))(x, w)  # outside the block: float32 again
    assert out.dtype == plain.dtype == jnp.float32
    want = reference(_bf16(x), _bf16(w))
    scale = np.abs(want).max()
    # the products of bfloat16 operands are exact in float32; the result is rounded once
    # to bfloat16 (relative 2^-8) after float32 accumulation
    assert np.abs(np.asarray(out, np.float64) - want).max() <= 2**-7 * scale
    exact = reference(x.astype(np.float64), w.astype(np.float64))
    assert np.abs(np.asarray(plain, np.float64) - exact).max() <= 1e-4 * scale
    assert np.abs(np.asarray(out) - np.asarray(plain)).max() > 1e-4 * scale  # it did round

    def loss(w_, x_):
        return jnp.sum(op(x_, w_) ** 2)

    with conv_dtype("bfloat16"):
        grad = jax.jit(jax.grad(loss))(w, x)
    exact_grad = jax.jit(jax.grad(lambda w_, x_: loss(w_, x_)))(w, x)
    assert grad.dtype == jnp.float32
    rel = np.linalg.norm(np.asarray(grad - exact_grad)) / np.linalg.norm(np.asarray(exact_grad))
    assert rel < 3e-2, rel


def test_conv_dtype_is_restored_and_checked():
    assert conv.current_dtype() == "float32"
    with conv_dtype("bfloat16"):
        assert conv.current_dtype() == "bfloat16"
    assert conv.current_dtype() == "float32"
    with pytest.raises(ValueError, match="bfloat16"):
        with conv_dtype("float16"):
            pass


def _photo_batch(n=2, size=64):
    photo = data.open_dataset("sample:photos", "test").native(1).astype(np.float32) / 255.0
    return jnp.asarray(np.stack([photo[i * size : (i + 1) * size, :size] for i in range(n)]))


@pytest.mark.parametrize("family", ["factorized", "hyperprior"])
def test_a_bfloat16_train_step_keeps_float32_parameters_and_nearly_the_float32_loss(family):
    module = factorized_task if family == "factorized" else hyperprior_task
    losses, states = {}, {}
    for dtype in ("float32", "bfloat16"):
        config = module.default_config()
        config.model.features, config.model.latent_channels = 16, 24
        config.model.compute_dtype = dtype
        task = factorized_task.FactorizedTask(config) if family == "factorized" else hyperprior_task.MeanScaleTask(config)
        batch = _photo_batch()
        state = task.init_state(jax.random.key(0), batch)
        step = jax.jit(task.train_step)
        for i in range(3):
            state, metrics = step(state, batch, jax.random.key(i))
        losses[dtype], states[dtype] = float(metrics["loss"]), state
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(states["bfloat16"]["params"]))
    assert losses["bfloat16"] != losses["float32"]
    assert abs(losses["bfloat16"] - losses["float32"]) <= 0.03 * losses["float32"], losses


def test_an_unknown_compute_dtype_is_a_config_error():
    config = factorized_task.default_config()
    config.model.compute_dtype = "float16"
    with pytest.raises(ConfigError, match="compute_dtype"):
        factorized_task.FactorizedTask(config)
    del config.model["compute_dtype"]  # configs written before the option train in float32
    assert factorized_task.FactorizedTask(config).compute_dtype == "float32"
