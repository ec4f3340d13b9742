"""Tests of jaxcodec.models.gan: layers, GANTask steps, configs and the GAN-reversal codec."""

import importlib.util
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcodec.codecs import container
from jaxcodec.entropy.histogram import HistogramModel
from jaxcodec.codecs import latent as latent_codec
from jaxcodec.errors import ConfigError
from jaxcodec.train.tasks import build_task
from jaxcodec.models import gan
from jaxcodec.train.tasks import gan as gan_task

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "jaxcodec", "samples", "mnist_sample.npz")


def _config(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def _tiny_config(shape=(16, 16, 1)):
    config = _config("gan_mnist")
    config.model.image_shape = shape
    config.model.latent_dim = 6
    config.model.g_width = 4
    config.model.d_width = 4
    config.model.max_width = 16
    config.model.bit_depths = (4, 6)
    config.model.inversion.steps = 20
    config.model.inversion.restarts = 2
    return config


@pytest.fixture(scope="module")
def tiny():
    """A tiny 16x16 GAN task and its initial state (jitted: eager Flax init is slow)."""
    task = gan_task.GANTask(_tiny_config())
    state = jax.jit(task.init_state)(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 1)))
    return task, state


def test_upsample_and_space_to_depth_match_numpy():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    up = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    np.testing.assert_array_equal(gan.upsample_nearest(jnp.asarray(x)), up)
    s2d = np.asarray(gan.space_to_depth(jnp.asarray(up)))
    assert s2d.shape == (2, 3, 4, 20)
    # Each output pixel holds its 2x2 block in (row, column, channel) order.
    block = up[1, 2:4, 6:8, :].reshape(-1)
    np.testing.assert_array_equal(s2d[1, 1, 3], block)


@pytest.mark.parametrize(
    "name,shape,latent_dim",
    [("gan_mnist", (28, 28, 1), 32), ("gan_celeba64", (64, 64, 3), 100), ("gan_celeba128", (128, 128, 3), 100)],
)
def test_configs_build_networks_of_the_right_shapes(name, shape, latent_dim):
    config = _config(name)
    task = build_task(config)
    assert isinstance(task, gan_task.GANTask)
    assert task.image_shape == shape and task.latent_dim == latent_dim
    state = jax.eval_shape(task.init_state, jax.random.PRNGKey(0), jnp.zeros((2, *shape)))
    images = jax.eval_shape(task.generator.apply, state["g_params"], jnp.zeros((5, latent_dim)))
    logits = jax.eval_shape(task.discriminator.apply, state["d_params"], jnp.zeros((5, *shape)))
    assert images.shape == (5, *shape) and logits.shape == (5,)


def test_init_state_rejects_batches_of_another_shape():
    task = gan_task.GANTask(_tiny_config())
    with pytest.raises(ConfigError):
        task.init_state(jax.random.PRNGKey(0), jnp.zeros((2, 28, 28, 1)))
    config = _tiny_config()
    config.model.image_shape = (16, 12, 1)
    with pytest.raises(ConfigError):
        gan_task.GANTask(config)


def test_generator_outputs_images_in_unit_range(tiny):
    task, state = tiny
    z = gan.sample_latents(jax.random.PRNGKey(1), 8, task.latent_dim)
    assert float(jnp.min(z)) >= -1 and float(jnp.max(z)) <= 1
    x = np.asarray(jax.jit(task.generate)(state["g_params"], 3.0 * z))
    assert x.shape == (8, 16, 16, 1) and x.min() >= 0 and x.max() <= 1
    assert x.std(axis=0).max() > 0  # different latents give different images


def test_training_steps_on_real_digits_reduce_discriminator_loss():
    digits = np.load(SAMPLE)["x_train"][:32].astype(np.float32)[..., None] / 255.0
    config = _config("gan_mnist")
    config.model.g_width = config.model.d_width = 8
    config.learning_rate = 1e-3
    task = build_task(config)
    state = jax.jit(task.init_state)(jax.random.PRNGKey(0), digits)
    evaluate = jax.jit(task.eval_step)
    before = evaluate(state, digits)
    step = jax.jit(task.train_step)
    for i in range(6):
        state, metrics = step(state, digits, jax.random.PRNGKey(i))
    after = evaluate(state, digits)
    assert int(state["step"]) == 6
    assert np.isfinite(float(metrics["g_loss"]))
    assert float(after["d_loss"]) < float(before["d_loss"]) - 0.05, (before, after)
    assert float(after["d_real"]) > float(before["d_real"])
    # eval_step's d_loss is the binary cross-entropy of the two sets of logits.
    z = gan.sample_latents(jax.random.PRNGKey(0), 32, task.latent_dim)
    discriminate = jax.jit(task.discriminator.apply)
    real = np.asarray(discriminate(state["d_params"], digits), np.float64)
    fake = np.asarray(discriminate(state["d_params"], jax.jit(task.generate)(state["g_params"], z)), np.float64)
    bce = np.mean(np.log1p(np.exp(-real))) + np.mean(np.log1p(np.exp(fake)))
    np.testing.assert_allclose(float(after["d_loss"]), bce, rtol=1e-4)


