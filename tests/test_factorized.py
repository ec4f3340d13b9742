"""Tests of the Ballé 2017 factorized-prior codec: layers, density, training and real streams.

A small model (N = 12, M = 8) trained for a few dozen steps on crops of real photos
from scikit-image; every number is checked against an independent reference (XLA's
convolution, NumPy loops, the float64 density, the real byte count).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jax import lax

from jaxcodec import layers, ops
from jaxcodec.ops import conv
from jaxcodec.codecs import container
from jaxcodec.entropy import coder as entropy
from jaxcodec.entropy import deep_factorized as factorized_prior
from jaxcodec.errors import BitstreamError, ConfigError, ImageError, JaxcodecError, ModelError
from jaxcodec.codecs import factorized as factorized_codec
from jaxcodec.models import factorized
from jaxcodec.train.tasks import factorized as factorized_task

TRAIN_STEPS = 60


def rng(seed: int) -> jax.Array:
    """An ``rbg`` key: XLA:CPU compiles threefry's unrolled rounds very slowly (seconds per
    initializer shape on the 2-core test machine); the results are just as random."""
    return jax.random.key(seed, impl="rbg")


def small_config(**model):
    config = factorized_task.default_config(quality=3)
    config.model.features = 12  # 4·12 = 48 sub-pixel channels: the custom-VJP conv path
    config.model.latent_channels = 8
    config.model.update(model)
    config.learning_rate = 3e-3  # 1e-2 diverges for a few steps; 3e-3 learns fast and steadily
    return config


def photo_crops(size: int = 64) -> np.ndarray:
    """Six crops of three real photos, float32 in [0, 1]."""
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    crops = [p[y : y + size, x : x + size] for p in photos for y, x in ((60, 100), (160, 200))]
    return np.stack(crops).astype(np.float32) / 255.0


def odd_image() -> np.ndarray:
    """37×53 RGB: neither side a multiple of 16."""
    return skimage.data.chelsea()[90:127, 150:203]


@pytest.fixture(scope="module")
def task():
    return factorized_task.FactorizedTask(small_config())


@pytest.fixture(scope="module")
def crops():
    return photo_crops()


@pytest.fixture(scope="module")
def init_fn(task):
    return jax.jit(task.init_state)


@pytest.fixture(scope="module")
def step_fn(task):
    return jax.jit(task.train_step)


@pytest.fixture(scope="module")
def initial(init_fn, crops):
    return init_fn(rng(0), crops)


@pytest.fixture(scope="module")
def trained(initial, step_fn, crops):
    state = initial
    for i in range(TRAIN_STEPS):
        state, metrics = step_fn(state, crops, rng(100 + i))
        assert np.isfinite(float(metrics["loss"]))
    return state


@pytest.fixture(scope="module")
def tables(task, trained):
    return task.finalize(trained)


@pytest.fixture(scope="module")
def codec(task, trained, tables):
    return task.make_codec(trained, tables)


@pytest.fixture(scope="module")
def odd_stream(codec):
    return codec.encode(odd_image(), 3)


# --------------------------------------------------------------------------- layers


@pytest.mark.parametrize("kernel", [(1, 1), (2, 2), (3, 3), (5, 5), (3, 2)])
def test_conv2d_equals_xla_convolution_in_values_and_gradients(kernel):
    kx, kw, kg = jax.random.split(rng(1), 3)
    x = jax.random.normal(kx, (2, 9, 11, 5))
    w = jax.random.normal(kw, kernel + (5, 40))
    g = jax.random.normal(kg, (2, 9, 11, 40))

    def reference(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    np.testing.assert_allclose(conv.conv2d(x, w), reference(x, w), rtol=1e-5, atol=1e-4)
    dx, dw = jax.grad(lambda x, w: jnp.sum(conv.conv2d(x, w) * g), argnums=(0, 1))(x, w)
    rx, rw = jax.grad(lambda x, w: jnp.sum(reference(x, w) * g), argnums=(0, 1))(x, w)
    np.testing.assert_allclose(dx, rx, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(dw, rw, rtol=1e-4, atol=1e-3)
    assert float(jnp.abs(dw).max()) > 1.0  # the comparison is not between two zeros


def test_depth_to_space_follows_the_index_formula():
    x = np.arange(2 * 3 * 4 * 12).reshape(2, 3, 4, 12)
    out = np.asarray(layers.depth_to_space(jnp.asarray(x)))
    assert out.shape == (2, 6, 8, 3)
    for n, i, j, r, s, c in np.ndindex(2, 3, 4, 2, 2, 3):
        assert out[n, 2 * i + r, 2 * j + s, c] == x[n, i, j, (r * 2 + s) * 3 + c]
    np.testing.assert_array_equal(layers.space_to_depth(jnp.asarray(out)), x)
    with pytest.raises(ValueError):
        layers.depth_to_space(jnp.zeros((1, 2, 2, 6)))


def numpy_down_conv(x, w, b):
    """PyTorch's Conv2d(stride 2, padding k//2) written as explicit windows."""
    k = w.shape[0]
    n, h, wd, _ = x.shape
    xp = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    ho, wo = (h - 1) // 2 + 1, (wd - 1) // 2 + 1
    out = np.zeros((n, ho, wo, w.shape[3]))
    for i, j in np.ndindex(ho, wo):
        out[:, i, j] = np.einsum("nabc,abco->no", xp[:, 2 * i : 2 * i + k, 2 * j : 2 * j + k], w)
    return out + b


