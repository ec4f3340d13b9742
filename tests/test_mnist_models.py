"""Tests of the MNIST autoencoder tasks (seeds 003 and 004) on real digits."""

import importlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

import jaxcodec
from jaxcodec.codecs.protocol import Codec
from jaxcodec.models import rbm
from jaxcodec.ops.pixel_shuffle import depth_to_space
from jaxcodec.train.tasks import build_task
from jaxcodec.train.tasks.mnist_conv_ae import ConvAETask
from jaxcodec.train.tasks.mnist_deep_ae import DeepAETask, unroll

SAMPLE = Path(jaxcodec.__file__).parent / "samples" / "mnist_sample.npz"


@pytest.fixture(scope="module")
def digits():
    """Real MNIST digits, float32 NHWC in [0, 1]: (train, test)."""
    with np.load(SAMPLE) as d:
        train = d["x_train"][:1024, :, :, None].astype(np.float32) / 255.0
        test = d["x_test"][:64, :, :, None].astype(np.float32) / 255.0
    return train, test


def _config(name, **model):
    config = importlib.import_module(f"configs.{name}").get_config()
    config.batch_size = 32
    for key, value in model.items():
        config.model[key] = value
    return config


def _train(task, train, steps, batch_size=32):
    state = task.init_state(jax.random.key(0), train[:batch_size])
    step = jax.jit(task.train_step)
    losses = []
    for i in range(steps):
        batch = train[(i * batch_size) % len(train):][:batch_size]
        state, metrics = step(state, jnp.asarray(batch), jax.random.key(i))
        losses.append(float(metrics["loss"]))
    return state, losses


def test_registry_builds_both_tasks():
    assert isinstance(build_task(_config("mnist_conv_ae")), ConvAETask)
    assert isinstance(build_task(_config("mnist_deep_ae")), DeepAETask)


def test_depth_to_space_matches_index_formula():
    """out[n, 2i+a, 2j+b, c] = x[n, i, j, (2a+b)·C + c] (Shi et al. 2016 pixel shuffle)."""
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4 * 5)).astype(np.float32)
    out = np.asarray(depth_to_space(jnp.asarray(x)))
    expected = np.zeros((2, 6, 8, 5), np.float32)
    for i in range(3):
        for j in range(4):
            for a in range(2):
                for b in range(2):
                    expected[:, 2 * i + a, 2 * j + b, :] = x[:, i, j, (2 * a + b) * 5 : (2 * a + b + 1) * 5]
    np.testing.assert_array_equal(out, expected)


def test_conv_ae_shapes_ranges_and_learning(digits):
    train, test = digits
    task = ConvAETask(_config("mnist_conv_ae"))
    state, losses = _train(task, train, 40)
    params = state["params"]
    z = task.encode_latent(params, jnp.asarray(test))
    assert z.shape == (64, 28) and float(jnp.max(jnp.abs(z))) < 1.0
    y = task.decode_latent(params, z)
    assert y.shape == (64, 28, 28, 1) and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert int(state["step"]) == 40
    # From the mean-image plateau (about 0.07 on MNIST) towards digit shapes.
    assert np.mean(losses[-5:]) < 0.75 * np.mean(losses[:5]), losses
    # eval_step's PSNR agrees with scikit-image's on the same reconstructions.
    metrics = jax.jit(task.eval_step)(state, jnp.asarray(test))
    expected = np.mean([peak_signal_noise_ratio(t, np.asarray(r), data_range=1.0) for t, r in zip(test, y)])
    assert float(metrics["psnr"]) == pytest.approx(expected, abs=1e-3)
    assert float(metrics["mse"]) == pytest.approx(float(np.mean((np.asarray(y) - test) ** 2)), rel=1e-4)
    assert float(metrics["psnr_6bit"]) == pytest.approx(expected, abs=0.5)


def test_conv_ae_regularisers(digits):
    """The latent L2 term is added to the loss with its weight; weight decay shrinks weights."""
    train, _ = digits
    task = ConvAETask(_config("mnist_conv_ae", latent_l2=0.5))
    state = task.init_state(jax.random.key(0), train[:32])
    loss, metrics = task.loss_fn(state["params"], jnp.asarray(train[:32]), jax.random.key(0))
    z = task.encode_latent(state["params"], jnp.asarray(train[:32]))
    assert float(loss) == pytest.approx(float(metrics["mse"] + 0.5 * jnp.mean(z**2)), rel=1e-5)
    decayed = ConvAETask(_config("mnist_conv_ae", weight_decay=0.5))
    zero_grads = jax.tree.map(jnp.zeros_like, state["params"])
    updates, _ = decayed.tx.update(zero_grads, decayed.tx.init(state["params"]), state["params"])
    kernel = state["params"]["params"]["decoder"]["dense1"]["kernel"]
    step = updates["params"]["decoder"]["dense1"]["kernel"]
    np.testing.assert_allclose(step, -1e-3 * 0.5 * kernel, rtol=1e-5)


