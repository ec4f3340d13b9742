"""Encoder-side latent refinement (jaxcodec.codecs.refinement): SGA samples against their
analytic distribution, the search against a brute-force optimum of a separable codec,
and the shipped factorized codec scored from real bytes and decoded pixels."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data

import jaxcodec
from jaxcodec.codecs import refinement
from jaxcodec.errors import ConfigError, ModelError
from jaxcodec.zoo import LadderCodec, get_codec, refined, split_refine

# -- SGA ------------------------------------------------------------------------------


def test_sga_samples_lie_between_neighbours_and_round_up_with_the_gumbel_max_probability():
    y = jnp.asarray([-2.7, -0.5, 0.1, 0.35, 0.5, 0.8, 3.95], jnp.float32)
    tau = 0.3
    keys = jax.random.split(jax.random.PRNGKey(1), 4000)
    samples = np.asarray(jax.vmap(lambda k: refinement.sga_round(y, tau, k))(keys), np.float64)
    floor = np.floor(np.asarray(y, np.float64))
    assert np.all(samples >= floor - 1e-6) and np.all(samples <= floor + 1 + 1e-6)
    # With Gumbel noise the larger of (logit + noise) wins with softmax probability:
    # P(up) = e^ℓ_up / (e^ℓ_down + e^ℓ_up), ℓ_down = -atanh(r)/τ, ℓ_up = -atanh(1-r)/τ.
    r = np.clip(np.asarray(y, np.float64) - floor, 1e-5, 1 - 1e-5)
    l_down, l_up = -np.arctanh(r) / tau, -np.arctanh(1 - r) / tau
    p_up = np.exp(l_up) / (np.exp(l_down) + np.exp(l_up))
    went_up = (samples - floor > 0.5).mean(axis=0)
    np.testing.assert_allclose(went_up, p_up, atol=0.03)
    assert went_up[4] == pytest.approx(0.5, abs=0.03)  # exactly between: a fair coin


def test_sga_turns_into_rounding_as_the_temperature_falls_and_has_gradients():
    y = jnp.linspace(-3.0, 3.0, 601)
    frac = np.asarray(y - jnp.floor(y))
    clear = np.abs(frac - 0.5) > 0.25  # nearer to one integer than 1/4 : 3/4
    cold = np.asarray(refinement.sga_round(y, 0.05, jax.random.PRNGKey(0)))
    np.testing.assert_allclose(cold[clear], np.round(np.asarray(y))[clear], atol=0.01)
    grads = jax.grad(lambda v: jnp.sum(refinement.sga_round(v, 0.5, jax.random.PRNGKey(0)) ** 2))(y)
    assert np.all(np.isfinite(np.asarray(grads))) and np.abs(np.asarray(grads)).max() > 0
    assert float(refinement.temperature(0, 10)) == pytest.approx(refinement.TAU_START)
    assert float(refinement.temperature(9, 10)) == pytest.approx(refinement.TAU_END)


# -- the search on a codec whose optimum is known ---------------------------------------

STEP = 0.05  # the toy decoder's quantisation step
SCALE = 1.5  # logistic scale of the toy entropy model


def toy_synthesis(params, y):
    return y * params["step"]


def toy_bits(params, y):
    """Σ -log2 of a discretised logistic bin probability (its own float32 formula)."""
    upper = jax.nn.sigmoid((y + 0.5) / params["scale"])
    lower = jax.nn.sigmoid((y - 0.5) / params["scale"])
    return -jnp.sum(jnp.log(jnp.maximum(upper - lower, 1e-12))) / math.log(2.0)


def toy_problem(lmbda):
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.3, 0.3, (1, 6, 7, 3)).astype(np.float32)
    x += 0.5  # inside [0, 1], as the codec's true objective clips the reconstruction
    params = {"step": jnp.float32(STEP), "scale": jnp.float32(SCALE)}
    # Brute force in float64: the objective is a sum over elements, so each element's
    # best integer is found on its own among -40..40.
    k = np.arange(-40, 41, dtype=np.float64)[:, None]
    xs = x.reshape(-1).astype(np.float64)[None, :]
    pixels = x.shape[1] * x.shape[2]
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    bits = -np.log2(sig((k + 0.5) / SCALE) - sig((k - 0.5) / SCALE))
    cost = lmbda * 255.0**2 * (np.clip(STEP * k, 0, 1) - xs) ** 2 / xs.size + bits / pixels
    best = k[np.argmin(cost, axis=0), 0].reshape(x.shape)
    best_objective = float(cost.min(axis=0).sum())
    return jnp.asarray(x), params, best, best_objective


@pytest.mark.parametrize("lmbda", [0.004, 0.02])
def test_refinement_reaches_the_brute_force_optimum_of_a_separable_codec(lmbda):
    x, params, best, best_objective = toy_problem(lmbda)
    # A poor amortised guess: the right sign, 60% of the right size, plus noise.
    y0 = 0.6 * x / STEP + 0.4 * jax.random.normal(jax.random.PRNGKey(3), x.shape)
    assert np.mean(np.round(np.asarray(y0)) == best) < 0.5
    symbols, info = refinement.refine_latents(
        toy_synthesis, toy_bits, lmbda, params, y0, x, steps=300, lr=0.1
    )
    assert symbols.dtype == jnp.int32 and symbols.shape == x.shape
    assert info["refined"] == 1.0
    assert np.mean(np.asarray(symbols) == best) > 0.9
    assert info["objective"] == pytest.approx(best_objective, rel=0.002)
    assert info["objective"] < 0.9 * info["objective_start"]


def test_refinement_keeps_the_plain_symbols_when_the_search_does_worse():
    x, params, _, _ = toy_problem(0.02)
    y0 = x / STEP  # already near the optimum; a huge learning rate throws it away
    plain = np.round(np.asarray(y0)).astype(np.int32)
    symbols, info = refinement.refine_latents(
        toy_synthesis, toy_bits, 0.02, params, y0, x, steps=5, lr=200.0
    )
    np.testing.assert_array_equal(np.asarray(symbols), plain)
    assert info["refined"] == 0.0 and info["objective"] == info["objective_start"]
    symbols, info = refinement.refine_latents(toy_synthesis, toy_bits, 0.02, params, y0, x, steps=0)
    np.testing.assert_array_equal(np.asarray(symbols), plain)


@pytest.mark.parametrize("steps", [-1, 2.5, "10", True])
def test_bad_step_counts_are_config_errors(steps):
    with pytest.raises(ConfigError, match="whole number"):
        refinement.check_steps(steps)


# -- the shipped factorized codec, scored from real bytes ---------------------------------


@pytest.fixture(scope="module")
def photo():
    return skimage.data.astronaut()[40:104, 200:290]  # 64 x 90: padded to 64 x 96


@pytest.fixture(scope="module")
def q1():
    return get_codec("bmshj2017-factorized-q1")


def measured_objective(codec, image, data):
    """λ·255²·MSE + bpp from the decoded uint8 pixels and the stream's real bytes."""
    decoded = codec.decode(data).astype(np.float64) / 255.0
    mse = np.mean((decoded - image.astype(np.float64) / 255.0) ** 2)
    return codec.task.lmbda * 255.0**2 * mse + len(data) * 8 / (image.shape[0] * image.shape[1])


