"""tools/ladder.py and the factorized ladder's recipe (configs/ladders/bmshj2017_factorized.py)."""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "configs", "ladders", "bmshj2017_factorized.py")

# What `make factorized-ladder` and `make factorized-ladder-gpu` ran for some stages before the
# recipe replaced their shell loops (PHOTOS, RUNS and PY as given on make's command line).
_M = ("--config.data.crop=128 --config.model.features=64 --config.model.latent_channels=128 "
      "--config.learning_rate=5e-4 --config.checkpoint_every=500 --config.log_every=200")
_GPU = "XLA_PYTHON_CLIENT_MEM_FRACTION=0.09 PY train.py"
_JPEG = "--config.batch_size=32 --config.data.train=folder:RUNS/photos-mixed-jpeg --config.data.downscale=3"
MAKEFILE_COMMANDS = {
    "fq3": f"PY train.py --config configs/factorized_q3.py --workdir RUNS/fq3 {_M} "
           "--config.data.train=folder:PHOTOS --config.num_steps=8000 --config.lr_decay_at=0.85",
    "fq4": f"PY train.py --config configs/factorized_q4.py --workdir RUNS/fq4 {_M} "
           "--config.data.train=folder:RUNS/photos-mixed --config.num_steps=2000 --config.lr_decay_at=0.6 "
           "--config.init_from=RUNS/fq3n --config.model.init_latent_scale=1.41421356",
    "fq7d": f"PY train.py --config configs/factorized_q7.py --workdir RUNS/fq7d {_M} "
            "--config.data.train=folder:RUNS/photos-mixed --config.data.downscale=3 --config.num_steps=7000 "
            "--config.lr_decay_at=0.7 --config.init_from=RUNS/fq7",
    "fq6d": f"PY train.py --config configs/factorized_q6.py --workdir RUNS/fq6d {_M} "
            "--config.data.train=folder:RUNS/photos-mixed --config.data.downscale=3 --config.num_steps=2500 "
            "--config.lr_decay_at=0.6 --config.init_from=RUNS/fq7d --config.model.init_latent_scale=0.70710678",
    "fq7e": f"PY train.py --config configs/factorized_q7.py --workdir RUNS/fq7e {_M} "
            "--config.data.train=folder:RUNS/photos-mixed --config.data.downscale=3 --config.num_steps=2500 "
            "--config.lr_decay_at=0.6 --config.init_from=RUNS/fq6d --config.model.init_latent_scale=1.41421356",
    "fq3f": f"PY train.py --config configs/factorized_q3.py --workdir RUNS/fq3f {_M} "
            "--config.data.train=folder:RUNS/photos-mixed --config.data.downscale=3 --config.num_steps=2500 "
            "--config.lr_decay_at=0.6 --config.init_from=RUNS/fq3d",
    "fq9g": f"PY train.py --config configs/factorized_q9.py --workdir RUNS/fq9g {_M} "
            "--config.data.train=folder:RUNS/photos-mixed --config.data.downscale=3 --config.num_steps=2500 "
            "--config.lr_decay_at=0.6 --config.init_from=RUNS/fq9f",
    "fq1h": f"PY train.py --config configs/factorized_q1.py --workdir RUNS/fq1h {_M} "
            "--config.learning_rate=2e-4 --config.data.train=folder:RUNS/photos-mixed --config.data.downscale=3 "
            "--config.num_steps=600 --config.lr_decay_at=0.6 --config.checkpoint_every=300 "
            "--config.model.quantizer=ste --config.model.trainable=analysis --config.init_from=RUNS/fq1d",
    "fq1m": f"{_GPU} --config configs/factorized_q1.py --workdir RUNS/fq1m {_M} {_JPEG} "
            "--config.lr_decay_at=0.6 --config.init_from=RUNS/fq1h --config.num_steps=6000 > RUNS/fq1m.log 2>&1 &",
    # the Makefile named this GPU stage's workdir as the CPU's fq3n
    "fq3n-gpu": f"{_GPU} --config configs/factorized_q3.py --workdir RUNS/fq3n {_M} {_JPEG} "
                "--config.lr_decay_at=0.6 --config.init_from=RUNS/fq3h --config.num_steps=6000 "
                "> RUNS/fq3n.log 2>&1 &",
    "fq3p": f"{_GPU} --config configs/factorized_q3.py --workdir RUNS/fq3p {_M} {_JPEG} "
            "--config.lr_decay_at=0.6 --config.init_from=RUNS/fq3n --config.num_steps=1500 "
            "--config.learning_rate=2e-4 --config.model.quantizer=ste --config.model.trainable=analysis "
            "> RUNS/fq3p.log 2>&1 &",
    "bmshj2017-factorized-q9": "PY -m jaxcodec export RUNS/fq9p bmshj2017-factorized-q9 "
                               "--description 'Balle et al. 2017 factorized prior, N=64 M=128, quality 9'",
}