def test_r1_penalty_equals_per_image_input_gradients():
    config = _tiny_config()
    config.model.r1_gamma = 2.0
    task = gan_task.GANTask(config)
    x = jax.random.uniform(jax.random.PRNGKey(3), (4, 16, 16, 1))
    state = jax.jit(task.init_state)(jax.random.PRNGKey(0), x)
    z = gan.sample_latents(jax.random.PRNGKey(1), 4, task.latent_dim)
    # The discriminator loss that train_step differentiates, with its R1 term.
    _, metrics = jax.jit(task._d_loss)(state["d_params"], state["g_params"], x, z)

    def logit_one(image):
        return task.discriminator.apply(state["d_params"], image[None])[0]

    grads = np.asarray(jax.jit(jax.vmap(jax.grad(logit_one)))(x), np.float64)
    r1 = np.mean(np.sum(grads**2, axis=(1, 2, 3)))
    np.testing.assert_allclose(float(metrics["r1"]), r1, rtol=1e-4)


def test_prior_tables_are_uniform(tiny):
    task, _ = tiny
    tables = task.prior_tables()
    for bits in (4, 6):
        freqs = tables[f"bits{bits}_freqs"]
        assert freqs.shape == (task.latent_dim, 2**bits + 1)  # levels + escape
        regular = freqs[:, :-1].astype(np.float64)
        assert regular.max() - regular.min() <= 1  # equal up to rounding to integers
        assert regular.sum(axis=1).min() > 0.995 * 2**16  # the escape gets almost nothing


def test_codec_round_trip_decodes_generator_of_dequantised_latent(tiny):
    task, state = tiny
    codec = task.make_codec(state, None)
    assert codec.qualities == [4, 6]
    image = (np.random.default_rng(0).random((16, 16, 1)) * 255).astype(np.uint8)
    data = codec.encode(image, 6)
    decoded = codec.decode(data)
    assert decoded.shape == (16, 16, 1) and decoded.dtype == np.uint8
    # Independently: parse the stream, decode the symbols, run G on the dequantised latent.
    header, payload = container.unpack(data)
    assert header.model == "gan" and header.quality == 6 and header.latent_shape == (task.latent_dim,)
    tables = task.prior_tables()
    hist = HistogramModel.from_arrays({"freqs": tables["bits6_freqs"], "offsets": tables["bits6_offsets"]})
    symbols = hist.decode(payload)
    np.testing.assert_array_equal(symbols, np.asarray(latent_codec.quantize(codec.latent(image), (-1, 1), 6)))
    z_hat = -1.0 + symbols.astype(np.float32) * (2.0 / 63.0)
    expected = np.asarray(jax.jit(task.generate)(state["g_params"], jnp.asarray(z_hat[None])))[0]
    np.testing.assert_array_equal(decoded, np.round(np.clip(expected, 0, 1) * 255).astype(np.uint8))
    # Encoding is deterministic, and uniform tables cost about `bits` bits per latent.
    assert codec.encode(image, 6) == data
    assert abs(len(payload) - task.latent_dim * 6 / 8) <= 4


def test_inversion_refine_setting_reaches_the_inversion(tiny):
    """model.inversion.refine polishes the task's inversion: G(z*) is matched at least
    as well, and far better than Adam alone; with a non-L2 loss it is refused."""
    task, state = tiny
    z_true = jax.random.uniform(jax.random.PRNGKey(7), (3, task.latent_dim), minval=-0.9, maxval=0.9)
    images = jax.jit(task.generate)(state["g_params"], z_true)
    _, adam_loss = task.invert(state["g_params"], images)
    refined_config = _tiny_config()
    refined_config.model.inversion.refine = 8
    refined = gan_task.GANTask(refined_config)
    _, refined_loss = refined.invert(state["g_params"], images)
    assert np.all(np.asarray(refined_loss) <= np.asarray(adam_loss))
    assert float(np.max(refined_loss)) < float(np.max(adam_loss)) / 10
    refined_config.model.inversion.loss = "l1"
    with pytest.raises(ConfigError, match="l2"):
        gan_task.GANTask(refined_config).invert(state["g_params"], images)
