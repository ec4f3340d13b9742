"""Tests of jaxcodec.codecs.inversion: losses, clipping, batched and data-parallel latent recovery."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from jaxcodec.codecs import inversion
from jaxcodec.errors import ConfigError
from jaxcodec.models.gan import Generator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A tiny freshly initialised generator: 4 latents -> 8x8 grey images.
LATENT_DIM = 4
GENERATOR = Generator(image_size=8, channels=1, width=4, max_width=16)
SETTINGS = dict(latent_dim=LATENT_DIM, steps=150, lr=0.1, loss="l2", restarts=3, clip="stochastic")
NUM_IMAGES = 6


def _setup():
    params = GENERATOR.init(jax.random.PRNGKey(0), jnp.zeros((1, LATENT_DIM)))
    z_true = jax.random.uniform(jax.random.PRNGKey(1), (NUM_IMAGES, LATENT_DIM), minval=-1, maxval=1)
    images = GENERATOR.apply(params, z_true)
    keys = jax.random.split(jax.random.PRNGKey(2), NUM_IMAGES)
    return params, z_true, images, keys


@pytest.fixture(scope="module")
def problem():
    params, z_true, images, keys = _setup()
    per_image = [
        inversion.invert(GENERATOR.apply, params, images[i : i + 1], rng=keys[i : i + 1], **SETTINGS)
        for i in range(NUM_IMAGES)
    ]
    z_single = np.concatenate([np.asarray(z) for z, _ in per_image])
    loss_single = np.concatenate([np.asarray(l) for _, l in per_image])
    z_batch, loss_batch = inversion.invert(GENERATOR.apply, params, images, rng=keys, **SETTINGS)
    return dict(
        params=params, z_true=np.asarray(z_true), images=images, keys=keys,
        z_single=z_single, loss_single=loss_single,
        z_batch=np.asarray(z_batch), loss_batch=np.asarray(loss_batch),
    )


def test_vmapped_batch_equals_per_image_runs(problem):
    np.testing.assert_allclose(problem["z_batch"], problem["z_single"], atol=1e-5)
    np.testing.assert_allclose(problem["loss_batch"], problem["loss_single"], rtol=1e-3, atol=1e-9)


def test_inversion_recovers_the_generating_latent(problem):
    # Lipton & Tripathi's test: images G(z*) with z* from the prior.
    assert np.all(np.abs(problem["z_batch"]) <= 1.0)
    mae = np.abs(problem["z_batch"] - problem["z_true"]).mean(axis=1)
    assert np.all(mae < 1e-2), mae
    recon = GENERATOR.apply(problem["params"], jnp.asarray(problem["z_batch"]))
    np.testing.assert_allclose(np.asarray(recon), np.asarray(problem["images"]), atol=1e-3)
    # The reported loss is the L2 loss of the returned latent.
    mse = np.mean((np.asarray(recon) - np.asarray(problem["images"])) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(problem["loss_batch"], mse, rtol=1e-3, atol=1e-9)


def test_data_parallel_on_four_devices_equals_single_device(problem):
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {REPO!r})
        import jax, numpy as np
        assert jax.device_count() == 4, jax.devices()
        from tests.test_inversion import _setup, GENERATOR, SETTINGS
        from jaxcodec.codecs import inversion
        params, z_true, images, keys = _setup()
        z, loss = inversion.invert(GENERATOR.apply, params, images, rng=keys, **SETTINGS)
        print(json.dumps({{"z": np.asarray(z).tolist(), "shards": len(z.sharding.device_set)}}))
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["shards"] == 4
    np.testing.assert_allclose(np.asarray(result["z"]), problem["z_single"], atol=1e-5)


def test_stochastic_clip_resamples_only_out_of_range_components():
    z = jnp.array([0.5, 1.5, -2.0, -0.3, 1.0, -1.0, 3.0, 0.0])
    key = jax.random.PRNGKey(7)
    out = np.asarray(inversion.stochastic_clip(z, key))
    outside = np.abs(np.asarray(z)) > 1
    np.testing.assert_array_equal(out[~outside], np.asarray(z)[~outside])  # ±1 count as inside
    assert np.all(np.abs(out) <= 1.0)
    # Each out-of-range component gets its own uniform draw from [-1, 1].
    expected = np.asarray(jax.random.uniform(key, z.shape, minval=-1.0, maxval=1.0))[outside]
    np.testing.assert_array_equal(out[outside], expected)
    assert len(set(out[outside].tolist())) == outside.sum()


def test_projected_clip_and_no_clip():
    z = jnp.array([0.5, 1.5, -2.0, -0.3])
    key = jax.random.PRNGKey(0)
    np.testing.assert_array_equal(
        inversion.clip_latent(z, key, "project"), np.array([0.5, 1.0, -1.0, -0.3], np.float32)
    )
    np.testing.assert_array_equal(inversion.clip_latent(z, key, None), z)
    with pytest.raises(ConfigError):
        inversion.clip_latent(z, key, "box")


@pytest.mark.parametrize("clip", ["stochastic", "project", None])
def test_clipping_keeps_latents_in_the_box(clip):
    params, _, images, _ = _setup()
    # A huge learning rate throws unconstrained Adam steps (size ~lr) out of the box.
    init, step = inversion.make_inversion_step(
        GENERATOR.apply, lr=5.0, steps=4, loss="l1", clip=clip, schedule=None
    )
    step = jax.jit(step)
    z = jnp.full((LATENT_DIM,), 0.9)
    state = init(z)
    seen = []
    for t in range(4):
        z, state, _ = step(params, z, state, images[0], jax.random.PRNGKey(3), t)
        seen.append(np.asarray(z))
    seen = np.stack(seen)
    if clip is None:
        assert np.abs(seen).max() > 1.0
    else:
        assert np.abs(seen).max() <= 1.0


def test_image_losses_match_references():
    rng = np.random.default_rng(0)
    x = rng.random((16, 16, 3)).astype(np.float32)
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1).astype(np.float32)
    l1 = float(inversion.image_loss(jnp.asarray(x), jnp.asarray(y), "l1"))
    l2 = float(inversion.image_loss(jnp.asarray(x), jnp.asarray(y), "l2"))
    np.testing.assert_allclose(l1, np.mean(np.abs(x - y)), rtol=1e-5)
    np.testing.assert_allclose(l2, np.mean((x - y) ** 2), rtol=1e-5)
    ssim_ref = structural_similarity(
        x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=-1
    )
    ssim_loss = float(inversion.image_loss(jnp.asarray(x), jnp.asarray(y), "ssim"))
    np.testing.assert_allclose(ssim_loss, 1.0 - ssim_ref, atol=1e-4)
    mix = float(inversion.image_loss(jnp.asarray(x), jnp.asarray(y), {"l1": 2.0, "ssim": 0.5}))
    np.testing.assert_allclose(mix, 2.0 * l1 + 0.5 * ssim_loss, rtol=1e-5)


def test_loss_spec_validation():
    assert inversion.normalize_loss("l1") == (("l1", 1.0),)
    assert inversion.normalize_loss({"ssim": 1, "l2": 0.5}) == (("l2", 0.5), ("ssim", 1.0))
    with pytest.raises(ConfigError):
        inversion.normalize_loss("perceptual")
    with pytest.raises(ConfigError):
        inversion.normalize_loss({"l2": 1.0, "lpips": 1.0})


def _affine_generator(g_params, z):
    """An affine "generator" ``z -> A z + b`` as (n, 6, 5, 1) images: its least-squares
    inverse is known in closed form."""
    a, b = g_params
    return (z @ a.T + b).reshape(z.shape[0], 6, 5, 1)


def test_levenberg_marquardt_reaches_the_least_squares_latent():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(30, 4)) * np.array([5.0, 1.0, 0.2, 0.05])  # condition number ~100
    b = rng.normal(size=30)
    x = rng.normal(size=(6, 5, 1))  # not in the range: the residual stays non-zero
    want = np.linalg.lstsq(a, x.reshape(-1) - b, rcond=None)[0]
    refine = jax.jit(inversion.make_refine_step(_affine_generator, clip=None))
    g_params = (jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
    z, damping = jnp.zeros(4), jnp.float32(1e-2)
    for _ in range(8):
        z, damping = refine(g_params, z, damping, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(np.asarray(z), want, rtol=1e-3, atol=1e-3)
    assert np.abs(want).max() > 0.5  # not a comparison near zero


def test_refinement_never_raises_the_loss_and_respects_the_box():
    rng = np.random.default_rng(4)
    a = jnp.asarray(rng.normal(size=(30, 4)), jnp.float32)
    g_params = (a, jnp.zeros(30, jnp.float32))
    target = _affine_generator(g_params, jnp.full((1, 4), 3.0))[0]  # generated from outside the box
    refine = jax.jit(inversion.make_refine_step(_affine_generator, clip="project"))
    z, damping = jnp.zeros(4), jnp.float32(1e-2)
    losses = []
    for _ in range(6):
        z, damping = refine(g_params, z, damping, target)
        losses.append(float(jnp.sum((_affine_generator(g_params, z[None])[0] - target) ** 2)))
        assert np.all(np.abs(np.asarray(z)) <= 1.0)
    assert all(b <= a for a, b in zip(losses, losses[1:]))


def test_refined_inversion_is_exact_in_both_loop_drivers():
    params, z_true, images, keys = _setup()
    settings = dict(SETTINGS, steps=40, restarts=2, refine=15)
    z_adam, _ = inversion.invert(GENERATOR.apply, params, images, rng=keys, **dict(settings, refine=0))
    z_host, loss_host = inversion.invert(GENERATOR.apply, params, images, rng=keys, loop="host", **settings)
    z_scan, loss_scan = inversion.invert(GENERATOR.apply, params, images, rng=keys, loop="scan", **settings)
    err_adam = np.abs(np.asarray(z_adam) - np.asarray(z_true)).mean(axis=1)
    err = np.abs(np.asarray(z_host) - np.asarray(z_true)).mean(axis=1)
    assert np.all(err < 1e-4) and err.max() < err_adam.max() / 10, (err, err_adam)
    np.testing.assert_allclose(np.asarray(z_scan), np.asarray(z_host), atol=1e-4)
    np.testing.assert_allclose(np.asarray(loss_scan), np.asarray(loss_host), rtol=1e-2, atol=1e-10)


def test_refinement_in_chunks_equals_one_chunk(monkeypatch):
    """Bounded-memory refinement (chunks of REFINE_CHUNK latents, with a remainder)
    gives the latents of refining the whole batch at once, in both drivers."""
    params, _, images, keys = _setup()
    settings = dict(SETTINGS, steps=20, restarts=2, refine=4)
    whole = {loop: inversion.invert(GENERATOR.apply, params, images, rng=keys, loop=loop, **settings)[0]
             for loop in ("host", "scan")}
    monkeypatch.setattr(inversion, "REFINE_CHUNK", 5)  # 12 latents: chunks of 5, 5, 2
    inversion._compiled.cache_clear()
    try:
        for loop in ("host", "scan"):
            z, _ = inversion.invert(GENERATOR.apply, params, images, rng=keys, loop=loop, **settings)
            np.testing.assert_allclose(np.asarray(z), np.asarray(whole[loop]), atol=1e-5)
    finally:
        inversion._compiled.cache_clear()


def test_refinement_needs_the_l2_loss():
    params, _, images, keys = _setup()
    with pytest.raises(ConfigError, match="l2"):
        inversion.invert(GENERATOR.apply, params, images, rng=keys, **dict(SETTINGS, loss="l1", refine=3))
    with pytest.raises(ConfigError):
        inversion.invert(GENERATOR.apply, params, images, rng=keys, **dict(SETTINGS, refine=-1))
