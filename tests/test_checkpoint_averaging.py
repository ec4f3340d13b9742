"""Checkpoint averaging (jaxcodec.train.averaging, tools/average_checkpoints.py): the mean of a
run's checkpoints, checked against the checkpoints as stored, written as a workdir that codes."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
import skimage.data

from jaxcodec import zoo
from jaxcodec.errors import ConfigError
from jaxcodec.train import averaging, engine, run_files
from jaxcodec.train.tasks import hyperprior as hyperprior_task

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A small mean-scale hyperprior trained 3 steps, a checkpoint each step."""
    config = hyperprior_task.default_config()
    config.model.features, config.model.latent_channels = 8, 12
    config.learning_rate = 1e-3
    config.data.train, config.data.crop = "sample:photos", 64
    config.batch_size, config.num_steps, config.checkpoint_every = 1, 3, 1
    config.keep_checkpoints = None
    workdir = tmp_path_factory.mktemp("averaging") / "run"
    engine.train_and_evaluate(config, str(workdir))
    return workdir


def _stored_params(workdir, step):
    """The parameters of one checkpoint, as float64 leaves."""
    params = run_files.load_checkpoint(str(workdir), step)[1]["params"]
    return [np.asarray(leaf, np.float64) for leaf in jax.tree.leaves(params)]


def test_the_mean_of_the_checkpoints_is_written_as_a_workdir_that_codes(run, tmp_path):
    out = tmp_path / "mean"
    assert averaging.checkpoint_steps(str(run))[-3:] == [1, 2, 3]
    assert averaging.average_checkpoints(str(run), str(out), steps=[3, 2]) == [2, 3]
    got = _stored_params(out, 3)
    two, three = _stored_params(run, 2), _stored_params(run, 3)
    assert any(np.max(np.abs(a - b)) > 1e-4 for a, b in zip(two, three))  # the steps did move the weights
    for g, a, b in zip(got, two, three):
        np.testing.assert_allclose(g, (a + b) / 2, rtol=1e-6, atol=1e-7)
    state = run_files.load_checkpoint(str(out))[1]
    assert int(state["step"]) == 3
    assert sorted(os.listdir(out)) == ["averaged.json", "checkpoints", "codec_tables.npz", "config.json", "meta.json"]
    # the tables are the averaged model's: its hyper-latent density is built from the mean parameters
    with np.load(out / "codec_tables.npz") as mean_tables, np.load(run / "codec_tables.npz") as run_tables:
        assert mean_tables["z_freqs"].shape[0] == run_tables["z_freqs"].shape[0] == 8
        assert not np.array_equal(mean_tables["z_freqs"], run_tables["z_freqs"])
        np.testing.assert_array_equal(mean_tables["y_freqs"], run_tables["y_freqs"])  # the fixed scale table
    codec = zoo.get_codec(str(out))
    image = skimage.data.astronaut()[:64, :96]
    data = codec.encode(image, codec.qualities[0])
    assert codec.decode(data).shape == image.shape
    np.testing.assert_array_equal(codec.decode_symbols(codec.encode(image, codec.qualities[0])), codec.decode_symbols(data))


def _mnist_config():
    import importlib.util

    spec = importlib.util.spec_from_file_location("mnist_conv_ae_config", ROOT / "configs" / "mnist_conv_ae.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def test_bad_requests_are_one_line_and_write_nothing(run, tmp_path):
    out = tmp_path / "mean"
    with pytest.raises(ConfigError, match=r"keeps no checkpoint of step 7; it keeps \[.*1, 2, 3\]$"):
        averaging.average_checkpoints(str(run), str(out), steps=[3, 7])
    with pytest.raises(ConfigError, match="at least two checkpoints"):
        averaging.average_checkpoints(str(run), str(out), steps=[3])
    with pytest.raises(ConfigError, match="at least two checkpoints"):
        averaging.average_checkpoints(str(run), str(out), last=1)
    assert sorted(os.listdir(tmp_path)) == []
    fitted = tmp_path / "fitted"  # an MNIST autoencoder's workdir: its tables are histograms of training latents
    fitted.mkdir()
    (fitted / "config.json").write_text(_mnist_config().to_json())
    with pytest.raises(ConfigError, match="entropy tables are fitted to training data"):
        averaging.average_checkpoints(str(fitted), str(out))
    assert sorted(os.listdir(tmp_path)) == ["fitted"]
    run_tool = subprocess.run([sys.executable, str(ROOT / "tools" / "average_checkpoints.py"), str(run), str(run)],
                              capture_output=True, text=True)
    lines = run_tool.stderr.strip().splitlines()
    assert run_tool.returncode == 2 and lines == [f"error: {run} exists; averaging writes a new workdir"]


def test_the_tool_averages_the_newest_checkpoints(run, tmp_path):
    out = tmp_path / "last2"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "average_checkpoints.py"), str(run), str(out),
                           "--last", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(f"the mean of steps 2, 3 of {run}")
    for g, a, b in zip(_stored_params(out, 3), _stored_params(run, 2), _stored_params(run, 3)):
        np.testing.assert_allclose(g, (a + b) / 2, rtol=1e-6, atol=1e-7)
