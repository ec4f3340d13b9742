"""Several processes with JAX's own runtime (``jax.distributed``): two processes on this
machine, CPU collectives through gloo, each reading half of every batch, end with the
parameters of one process that reads whole batches."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import jax
import numpy as np

from jaxcodec import data
from jaxcodec.train import engine
from jaxcodec.train import run_files
from tests import engine_task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_like_one_with_the_whole_batch(tmp_path):
    # 8 digits, batch 8: every step's batch is the whole set, in each process's own order
    digits = data.load_images("sample:mnist", "train", limit=8)
    npz = tmp_path / "digits.npz"
    np.savez(npz, images=np.round(np.stack(digits)[..., 0] * 255).astype(np.uint8))

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    # one device per process, but the same vector unit as this process (the reference below)
    isa = [flag for flag in os.environ.get("XLA_FLAGS", "").split() if flag.startswith("--xla_cpu_max_isa")]
    if isa:
        env["XLA_FLAGS"] = " ".join(isa)
    env.update(JAX_PLATFORMS="cpu", JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
               PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "-m", "tests.distributed_worker", str(tmp_path / "run"), str(npz),
                               str(tmp_path / f"p{i}.npz")], cwd=ROOT, env={**env, "JAX_PROCESS_ID": str(i)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    try:
        outputs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    assert "finished step 4" in outputs[0]

    config = engine_task.config(**{"data.train": f"npz:{npz}", "data.eval": None, "num_steps": 4,
                                   "checkpoint_every": 0, "log_every": 2, "learning_rate": 1e-2})
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    one = engine.train(engine_task.EngineTestTask(config), config, str(tmp_path / "one"), mesh=mesh)
    reference = {jax.tree_util.keystr(p): np.asarray(v)
                 for p, v in jax.tree_util.tree_flatten_with_path(one.state["params"])[0]}
    for i in range(2):
        with np.load(tmp_path / f"p{i}.npz") as got:
            assert int(got["processes"]) == 2 and int(got["devices"]) == 2
            for key, value in reference.items():
                np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    # training moved the parameters (the decoder's bias starts at zero): not two untouched states
    assert np.abs(reference["['params']['dec']['bias']"]).max() > 1e-3
    # the checkpoint both processes wrote restores in one process
    _, state, _ = run_files.load_checkpoint(str(tmp_path / "run"), task=engine_task.EngineTestTask(config))
    np.testing.assert_allclose(np.asarray(state["params"]["params"]["dec"]["bias"]),
                               reference["['params']['dec']['bias']"], rtol=1e-5, atol=1e-6)