def test_refined_streams_cost_less_by_real_bytes_and_pixels_and_decode_anywhere(q1, photo):
    plain = q1.encode(photo, 1)
    fast = q1.refined(40)  # at the model's own step size (config.model.refine_lr)
    data = fast.encode(photo, 1)
    assert data == fast.encode(photo, 1)  # deterministic
    assert data != plain
    # Measured from the file and the decoded image, not from the model's estimate.
    assert measured_objective(q1, photo, data) < 0.97 * measured_objective(q1, photo, plain)
    # The decoder is untouched: the plain codec, and the shipped family without a model
    # argument, decode the refined stream to the model's reconstruction of its symbols.
    expected = q1.reconstruct(fast.latents(photo), *photo.shape[:2])
    np.testing.assert_array_equal(q1.decode(data), expected)
    np.testing.assert_array_equal(jaxcodec.decompress(data), expected)
    assert q1.refine_steps == 0 and fast.refine_steps == 40


def test_compress_refine_argument_and_codec_names(q1, photo):
    data = jaxcodec.compress(photo, "bmshj2017-factorized-q1", 1, refine=3)
    assert data == q1.refined(3).encode(photo, 1)
    ladder = get_codec("bmshj2017-factorized+refine=3")
    assert isinstance(ladder, LadderCodec)
    assert {m.refine_steps for m in ladder.members.values()} == {3}
    assert ladder.encode(photo, 1) == data
    assert split_refine("bmshj2017-factorized+refine") == ("bmshj2017-factorized", refinement.DEFAULT_STEPS, None)
    assert split_refine("runs/a+b") == ("runs/a+b", None, None)
    assert split_refine("mbt2018-mean+refine=0:7") == ("mbt2018-mean", 0, 7)
    with pytest.raises(ModelError, match="no hyper-latent"):
        get_codec("bmshj2017-factorized+refine=3:5")
    with pytest.raises(ModelError, match="bad refinement suffix"):
        get_codec("bmshj2017-factorized+refine=many")
    with pytest.raises(ModelError, match="no latent to refine"):
        get_codec("jpeg+refine=5")
    with pytest.raises(ConfigError, match="whole number"):
        refined(q1, -3)


