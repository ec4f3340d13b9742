"""Widening a trained mean-scale hyperprior's transforms (more hidden channels, same function),
and a codec whose hyper-networks are narrower than its transforms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcodec import data
from jaxcodec.errors import ConfigError
from jaxcodec.train import widening
from jaxcodec.train.tasks import hyperprior as hyperprior_task


def _task(features, hyper_features=0, modulation=True, latent_channels=12):
    config = hyperprior_task.default_config()
    config.model.features, config.model.latent_channels = features, latent_channels
    config.model.hyper_features = hyper_features
    config.model.synthesis_modulation = modulation
    config.learning_rate = 1e-3
    return hyperprior_task.MeanScaleTask(config)


def _perturbed(params, seed):
    """Trained-looking parameters: every array moved off its initial value (so no weight is
    zero or an identity by accident, as GDN's γ and the modulation start)."""
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    moved = [np.asarray(a) + 0.05 * rng.standard_normal(np.shape(a)).astype(np.float32) for a in leaves]
    return jax.tree.unflatten(tree, moved)


@pytest.fixture(scope="module")
def narrow_and_wide():
    x = jnp.asarray(np.random.default_rng(1).random((2, 64, 64, 3)), jnp.float32)
    narrow, wide = _task(8), _task(12, hyper_features=8)
    source = _perturbed(jax.device_get(narrow.init_state(jax.random.key(0), x)["params"]), 2)
    fresh = jax.device_get(wide.init_state(jax.random.key(3), x)["params"])
    return narrow, wide, source, wide.complete_start(source, fresh), x


def test_widened_model_computes_what_the_narrow_one_did(narrow_and_wide):
    narrow, wide, source, widened, x = narrow_and_wide
    assert widened["params"]["g_a"]["conv1"]["kernel"].shape == (5, 5, 12, 12)
    assert widened["params"]["g_s"]["conv1"]["kernel"].shape == (3, 3, 12, 48)
    assert widened["params"]["synthesis_bias"].shape[-1] == 12
    assert widened["params"]["h_a"]["conv0"]["kernel"].shape[-1] == 8  # the hyper-networks keep their width
    quality = jnp.asarray([1.3, 7.6])
    for rng in (None, jax.random.key(4)):  # rounded, and with the training noise
        expected = narrow.forward(source, x, quality, rng)
        got = wide.forward(widened, x, quality, rng)
        for a, b in zip(expected, got):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)


def test_new_channels_are_live_and_learn(narrow_and_wide):
    """The new channels carry signal in and receive a gradient on the way out, so training
    can use them (zero weights both ways would stay zero)."""
    _, wide, _, widened, x = narrow_and_wide
    grads, _ = jax.grad(wide.loss_fn, has_aux=True)(widened, x, jax.random.key(5))
    out_of_new = np.asarray(grads["params"]["g_s"]["conv1"]["kernel"])[:, :, 8:, :]
    assert np.abs(out_of_new).max() > 0
    into_new = np.asarray(widened["params"]["g_a"]["conv1"]["kernel"])[:, :, :, 8:]
    assert np.abs(into_new).max() > 0
    # and one step of training changes what the wide model computes
    state = {"step": jnp.zeros((), jnp.int32), "params": widened, "opt": wide.tx.init(widened)}
    stepped, _ = jax.jit(wide.train_step)(state, x, jax.random.key(6))
    before = wide.forward(widened, x, jnp.asarray([4.0, 4.0]), None)[0]
    after = wide.forward(stepped["params"], x, jnp.asarray([4.0, 4.0]), None)[0]
    assert float(jnp.max(jnp.abs(after - before))) > 0


