"""configs/factorized.py: one config file for the nine qualities of the factorized ladder."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from jaxcodec.errors import ConfigError
from jaxcodec.train.tasks import factorized as factorized_task
from jaxcodec.train.tasks.factorized import default_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_FILE = os.path.join(ROOT, "configs", "factorized.py")

# What configs/factorized_q1.py ... factorized_q9.py returned before they became
# configs/factorized.py:QUALITY: these fields, the nine alike except model.quality.
PER_QUALITY_FILES = {
    "batch_size": 8,
    "checkpoint_every": 5000,
    "data.crop": 256,
    "data.downscale": 1.0,
    "data.eval": "",
    "data.eval_split": "test",
    "data.image_size": None,
    "data.train": "",
    "data.train_split": "train",
    "eval_batches": 1,
    "eval_every": 5000,
    "init_from": "",
    "keep_checkpoints": 3,
    "learning_rate": 0.0001,
    "log_every": 100,
    "lr_decay_at": 0.0,
    "model.activation": "gdn",
    "model.clip_norm": 1.0,
    "model.conv_algorithm": "auto",
    "model.features": 128,
    "model.filters": (3, 3, 3),
    "model.init_latent_scale": 1.0,
    "model.kernel_sizes": (5, 5, 5, 5),
    "model.latent_channels": 192,
    "model.lmbda": 0.0,
    "model.name": "factorized",
    "model.quantizer": "noise",
    "model.refine_lr": 0.02,
    "model.tail_mass": 1e-09,
    "model.trainable": "all",
    "model.upsample": "subpixel",
    "num_steps": 200000,
    "seed": 0,
}

# CompressAI's MSE λ of bmshj2018-factorized qualities 1..8 (compressai/zoo, train.py docs).
COMPRESSAI_LAMBDAS = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.013, 5: 0.025, 6: 0.0483, 7: 0.0932, 8: 0.18}
LADDER_LAMBDAS = {**COMPRESSAI_LAMBDAS, 9: 2 * 0.18}  # one rung above CompressAI's


def _config_module():
    spec = importlib.util.spec_from_file_location("factorized_config", CONFIG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


@pytest.mark.parametrize("quality", range(1, 10))
def test_each_quality_is_the_config_of_its_former_file(quality):
    fields = _flat(_config_module().get_config(str(quality)).to_dict())
    assert fields == _flat(default_config(quality=quality).to_dict())  # the library's, nothing added
    assert fields["model.quality"] == quality
    # every field the library still defines holds the value the former file gave it (a field
    # the library has dropped since, such as model.conv_algorithm, is no change of this file)
    kept = {key: value for key, value in PER_QUALITY_FILES.items() if key in fields}
    assert {key: fields[key] for key in kept} == kept


@pytest.mark.parametrize("quality", sorted(LADDER_LAMBDAS))
def test_each_quality_config_trains_at_compressais_lambda(quality):
    config = _config_module().get_config(str(quality))
    assert config.model.quality == quality
    assert factorized_task.FactorizedTask(config).lmbda == LADDER_LAMBDAS[quality]


def test_quality_3_without_an_argument_and_quality_equals_form():
    module = _config_module()
    assert module.get_config().to_dict() == module.get_config("3").to_dict()
    assert module.get_config("quality=7").to_dict() == module.get_config("7").to_dict()


@pytest.mark.parametrize("argument", ["0", "10", "x", "3.5", "-1"])
def test_a_bad_quality_is_a_config_error(argument):
    with pytest.raises(ConfigError, match=r"quality must be an integer in 1\.\.9 .*got"):
        _config_module().get_config(argument)
    with pytest.raises(ConfigError, match="unknown argument 'variant'"):
        _config_module().get_config("variant=3")


def test_the_config_flag_passes_the_quality_after_the_colon():
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config file", flag_values=values, lock_config=True)
    values(["train.py", f"--config={CONFIG_FILE}:7"])
    assert values.config.model.quality == 7


def test_train_py_reports_a_bad_quality_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "train.py"), "--config=configs/factorized.py:12",
         f"--workdir={tmp_path / 'run'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: cannot load config file configs/factorized.py:12: "
        "quality must be an integer in 1..9 (configs/factorized.py:QUALITY), got '12'"
    )
    assert not (tmp_path / "run").exists()
