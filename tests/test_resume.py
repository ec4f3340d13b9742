"""End-to-end tests of ``train.py``: resume after SIGKILL, and command-line errors."""

import glob
import json
import os
import re
import socket
import struct
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from jaxcodec.train import run_files

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


def _logged_steps(workdir):
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.isfile(path):
        return []
    steps = []
    for line in open(path).read().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except ValueError:  # a row being written
            pass
    return steps


def _event_steps(workdir):
    """Steps of the scalar events in the workdir's TensorBoard files (the Event's step is
    field 2, after the 8-byte wall time; its summary is field 5)."""
    steps = []
    for path in glob.glob(os.path.join(workdir, "events.out.tfevents.*")):
        data, pos = open(path, "rb").read(), 0
        while pos < len(data):
            (size,) = struct.unpack_from("<Q", data, pos)
            record = data[pos + 12 : pos + 12 + size]
            value, shift, i = 0, 0, 10
            while True:
                value |= (record[i] & 0x7F) << shift
                shift, i = shift + 7, i + 1
                if not record[i - 1] & 0x80:
                    break
            if value and record[i] == 0x2A:  # a summary at a step past 0
                steps.append(value)
            pos += 12 + size + 4
    return sorted(steps)


def test_resume_after_sigkill(tmp_path):
    """Killed after logging steps past its last checkpoint, a run resumes from the
    checkpoint with its logs cut back to it: every step is logged once, in order, in
    metrics.jsonl and TensorBoard; a stale half-written checkpoint folder is removed."""
    workdir = str(tmp_path / "run")
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(
        _train_py(*TINY, "--config.num_steps=100000", f"--workdir={workdir}"),
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=_env(tmp_path / "cache"),
    )
    try:
        deadline = time.time() + 120
        while not _complete_steps(workdir) or max(_logged_steps(workdir)) <= _complete_steps(workdir)[-1]:
            assert first.poll() is None, open(tmp_path / "first.log").read()[-2000:]
            assert time.time() < deadline, "no checkpoint and later log row after 120 s"
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL
    saved = _complete_steps(workdir)[-1]
    assert saved % 2 == 0 and saved >= 2
    assert max(_logged_steps(workdir)) > saved  # rows the resumed run will write again
    assert os.path.isfile(os.path.join(workdir, "train.lock"))  # left by the killed run
    stale = os.path.join(workdir, "checkpoints", f"{saved + 2}.orbax-checkpoint-tmp-1234567")
    os.makedirs(stale)
    open(os.path.join(stale, "half-written"), "w").close()

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
    assert _logged_steps(workdir) == list(range(1, end + 1))
    assert _event_steps(workdir) == list(range(1, end + 1))
    assert not os.path.exists(stale)

    config, state, tables = run_files.load_checkpoint(workdir)
    assert config.num_steps == end and config.model.hidden == 16
    assert int(state["step"]) == end  # the task's own counter: no step lost or repeated
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(state["params"]))
    assert tables is not None and os.path.isfile(os.path.join(workdir, "codec_tables.npz"))


def test_a_second_run_on_a_busy_workdir_stops_at_once(tmp_path):
    """While one train.py runs, another on the same workdir exits with one error line
    naming the first, and touches nothing: the first run's checkpoints and logs go on."""
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
        events = set(glob.glob(os.path.join(workdir, "events.out.tfevents.*")))
        second = subprocess.run(
            _train_py(*TINY, "--config.num_steps=100000", f"--workdir={workdir}"),
            cwd=REPO, capture_output=True, text=True, timeout=120, env=_env(tmp_path / "cache"),
        )
        assert first.poll() is None
        steps = _logged_steps(workdir)
        time.sleep(1.0)
        assert max(_logged_steps(workdir)) > max(steps)  # the first run carries on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert second.returncode == 1
    assert second.stderr.strip() == (
        f"error: {workdir} is in use by another training run (process {first.pid} on {socket.gethostname()}, "
        f"started {second.stderr.split('started ')[1].split(')')[0]}); wait for it to end or choose another --workdir")
    assert second.stdout == ""
    assert set(glob.glob(os.path.join(workdir, "events.out.tfevents.*"))) == events
    steps = _logged_steps(workdir)
    assert steps == sorted(set(steps))


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