def test_more_latent_channels_code_what_the_narrow_model_did():
    """M=12 embedded in M=20: the same pixels at every quality, the old channels under the same
    means and scales, the new ones rounded to zero about a zero mean under the smallest scale
    (a few bits at most), the real codec's old symbols unchanged; and the new channels live:
    the distortion's gradient reaches them from the first step."""
    x = jnp.asarray(np.random.default_rng(8).random((2, 64, 64, 3)), jnp.float32)
    narrow, wide = _task(8), _task(8, latent_channels=20)
    source = _perturbed(jax.device_get(narrow.init_state(jax.random.key(0), x)["params"]), 9)
    widened = wide.complete_start(source, jax.device_get(wide.init_state(jax.random.key(1), x)["params"]))
    assert widened["params"]["h_s"]["conv2"]["kernel"].shape[-1] == 40
    assert widened["params"]["gain"].shape == (8, 20)
    quality = jnp.asarray([1.0, 8.0])
    for rng in (None, jax.random.key(4)):
        expected, got = narrow.forward(source, x, quality, rng), wide.forward(widened, x, quality, rng)
        np.testing.assert_allclose(np.asarray(got[0]), np.asarray(expected[0]), rtol=1e-5, atol=1e-6)  # pixels
        np.testing.assert_allclose(np.asarray(got[2]), np.asarray(expected[2]), rtol=1e-5, atol=1e-9)  # MSE
    bits_narrow, bits_wide = (np.asarray(t.forward(p, x, quality, None)[1]) for t, p in ((narrow, source), (wide, widened)))
    assert np.all(bits_wide >= bits_narrow - 1e-3) and np.all(bits_wide - bits_narrow < 0.01 * bits_narrow)
    apply = wide.model.apply
    z_hat = jnp.round(apply(widened, apply(widened, x, quality, method=wide.model.analysis), method=wide.model.hyper_analysis))
    mean_w, scale_w = apply(widened, z_hat, method=wide.model.entropy_parameters)
    mean_n, scale_n = narrow.model.apply(source, z_hat, method=narrow.model.entropy_parameters)
    np.testing.assert_allclose(np.asarray(mean_w[..., :12]), np.asarray(mean_n), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(scale_w[..., :12]), np.asarray(scale_n), rtol=1e-5, atol=1e-6)
    assert float(jnp.max(jnp.abs(scale_w[..., 12:]))) < 0.11  # below the smallest coding scale
    assert not np.any(np.asarray(mean_w[..., 12:]))  # a zero mean: the new channels decode as exact zeros
    # the distortion alone (no rate term) pulls on g_a's new outputs, as on the old ones
    grads = jax.grad(lambda p: wide.forward(p, x, quality, jax.random.key(5))[2].sum())(widened)
    kernel_grads = np.abs(np.asarray(grads["params"]["g_a"]["conv3"]["kernel"]))
    assert kernel_grads[..., 12:].mean() > 0.05 * kernel_grads[..., :12].mean()
    codec_n, codec_w = narrow.make_codec({"params": source}), wide.make_codec({"params": widened})
    image = np.ascontiguousarray(data.open_dataset("sample:photos", "test").native(0)[:64, :96])
    for q in (1, 8):
        zn, sn, _ = codec_n.latents(image, q)
        zw, sw, _ = codec_w.latents(image, q)
        np.testing.assert_array_equal(zw, zn)
        np.testing.assert_array_equal(sw[..., :12], sn)
        assert not np.any(sw[..., 12:])
        np.testing.assert_array_equal(codec_w.decode(codec_w.encode(image, q)), codec_n.decode(codec_n.encode(image, q)))


def test_subpixel_outputs_widen_per_group():
    """A sub-pixel kernel's outputs ``(r·2+s)·F + c`` keep their offset and channel: the old
    channel c of group g lands at g·F' + c, and the new inputs feed no old output."""
    source = {"kernel": np.arange(2 * 3 * 4 * 3, dtype=np.float32).reshape(1, 2, 3, 4 * 3) + 1}
    fresh = {"kernel": np.ones((1, 2, 5, 4 * 7), np.float32)}
    got = widening.widen(source, fresh, subpixel=True, new_scale=0.5)["kernel"]
    for g in range(4):
        np.testing.assert_array_equal(got[:, :, :3, g * 7 : g * 7 + 3], source["kernel"][..., g * 3 : g * 3 + 3])
        np.testing.assert_array_equal(got[:, :, 3:, g * 7 : g * 7 + 3], 0.0)
        np.testing.assert_array_equal(got[:, :, :, g * 7 + 3 : g * 7 + 7], 0.5)


def test_can_widen_only_into_larger_arrays_of_the_same_names():
    small, large = {"a": {"kernel": np.zeros((3, 3, 2, 2))}}, {"a": {"kernel": np.zeros((3, 3, 4, 4))}}
    assert widening.can_widen(small, large)
    assert not widening.can_widen(large, small)
    assert not widening.can_widen(small, small)  # nothing to widen
    assert not widening.can_widen(small, {"b": {"kernel": np.zeros((3, 3, 4, 4))}})
    assert not widening.can_widen(small, {"a": {"kernel": np.zeros((3, 3, 4))}})