def test_a_model_carries_its_refinement_step_size(q1, photo, monkeypatch):
    from jaxcodec.train.tasks.factorized import FactorizedTask, default_config

    config = default_config(quality=1)
    assert config.model.refine_lr == refinement.DEFAULT_LR
    config.model.refine_lr = 0.0037
    assert FactorizedTask(config).refine_lr == 0.0037
    del config.model["refine_lr"]  # configs written before the field existed
    assert FactorizedTask(config).refine_lr == refinement.DEFAULT_LR
    for bad in (0.0, -0.01, float("nan")):
        config.model.refine_lr = bad
        with pytest.raises(ConfigError, match="learning rate"):
            FactorizedTask(config)

    # The shipped model's own step size reaches the search unless one is given.
    seen = []
    search = refinement.refine_latents

    def spy(*args, **kwargs):
        seen.append(kwargs["lr"])
        return search(*args, **kwargs)

    monkeypatch.setattr(refinement, "refine_latents", spy)
    assert q1.refine_lr == q1.task.refine_lr
    q1.refined(2).encode(photo, 1)
    q1.refined(2, lr=0.0123).encode(photo, 1)
    get_codec("bmshj2017-factorized+refine=2").encode(photo, 1)
    assert seen == [q1.refine_lr, 0.0123, q1.refine_lr]


def test_a_ladder_shares_one_compiled_program_per_size_and_each_quality_keeps_its_own_lambda(photo):
    """The ladder's models differ only in parameters, λ and step size: they share compiled
    programs (one per image size, not one per quality), and the shared search still
    optimises each model's own objective: it finds what a search compiled for that model
    alone finds."""
    from jaxcodec.models import factorized

    ladder = get_codec("bmshj2017-factorized+refine=4")
    low, high = ladder.members[1], ladder.members[6]
    assert low.programs is high.programs and low.task.lmbda != high.task.lmbda
    shared = low.programs
    steps, _ = refinement._compiled(shared.direct_synthesis, shared.rate)
    symbols = {low.quality: low.latents(photo)}  # compiles this size's programs (if not yet)
    low.refined(0).encode(photo, low.quality)
    compiled = shared.analysis._cache_size(), steps._cache_size()
    assert compiled[1] >= 1
    high.refined(0).encode(photo, high.quality)
    symbols[high.quality] = high.latents(photo)
    assert (shared.analysis._cache_size(), steps._cache_size()) == compiled  # nothing new for quality 6
    for member in (low, high):
        # Fresh function objects: a separate compile with this model's λ and step size.
        alone, _ = refinement.refine_latents(
            lambda p, y, m=member: m.task.direct_synthesis(p, y),
            lambda p, y, m=member: factorized.total_bits(m.task.likelihood(p, y)),
            member.task.lmbda, member.params,
            member.programs.continuous(member.params, member.padded(photo)),
            jnp.asarray(member.padded(photo)[:, : photo.shape[0], : photo.shape[1]]),
            steps=4, lr=member.refine_lr,
        )
        np.testing.assert_array_equal(symbols[member.quality], np.asarray(alone)[0])
    assert not np.array_equal(symbols[1], symbols[6])


def test_reporting_sees_every_step_and_leaves_the_symbols_unchanged():
    x, params, _, _ = toy_problem(0.01)
    y0 = 0.6 * x / STEP + 0.4 * jax.random.normal(jax.random.PRNGKey(3), x.shape)
    refine = lambda steps: refinement.refine_latents(toy_synthesis, toy_bits, 0.01, params, y0, x,  # noqa: E731
                                                     steps=steps, lr=0.1)[0]
    plain = refine(7)
    seen = []
    with refinement.reporting(lambda done, steps: seen.append((done, steps))):
        reported = refine(7)
    assert seen == [(i, 7) for i in range(1, 8)]
    np.testing.assert_array_equal(reported, plain)
    refine(2)  # outside the block: nothing reported
    assert len(seen) == 7
