"""One process of tests/test_distributed.py: trains the engine's test task with the process
count and index that the environment gives ``jax.distributed`` (JAX_COORDINATOR_ADDRESS,
JAX_NUM_PROCESSES, JAX_PROCESS_ID), then saves its copy of the parameters.

    python -m tests.distributed_worker WORKDIR DATA.npz OUT.npz
"""

from __future__ import annotations

import sys


def main(workdir: str, data: str, out: str) -> None:
    import jax
    import numpy as np

    from jaxcodec.train import engine
    from jaxcodec.train import sharding
    from tests import engine_task

    sharding.initialize_distributed()
    config = engine_task.config(**{"data.train": f"npz:{data}", "data.eval": None, "num_steps": 4,
                                   "checkpoint_every": 0, "log_every": 2, "learning_rate": 1e-2})
    result = engine.train(engine_task.EngineTestTask(config), config, workdir)
    flat = jax.tree_util.tree_flatten_with_path(result.state["params"])[0]
    local = {jax.tree_util.keystr(path): np.asarray(leaf.addressable_data(0)) for path, leaf in flat}
    np.savez(out, processes=jax.process_count(), devices=jax.device_count(), **local)


if __name__ == "__main__":
    main(*sys.argv[1:4])