def test_a_start_wider_than_the_model_is_refused(tmp_path):
    """``init_from`` a wider model into a narrower one: one clear error, no half-built run."""
    from jaxcodec.train import engine

    wide_dir = tmp_path / "wide"
    config = _task(12, hyper_features=8).config
    config.data.train = "sample:photos"
    config.data.crop = 64
    config.batch_size = 1
    config.num_steps = 1
    config.checkpoint_every = 1
    engine.train_and_evaluate(config, str(wide_dir))
    narrow_config = _task(8).config
    narrow_config.data.train, narrow_config.data.crop = "sample:photos", 64
    narrow_config.batch_size, narrow_config.num_steps = 1, 1
    narrow_config.init_from = str(wide_dir)
    with pytest.raises(ConfigError, match="init_from"):
        engine.train_and_evaluate(narrow_config, str(tmp_path / "narrow"))


def test_codec_with_narrower_hyper_networks_round_trips():
    """A model whose hyper-latent has fewer channels than its transforms codes and decodes
    exactly (the tables and the stream follow the hyper-latent's channels)."""
    task = _task(12, hyper_features=8)
    state = task.init_state(jax.random.key(7), np.zeros((1, 64, 64, 3), np.float32))
    codec = task.make_codec(state)
    assert codec.hyper_channels == 8 and "hyper-latent 8" in codec.description
    image = np.ascontiguousarray(data.open_dataset("sample:photos", "test").native(0)[:80, :96])
    for quality in (1, 5.5):
        stream = codec.encode(image, quality)
        z_hat, symbols, _ = codec.latents(image, quality)
        assert z_hat.shape[-1] == 8
        np.testing.assert_array_equal(codec.decode_symbols(stream), np.concatenate([z_hat.ravel(), symbols.ravel()]))
        assert codec.decode(stream).shape == image.shape


def test_free_latents_wake_the_new_channels_then_end():
    """``model.free_latents_from``: during its first steps the new channels reach the synthesis
    with the training noise and leave the rate, so ``g_s``'s weights from them get a gradient
    (under the mixed quantisation their symbols are zeros and that gradient is exactly zero);
    from ``model.free_latents_steps`` on the task is the plain one again, bit for bit."""
    x = jnp.asarray(np.random.default_rng(8).random((2, 64, 64, 3)), jnp.float32)
    narrow, plain = _task(8), _task(8, latent_channels=20)
    free = _task(8, latent_channels=20)
    free.config.model.free_latents_from, free.config.model.free_latents_steps = 12, 5
    free = hyperprior_task.MeanScaleTask(free.config)
    source = _perturbed(jax.device_get(narrow.init_state(jax.random.key(0), x)["params"]), 9)
    widened = plain.complete_start(source, jax.device_get(plain.init_state(jax.random.key(1), x)["params"]))
    quality, rng = jnp.asarray([1.0, 8.0]), jax.random.key(4)

    def g_s_grad(task, step):
        grads = jax.grad(lambda p: task.forward(p, x, quality, rng, step)[2].sum())(widened)
        return np.abs(np.asarray(grads["params"]["g_s"]["conv0"]["kernel"]))

    assert not np.any(g_s_grad(plain, 0)[:, :, 12:])  # zero symbols: no gradient to the weights from them
    woken = g_s_grad(free, 0)
    assert woken[:, :, 12:].mean() > 0.01 * woken[:, :, :12].mean()
    # the rate of the free channels is left out: the bits are the old channels' (and the hyper-latent's)
    bits_free = np.asarray(free.forward(widened, x, quality, rng, 0)[1])
    bits_plain = np.asarray(plain.forward(widened, x, quality, rng, 0)[1])
    assert np.all(bits_free < bits_plain)
    for after in (5, 9):  # the warm-up is over: the plain task exactly
        for got, expected in zip(free.forward(widened, x, quality, rng, after), plain.forward(widened, x, quality, rng, after)):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
    for bad in ((20, 5), (-1, 5), (12, -1)):
        config = free.config.copy_and_resolve_references()
        config.model.free_latents_from, config.model.free_latents_steps = bad
        with pytest.raises(ConfigError, match="free_latents"):
            hyperprior_task.MeanScaleTask(config)
    config = free.config.copy_and_resolve_references()
    config.model.quantizer = "sga"
    with pytest.raises(ConfigError, match="free_latents_from needs"):
        hyperprior_task.MeanScaleTask(config)
