"""The mean-scale hyperprior's conditional decoder (``model.synthesis_modulation``):
per-quality channel scales and biases inside ``g_s`` (Choi et al., ICCV 2019)."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec import data
from jaxcodec.models.hyperprior import MeanScaleHyperprior
from jaxcodec.train.tasks import hyperprior as hyperprior_task


def _task(modulation, features=16, latent_channels=24):
    config = hyperprior_task.default_config()
    config.model.features, config.model.latent_channels = features, latent_channels
    config.model.synthesis_modulation = modulation
    return hyperprior_task.MeanScaleTask(config)


def _latent(seed=0, shape=(2, 4, 5, 24)):
    return jnp.asarray(np.random.default_rng(seed).normal(0.0, 3.0, shape), jnp.float32)


def _pair(seed=0):
    """A plain model's parameters and the same with random modulation tables added."""
    plain, modulated = _task(False), _task(True)
    x = jnp.zeros((1, 64, 64, 3), jnp.float32)
    params = jax.device_get(plain.init_state(jax.random.key(seed), x)["params"])
    fresh = jax.device_get(modulated.init_state(jax.random.key(seed + 1), x)["params"])
    rng = np.random.default_rng(seed)
    shape = fresh["params"]["synthesis_bias"].shape
    assert shape == (8, 3, 16)  # qualities, g_s's hidden layers, N
    tables = {"synthesis_log_scale": rng.normal(0.0, 0.3, shape).astype(np.float32),
              "synthesis_bias": np.zeros(shape, np.float32)}
    return plain, modulated, params, {**params, "params": {**params["params"], **tables}}


def _folded(params, scales):
    """The plain model whose ``g_s`` layer ``l+1`` reads its input channels multiplied by
    ``scales[l]``: what a per-channel scale after IGDN ``l`` computes, folded into the
    next convolution's kernel (its last-but-one axis is the input channel)."""
    g_s = jax.tree.map(np.array, params["params"]["g_s"])
    for layer, scale in enumerate(scales):
        kernel = g_s[f"conv{layer + 1}"]["kernel"]
        g_s[f"conv{layer + 1}"]["kernel"] = kernel * scale[:, None]
    return {**params, "params": {**params["params"], "g_s": g_s}}


def test_a_model_without_modulation_starts_unchanged():
    """The identity tables :meth:`MeanScaleTask.complete_start` adds leave every output as it was."""
    plain, modulated, params, _ = _pair()
    fresh = jax.device_get(modulated.init_state(jax.random.key(5), jnp.zeros((1, 64, 64, 3)))["params"])
    started = modulated.complete_start(params, fresh)
    assert np.all(started["params"]["synthesis_log_scale"] == 0) and np.all(started["params"]["synthesis_bias"] == 0)
    photo = data.open_dataset("sample:photos", "test").native(1)[:64, :128].astype(np.float32) / 255.0
    x, q = jnp.asarray(photo[None].repeat(2, 0)), jnp.array([1.0, 5.7])
    np.testing.assert_array_equal(np.asarray(plain.forward(params, x, q, None)[0]),
                                  np.asarray(modulated.forward(started, x, q, None)[0]))


def test_scales_act_as_the_next_layer_reading_scaled_channels_and_interpolate_geometrically():
    plain, modulated, params, with_tables = _pair()
    y = _latent()
    log_scale = with_tables["params"]["synthesis_log_scale"]
    for quality, rows in ((3.0, log_scale[2]), (5.5, 0.5 * (log_scale[4] + log_scale[5]))):
        q = jnp.full((2,), quality)
        got = modulated.model.apply(with_tables, y, q, method=MeanScaleHyperprior.synthesis)
        want = plain.model.apply(_folded(params, np.exp(rows)), y, q, method=MeanScaleHyperprior.synthesis)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5 * np.max(np.abs(want)))
    moved = plain.model.apply(params, y, jnp.full((2,), 3.0), method=MeanScaleHyperprior.synthesis)
    assert np.max(np.abs(np.asarray(moved) - np.asarray(got))) > 1e-2 * np.max(np.abs(moved))  # the tables do change the image


def test_biases_interpolate_linearly_and_each_image_uses_its_own_quality():
    _, modulated, _, with_tables = _pair()
    rng = np.random.default_rng(3)
    bias = rng.normal(0.0, 0.2, with_tables["params"]["synthesis_bias"].shape).astype(np.float32)
    flat_gain = np.zeros_like(with_tables["params"]["inverse_gain"])  # the same at every quality
    tables = {**with_tables, "params": {**with_tables["params"], "synthesis_bias": bias, "inverse_gain": flat_gain}}
    midway = np.array(bias)
    midway[1] = 0.25 * bias[1] + 0.75 * bias[2]  # quality 2.75 reads rows 2 and 3 (1-based)
    midway_scale = np.array(tables["params"]["synthesis_log_scale"])
    midway_scale[1] = 0.25 * midway_scale[1] + 0.75 * midway_scale[2]
    rebuilt = {**tables, "params": {**tables["params"], "synthesis_bias": midway, "synthesis_log_scale": midway_scale}}
    y = _latent(1)
    got = modulated.model.apply(tables, y, jnp.array([2.75, 7.0]), method=MeanScaleHyperprior.synthesis)
    want = modulated.model.apply(rebuilt, y, jnp.array([2.0, 7.0]), method=MeanScaleHyperprior.synthesis)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5 * np.max(np.abs(want)))


def test_training_moves_the_tables_and_the_codec_decodes_with_them():
    """One step gives the tables a gradient; the codec of the trained state decodes at a real
    quality to what the model's own synthesis gives for the decoded symbols."""
    task = _task(True)
    photo = data.open_dataset("sample:photos", "test").native(1).astype(np.float32) / 255.0
    batch = jnp.asarray(np.stack([photo[:64, :64], photo[64:128, 64:128]]))
    state = task.init_state(jax.random.key(0), batch)
    step = jax.jit(task.train_step)
    for i in range(3):
        state, _ = step(state, batch, jax.random.key(i))
    tables = jax.device_get(state["params"]["params"])
    assert np.max(np.abs(tables["synthesis_bias"])) > 0 and np.max(np.abs(tables["synthesis_log_scale"])) > 0
    codec = task.make_codec(state)
    image = np.ascontiguousarray(data.open_dataset("sample:photos", "test").native(0)[:64, :96])
    decoded = codec.decode(codec.encode(image, 2.5))
    z_hat, symbols, _ = codec.latents(image, 2.5)
    quality = 2.5
    y_hat = jnp.asarray((symbols.astype(np.float64) + codec.entropy_parameters(z_hat)[0]).astype(np.float32)[None])

    def synthesised(params):
        x = task.model.apply(params, y_hat, jnp.array([quality]), method=MeanScaleHyperprior.synthesis)
        return np.round(np.clip(np.asarray(x)[0], 0.0, 1.0) * 255.0).astype(np.uint8)[:64, :96]

    np.testing.assert_array_equal(decoded, synthesised(state["params"]))
    identity = {k: (np.zeros_like(v) if k.startswith("synthesis_") else v) for k, v in tables.items()}
    assert np.any(decoded != synthesised({**state["params"], "params": identity}))
