"""Tests of the training engine on real MNIST digits (the packaged sample)."""

import glob
import importlib.util
import json
import math
import os
import struct
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxcodec import data
from jaxcodec.train import engine
from jaxcodec.train import progress
from jaxcodec.train import run_files
from jaxcodec.errors import ConfigError, JaxcodecError
from tests import engine_task


def _train(workdir, **overrides):
    config = engine_task.config(**overrides)
    return config, engine.train(engine_task.EngineTestTask(config), config, str(workdir))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """20 steps with every hook: host transform (16 grey levels), pretrain, finalize."""
    workdir = tmp_path_factory.mktemp("run")
    config, result = _train(workdir, **{"model.quantize_levels": 16})
    return workdir, config, result


def _train_log(result):
    return [h for h in result.history if "loss" in h]


def test_loss_decreases_on_mnist(run):
    _, _, result = run
    train = _train_log(result)
    assert [h["step"] for h in train] == [5, 10, 15, 20]
    assert train[-1]["loss"] < 0.85 * train[0]["loss"]
    evals = [h for h in result.history if "eval_loss" in h]
    assert [h["step"] for h in evals] == [10, 20]
    assert evals[1]["eval_loss"] < evals[0]["eval_loss"]


def test_eval_metric_matches_numpy_on_first_test_batches(run):
    _, config, result = run
    images = np.stack(data.load_images("sample:mnist", "test", limit=16))  # 2 eval batches of 8, in order
    params = jax.device_get(result.state["params"])
    recon = np.asarray(engine_task.DenseAE(16).apply(params, images))
    expected = np.mean((recon.astype(np.float64) - images) ** 2)
    assert result.history[-1]["eval_loss"] == pytest.approx(expected, rel=1e-5)


def test_hooks_run_where_documented(run):
    workdir, _, result = run
    train = _train_log(result)
    assert all(h["host_error"] < 1e-6 for h in train)  # train batches went through host_transform
    assert result.history[-1]["eval_host_error"] > 0.01  # eval batches did not
    assert int(result.state["pretrain_calls"]) == 1
    assert int(result.tables["batches"]) == 2
    np.testing.assert_array_equal(
        result.tables["decoder_bias"], np.asarray(result.state["params"]["params"]["dec"]["bias"])
    )


