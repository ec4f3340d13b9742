"""F(4×4, 3×3) Winograd convolution against a float64 NumPy correlation, and how the
layers choose it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxcodec import ops
from jaxcodec.ops import conv, winograd
from jaxcodec.train.tasks import factorized as factorized_task


def numpy_conv3x3(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """SAME stride-1 correlation, float64: ``y[i, j] = Σ_{a,b} x[i+a−1, j+b−1] · w[a, b]``."""
    n, h, wd, _ = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = np.zeros((n, h, wd, w.shape[-1]))
    for a in range(3):
        for b in range(3):
            y += np.einsum("nhwc,cd->nhwd", xp[:, a : a + h, b : b + wd], w[a, b])
    return y


def _normal(seed, shape, scale=1.0):
    return np.random.default_rng(seed).normal(size=shape) * scale


@pytest.mark.parametrize("shape,cout", [((2, 13, 22, 8), 6), ((1, 4, 4, 3), 5), ((1, 1, 1, 2), 2), ((1, 9, 3, 16), 4)])
def test_conv3x3_matches_float64_correlation(shape, cout):
    """Tiles that overhang the image on both sides, a single pixel, exact multiples of 4."""
    x = _normal(0, shape)
    w = _normal(1, (3, 3, shape[-1], cout))
    reference = numpy_conv3x3(x, w)
    out = np.asarray(winograd.conv3x3(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32)), np.float64)
    assert out.shape == reference.shape
    # F(4×4, 3×3)'s transforms (entries up to 8, 1/24) cost a few float32 ulps of the largest output.
    assert np.max(np.abs(out - reference)) <= 2e-5 * np.max(np.abs(reference))


@pytest.mark.parametrize("shape", [(2, 10, 7, 5), (1, 8, 8, 3), (1, 1, 1, 2), (3, 5, 13, 4)])
def test_conv3x3_gradients_match_xla_convolution(shape):
    """The tile-domain backward pass: image sides that are multiples of the tile (the
    last tile's overlap lands inside the image), overhanging tiles, a single pixel."""
    x = jnp.asarray(_normal(2, shape), jnp.float32)
    w = jnp.asarray(_normal(3, (3, 3, shape[-1], 4)), jnp.float32)

    def loss(conv):
        return lambda x, w: jnp.sum(jnp.sin(conv(x, w)))

    def xla(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    got = jax.grad(loss(winograd.conv3x3), (0, 1))(x, w)
    want = jax.grad(loss(xla), (0, 1))(x, w)
    for g, r in zip(got, want):
        assert np.max(np.abs(g - r)) <= 1e-4 * np.max(np.abs(r))


def test_conv3x3_rejects_other_kernels():
    with pytest.raises(ValueError, match="3x3 kernel"):
        winograd.conv3x3(jnp.zeros((1, 8, 8, 2)), jnp.zeros((5, 5, 2, 2)))


def test_winograd_pays_only_for_wide_large_3x3_layers_on_cpu():
    big = (1, 128, 192, 128)
    assert conv.winograd_pays(big, (3, 3, 128, 512), backend="cpu")
    assert not conv.winograd_pays(big, (3, 3, 128, 512), backend="gpu")  # the GPU's own convolutions win
    assert not conv.winograd_pays(big, (5, 5, 128, 512), backend="cpu")
    assert not conv.winograd_pays(big, (3, 3, 128, 12), backend="cpu")  # the last, 3-colour layer
    assert not conv.winograd_pays((8, 16, 16, 128), (3, 3, 128, 512), backend="cpu")  # 2,048 px x 128: even
    assert conv.winograd_pays((1, 32, 48, 192), (3, 3, 192, 512), backend="cpu")  # 1,536 px x 192


def test_stride1_conv_dispatch():
    small = jnp.asarray(_normal(4, (1, 6, 6, 8)), jnp.float32)
    w = jnp.asarray(_normal(5, (3, 3, 8, 8)), jnp.float32)

    def stride1_conv(x, w, algorithm):
        with ops.conv_impl(algorithm):
            return conv.stride1_conv(x, w)

    direct = stride1_conv(small, w, "direct")
    forced = stride1_conv(small, w, "winograd")
    assert not np.array_equal(direct, forced)  # two computations ...
    assert np.max(np.abs(direct - forced)) <= 2e-5 * np.max(np.abs(direct))  # ... of one convolution
    np.testing.assert_array_equal(stride1_conv(small, w, "auto"), direct)  # too small to gain
    np.testing.assert_array_equal(conv.stride1_conv(small, w), direct)  # "auto" outside any block
    big = jnp.asarray(_normal(6, (1, 64, 96, 64)), jnp.float32)  # 6,144 px x 64: gains
    wb = jnp.asarray(_normal(7, (3, 3, 64, 64), 0.05), jnp.float32)
    if jax.default_backend() == "cpu":
        np.testing.assert_array_equal(stride1_conv(big, wb, "auto"), stride1_conv(big, wb, "winograd"))
    with pytest.raises(ValueError, match="convolution algorithm must be one of auto, direct, winograd, got 'fft'"):
        stride1_conv(small, w, "fft")


def test_conv_impl_is_read_at_trace_time_and_restored():
    x = jnp.asarray(_normal(4, (1, 6, 6, 8)), jnp.float32)
    w = jnp.asarray(_normal(5, (3, 3, 8, 8)), jnp.float32)
    assert conv.current_algorithm() == "auto"
    with ops.conv_impl("winograd"):
        assert conv.current_algorithm() == "winograd"
        with ops.conv_impl("direct"):
            assert conv.current_algorithm() == "direct"
        assert conv.current_algorithm() == "winograd"
        traced_winograd = jax.jit(conv.stride1_conv)
        forced = traced_winograd(x, w)
    assert conv.current_algorithm() == "auto"
    # A jitted function keeps the algorithm it was traced with ...
    np.testing.assert_array_equal(traced_winograd(x, w), forced)

    def direct(x, w):  # ... so a program that must run "direct" enters the block in its body.
        with ops.conv_impl("direct"):
            return conv.stride1_conv(x, w)

    with ops.conv_impl("winograd"):
        np.testing.assert_array_equal(jax.jit(direct)(x, w), conv.conv2d(x, w))


def test_factorized_synthesis_conv_impl():
    config = factorized_task.default_config(quality=1)
    config.model.features = 64
    config.model.latent_channels = 16
    task = factorized_task.FactorizedTask(config)
    params = task.model.init(jax.random.key(0, impl="rbg"), jnp.zeros((1, 64, 64, 3)))
    y = jnp.asarray(_normal(8, (1, 4, 4, 16), 3.0), jnp.float32)
    out = {}
    for algorithm in ("direct", "winograd"):  # same parameters for both
        with ops.conv_impl(algorithm):
            out[algorithm] = np.asarray(task.synthesis(params, y))
    assert out["direct"].shape == (1, 64, 64, 3)
    assert not np.array_equal(out["direct"], out["winograd"])
    np.testing.assert_allclose(out["winograd"], out["direct"], atol=1e-4 * np.max(np.abs(out["direct"])))
    # Refinement's synthesis is the direct one, whatever the caller's setting.
    with ops.conv_impl("winograd"):
        np.testing.assert_array_equal(task.direct_synthesis(params, y), out["direct"])
        np.testing.assert_array_equal(jax.jit(task.direct_synthesis)(params, y), out["direct"])


def test_configs_with_the_old_conv_algorithm_key_still_build():
    """Workdirs written before the algorithm moved out of the model carry
    ``model.conv_algorithm``; they load, and the key changes nothing."""
    config = factorized_task.default_config(quality=1)
    assert "conv_algorithm" not in config.model
    config.model.conv_algorithm = "winograd"
    assert factorized_task.FactorizedTask(config).model == factorized_task.FactorizedTask(factorized_task.default_config(1)).model