def numpy_transposed_conv(x, w, b):
    """PyTorch's ConvTranspose2d(stride 2, padding k//2, output_padding 1) as a scatter:
    input pixel i adds ``x[i]·w[t]`` to output pixel ``2i − k//2 + t``."""
    k = w.shape[0]
    n, h, wd, _ = x.shape
    full = np.zeros((n, 2 * h + k, 2 * wd + k, w.shape[3]))
    for i, j in np.ndindex(h, wd):
        full[:, 2 * i : 2 * i + k, 2 * j : 2 * j + k] += np.einsum("nc,abco->nabo", x[:, i, j], w)
    p = k // 2
    return full[:, p : p + 2 * h, p : p + 2 * wd] + b


def test_down_conv_matches_numpy_windows_on_odd_sizes():
    x = np.asarray(jax.random.normal(rng(2), (2, 9, 12, 3)), np.float64)
    module = layers.DownConv(4, 5)
    params = module.init(rng(3), jnp.asarray(x, jnp.float32))
    params = jax.tree.map(lambda a: a + 0.3, params)  # non-zero bias
    out = np.asarray(module.apply(params, jnp.asarray(x, jnp.float32)))
    assert out.shape == (2, 5, 6, 4)
    p = params["params"]
    np.testing.assert_allclose(out, numpy_down_conv(x, np.asarray(p["kernel"]), np.asarray(p["bias"])), atol=1e-4)


