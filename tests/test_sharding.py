"""Tests of the device mesh, batch sharding and multi-process settings.

The multi-device test runs in a subprocess with 8 fake CPU devices
(``--xla_force_host_platform_device_count=8``), as big_vision's tests do.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from jaxcodec.train import sharding
from jaxcodec.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

EIGHT_DEVICES = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from jaxcodec.train import engine
    from jaxcodec.train import run_files
    from jaxcodec.train import sharding
    from jaxcodec.errors import ConfigError
    from tests import engine_task

    workdir = sys.argv[1]
    out = {"device_count": jax.device_count()}
    config = engine_task.config(num_steps=2, batch_size=16, log_every=1, checkpoint_every=0,
                                **{"data.eval": None})
    results = {}
    for n in (1, 8):
        mesh = sharding.data_mesh(jax.devices()[:n])
        results[n] = engine.train(engine_task.EngineTestTask(config), config, f"{workdir}/d{n}", mesh=mesh)
    out["loss"] = {n: [h["loss"] for h in r.history] for n, r in results.items()}
    diffs = [float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / (np.max(np.abs(np.asarray(b))) + 1e-12))
             for a, b in zip(jax.tree.leaves(results[8].state["params"]), jax.tree.leaves(results[1].state["params"]))]
    out["param_rel_diff"] = max(diffs)
    out["param_change"] = float(np.max(np.abs(np.asarray(results[8].state["params"]["params"]["dec"]["bias"]))))
    out["state_devices"] = sorted({len(x.sharding.device_set) for x in jax.tree.leaves(results[8].state)})
    out["state_replicated"] = all(x.sharding.is_fully_replicated for x in jax.tree.leaves(results[8].state))

    mesh = sharding.data_mesh()
    batch = sharding.shard_batch(np.arange(16, dtype=np.float32).reshape(16, 1), sharding.batch_sharding(mesh))
    out["batch_shards"] = sorted((s.device.id, s.data[:, 0].tolist()) for s in batch.addressable_shards)
    task = engine_task.EngineTestTask(config)
    step = engine.make_train_step(task, mesh, jax.random.key(0))
    abstract = run_files.abstract_state(task, mesh, (16, 28, 28, 1))
    hlo = step.lower(abstract, jax.ShapeDtypeStruct((16, 28, 28, 1), jnp.float32),
                     jax.ShapeDtypeStruct((), jnp.int32)).compile().as_text()
    out["all_reduce"] = "all-reduce" in hlo
    out["per_device_batch"] = "f32[2,28,28,1]" in hlo
    try:
        sharding.local_batch_size(12, mesh)
    except ConfigError as e:
        out["error"] = str(e)
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def eight(tmp_path_factory):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", EIGHT_DEVICES, str(tmp_path_factory.mktemp("eight"))],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    return json.loads(line[len("RESULT "):])


def test_one_step_on_eight_devices_matches_one_device(eight):
    assert eight["device_count"] == 8
    loss1, loss8 = eight["loss"]["1"], eight["loss"]["8"]
    assert len(loss1) == 2
    np.testing.assert_allclose(loss8, loss1, rtol=1e-5)
    assert eight["param_change"] > 1e-4  # the steps did move the parameters
    assert eight["param_rel_diff"] < 1e-5


def test_step_is_data_parallel_on_eight_devices(eight):
    # Each device holds 2 consecutive rows of the 16-row batch.
    assert [rows for _, rows in eight["batch_shards"]] == [[2.0 * i, 2.0 * i + 1] for i in range(8)]
    assert eight["state_devices"] == [8] and eight["state_replicated"]
    assert eight["per_device_batch"]  # the compiled step sees 2 images per device
    assert eight["all_reduce"]  # and averages the gradients across devices


def test_batch_not_divisible_by_devices_is_a_config_error(eight):
    assert eight["error"] == "batch_size 12 is not divisible by the number of devices (8); use a multiple of 8"


def test_local_batch_size_single_process():
    mesh = sharding.data_mesh(jax.devices()[:1])
    assert sharding.local_batch_size(12, mesh) == 12
    with pytest.raises(ConfigError, match="batch_size must be positive"):
        sharding.local_batch_size(0, mesh)


def test_shard_batch_single_device_round_trip():
    mesh = sharding.data_mesh(jax.devices()[:1])
    x = np.random.default_rng(0).random((4, 3, 3, 1), dtype=np.float32)
    y = sharding.shard_batch(x, sharding.batch_sharding(mesh))
    assert y.sharding == sharding.batch_sharding(mesh)
    np.testing.assert_array_equal(np.asarray(y), x)


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, None),
        ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "2"},
         {"coordinator_address": "10.0.0.1:1234", "num_processes": 4, "process_id": 2}),
        ({"JAX_COORDINATOR_ADDRESS": "h:1"}, {"coordinator_address": "h:1"}),
        ({"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "n[1-2]", "SLURM_NTASKS": "2", "SLURM_PROCID": "0",
          "SLURM_LOCALID": "0"}, {}),
        ({"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "n1", "SLURM_NTASKS": "1", "SLURM_PROCID": "0",
          "SLURM_LOCALID": "0"}, None),  # a one-task SLURM job is a single process
        ({"OMPI_MCA_orte_hnp_uri": "1531576320.0;tcp://10.96.0.1:34911"}, {}),
    ],
)
def test_distributed_settings_from_environment(environ, expected):
    assert sharding.distributed_settings(environ) == expected


def test_distributed_settings_rejects_non_integer_counts():
    with pytest.raises(ConfigError, match="JAX_NUM_PROCESSES='four' is not an integer"):
        sharding.distributed_settings({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "four"})


def test_initialize_distributed_is_a_no_op_for_one_process():
    assert sharding.initialize_distributed({}) is False
    assert jax.process_count() == 1