def test_deep_ae_shapes_and_learning(digits):
    train, test = digits
    task = DeepAETask(_config("mnist_deep_ae", pretrain=False))
    state, losses = _train(task, train, 40)
    z = task.encode_latent(state["params"], jnp.asarray(test))
    assert z.shape == (64, 196) and float(z.min()) > 0.0 and float(z.max()) < 1.0
    assert task.decode_latent(state["params"], z).shape == (64, 28, 28, 1)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    # The loss is the pixel-wise binary cross-entropy, checked against NumPy.
    logits = np.asarray(task.model.apply(state["params"], jnp.asarray(test))[0], np.float64)
    p = 1 / (1 + np.exp(-logits))
    bce = -np.mean(test * np.log(p) + (1 - test) * np.log(1 - p))
    assert float(task.loss_fn(state["params"], jnp.asarray(test), jax.random.key(0))[0]) == pytest.approx(bce, rel=1e-4)


def test_deep_ae_pretrain_unrolls_rbms(digits):
    """After pre-training: encoder = RBM weights and hidden biases, decoder = their
    transposes and visible biases (H&S 2006, Fig. 1), equal to an independent run of
    pretrain_stack with the same rng and batches."""
    train, _ = digits
    sizes = (784, 64, 32, 16)
    config = _config("mnist_deep_ae", layer_sizes=sizes, rbm_steps=15, rbm_log_every=0)
    task = DeepAETask(config)
    batches = [train[i : i + 32] for i in range(0, 1024, 32)] * 2
    state = task.init_state(jax.random.key(0), train[:32])
    new = task.pretrain(state, iter(batches), config)
    stack = rbm.pretrain_stack(
        list(sizes), iter(batches), rng=jax.random.key(config.seed + 1), steps_per_layer=15
    )
    p = new["params"]["params"]
    for i, (w, b_vis, b_hid) in enumerate(stack):
        np.testing.assert_array_equal(p[f"enc_{i}"]["kernel"], w)
        np.testing.assert_array_equal(p[f"enc_{i}"]["bias"], b_hid)
        np.testing.assert_array_equal(p[f"dec_{2 - i}"]["kernel"], np.asarray(w).T)
        np.testing.assert_array_equal(p[f"dec_{2 - i}"]["bias"], b_vis)
    # The unrolled network is the RBM stack's deterministic up-down pass.
    h = train[:8].reshape(8, -1)
    for w, _, c in stack:
        h = jax.nn.sigmoid(h @ w + c)
    for w, b, _ in reversed(stack):
        h = jax.nn.sigmoid(h @ w.T + b)
    out = task.decode_latent(new["params"], task.encode_latent(new["params"], jnp.asarray(train[:8])))
    np.testing.assert_allclose(np.asarray(out).reshape(8, -1), h, rtol=1e-4, atol=1e-5)
    # Fine-tuning starts from a fresh optimiser state; pretrain=False changes nothing.
    assert int(new["opt"][0].count) == 0
    off = _config("mnist_deep_ae", layer_sizes=sizes, pretrain=False)
    same = DeepAETask(off).pretrain(state, iter(batches), off)
    assert same is state


def test_unroll_rejects_nothing_silently():
    """unroll replaces exactly the six dense layers and keeps their shapes."""
    task = DeepAETask(_config("mnist_deep_ae", layer_sizes=(784, 8, 4)))
    params = task.model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    stack = [(jnp.ones((784, 8)), jnp.zeros(784), jnp.zeros(8)), (2 * jnp.ones((8, 4)), jnp.ones(8), jnp.ones(4))]
    out = unroll(params, stack)
    assert jax.tree.map(jnp.shape, out) == jax.tree.map(jnp.shape, params)
    np.testing.assert_array_equal(out["params"]["dec_0"]["kernel"], 2 * np.ones((4, 8)))
    np.testing.assert_array_equal(out["params"]["dec_1"]["bias"], np.zeros(784))


@pytest.mark.parametrize("name", ["mnist_conv_ae", "mnist_deep_ae"])
def test_finalize_and_codec(digits, name):
    """finalize fits histograms on training latents; make_codec gives a working Codec whose
    decode equals the decoder applied to the quantised latent."""
    train, test = digits
    config = _config(name, finalize_batches=4, bit_depths=(2, 6), pretrain=False)
    task = build_task(config)
    state, _ = _train(task, train, 3)
    tables = task.finalize(state, iter([train[i : i + 32] for i in range(0, 1024, 32)]))
    codec = task.make_codec(state, tables)
    assert isinstance(codec, Codec) and codec.qualities == [2, 6]
    image = np.round(test[0] * 255).astype(np.uint8)
    for bits in (2, 6):
        data = codec.encode(image, bits)
        z = task.encode_latent(state["params"], jnp.asarray(image[None], jnp.float32) / 255.0)
        rng_lo, rng_hi = codec.latent_range
        levels = 2**bits - 1
        q = np.clip(np.round((np.asarray(z) - rng_lo) / (rng_hi - rng_lo) * levels), 0, levels)
        y = task.decode_latent(state["params"], jnp.asarray(rng_lo + q * (rng_hi - rng_lo) / levels, jnp.float32))
        expected = np.round(np.clip(np.asarray(y)[0], 0, 1) * 255).astype(np.uint8)
        np.testing.assert_array_equal(codec.decode(data), expected)