def test_load_checkpoint_round_trip(run):
    workdir, config, result = run
    loaded_config, state, tables = run_files.load_checkpoint(str(workdir), task=engine_task.EngineTestTask(config))
    assert loaded_config.to_dict() == config.to_dict()
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(result.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert jax.tree.structure(state) == jax.tree.structure(result.state)
    assert set(tables) == {"decoder_bias", "batches"}
    np.testing.assert_array_equal(tables["decoder_bias"], result.tables["decoder_bias"])
    assert json.load(open(workdir / "meta.json")) == {"batch_shape": [8, 28, 28, 1], "dtype": "float32"}


def test_intermediate_checkpoint_equals_shorter_run(run, tmp_path):
    """The step-10 checkpoint of the 20-step run (saved while the state was donated
    to later steps) equals the final state of a 10-step run."""
    workdir, config, _ = run
    _, short = _train(tmp_path, num_steps=10, **{"model.quantize_levels": 16, "data.eval": None})
    _, state, _ = run_files.load_checkpoint(str(workdir), step=10, task=engine_task.EngineTestTask(config))
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(short.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_init_from_copies_the_parameters_and_starts_a_fresh_optimiser(run, tmp_path):
    workdir, config, source = run
    _, warm = _train(tmp_path / "warm", num_steps=1, learning_rate=0.0, init_from=str(workdir),
                     **{"data.eval": None})
    for a, b in zip(jax.tree.leaves(warm.state["params"]), jax.tree.leaves(source.state["params"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # Adam at rate 0 moves nothing
    assert int(warm.state["step"]) == 1
    assert int(warm.state["pretrain_calls"]) == 0  # pre-training would overwrite the copied parameters
    counts = [int(x) for x in jax.tree.leaves(warm.state["opt"]) if np.ndim(x) == 0]
    assert counts and set(counts) == {1}  # the source's optimiser (20 steps) was not carried over
    _, cold = _train(tmp_path / "cold", num_steps=1, learning_rate=0.0, **{"data.eval": None})
    assert not np.array_equal(np.asarray(cold.state["params"]["params"]["dec"]["bias"]),
                              np.asarray(source.state["params"]["params"]["dec"]["bias"]))


def test_init_from_passes_the_copy_through_the_tasks_warm_start(run, tmp_path):
    workdir, _, source = run
    _, warm = _train(tmp_path / "shifted", num_steps=1, learning_rate=0.0, init_from=str(workdir),
                     **{"data.eval": None, "model.warm_shift": 0.25})
    got, want = (np.asarray(s.state["params"]["params"][layer]["bias"]) for s in (warm, source) for layer in ["dec"])
    np.testing.assert_allclose(got, want + 0.25, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(warm.state["params"]["params"]["enc"]["kernel"]),
                                  np.asarray(source.state["params"]["params"]["enc"]["kernel"]))


def test_init_from_takes_the_parameters_of_a_run_with_another_optimiser(run, tmp_path):
    """The source's state is read with its own optimiser's structure (Adam), the copy
    trains under this run's (SGD): e.g. an encoder-only fine-tune of a full run."""
    workdir, _, source = run
    _, warm = _train(tmp_path / "sgd", num_steps=1, learning_rate=0.0, init_from=str(workdir),
                     **{"data.eval": None, "model.optimizer": "sgd"})
    for a, b in zip(jax.tree.leaves(warm.state["params"]), jax.tree.leaves(source.state["params"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not any(np.ndim(x) == 0 for x in jax.tree.leaves(warm.state["opt"]))  # no Adam step count


@pytest.mark.parametrize("overrides, message", [
    ({"model.latent": 8}, "do not fit this model"),
    ({"init_from": "/nonexistent/run"}, "is not a training workdir"),
])
def test_init_from_refuses_other_models_and_missing_runs(run, tmp_path, overrides, message):
    workdir, _, _ = run
    overrides = {"init_from": str(workdir), "num_steps": 1, "data.eval": None, **overrides}
    with pytest.raises(ConfigError, match=message):
        _train(tmp_path, **overrides)


# Decodes Event records with TensorFlow's own message classes (event_pb2), loaded
# without running tensorflow/__init__.py (a 5-30 s import), in a separate process
# so the stub package does not leak into other tests.
DECODE_EVENTS = """
import importlib.util, json, os, sys, types
root = os.path.dirname(importlib.util.find_spec("tensorflow").origin)
package = types.ModuleType("tensorflow")
package.__path__ = [root]
sys.modules["tensorflow"] = package
from tensorflow.core.util import event_pb2
out = []
for record in json.load(sys.stdin):
    event = event_pb2.Event.FromString(bytes.fromhex(record))
    for v in event.summary.value:
        text = v.tensor.string_val[0].decode() if v.HasField("tensor") else None
        out.append([event.step, v.tag, v.simple_value, text, v.metadata.plugin_data.plugin_name])
    if event.file_version:
        out.append([event.step, "file_version", 0.0, event.file_version, ""])
print(json.dumps(out))
"""


def _crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit (RFC 3720 B.4)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def _tfrecords(path):
    """Record payloads of a TFRecord file, checking both masked CRC-32Cs of each."""

    def masked(data):
        crc = _crc32c(data)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    raw, records, pos = open(path, "rb").read(), [], 0
    while pos < len(raw):
        header = raw[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", raw[pos + 8:pos + 12])[0] == masked(header)
        data = raw[pos + 12:pos + 12 + length]
        assert struct.unpack("<I", raw[pos + 12 + length:pos + 16 + length])[0] == masked(data)
        records.append(data)
        pos += 16 + length
    return records


def test_metrics_log_and_tensorboard_events(run):
    workdir, config, result = run
    lines = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    assert lines == result.history
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("needs tensorflow's event_pb2")
    (path,) = glob.glob(str(workdir / "events.out.tfevents.*"))
    records = [r.hex() for r in _tfrecords(path)]
    proc = subprocess.run([sys.executable, "-c", DECODE_EVENTS], input=json.dumps(records),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    values = json.loads(proc.stdout)
    assert values[0] == [0, "file_version", 0.0, "brain.Event:2", ""]
    scalars = {(tag, step): value for step, tag, value, text, _ in values if text is None}
    texts = {tag: (text, plugin) for _, tag, _, text, plugin in values if text is not None}
    for entry in result.history:
        for name, value in entry.items():
            if name != "step":
                assert scalars[(name, entry["step"])] == pytest.approx(value, rel=1e-6)
    assert len(scalars) == sum(len(e) - 1 for e in result.history)
    text, plugin = texts["hparams/text_summary"]
    assert plugin == "text"
    assert "| learning_rate | 0.003 |" in text
    assert '| data.train | "sample:mnist" |' in text


def test_codec_tables_are_replaced_atomically(tmp_path):
    path = str(tmp_path / "codec_tables.npz")
    run_files.save_tables(path, {"a": np.arange(3)})

    class Unsaveable:
        def __array__(self, *args, **kwargs):
            raise RuntimeError("cannot convert")

    with pytest.raises(RuntimeError):
        run_files.save_tables(path, {"a": np.arange(5), "b": Unsaveable()})
    assert os.listdir(tmp_path) == ["codec_tables.npz"]  # no temporary file left
    np.testing.assert_array_equal(run_files.load_tables(path)["a"], np.arange(3))  # old file intact
    assert run_files.load_tables(str(tmp_path / "missing.npz")) is None


def test_nan_loss_stops_run_naming_the_step(tmp_path):
    with pytest.raises(JaxcodecError, match=r"^loss became nan at step 7;") as info:
        _train(tmp_path, num_steps=20, checkpoint_every=5, **{"model.nan_at": 7, "data.eval": None})
    assert "\n" not in str(info.value)
    # Step 0 is saved after pre-training; no NaN state (step 10) was saved.
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["0", "5"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_steps": 0}, "config.num_steps must be a positive integer"),
        ({"eval_batches": 0}, "config.eval_batches must be a positive integer"),
        ({"checkpoint_every": -1}, "config.checkpoint_every must be a non-negative integer"),
        ({"data.train": ""}, "config.data.train is empty"),
        ({"data.downscale": 0.5}, "downscale must be a number >= 1, got 0.5"),
        ({"data.downscale": 2.0}, "downscale needs crop"),
    ],
)
def test_bad_config_values_raise_config_error(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        _train(tmp_path, **overrides)
    assert not os.path.exists(tmp_path / "checkpoints")


def test_defaults_fill_missing_optional_fields():
    config = engine_task.config()
    del config["keep_checkpoints"]
    del config.data["crop"]
    assert engine.setting(config, "keep_checkpoints") == engine.DEFAULTS["keep_checkpoints"]
    assert engine.setting(config, "data.crop") is None
    with pytest.raises(ConfigError, match="config has no 'warmup'"):
        engine.setting(config, "warmup")


def test_data_seed_differs_after_resume_only():
    assert engine.data_seed(3, 0) == 3
    seeds = {engine.data_seed(3, s) for s in (100, 200, 300)}
    assert len(seeds) == 3 and 3 not in seeds


# --- progress line and event-file encoding -------------------------------------------


def test_format_line():
    line = progress.format_line(
        120, 2000, {"psnr": 23.456, "loss": 0.02134}, {"steps_per_sec": 12.34, "host_fraction": 0.04, "eta_sec": 155}
    )
    assert line == "step 120/2000  loss 0.02134  psnr 23.46  12.3 steps/s  host 4%  ETA 2m35s"


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59.4, "59s"), (155, "2m35s"), (3725, "1h02m"), (math.inf, "?")])
def test_format_duration(seconds, text):
    assert progress.format_duration(seconds) == text


def test_progress_rates_with_a_fake_clock():
    now = [0.0]
    clock = progress.Progress(num_steps=100, start_step=0, clock=lambda: now[0])
    now[0] = 5.0  # compilation
    clock.start_totals(1)
    for _ in range(9):  # steps 2..10: 0.1 s host + 0.4 s device each
        with clock.host():
            now[0] += 0.1
        now[0] += 0.4
    with clock.paused():  # an evaluation
        now[0] += 3.0
    out = clock.report(10)
    assert out["steps_per_sec"] == pytest.approx(2.0)
    assert out["host_fraction"] == pytest.approx(0.2)
    assert out["eta_sec"] == pytest.approx(90 / (9 / 7.5))  # average includes the evaluation
    assert clock.steps_per_sec == pytest.approx(2.0)
    assert clock.host_fraction == pytest.approx(0.2)


def test_crc32c_reference_check_value():
    # The reference the event-file framing is checked with: RFC 3720 / Castagnoli check values.
    assert _crc32c(b"123456789") == 0xE3069283
    assert _crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4, 32 bytes of zeros


def test_a_run_that_cannot_read_its_data_leaves_no_new_workdir(tmp_path):
    missing = f"folder:{tmp_path / 'no_such_folder'}"
    with pytest.raises(JaxcodecError, match="does not exist"):
        _train(tmp_path / "new_run" / "a" / "b", **{"data.train": missing})
    assert not os.path.exists(tmp_path / "new_run")  # with the parents the run made
    # A workdir that was there before is left as it was (its files are the user's).
    (tmp_path / "old_run").mkdir()
    (tmp_path / "old_run" / "notes.txt").write_text("kept")
    with pytest.raises(JaxcodecError, match="does not exist"):
        _train(tmp_path / "old_run", **{"data.train": missing})
    assert (tmp_path / "old_run" / "notes.txt").read_text() == "kept"


def test_a_workdir_that_cannot_be_created_is_one_error(tmp_path):
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(JaxcodecError, match=r"^cannot create folder .*file/run"):
        _train(tmp_path / "file" / "run")
