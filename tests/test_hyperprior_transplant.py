"""Starting the mean-scale hyperprior from a trained factorized prior's transforms
(``model.init_transforms_from``) and holding them while the entropy model learns
(``model.freeze_transforms_steps``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcodec import data, zoo
from jaxcodec.errors import ConfigError
from jaxcodec.models.factorized import FactorizedPriorModel
from jaxcodec.models.hyperprior import LAMBDAS, MeanScaleHyperprior
from jaxcodec.train.tasks import hyperprior as hyperprior_task

SOURCE = "bmshj2017-factorized-q5"


def _task(features, latent_channels, **model):
    config = hyperprior_task.default_config()
    config.model.features, config.model.latent_channels = features, latent_channels
    config.learning_rate = 1e-3
    for key, value in model.items():
        setattr(config.model, key, value)
    return hyperprior_task.MeanScaleTask(config)


def _crop(size=64):
    photo = data.open_dataset("sample:photos", "test").native(0)
    return jnp.asarray(photo[None, :size, :size].astype(np.float32) / 255.0)


def test_copied_transforms_reproduce_the_source_and_rescale_its_latent():
    source = zoo.get_codec(SOURCE)
    task = _task(64, 128, init_transforms_from=SOURCE)
    x = _crop()
    fresh = task.init_state(jax.random.key(0), x)["params"]
    params = task.initial_params(jax.device_get(fresh))
    assert set(params["params"]) == set(fresh["params"])
    for part in ("h_a", "h_s", "entropy_bottleneck"):  # the new networks keep their initialisation
        jax.tree.map(np.testing.assert_array_equal, params["params"][part], jax.device_get(fresh["params"][part]))

    # Independent reference: the source's own network, applied with its own parameters.
    reference = FactorizedPriorModel(features=64, latent_channels=128)
    y_ref = reference.apply(source.params, x, method=FactorizedPriorModel.analysis)
    x_ref = reference.apply(source.params, y_ref, method=FactorizedPriorModel.synthesis)

    model = MeanScaleHyperprior(features=64, latent_channels=128)
    q_source = LAMBDAS.index(source.lmbda) + 1  # the ladder's λ of the source's rung
    y = model.apply(params, x, jnp.full((1,), float(q_source)), method=MeanScaleHyperprior.analysis)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    x_hat = model.apply(params, y, jnp.full((1,), float(q_source)), method=MeanScaleHyperprior.synthesis)
    np.testing.assert_allclose(x_hat, x_ref, rtol=1e-4, atol=1e-4)

    # One rung down: the same latent, its step √2 coarser (gain (λ_q/λ_source)^½).
    y_low = model.apply(params, x, jnp.full((1,), float(q_source - 1)), method=MeanScaleHyperprior.analysis)
    ratio = np.sqrt(LAMBDAS[q_source - 2] / LAMBDAS[q_source - 1])
    np.testing.assert_allclose(y_low, y_ref * ratio, rtol=1e-5, atol=1e-5)


def test_bad_sources_are_one_clear_config_error():
    x = _crop()
    narrow = _task(16, 24, init_transforms_from=SOURCE)  # the source's N=64, M=128 do not fit
    params = jax.device_get(narrow.init_state(jax.random.key(0), x)["params"])
    with pytest.raises(ConfigError, match="g_a does not fit this model"):
        narrow.initial_params(params)
    with pytest.raises(ConfigError, match="not one factorized-prior model"):
        _task(16, 24, init_transforms_from="bmshj2017-factorized").initial_params(params)  # a ladder
    with pytest.raises(ConfigError, match="init_transforms_from: unknown model"):
        _task(16, 24, init_transforms_from="no-such-model").initial_params(params)
    with pytest.raises(ConfigError, match="freeze_transforms_steps"):
        _task(16, 24, freeze_transforms_steps=-1)
    unset = _task(16, 24)
    assert unset.initial_params(params) is params


def test_frozen_transforms_hold_until_the_given_step():
    task = _task(16, 24, freeze_transforms_steps=2)
    photo = data.open_dataset("sample:photos", "test").native(1).astype(np.float32) / 255.0
    batch = jnp.asarray(np.stack([photo[:64, :64], photo[64:128, 64:128]]))
    state = task.init_state(jax.random.key(0), batch)
    step = jax.jit(task.train_step)

    def parts(s):
        p = jax.device_get(s["params"]["params"])
        return {k: jax.tree.leaves(p[k]) for k in ("g_a", "g_s", "h_s", "gain")}

    def changed(before, after, part):
        return any(not np.array_equal(a, b) for a, b in zip(before[part], after[part]))

    history = [parts(state)]
    for i in range(3):
        state, _ = step(state, batch, jax.random.key(i))
        history.append(parts(state))
    for i in (1, 2):  # steps 0 and 1: the transforms stay, the rest learns
        assert not changed(history[i - 1], history[i], "g_a") and not changed(history[i - 1], history[i], "g_s")
        assert changed(history[i - 1], history[i], "h_s") and changed(history[i - 1], history[i], "gain")
    assert changed(history[2], history[3], "g_a") and changed(history[2], history[3], "g_s")


def test_transforms_learn_at_the_given_fraction_of_the_step():
    photo = data.open_dataset("sample:photos", "test").native(1).astype(np.float32) / 255.0
    batch = jnp.asarray(np.stack([photo[:64, :64], photo[64:128, 64:128]]))

    def first_step(scale):
        task = _task(16, 24, transforms_lr_scale=scale)
        state = task.init_state(jax.random.key(0), batch)
        before = jax.device_get(state["params"]["params"])
        after = jax.device_get(jax.jit(task.train_step)(state, batch, jax.random.key(1))[0]["params"]["params"])
        return {k: jax.tree.map(lambda a, b: np.asarray(a, np.float64) - b, after[k], before[k])
                for k in ("g_a", "g_s", "h_s")}

    full, quarter = first_step(1.0), first_step(0.25)
    for part in ("g_a", "g_s"):  # Adam's step, a quarter of it
        jax.tree.map(lambda a, b: np.testing.assert_allclose(b, 0.25 * a, rtol=1e-3, atol=1e-9), full[part], quarter[part])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-9), full["h_s"], quarter["h_s"])
    assert max(float(np.max(np.abs(a))) for a in jax.tree.leaves(full["g_a"])) > 1e-5
    with pytest.raises(ConfigError, match="transforms_lr_scale"):
        _task(16, 24, transforms_lr_scale=1.5)


def _engine_config(features, latent_channels, **top):
    config = hyperprior_task.default_config()
    config.model.features, config.model.latent_channels = features, latent_channels
    config.data.train, config.data.crop, config.batch_size = "sample:photos", 64, 1
    config.num_steps, config.learning_rate, config.log_every = 1, 0.0, 1
    config.checkpoint_every = 1
    for key, value in top.items():
        setattr(config, key, value)
    return config


def test_a_run_restarts_from_a_shipped_model(tmp_path):
    """``config.init_from`` naming a shipped model: the run starts from its exported
    parameters (Adam at rate 0 moves nothing), with a fresh optimiser. The shipped model has
    a conditional decoder, so a run without one is refused, naming what it lacks."""
    from jaxcodec.train import engine

    shipped = zoo.get_codec("mbt2018-mean")

    def like_shipped(**top):  # the shipped model's widths, whatever they are
        config = _engine_config(shipped.features, shipped.latent_channels, **top)
        config.model.hyper_features = shipped.hyper_channels
        return config

    config = like_shipped(init_from="mbt2018-mean")
    config.model.synthesis_modulation = True
    state = engine.train_and_evaluate(config, str(tmp_path / "run"))
    got = jax.tree.leaves(jax.device_get(state["params"]))
    want = jax.tree.leaves(shipped.params)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b, np.float32))
    with pytest.raises(ConfigError, match="only in the start: params/synthesis_bias"):
        engine.train_and_evaluate(like_shipped(init_from="mbt2018-mean"), str(tmp_path / "plain"))
    with pytest.raises(ConfigError, match="do not fit this model"):  # M=24 cannot take M=128's latent
        engine.train_and_evaluate(_engine_config(16, 24, init_from="mbt2018-mean"), str(tmp_path / "narrow"))
    with pytest.raises(ConfigError, match="not a training workdir, a shipped single model"):
        engine.train_and_evaluate(_engine_config(16, 24, init_from="no-such-model"), str(tmp_path / "none"))


def test_a_conditional_decoder_extends_an_exported_model_without_one(tmp_path):
    """``config.init_from`` naming an exported model's folder, trained without
    ``model.synthesis_modulation``, into a run with it: everything is copied and the new
    tables start at the identity."""
    from jaxcodec.train import engine

    engine.train_and_evaluate(_engine_config(16, 24), str(tmp_path / "plain"))
    zoo.export_workdir(str(tmp_path / "plain"), "small", dest=str(tmp_path / "models"))
    exported = zoo.get_codec(str(tmp_path / "models" / "small"))
    config = _engine_config(16, 24, init_from=str(tmp_path / "models" / "small"))
    config.model.synthesis_modulation = True
    extended = jax.device_get(engine.train_and_evaluate(config, str(tmp_path / "extended"))["params"]["params"])
    for name in ("synthesis_log_scale", "synthesis_bias"):
        assert extended[name].shape == (8, 3, 16) and np.all(extended.pop(name) == 0)
    want = jax.tree.leaves(exported.params)
    assert len(jax.tree.leaves(extended)) == len(want)
    for a, b in zip(jax.tree.leaves(extended), want):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b, np.float32))
