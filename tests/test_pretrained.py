"""Tests of shipping a trained workdir as a named model (jaxcodec.pretrained)."""

import importlib
import os

import jax
import numpy as np
import pytest

import jaxcodec
from jaxcodec import engine, pretrained
from jaxcodec.cli import run as cli_run
from jaxcodec.errors import ModelError


def _train_tiny(path, seed=0, steps=6):
    config = importlib.import_module("configs.mnist_conv_ae").get_config()
    config.seed = seed
    config.num_steps = steps
    config.checkpoint_every = 3
    config.keep_checkpoints = 5
    config.eval_every = 0
    config.log_every = 3
    config.batch_size = 32
    config.model.finalize_batches = 2
    engine.train_and_evaluate(config, path)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A seed-004 autoencoder trained for a few steps on the embedded MNIST sample."""
    return _train_tiny(str(tmp_path_factory.mktemp("run")))


def _digit():
    with np.load(os.path.join(os.path.dirname(jaxcodec.__file__), "samples", "mnist_sample.npz")) as d:
        return d["x_test"][7][:, :, None]


def test_export_keeps_only_the_latest_checkpoint_and_codes_identically(workdir, tmp_path):
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "6"]
    path = pretrained.export_workdir(workdir, "tiny-ae", dest=str(tmp_path), description="a tiny test model")
    assert path == str(tmp_path / "tiny-ae")
    assert os.listdir(os.path.join(path, "checkpoints")) == ["6"]
    assert sorted(os.listdir(path)) == ["checkpoints", "codec_tables.npz", "config.json", "meta.json"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temporary folder left
    source = pretrained.load_workdir_codec(os.path.abspath(workdir))
    shipped = pretrained.load_workdir_codec(path)
    image = _digit()
    quality = source.qualities[-1]
    stream = source.encode(image, quality)
    assert shipped.encode(image, quality) == stream
    np.testing.assert_array_equal(shipped.decode(stream), source.decode(stream))
    config = engine._config_from_json(os.path.join(path, "config.json"))
    assert config.description == "a tiny test model"
    # The optimiser state stays behind: restored as zeros, parameters bit for bit.
    _, full, _ = engine.load_checkpoint(workdir)
    _, slim, _ = engine.load_checkpoint(path)
    assert int(slim["step"]) == int(full["step"]) == 6
    for a, b in zip(jax.tree.leaves(slim["params"]), jax.tree.leaves(full["params"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert jax.tree.structure(slim) == jax.tree.structure(full)
    assert all(not np.any(np.asarray(x)) for x in jax.tree.leaves(slim["opt"]))
    assert any(np.any(np.asarray(x)) for x in jax.tree.leaves(full["opt"]))
    size = lambda root: sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
    assert size(path) < 0.6 * size(os.path.join(workdir, "checkpoints", "6"))


def test_export_refuses_bad_names_and_non_workdirs(workdir, tmp_path):
    with pytest.raises(ModelError, match="model name"):
        pretrained.export_workdir(workdir, "../escape", dest=str(tmp_path))
    with pytest.raises(ModelError, match="not a training workdir"):
        pretrained.export_workdir(str(tmp_path), "x", dest=str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_export_command_line(workdir, tmp_path, capsys):
    assert cli_run(["export", workdir, "cli-ae", "--dest", str(tmp_path)]) == 0
    assert os.path.isdir(tmp_path / "cli-ae" / "checkpoints" / "6")
    assert cli_run(["export", str(tmp_path), "cli-ae", "--dest", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not a training workdir" in err[0]


def test_ladder_decodes_each_members_streams_by_their_tables(workdir, tmp_path):
    """Members of a ladder share a model name; each stream must reach its own member."""
    other = _train_tiny(str(tmp_path / "other"), seed=1, steps=3)
    first = pretrained.load_workdir_codec(os.path.abspath(workdir))
    second = pretrained.load_workdir_codec(os.path.abspath(other))
    assert first.name == second.name
    ladder = pretrained.LadderCodec("tiny", {1: first, 2: second})
    image = _digit()
    for member in (first, second):
        stream = member.encode(image, member.qualities[-1])
        np.testing.assert_array_equal(ladder.decode(stream), member.decode(stream))
    with pytest.raises(ModelError):
        first.decode(second.encode(image, second.qualities[-1]))
