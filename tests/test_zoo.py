"""Tests of shipping a trained workdir as a named model (jaxcodec.zoo)."""

import functools
import importlib
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxcodec
from jaxcodec import artefact, zoo
from jaxcodec.train import engine
from jaxcodec.train import run_files
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


def test_export_writes_an_inference_artefact_that_codes_identically(workdir, tmp_path):
    path = zoo.export_workdir(workdir, "tiny-ae", dest=str(tmp_path), description="a tiny test model")
    assert path == str(tmp_path / "tiny-ae")
    assert sorted(os.listdir(path)) == ["model.json", "params.npz"]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temporary folder left
    source = zoo.load_workdir_codec(os.path.abspath(workdir))
    assert source.description.endswith(", checkpoint step 6")  # reports say which checkpoint they measured
    shipped = zoo.load_codec(path)
    image = _digit()
    quality = source.qualities[-1]
    stream = source.encode(image, quality)
    assert shipped.encode(image, quality) == stream
    np.testing.assert_array_equal(shipped.decode(stream), source.decode(stream))
    spec = artefact.read_spec(path)
    assert spec["description"] == "a tiny test model" and spec["steps"] == 6
    assert spec["model"]["name"] == "mnist_conv_ae" and "data" not in spec and "init_from" not in spec
    assert "/" not in spec["provenance"].split(" on ")[-1]  # no training path of this machine
    # Parameters once, bit for bit; no optimiser state.
    _, full, tables = run_files.load_checkpoint(workdir)
    _, state, shipped_tables = artefact.read(path)
    assert set(state) == {"params"}
    for a, b in zip(jax.tree.leaves(state["params"]), jax.tree.leaves(full["params"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert jax.tree.structure(state["params"]) == jax.tree.structure(jax.device_get(full["params"]))
    assert sorted(shipped_tables) == sorted(tables)
    size = lambda root: sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
    assert size(path) < 0.6 * size(os.path.join(workdir, "checkpoints", "6"))


def test_artefact_with_other_tables_or_damaged_files_is_refused(workdir, tmp_path):
    path = zoo.export_workdir(workdir, "tiny-ae", dest=str(tmp_path))
    spec = json.load(open(os.path.join(path, artefact.MODEL_FILE)))
    with open(os.path.join(path, artefact.MODEL_FILE), "w") as f:
        json.dump(dict(spec, table_hash="00" * 8), f)
    with pytest.raises(ModelError, match="table hash"):
        artefact.load_codec(path)
    with open(os.path.join(path, artefact.MODEL_FILE), "w") as f:
        f.write("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        artefact.load_codec(path)
    with open(os.path.join(path, artefact.MODEL_FILE), "w") as f:
        json.dump(spec, f)
    with open(os.path.join(path, artefact.PARAMS_FILE), "wb") as f:
        f.write(b"PK\x03\x04 truncated")
    with pytest.raises(ModelError, match="not a readable array file"):
        artefact.load_codec(path)


def test_flatten_round_trip():
    tree = {"a": {"b": np.arange(3), "c": {"d": np.ones((2, 2))}}, "e": np.zeros(1)}
    flat = artefact.flatten(tree)
    assert sorted(flat) == ["a/b", "a/c/d", "e"]
    back = artefact.unflatten(flat)
    assert jax.tree.structure(back) == jax.tree.structure(tree)
    for x, y in zip(jax.tree.leaves(back), jax.tree.leaves(tree)):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ModelError, match="contains '/'"):
        artefact.flatten({"a/b": np.zeros(1)})


def test_decoding_a_shipped_model_imports_no_training_code():
    """Decoding needs jax, flax and the codec: not the engine, optax, orbax, TFDS or TensorFlow."""
    code = (
        "import sys, numpy as np, jaxcodec\n"
        "from jaxcodec import data\n"
        "photo = np.ascontiguousarray(data.open_dataset('sample:photos', 'test').native(0)[:64, :96])\n"
        "digit = data.open_dataset('sample:mnist', 'test').native(0)\n"
        "for image, model in ((photo, 'bmshj2017-factorized'), (digit, 'mnist-conv-ae')):\n"
        "    assert jaxcodec.decompress(jaxcodec.compress(image, model)).shape == image.shape\n"
        "heavy = ('optax', 'orbax', 'tensorflow', 'tensorflow_datasets', 'jaxcodec.train.engine',\n"
        "         'jaxcodec.train.run_files', 'jaxcodec.train.checkpoint')\n"
        "print(sorted(m for m in sys.modules if m in heavy or m.split('.')[0] in heavy))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"


def test_export_refuses_bad_names_and_non_workdirs(workdir, tmp_path):
    with pytest.raises(ModelError, match="model name"):
        zoo.export_workdir(workdir, "../escape", dest=str(tmp_path))
    with pytest.raises(ModelError, match="not a training workdir"):
        zoo.export_workdir(str(tmp_path), "x", dest=str(tmp_path))
    assert os.listdir(tmp_path) == []


def test_export_command_line(workdir, tmp_path, capsys):
    assert cli_run(["export", workdir, "cli-ae", "--dest", str(tmp_path)]) == 0
    assert artefact.is_artefact(tmp_path / "cli-ae")
    assert cli_run(["export", workdir, "cli-ae-half", "--dest", str(tmp_path), "--half"]) == 0
    with np.load(tmp_path / "cli-ae-half" / artefact.PARAMS_FILE) as npz:
        assert any(npz[n].dtype == np.float16 for n in npz.files)
    capsys.readouterr()
    assert cli_run(["export", str(tmp_path), "cli-ae", "--dest", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not a training workdir" in err[0]


def test_ladder_decodes_each_members_streams_by_their_tables(workdir, tmp_path):
    """Members of a ladder share a model name; each stream must reach its own member."""
    other = _train_tiny(str(tmp_path / "other"), seed=1, steps=3)
    first = zoo.load_workdir_codec(os.path.abspath(workdir))
    second = zoo.load_workdir_codec(os.path.abspath(other))
    assert first.name == second.name
    ladder = zoo.LadderCodec("tiny", {1: first, 2: second})
    image = _digit()
    for member in (first, second):
        stream = member.encode(image, member.qualities[-1])
        np.testing.assert_array_equal(ladder.decode(stream), member.decode(stream))
    with pytest.raises(ModelError):
        first.decode(second.encode(image, second.qualities[-1]))


def test_ladder_loads_only_the_members_it_codes_with(workdir):
    loaded = []
    bits = zoo.load_workdir_codec(os.path.abspath(workdir)).qualities[-1]  # the quality its streams carry

    def loader(quality):
        loaded.append(quality)
        return zoo.load_workdir_codec(os.path.abspath(workdir))

    ladder = zoo.LadderCodec("tiny", {q: functools.partial(loader, q) for q in (1, bits, 99)})
    assert ladder.qualities == [1, bits, 99] and loaded == []
    stream = ladder.encode(_digit(), bits)
    assert loaded == [bits]
    ladder.decode(stream)
    assert loaded == [bits]  # the header's quality is tried first
    with pytest.raises(ModelError, match="no quality 7"):
        ladder.encode(_digit(), 7)
    assert sorted(ladder.members) == [1, bits, 99] and sorted(loaded) == [1, bits, 99]


def test_half_size_kernels_are_stored_as_float16_and_code_as_the_loaded_model(workdir, tmp_path):
    full = zoo.export_workdir(workdir, "tiny-ae", dest=str(tmp_path / "full"))
    half = zoo.export_workdir(workdir, "tiny-ae", dest=str(tmp_path / "half"), half=True)
    with np.load(os.path.join(half, artefact.PARAMS_FILE)) as npz:
        dtypes = {name: npz[name].dtype for name in npz.files}
    kernels = [n for n in dtypes if n.endswith("/kernel")]
    assert kernels and all(dtypes[n] == np.float16 for n in kernels)
    assert all(dtypes[n] != np.float16 for n in dtypes if n not in kernels)  # biases, tables as they were
    _, full_state, _ = artefact.read(full)
    _, half_state, _ = artefact.read(half)
    for path_, a in jax.tree_util.tree_leaves_with_path(full_state):
        b = functools.reduce(lambda node, k: node[k.key], path_, half_state)
        assert b.dtype == a.dtype  # read back at the model's precision
        if path_[-1].key == "kernel":  # rounded to float16's nearest value, computed in NumPy
            np.testing.assert_array_equal(b, a.astype(np.float16).astype(np.float32))
        else:
            np.testing.assert_array_equal(b, a)
    size = lambda root: sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
    assert size(half) < 0.65 * size(full)
    image = _digit()
    codec = zoo.load_codec(half)  # its table hash was made from the rounded kernels
    quality = codec.qualities[-1]
    stream = codec.encode(image, quality)
    assert zoo.load_codec(half).decode(stream).shape == image.shape
    decoded_full = zoo.load_codec(full).decode(zoo.load_codec(full).encode(image, quality))
    decoded_half = codec.decode(stream)
    assert np.mean(np.abs(decoded_half.astype(float) - decoded_full.astype(float))) < 1.0