def subpixel_from_transposed(w, b, k):
    """The ``(k//2+1)``-tap sub-pixel kernel equal to a ``k×k`` stride-2 transposed conv.

    Output phase ``r`` of ``out[2a + r]`` reads ``x[a + d]`` with transposed tap
    ``r + k//2 − 2d`` (from the scatter above); the sub-pixel conv's tap ``t`` is the
    offset ``d = t − (ks−1)//2`` of its SAME padding. Unreachable taps stay zero.
    """
    ks, p = k // 2 + 1, k // 2
    cin, cout = w.shape[2:]
    kernel = np.zeros((ks, ks, cin, 4 * cout))
    for tr, tc, r, s in np.ndindex(ks, ks, 2, 2):
        a = r + p - 2 * (tr - (ks - 1) // 2)
        c = s + p - 2 * (tc - (ks - 1) // 2)
        if 0 <= a < k and 0 <= c < k:
            kernel[tr, tc, :, (r * 2 + s) * cout : (r * 2 + s + 1) * cout] = w[a, c]
    return kernel, np.tile(b, 4)


@pytest.mark.parametrize("k", [5, 3])
def test_subpixel_conv_reproduces_a_stride2_transposed_conv(k):
    """The module docstring's claim: a k×k transposed convolution is a sub-pixel
    convolution with (k//2+1)² taps, some fixed at zero (11 of 36 for k = 5)."""
    x = jax.random.normal(rng(4), (1, 5, 7, 6))
    tconv = layers.TransposedConv(8, k)
    tparams = tconv.init(rng(5), x)
    w = np.asarray(tparams["params"]["kernel"], np.float64)
    b = np.asarray(jax.random.normal(rng(6), (8,)), np.float64)
    tparams = {"params": {"kernel": tparams["params"]["kernel"], "bias": jnp.asarray(b, jnp.float32)}}
    reference = numpy_transposed_conv(np.asarray(x, np.float64), w, b)
    np.testing.assert_allclose(tconv.apply(tparams, x), reference, atol=1e-4)

    kernel, bias = subpixel_from_transposed(w, b, k)
    if k == 5:
        assert np.count_nonzero(kernel[:, :, 0, 0::8] == 0) == 11  # taps per channel pair
    sub = layers.SubPixelConv(8, k // 2 + 1)
    params = {"params": {"kernel": jnp.asarray(kernel, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}}
    out = sub.apply(params, x)
    assert out.shape == (1, 10, 14, 8)
    np.testing.assert_allclose(out, reference, atol=1e-4)


_DIMS = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize("algorithm", ["direct", "winograd"])
@pytest.mark.parametrize("k", [1, 3, 5, 7, 9])
@pytest.mark.parametrize("features", [3, 40])
def test_phase_transposed_conv_equals_xla_input_dilated_conv(k, features, algorithm):
    """transposed_conv2d (four stride-1 phases, one merged kernel when thin, or the
    merged 3×3 kernel by Winograd for k = 5) equals XLA's input-dilated convolution
    with the flipped kernel, values and gradients."""
    kx, kw, kg = jax.random.split(rng(11 + k), 3)
    x = jax.random.normal(kx, (2, 5, 7, 6))
    w = jax.random.normal(kw, (k, k, 6, features))
    g = jax.random.normal(kg, (2, 10, 14, features))

    def reference(x, w):
        pad = (k - 1 - k // 2, k - k // 2)
        return lax.conv_general_dilated(x, jnp.flip(w, (0, 1)), (1, 1), (pad, pad), lhs_dilation=(2, 2),
                                        dimension_numbers=_DIMS)

    with ops.conv_impl(algorithm):
        np.testing.assert_allclose(conv.transposed_conv2d(x, w), reference(x, w), rtol=1e-5, atol=1e-4)
        got = jax.grad(lambda x, w: jnp.sum(conv.transposed_conv2d(x, w) * g), argnums=(0, 1))(x, w)
    want = jax.grad(lambda x, w: jnp.sum(reference(x, w) * g), argnums=(0, 1))(x, w)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)
        assert float(jnp.abs(b).max()) > 1.0


@pytest.mark.parametrize("algorithm", ["direct", "winograd"])
@pytest.mark.parametrize("k", [1, 3, 5, 9])
@pytest.mark.parametrize("shape", [(2, 9, 12, 5), (1, 8, 7, 40)])
def test_down_conv_gradients_equal_xla_strided_conv(k, shape, algorithm):
    """down_conv2d's custom input gradient (phases of the transposed convolution, by
    Winograd for k = 5 when asked, cropped for odd sizes) equals XLA's own gradient of
    the strided convolution."""
    kx, kw = jax.random.split(rng(20 + k), 2)
    x = jax.random.normal(kx, shape)
    w = jax.random.normal(kw, (k, k, shape[-1], 36))

    def reference(x, w):
        return lax.conv_general_dilated(x, w, (2, 2), ((k // 2, k // 2),) * 2, dimension_numbers=_DIMS)

    want_y = reference(x, w)
    # Winograd's transforms cost a few float32 ulps of the largest output (test_winograd).
    atol = 2e-5 * float(jnp.abs(want_y).max()) if algorithm == "winograd" else 1e-4
    with ops.conv_impl(algorithm):
        np.testing.assert_allclose(conv.down_conv2d(x, w), want_y, rtol=1e-5, atol=atol)
    # A random cotangent, not a function of the output: the forward passes differ by rounding.
    g = jax.random.normal(jax.random.key(7), want_y.shape)

    def loss(x, w):
        with ops.conv_impl(algorithm):
            return jnp.sum(conv.down_conv2d(x, w) * g)

    # jit: the backward pass is traced after the block in loss has closed, and still
    # runs by the algorithm its forward pass was traced with.
    got = jax.jit(jax.grad(loss, argnums=(0, 1)))(x, w)
    want = jax.grad(lambda x, w: jnp.sum(reference(x, w) * g), argnums=(0, 1))(x, w)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)
        assert float(jnp.abs(b).max()) > 1.0


@pytest.mark.parametrize("chunk_elements,convolutions", [(1, 5), (2 * 5 * 6 * 16, 3), (10**9, 1)])
def test_strided_weight_gradient_over_chunks_of_the_batch_equals_xla(monkeypatch, chunk_elements, convolutions):
    """The strided layer's weight gradient summed over chunks of the batch (one image,
    two images with a short last chunk, the whole batch) equals XLA's gradient of the whole
    batch, and the batch really is split: one convolution per chunk."""
    monkeypatch.setattr(conv, "_WEIGHT_GRAD_CHUNK", chunk_elements)
    kx, kw, kg = jax.random.split(rng(31), 3)
    x = jax.random.normal(kx, (5, 9, 12, 24))
    w = jax.random.normal(kw, (5, 5, 24, 16))

    def reference(w):
        return lax.conv_general_dilated(x, w, (2, 2), ((2, 2),) * 2, dimension_numbers=_DIMS)

    g = jax.random.normal(kg, (5, 5, 6, 16))
    want = jax.vjp(reference, w)[1](g)[0]
    got = conv.strided_weight_grad(x, w, g, backend="cpu")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    assert float(jnp.abs(want).max()) > 1.0
    jaxpr = jax.make_jaxpr(lambda x, w, g: conv.strided_weight_grad(x, w, g, backend="cpu"))(x, w, g)
    assert str(jaxpr).count("conv_general_dilated") == convolutions
    # Other backends, and a batch sharded over several devices, keep XLA's whole-batch gradient.
    jaxpr = jax.make_jaxpr(lambda x, w, g: conv.strided_weight_grad(x, w, g, backend="gpu"))(x, w, g)
    assert str(jaxpr).count("conv_general_dilated") == 1
    monkeypatch.setattr(jax, "device_count", lambda *a: 2)
    jaxpr = jax.make_jaxpr(lambda x, w, g: conv.strided_weight_grad(x, w, g, backend="cpu"))(x, w, g)
    assert str(jaxpr).count("conv_general_dilated") == 1


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("shape", [(2, 9, 12, 5), (1, 8, 7, 40), (1, 1, 1, 2)])
def test_space_to_depth_winograd_strided_conv_equals_xla(k, shape):
    """strided_conv by Winograd over the space-to-depth input (odd sides padded) equals
    XLA's strided convolution; "auto" picks it only for wide, large layers on CPU."""
    kx, kw = jax.random.split(rng(30 + k), 2)
    x = jax.random.normal(kx, shape)
    w = jax.random.normal(kw, (k, k, shape[-1], 36))
    reference = lax.conv_general_dilated(x, w, (2, 2), ((k // 2, k // 2),) * 2, dimension_numbers=_DIMS)
    with ops.conv_impl("winograd"):
        got = conv.strided_conv(x, w)
    assert got.shape == reference.shape
    np.testing.assert_allclose(got, reference, rtol=0, atol=2e-5 * float(jnp.abs(reference).max()))
    np.testing.assert_array_equal(conv.strided_conv(x, w), reference)  # "auto": too small to pay


def test_strided_conv_auto_keeps_xla_forward_even_for_wide_layers():
    kx, kw = jax.random.split(rng(35), 2)
    big = jax.random.normal(kx, (4, 64, 64, 128))  # space-to-depth: 4·32·32 pixels × 128 > 2048·128
    w = jax.random.normal(kw, (5, 5, 128, 128)) / 80.0
    def strided_conv(algorithm):
        with ops.conv_impl(algorithm):
            return conv.strided_conv(big, w)

    auto, direct, wino = strided_conv("auto"), strided_conv("direct"), strided_conv("winograd")
    np.testing.assert_array_equal(auto, direct)
    assert not np.array_equal(wino, direct)
    np.testing.assert_allclose(wino, direct, rtol=0, atol=2e-5 * float(jnp.abs(direct).max()))
    with pytest.raises(ValueError, match="convolution algorithm must be one of"):
        strided_conv("fft")


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", [(2, 9, 12, 40), (1, 1, 5, 3)])
def test_thin_conv_gradients_equal_xla(k, shape):
    """thin_conv2d's backward (one product against the stacked, shifted output
    gradient) equals XLA's gradient of the SAME convolution, even kernels included
    (they pad more after)."""
    kx, kw = jax.random.split(rng(40 + k), 2)
    x = jax.random.normal(kx, shape)
    w = jax.random.normal(kw, (k, k, shape[-1], 12))

    def reference(x, w):
        pad = ((k - 1) // 2, k // 2)
        return lax.conv_general_dilated(x, w, (1, 1), (pad, pad), dimension_numbers=_DIMS)

    np.testing.assert_array_equal(conv.thin_conv2d(x, w), reference(x, w))
    got = jax.grad(lambda x, w: jnp.sum(jnp.sin(conv.thin_conv2d(x, w))), argnums=(0, 1))(x, w)
    want = jax.grad(lambda x, w: jnp.sum(jnp.sin(reference(x, w))), argnums=(0, 1))(x, w)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.abs(b).max()))
        assert float(jnp.abs(b).max()) > 1.0


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("shape", [(2, 8, 8, 16), (3, 5, 7, 6)])
def test_gdn_gradients_equal_autodiff(shape, inverse):
    """gdn's hand-written backward pass (γ's gradient summed over row blocks; 105 rows
    take one block) equals JAX's differentiation of the formula, for x, β and an
    asymmetric γ."""
    kx, kb, kg, ko = jax.random.split(rng(60), 4)
    c = shape[-1]
    x = jax.random.normal(kx, shape)
    beta = 0.5 + jax.random.uniform(kb, (c,))
    gamma = 0.1 * jnp.eye(c) + 0.05 * jax.random.uniform(kg, (c, c))
    g = jax.random.normal(ko, shape)

    def formula(x, beta, gamma):
        norm = jnp.dot(x * x, gamma.T) + beta
        return x * jnp.sqrt(norm) if inverse else x / jnp.sqrt(norm)

    np.testing.assert_allclose(layers.gdn(x, beta, gamma, inverse), formula(x, beta, gamma), rtol=1e-6, atol=1e-6)
    got = jax.grad(lambda *a: jnp.sum(layers.gdn(*a, inverse) * g), argnums=(0, 1, 2))(x, beta, gamma)
    want = jax.grad(lambda *a: jnp.sum(formula(*a) * g), argnums=(0, 1, 2))(x, beta, gamma)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()))


def test_gdn_and_igdn_match_numpy():
    """Ballé 2016 eq. 5 with exponents 2 and ½: y_i = x_i / sqrt(β_i + Σ_j γ_ij x_j²);
    IGDN multiplies instead. γ is asymmetric so a transposed γ would fail."""
    gen = np.random.default_rng(0)
    c = 5
    beta = gen.uniform(0.5, 2.0, c)
    gamma = gen.uniform(0.0, 0.8, (c, c))
    x = gen.normal(0.0, 2.0, (2, 3, 4, c))
    params = {
        "params": {
            "beta": layers.nonnegative_init(jnp.asarray(beta, jnp.float32)),
            "gamma": layers.nonnegative_init(jnp.asarray(gamma, jnp.float32)),
        }
    }
    norm = np.sqrt(beta + np.einsum("ij,...j->...i", gamma, x**2))
    xf = jnp.asarray(x, jnp.float32)
    np.testing.assert_allclose(layers.GDN().apply(params, xf), x / norm, rtol=1e-5)
    np.testing.assert_allclose(layers.GDN(inverse=True).apply(params, xf), x * norm, rtol=1e-5)
    # Defaults: β = 1, γ = 0.1·I.
    default = layers.GDN().init(rng(0), xf)
    np.testing.assert_allclose(layers.GDN().apply(default, xf), x / np.sqrt(1 + 0.1 * x**2), rtol=1e-5)


def test_nonnegative_keeps_beta_above_its_minimum_and_lets_it_recover():
    stored = jnp.array([-3.0, 0.0, 0.5, 2.0])
    value = layers.nonnegative(stored, 0.1)
    np.testing.assert_allclose(value, [0.1, 0.1, 0.25, 4.0], rtol=1e-5)
    # At the bound the gradient still flows when descent would raise the value (g < 0)...
    up = jax.grad(lambda s: -jnp.sum(layers.nonnegative(s, 0.1)))(stored)
    assert np.all(np.asarray(up) != 0)
    # ...and not when it would push it further down.
    down = jax.grad(lambda s: jnp.sum(layers.nonnegative(s, 0.1)))(stored)
    np.testing.assert_array_equal(np.asarray(down)[:2], 0.0)


# --------------------------------------------------------------------------- density


def perturbed_density(trained, seed=7):
    """The trained entropy-model parameters plus noise, so the tanh factors matter."""
    eb = jax.device_get(trained["params"]["params"]["entropy_bottleneck"])
    gen = np.random.default_rng(seed)
    return {k: np.asarray(v + gen.normal(0, 0.3, v.shape), np.float32) for k, v in eb.items()}


def loop_cdf_logit(eb, c, y):
    """Ballé 2018 App. 6.1 for channel ``c`` written as plain matrix products."""
    eb = {key: np.asarray(v, np.float64) for key, v in eb.items()}
    h = np.array([[y]], np.float64)
    k = 0
    while f"matrix_{k}" in eb:
        h = np.log1p(np.exp(eb[f"matrix_{k}"][c])) @ h + eb[f"bias_{k}"][c]
        if f"factor_{k}" in eb:
            h = h + np.tanh(eb[f"factor_{k}"][c]) * np.tanh(h)
        k += 1
    return float(h[0, 0])


def test_density_logits_match_a_loop_reference_and_the_flax_module(trained):
    eb = perturbed_density(trained)
    assert any(np.abs(v).max() > 0.1 for k, v in eb.items() if k.startswith("factor"))
    y = np.linspace(-6, 6, 7)
    ref = np.array([[loop_cdf_logit(eb, c, v) for v in y] for c in range(8)])
    np.testing.assert_allclose(factorized_prior.cdf_logits_np(eb, np.tile(y, (8, 1))), ref, rtol=1e-12)
    module = factorized_prior.DeepFactorized(8)
    got = module.apply({"params": eb}, jnp.asarray(np.tile(y[:, None], (1, 8)), jnp.float32),
                       method=factorized_prior.DeepFactorized.logits_cumulative)
    np.testing.assert_allclose(np.asarray(got).T, ref, rtol=1e-4, atol=1e-4)
    assert np.all(np.diff(ref, axis=1) > 0)  # a CDF's logit increases


def test_one_density_function_serves_the_module_and_the_tables(trained):
    """cumulative_logits is the module's computation under jax.numpy (exactly) and the
    table builder's under NumPy float64."""
    eb = perturbed_density(trained)
    layers = factorized_prior.float64_layers(eb)
    y = np.tile(np.linspace(-6, 6, 7)[:, None], (1, 8))
    np.testing.assert_array_equal(factorized_prior.cumulative_logits(layers, y, np),
                                  factorized_prior.cdf_logits_np(eb, y.T).T)
    as_float32 = [tuple(None if a is None else jnp.asarray(a, jnp.float32) for a in layer) for layer in layers]
    y32 = jnp.asarray(y, jnp.float32)
    got = factorized_prior.DeepFactorized(8).apply({"params": eb}, y32,
                                                   method=factorized_prior.DeepFactorized.logits_cumulative)
    np.testing.assert_array_equal(got, factorized_prior.cumulative_logits(as_float32, y32, jnp))


def test_pmf_sums_to_one_and_jax_likelihood_matches_float64(trained):
    eb = perturbed_density(trained)
    lo, hi = factorized_prior.support(eb, tail_mass=1e-9)
    assert np.all(hi > lo)
    n = int((hi - lo).max()) + 1
    values = lo[:, None] + np.arange(n)[None, :]
    pmf = factorized_prior.pmf_np(eb, values)
    inside = values <= hi[:, None]
    np.testing.assert_allclose(np.where(inside, pmf, 0).sum(axis=1), 1.0, atol=1e-8)
    assert np.all(pmf >= 0)
    # One more value on each side already holds less than the tail mass.
    outer = factorized_prior.pmf_np(eb, np.stack([lo - 1, hi + 1], axis=1))
    assert np.all(outer <= 1e-9)

    module = factorized_prior.DeepFactorized(8)
    lik = np.asarray(module.apply({"params": eb}, jnp.asarray(values.T, jnp.float32))).T
    big = pmf > 1e-4
    np.testing.assert_allclose(lik[big], pmf[big], rtol=2e-4)
    np.testing.assert_allclose(lik, np.maximum(pmf, factorized_prior.LIKELIHOOD_BOUND), rtol=0.05, atol=1e-7)


def test_tables_are_the_float64_pmf_quantised(tables, trained):
    eb = jax.device_get(trained["params"]["params"]["entropy_bottleneck"])
    freqs, offsets = tables["freqs"], tables["offsets"]
    lo, hi = factorized_prior.support(eb, tail_mass=1e-9)
    np.testing.assert_array_equal(offsets, lo)
    assert freqs.shape == (8, int((hi - lo).max()) + 2)  # widest support + escape
    assert np.all(freqs >= 1) and np.all(freqs.sum(axis=1) == 1 << entropy.DEFAULT_PRECISION)
    pmf = factorized_prior.pmf_np(eb, offsets[:, None] + np.arange(freqs.shape[1] - 1)[None, :])
    big = pmf > 1e-3
    np.testing.assert_allclose(freqs[:, :-1][big] / 2**16, pmf[big], rtol=0.01, atol=2e-5)


# --------------------------------------------------------------------------- training


def test_training_reduces_the_rate_distortion_loss(task, initial, step_fn, crops):
    key = rng(42)
    before, m0 = task.loss_fn(initial["params"], crops, key)
    np.testing.assert_allclose(m0["loss"], task.lmbda * 255**2 * m0["mse"] + m0["bpp"], rtol=1e-6)
    state = initial
    for i in range(8):
        state, _ = step_fn(state, crops, rng(200 + i))
    after, _ = task.loss_fn(state["params"], crops, key)
    assert int(state["step"]) == 8
    assert float(after) < 0.6 * float(before), (float(before), float(after))


@pytest.mark.parametrize("scale", [float(np.sqrt(2.0)), 0.5])
def test_rescale_latents_keeps_the_network_and_stretches_the_density(task, trained, crops, scale):
    params = jax.device_get(trained["params"])
    new = factorized_task.rescale_latents(params, scale)
    x = jnp.asarray(crops)
    y = np.asarray(task.analysis(params, x))
    np.testing.assert_allclose(task.analysis(new, x), scale * y, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(task.synthesis(new, jnp.asarray(scale * y)), task.synthesis(params, y),
                               rtol=1e-4, atol=1e-5)
    # F'(s·y) = F(y), against the float64 reference of the density
    grid = np.tile(np.linspace(-6.0, 6.0, 13), (8, 1))
    old_eb, new_eb = (jax.device_get(p["params"]["entropy_bottleneck"]) for p in (params, new))
    np.testing.assert_allclose(factorized_prior.cdf_logits_np(new_eb, scale * grid),
                               factorized_prior.cdf_logits_np(old_eb, grid), rtol=1e-4, atol=1e-4)
    untouched = {("g_a", "conv0"), ("g_s", "conv3"), ("g_s", "igdn0")}
    for module, layer in untouched:
        for name, value in params["params"][module][layer].items():
            np.testing.assert_array_equal(new["params"][module][layer][name], value)
    # rounding the rescaled latent is rounding with the step 1/s: more bits for s > 1
    def bits(p, latent):
        return float(factorized.total_bits(task.likelihood(p, jnp.round(jnp.asarray(latent)))))

    assert (bits(new, scale * y) > bits(params, y)) == (scale > 1)


def _test_time_objective(task, params, x):
    """``λ·255²·MSE(g_s(round(g_a x)), x) + bpp`` with the rate from the float64 density."""
    y = np.round(np.asarray(task.analysis(params, x)))
    eb = jax.device_get(params["params"]["entropy_bottleneck"])
    pmf = np.maximum(factorized_prior.pmf_np(eb, y.reshape(-1, y.shape[-1]).T), factorized_prior.LIKELIHOOD_BOUND)
    bpp = -np.log2(pmf).sum() / (x.shape[0] * x.shape[1] * x.shape[2])
    x_hat = np.asarray(task.synthesis(params, jnp.asarray(y, jnp.float32)))
    return task.lmbda * 255**2 * float(np.mean((x_hat - np.asarray(x)) ** 2)) + bpp


def test_ste_quantizer_decodes_the_rounded_latent(trained, crops):
    """quantizer="ste": the distortion is that of round(y), whatever the noise key, and
    its straight-through gradient reaches the encoder."""
    params = trained["params"]
    y = np.round(np.asarray(factorized_task.FactorizedTask(small_config()).analysis(params, crops)))
    x_hat = np.asarray(factorized_task.FactorizedTask(small_config()).synthesis(params, jnp.asarray(y, jnp.float32)))
    ste = factorized_task.FactorizedTask(small_config(quantizer="ste"))
    mses = [float(ste.loss_fn(params, crops, rng(k))[1]["mse"]) for k in (1, 2)]
    assert mses[0] == mses[1] == pytest.approx(float(np.mean((x_hat - crops) ** 2)), rel=1e-4)
    noisy = factorized_task.FactorizedTask(small_config())
    assert float(noisy.loss_fn(params, crops, rng(1))[1]["mse"]) != pytest.approx(mses[0], rel=1e-3)
    grads = jax.grad(lambda p: ste.loss_fn(p, crops, rng(1))[0])(params)
    assert float(jnp.abs(grads["params"]["g_a"]["conv0"]["kernel"]).max()) > 0.0


def test_analysis_only_fine_tuning_moves_only_the_encoder(trained, crops):
    """trainable="analysis" (Guo et al. 2021's second stage): g_s and the density keep
    their exact values, g_a learns, and the coded objective falls."""
    task = factorized_task.FactorizedTask(small_config(quantizer="ste", trainable="analysis"))
    params = jax.device_get(trained["params"])
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt": task.tx.init(params)}
    step = jax.jit(task.train_step)
    for i in range(10):
        state, _ = step(state, crops, rng(300 + i))
    new = jax.device_get(state["params"])
    for module in ("g_s", "entropy_bottleneck"):
        for a, b in zip(jax.tree.leaves(params["params"][module]), jax.tree.leaves(new["params"][module])):
            np.testing.assert_array_equal(a, b)
    moved = [not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(params["params"]["g_a"]), jax.tree.leaves(new["params"]["g_a"]))]
    assert all(moved)
    before = _test_time_objective(task, params, crops)
    after = _test_time_objective(task, new, crops)
    assert after < 0.98 * before, (before, after)


def test_unknown_quantizer_or_trainable_group_is_a_config_error():
    with pytest.raises(ConfigError, match="model.quantizer must be one of noise, ste"):
        factorized_task.FactorizedTask(small_config(quantizer="round"))
    with pytest.raises(ConfigError, match="model.trainable must be one of all, analysis"):
        factorized_task.FactorizedTask(small_config(trainable="decoder"))


def test_quality_outside_the_ladder_is_a_config_error():
    for quality in (0, 10):
        with pytest.raises(ConfigError, match="model.quality must be in 1..9"):
            factorized_task.default_config(quality=quality)


def test_warm_start_applies_init_latent_scale_and_checks_it(trained):
    params = jax.device_get(trained["params"])
    assert factorized_task.FactorizedTask(small_config()).warm_start(params) is params
    scaled = factorized_task.FactorizedTask(small_config(init_latent_scale=2.0)).warm_start(params)
    for a, b in zip(jax.tree.leaves(scaled), jax.tree.leaves(factorized_task.rescale_latents(params, 2.0))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="init_latent_scale"):
            factorized_task.FactorizedTask(small_config(init_latent_scale=bad)).warm_start(params)


def test_eval_step_bpp_equals_float64_information_content(task, trained, crops):
    """eval_step's bpp is Σ −log2 p(round(y)) / pixels; checked with pmf_np in float64."""
    metrics = jax.jit(task.eval_step)(trained, crops)
    y = np.round(np.asarray(task.analysis(trained["params"], crops)))
    eb = jax.device_get(trained["params"]["params"]["entropy_bottleneck"])
    values = y.reshape(-1, 8).T
    pmf = np.maximum(factorized_prior.pmf_np(eb, values), factorized_prior.LIKELIHOOD_BOUND)
    bpp = -np.log2(pmf).sum() / (crops.shape[0] * 64 * 64)
    assert float(metrics["bpp"]) == pytest.approx(bpp, rel=1e-3)
    x_hat = np.clip(np.asarray(task.synthesis(trained["params"], jnp.asarray(y, jnp.float32))), 0, 1)
    assert float(metrics["mse"]) == pytest.approx(np.mean((x_hat - crops) ** 2), rel=1e-4)
    assert float(metrics["psnr"]) > 14.0  # trained: far better than the untrained ~6 dB


# --------------------------------------------------------------------------- codec


def test_round_trip_is_the_models_quantised_reconstruction(codec, task, trained, odd_stream):
    image = odd_image()
    decoded = codec.decode(odd_stream)
    assert decoded.dtype == np.uint8 and decoded.shape == (37, 53, 3)
    # Independent path: edge-pad to 48×64, g_a, round, g_s, clip, crop.
    padded = np.pad(image, ((0, 11), (0, 11), (0, 0)), mode="edge").astype(np.float32)[None] / 255.0
    y = np.asarray(jax.jit(task.analysis)(trained["params"], padded))[0]
    assert y.shape == (3, 4, 8)
    np.testing.assert_array_equal(codec.latents(image), np.round(y))
    assert len(np.unique(np.round(y))) >= 3  # the latents are not all one symbol
    x = np.asarray(task.synthesis(trained["params"], jnp.asarray(np.round(y)[None], jnp.float32)))[0]
    expected = np.clip(x[:37, :53], 0, 1) * 255
    # Exact up to float32 differences between two XLA programs (at most at a .5 boundary).
    assert np.abs(decoded - expected).max() <= 0.5 + 1e-3
    assert np.mean(decoded == np.round(expected)) > 0.999
    np.testing.assert_array_equal(decoded, codec.reconstruct(codec.latents(image), 37, 53))
    assert np.mean(np.abs(decoded.astype(float) - image)) < 40  # and it resembles the cat


def test_header_and_determinism(codec, task, trained, tables, odd_stream):
    header, payload = container.unpack(odd_stream)
    assert header.model == "factorized" and header.quality == 3
    assert (header.height, header.width, header.channels, header.latent_shape) == (37, 53, 3, (3, 4, 8))
    assert header.tables_match(entropy.table_hash(tables["freqs"], tables["offsets"]))
    assert codec.encode(odd_image(), 3) == odd_stream
    fresh = task.make_codec(trained, {k: np.array(v) for k, v in tables.items()})
    assert fresh.encode(odd_image(), 3) == odd_stream
    assert header.tile == factorized_codec.STREAM_TILE and len(header.check) == 4  # version 2: one tile here
    symbols = codec.latents(odd_image()).reshape(-1)
    decoded = entropy.decode_symbols(payload, codec.tile_table_ids(12), *codec.guarded_tables)
    np.testing.assert_array_equal(decoded, np.append(symbols, factorized_codec.GUARD_VALUE))  # then the guard
    np.testing.assert_array_equal(codec.guarded_tables[0][:8], tables["freqs"])


def test_grey_images_round_trip_as_one_channel(codec):
    grey = odd_image().mean(axis=2).round().astype(np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    data = codec.encode(grey, 3)  # (H, W) is accepted as grey
    assert container.unpack(data)[0].channels == 1
    assert codec.encode(grey[:, :, None], 3) == data
    decoded = codec.decode(data)
    assert decoded.shape == (37, 53, 1) and decoded.dtype == np.uint8
    colour = codec.decode(codec.encode(rgb, 3)).astype(np.float64)
    np.testing.assert_array_equal(decoded[:, :, 0], np.round(colour.mean(axis=2)))


def test_estimated_rate_matches_the_real_payload(codec, task, trained):
    """Measured (N=12, M=8, 60 steps): astronaut 192×256 → 6048 payload bits, 6005
    estimated, 6009 ideal under the integer tables; chelsea 300×451 → 17248, 17210,
    17222. The gap is 40-65 bits: the final ANS state and the 32-bit word padding."""
    for image in (skimage.data.astronaut()[:192, :256], skimage.data.chelsea()):
        _, payload = container.unpack(codec.encode(image, 3))
        real = len(payload) * 8
        estimate = codec.estimate_bits(image)
        y = codec.latents(image)
        ideal = entropy.entropy_bits(y.reshape(-1), np.tile(np.arange(8), y.size // 8), codec.freqs, codec.offsets)
        assert real > 1000
        assert abs(real - estimate) <= 0.01 * estimate + 64, (real, estimate)
        assert ideal - 32 <= real <= ideal * 1.005 + 64, (real, ideal)
    image = skimage.data.astronaut()[:192, :256]
    bpp = float(jax.jit(task.eval_step)(trained, image[None].astype(np.float32) / 255.0)["bpp"])
    assert bpp * 192 * 256 == pytest.approx(codec.estimate_bits(image), rel=1e-4)


def test_symbols_outside_the_tables_are_escaped_not_clipped(task, trained, tables):
    """g_a's last layer scaled ×1000: many symbols fall outside the tables' range, yet the
    decoder gets exactly round(g_a(x)) back."""
    params = jax.device_get(trained["params"])
    last = params["params"]["g_a"]["conv3"]
    loud = {**params["params"], "g_a": {**params["params"]["g_a"], "conv3": jax.tree.map(lambda a: a * 1000.0, last)}}
    codec = factorized_codec.FactorizedCodec(task, {"params": loud}, tables)
    image = odd_image()
    symbols = codec.latents(image)
    high = codec.offsets + codec.freqs.shape[1] - 2
    outside = (symbols < codec.offsets) | (symbols > high)
    assert outside.sum() >= 10, (symbols.min(), symbols.max(), codec.offsets, high)
    data = codec.encode(image, 3)
    _, payload = container.unpack(data)
    ids = codec.tile_table_ids(symbols.size // 8)
    np.testing.assert_array_equal(
        entropy.decode_symbols(payload, ids, *codec.guarded_tables)[:-1], symbols.reshape(-1)
    )
    decoded = codec.decode(data)
    np.testing.assert_array_equal(decoded, codec.reconstruct(symbols, 37, 53))
    clipped = np.clip(symbols, codec.offsets, high)
    assert not np.array_equal(decoded, codec.reconstruct(clipped, 37, 53))


# --------------------------------------------------------------------------- errors


def test_streams_of_other_models_raise_model_error(task, init_fn, crops, codec, odd_stream):
    other_state = init_fn(rng(5), crops)
    other = task.make_codec(other_state)  # same architecture, other tables
    assert other.table_hash != codec.table_hash
    with pytest.raises(ModelError, match="other entropy tables"):
        other.decode(odd_stream)
    header, payload = container.unpack(odd_stream)
    renamed = container.pack(container.Header(**{**header.__dict__, "model": "comrec"}), payload)
    with pytest.raises(ModelError, match="'comrec'"):
        codec.decode(renamed)


def test_bad_inputs_and_tables_raise_project_errors(task, trained, codec, tables):
    image = odd_image()
    with pytest.raises(ConfigError):
        codec.encode(image, 4)
    with pytest.raises(ImageError):
        codec.encode(image.astype(np.float32), 3)
    with pytest.raises(ImageError):
        codec.encode(np.zeros((8, 8, 4), np.uint8), 3)
    with pytest.raises(ModelError):
        task.make_codec(trained, {"freqs": tables["freqs"]})
    with pytest.raises(ModelError):
        task.make_codec(trained, {"freqs": tables["freqs"][:4], "offsets": tables["offsets"][:4]})


def test_truncated_and_corrupted_streams_raise_bitstream_error(codec, odd_stream):
    header, payload = container.unpack(odd_stream)
    flipped = bytearray(odd_stream)
    flipped[len(odd_stream) // 2] ^= 0x10
    cases = [odd_stream[:-1], odd_stream[:10], bytes(flipped), odd_stream + b"\0", b"", b"not a stream"]
    # Valid containers around a bad payload: the entropy decoder itself must object.
    cases += [container.pack(header, payload[:-1]), container.pack(header, payload[4:] + payload[:4])]
    wrong_shape = container.Header(**{**header.__dict__, "latent_shape": (3, 5, 8)})
    cases.append(container.pack(wrong_shape, payload))
    for data in cases:
        with pytest.raises(BitstreamError) as info:
            codec.decode(data)
        assert str(info.value) and "\n" not in str(info.value)
    # ANS starts from state 0, which index 0 of every table (the lowest values) leaves at 0:
    # without the guard those symbols would code as no bytes at all. With it, an empty
    # payload is refused (by its length or by the guard it lacks).
    ids = np.tile(np.arange(8), 12)
    lowest = codec.offsets[ids]
    assert entropy.encode_symbols(lowest, ids, codec.freqs, codec.offsets) == b""
    assert entropy.encode_symbols(np.append(lowest, factorized_codec.GUARD_VALUE), codec.tile_table_ids(12),
                                  *codec.guarded_tables) != b""
    with pytest.raises(BitstreamError):
        codec.decode(container.pack(header, b""))


def _mutate(data: bytes, ops) -> bytes:
    out = bytearray(data)
    for kind, position, blob in ops:
        i = position % max(len(out), 1)
        if kind == "flip" and out:
            out[i] ^= 1 << (position // max(len(out), 1) % 8)
        elif kind == "set" and out:
            out[i] = blob[0] if blob else 0
        elif kind == "truncate":
            del out[i:]
        elif kind == "extend":
            out += blob or b"\x00"
        elif kind == "insert":
            out[i:i] = blob or b"\x00"
        elif kind == "delete" and out:
            del out[i]
    return bytes(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["flip", "set", "truncate", "extend", "insert", "delete"]),
            st.integers(0, 10**6),
            st.binary(max_size=16),
        ),
        min_size=1,
        max_size=3,
    ),
    repack=st.booleans(),
)
def test_mutated_streams_raise_only_project_errors(codec, odd_stream, ops, repack):
    """Raw mutations must fail the CRC; mutations of the payload inside a valid
    container reach the entropy decoder, which must raise a JaxcodecError (never
    another type) unless the payload still decodes to the coded symbols (content check)."""
    header, payload = container.unpack(odd_stream)
    if repack:
        mutated_payload = _mutate(payload, ops)
        data = container.pack(header, mutated_payload)
        changed = mutated_payload != payload
    else:
        data = _mutate(odd_stream, ops)
        changed = data != odd_stream
    try:
        decoded = codec.decode(data)
    except JaxcodecError as error:
        assert str(error) and "\n" not in str(error)
        assert changed
        if not repack:
            assert isinstance(error, BitstreamError)
        return
    assert not changed or repack
    assert decoded.shape == (37, 53, 3) and decoded.dtype == np.uint8
    if repack:  # the content check: a payload the decoder accepts decodes to the symbols coded
        np.testing.assert_array_equal(codec.decode_symbols(data), codec.decode_symbols(odd_stream))


def test_learning_rate_drops_tenfold_at_the_configured_share():
    from jaxcodec.train.tasks.factorized import default_config, learning_rate_schedule

    config = default_config(quality=2)
    config.num_steps, config.learning_rate = 1000, 5e-4
    assert [float(learning_rate_schedule(config)(s)) for s in (0, 999)] == [5e-4, 5e-4]
    config.lr_decay_at = 0.8
    schedule = learning_rate_schedule(config)
    assert float(schedule(799)) == pytest.approx(5e-4)
    assert float(schedule(800)) == pytest.approx(5e-5)
    assert float(schedule(999)) == pytest.approx(5e-5)
    config.lr_decay_at = 1.5
    with pytest.raises(ConfigError, match="lr_decay_at"):
        learning_rate_schedule(config)