def _load_tool():
    spec = importlib.util.spec_from_file_location("tools_ladder", os.path.join(ROOT, "tools", "ladder.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def _ladder(*args: str, cwd: str = ROOT, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "ladder.py"), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _meaning(line: str) -> tuple:
    """A command line as what it does: environment, program, config file and quality, workdir,
    config overrides (the last of each field wins, numbers as numbers), init_from, output file."""
    words = shlex.split(line)
    env = {}
    while "=" in words[0] and not words[0].startswith("-"):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    log = None
    if words[-1] == "&":
        assert words[-4:-2] == [">", words[-3]] and words[-2] == "2>&1"
        log, words = words[-3], words[:-4]
    words[0] = "PY"
    if "train.py" not in words:
        return env, tuple(words), log
    config = words[words.index("--config") + 1]
    if config.startswith("configs/factorized_q"):
        config = f"configs/factorized.py:{config[len('configs/factorized_q'):-len('.py')]}"
    overrides = {}
    for word in words:
        if word.startswith("--config."):
            key, value = word[len("--config."):].split("=", 1)
            try:
                overrides[key] = float(value)
            except ValueError:
                overrides[key] = value
    return env, config, words[words.index("--workdir") + 1], overrides, log


def _dry_run(*args: str) -> list[str]:
    result = _ladder(RECIPE, "--dry-run", "--set", "runs=RUNS", "--set", "photos=PHOTOS", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_dry_run_runs_what_the_makefile_ran():
    lines = [line for line in _dry_run("--only", ",".join(MAKEFILE_COMMANDS)) if line[:1] not in ("#", "w")]
    assert len(lines) == len(MAKEFILE_COMMANDS)
    for line, (name, expected) in zip(lines, MAKEFILE_COMMANDS.items()):
        assert _meaning(line) == _meaning(expected), name


def test_dry_run_of_the_whole_recipe():
    lines = _dry_run()
    train = [line for line in lines if " train.py " in line]
    exports = [line for line in lines if " -m jaxcodec export " in line]
    assert len(train) == 39 + 23 and len(exports) == 9
    assert sum(line.endswith(" &") for line in train) == 23 and lines.count("wait") == 3
    for line in train:
        env, config, workdir, overrides, log = _meaning(line)
        assert config == f"configs/factorized.py:{workdir.split('/fq')[1][0]}"
        assert overrides["model.features"] == 64 and overrides["model.latent_channels"] == 128
    workdirs = [_meaning(line)[2] for line in train]
    assert len(set(workdirs)) == len(workdirs) - 1  # fq3n: the CPU's long run and a GPU stage
    parts = _dry_run("--part", "cpu")
    assert sum(" train.py " in line for line in parts) == 39 and not any("export" in line for line in parts)
    from_fq7h = [line for line in _dry_run("--from", "fq7h") if " train.py " in line]
    assert len(from_fq7h) == 3 + 23 and "--workdir RUNS/fq7h " in from_fq7h[0]


def test_settings_steps_and_train_flags_reach_the_command_lines():
    lines = _dry_run("--only", "fq4", "--set", "tune_steps=50", "--", "--config.log_every=5")
    (line,) = [line for line in lines if not line.startswith("#")]
    assert "--config.num_steps=50 " in line and line.endswith(" --config.log_every=5")


@pytest.mark.parametrize("args, message", [
    (("--only", "fq10"), "no stage 'fq10' in the recipe"),
    (("--from", "nope"), "no stage 'nope' in the recipe"),
    (("--part", "tpu"), "no part 'tpu' in the recipe; it has cpu, gpu"),
    (("--set", "steps=5"), "the recipe has no setting 'steps'"),
    (("--set", "runs"), "--set takes NAME=VALUE"),
])
def test_bad_options_are_one_line_errors(args, message):
    result = _ladder(RECIPE, "--dry-run", *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_recipes_are_refused(tmp_path):
    tool = _load_tool()
    base = {"config": "c.py:{quality}", "workdir": "{runs}/{name}", "settings": {"runs": "r"}}

    def plan(stages, **recipe):
        full = {**base, **recipe, "parts": {"cpu": [{"title": "t", "stages": stages}]}}
        return tool.plan(full, tool.resolve_settings(full))

    with pytest.raises(tool.RecipeError, match="init_from 'b' is no earlier stage"):
        plan([{"name": "a", "quality": 1, "num_steps": 2, "init_from": "b"},
              {"name": "b", "quality": 1, "num_steps": 2}])
    with pytest.raises(tool.RecipeError, match="two steps are named a"):
        plan([{"name": "a", "quality": 1, "num_steps": 2}, {"name": "a", "quality": 2, "num_steps": 2}])
    with pytest.raises(tool.RecipeError, match="stage a has no num_steps"):
        plan([{"name": "a", "quality": 1}])
    with pytest.raises(tool.RecipeError, match=r"unknown name \{data\}"):
        plan([{"name": "a", "quality": 1, "num_steps": 2, "data.train": "folder:{data}"}])
    with pytest.raises(tool.RecipeError, match="in a circle: x, y"):
        plan([], settings={"runs": "r", "x": "{y}", "y": "{x}"})
    (tmp_path / "empty.py").write_text("LADDER = {}\n")
    with pytest.raises(tool.RecipeError, match="defines no RECIPE"):
        tool.load_recipe(str(tmp_path / "empty.py"))


def test_side_by_side_steps_run_at_once_with_their_environment_and_logs(tmp_path):
    tool = _load_tool()
    code = "import os, sys, time; time.sleep(0.5); print(os.environ['LADDER_TEST'], sys.argv[1]); sys.exit({})"
    steps = [tool.Step(name, "gpu", "t", ("-c", code.format(status), name), str(tmp_path / name), 1, "s",
                       env=(("LADDER_TEST", "hello"),), log=str(tmp_path / f"{name}.log"), group=1)
             for name, status in (("a", 0), ("b", 0))]
    lines = []
    assert tool.run(steps, sys.executable, out=lines.append) == 0
    assert (tmp_path / "a.log").read_text() == "hello a\n" and (tmp_path / "b.log").read_text() == "hello b\n"
    assert lines[0] == "ladder: 2 steps, 0 already finished" and lines[-1] == "ladder: all steps done"
    assert [line.split(":")[1].strip() for line in lines[1:3]] == ["[1/2] a", "[2/2] b"]  # both started first

    steps[1] = tool.Step("b", "gpu", "t", ("-c", code.format(3), "b"), str(tmp_path / "b"), 1, "s",
                         env=(("LADDER_TEST", "bye"),), log=str(tmp_path / "b.log"), group=1)
    later = tool.Step("c", "gpu", "t", ("-c", "open('c', 'w')"), str(tmp_path / "c"), 1, "s")
    lines = []
    assert tool.run([*steps, later], sys.executable, out=lines.append) == 1
    assert "ladder: [2/3] b failed (exit status 3): bye b" in lines
    assert not any("[3/3]" in line for line in lines)


def _photos(folder) -> str:
    """Six smooth 96×96 RGB test photos as PNG files."""
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    for i in range(6):
        coarse = rng.uniform(0, 255, (7, 7, 3))
        image = np.kron(coarse, np.ones((16, 16, 1)))[:96, :96]
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(os.path.join(folder, f"p{i}.png"))
    return str(folder)


TINY_RECIPE = '''
RECIPE = {
    "config": "configs/factorized.py:{quality}",
    "workdir": "{runs}/{name}",
    "settings": {"runs": "runs", "photos": "photos", "steps": 3},
    "flags": {"model.features": 8, "model.latent_channels": 8, "data.crop": 32, "batch_size": 2,
              "log_every": 1, "eval_every": 0, "checkpoint_every": 0, "data.eval": ""},
    "parts": {"cpu": [{
        "title": "two rungs",
        "config": {"data.train": "folder:{photos}", "num_steps": "{steps}"},
        "stages": [
            {"name": "q3", "quality": 3},
            {"name": "q4", "quality": 4, "init_from": "q3", "model.init_latent_scale": 1.41421356},
        ],
    }]},
}
'''


def test_a_two_stage_ladder_trains_and_a_second_run_skips_it(tmp_path):
    (tmp_path / "tiny.py").write_text(TINY_RECIPE)
    args = (str(tmp_path / "tiny.py"), "--set", f"runs={tmp_path / 'runs'}",
            "--set", f"photos={_photos(tmp_path / 'photos')}")
    result = _ladder(*args, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ladder: [1/2] q3: quality 3, 3 steps from scratch" in result.stdout
    assert "ladder: [2/2] q4: quality 4, 3 steps from q3" in result.stdout
    assert result.stdout.rstrip().endswith("ladder: all steps done")
    for name, quality in (("q3", 3), ("q4", 4)):
        workdir = tmp_path / "runs" / name
        assert (workdir / "checkpoints" / "3").is_dir() and (workdir / "codec_tables.npz").is_file()
        config = (workdir / "config.json").read_text()
        assert f'"quality": {quality}' in config
    assert str(tmp_path / "runs" / "q3") in (tmp_path / "runs" / "q4" / "config.json").read_text()

    before = os.path.getmtime(tmp_path / "runs" / "q4" / "metrics.jsonl")
    again = _ladder(*args)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "ladder: 2 steps, 2 already finished",
        "ladder: [1/2] q3: already finished, skipped",
        "ladder: [2/2] q4: already finished, skipped",
        "ladder: all steps done",
    ]
    assert os.path.getmtime(tmp_path / "runs" / "q4" / "metrics.jsonl") == before
    dry = _ladder(*args, "--dry-run")
    assert dry.stdout.splitlines()[1:] == ["# q3: already finished, skipped", "# q4: already finished, skipped"]
