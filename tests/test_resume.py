"""End-to-end tests of ``train.py``: resume after SIGKILL, and command-line errors."""

import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from jaxcodec import engine

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A tiny run of the real MNIST convolutional autoencoder on the packaged sample.
TINY = [
    "--config=configs/mnist_conv_ae.py",
    "--config.batch_size=8",
    "--config.model.features=(4,8,8)",
    "--config.model.hidden=16",
    "--config.model.finalize_batches=2",
    "--config.data.eval=",
    "--config.log_every=1",
    "--config.checkpoint_every=2",
    "--config.keep_checkpoints=2",
]


def _train_py(*args):
    return [sys.executable, os.path.join(REPO, "train.py"), *args]


def _env(cache_dir):
    """The second run reuses the first run's compiled functions (JAX's persistent cache)."""
    return dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(cache_dir),
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")


def _complete_steps(workdir):
    ckpt = os.path.join(workdir, "checkpoints")
    return sorted(int(n) for n in os.listdir(ckpt) if n.isdigit()) if os.path.isdir(ckpt) else []


def test_resume_after_sigkill(tmp_path):
    workdir = str(tmp_path / "run")
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(
        _train_py(*TINY, "--config.num_steps=100000", f"--workdir={workdir}"),
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=_env(tmp_path / "cache"),
    )
    try:
        deadline = time.time() + 120
        while not _complete_steps(workdir):
            assert first.poll() is None, open(tmp_path / "first.log").read()[-2000:]
            assert time.time() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    saved = _complete_steps(workdir)[-1]
    assert saved % 2 == 0 and saved >= 2

    end = saved + 3
    second = subprocess.run(
        _train_py(*TINY, f"--config.num_steps={end}", f"--workdir={workdir}"),
        cwd=REPO, capture_output=True, text=True, timeout=180, env=_env(tmp_path / "cache"),
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"resuming from step {saved} in " in second.stdout
    steps = [int(m) for m in re.findall(rf"^step (\d+)/{end} ", second.stdout, re.M)]
    assert steps == list(range(saved + 1, end + 1))
    assert _complete_steps(workdir)[-1] == end

    config, state, tables = engine.load_checkpoint(workdir)
    assert config.num_steps == end and config.model.hidden == 16
    assert int(state["step"]) == end  # the task's own counter: no step lost or repeated
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(state["params"]))
    assert tables is not None and os.path.isfile(os.path.join(workdir, "codec_tables.npz"))


def test_unknown_config_key_is_a_one_line_error(tmp_path):
    proc = subprocess.run(
        _train_py(*TINY, "--config.nonexistent=1", f"--workdir={tmp_path}/w"),
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip() == "error: unknown config field --config.nonexistent"
    assert not os.path.exists(tmp_path / "w")


def test_engine_error_is_printed_without_traceback(tmp_path):
    proc = subprocess.run(
        _train_py(*TINY, "--config.num_steps=0", f"--workdir={tmp_path}/w"),
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "error: config.num_steps must be a positive integer, got 0"
    assert "Traceback" not in proc.stderr
