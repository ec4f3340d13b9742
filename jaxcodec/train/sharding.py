"""Device mesh and shardings for data-parallel training, and multi-host start-up.

The engine uses one mesh axis, ``"data"``, over every device of every process: the
batch is split along its first dimension (``P("data")``) and the train state is
replicated (``P()``), so XLA inserts the gradient all-reduce itself. This is the
``jax.jit`` + ``NamedSharding`` style of the Flax gemma example and big_vision, which
replaces ``pmap`` (in maintenance mode since JAX 0.8).

With several processes (hosts), each process reads its own slice of the batch and
:func:`shard_batch` assembles the global array with
``jax.make_array_from_process_local_data``; :func:`initialize_distributed` must run
before anything else touches JAX.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxcodec.errors import ConfigError

DATA_AXIS = "data"

# Environment variables of the launchers whose presence means "several processes".
_SLURM_VARS = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
_OMPI_VAR = "OMPI_MCA_orte_hnp_uri"


def _env_int(environ: Mapping[str, str], name: str) -> int:
    try:
        return int(environ[name])
    except ValueError:
        raise ConfigError(f"environment variable {name}={environ[name]!r} is not an integer") from None


def distributed_settings(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """Keyword arguments for ``jax.distributed.initialize``, or None for one process.

    A multi-process run is recognised from:

    * ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0), with
      ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` when no cluster manager provides them;
    * a SLURM job step with more than one task (``SLURM_NTASKS > 1``);
    * an Open MPI launch (``OMPI_MCA_orte_hnp_uri``).

    JAX's own cluster detection fills in whatever is not given explicitly.
    """
    if environ.get("JAX_COORDINATOR_ADDRESS"):
        settings: dict[str, Any] = {"coordinator_address": environ["JAX_COORDINATOR_ADDRESS"]}
        if "JAX_NUM_PROCESSES" in environ:
            settings["num_processes"] = _env_int(environ, "JAX_NUM_PROCESSES")
        if "JAX_PROCESS_ID" in environ:
            settings["process_id"] = _env_int(environ, "JAX_PROCESS_ID")
        return settings
    if all(v in environ for v in _SLURM_VARS) and _env_int(environ, "SLURM_NTASKS") > 1:
        return {}
    if _OMPI_VAR in environ:
        return {}
    return None


def initialize_distributed(environ: Mapping[str, str] | None = None) -> bool:
    """Calls ``jax.distributed.initialize`` when the environment describes several processes.

    Returns True when it initialised the distributed runtime, False for a
    single-process run or when it was already initialised.
    """
    settings = distributed_settings(os.environ if environ is None else environ)
    if settings is None or jax.distributed.is_initialized():
        return False
    jax.distributed.initialize(**settings)
    return True


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ConfigError("cannot build a device mesh from an empty device list")
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Splits the leading (batch) dimension over the ``"data"`` axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of ``mesh`` (train state, metrics, scalars)."""
    return NamedSharding(mesh, P())


def local_batch_size(batch_size: int, mesh: Mesh) -> int:
    """The number of examples this process reads per step for a global ``batch_size``.

    Raises ConfigError unless the batch splits evenly over the mesh's devices (each
    device gets the same number of examples) and over the processes.
    """
    if batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    if batch_size % mesh.size:
        raise ConfigError(
            f"batch_size {batch_size} is not divisible by the number of devices ({mesh.size}); "
            f"use a multiple of {mesh.size}"
        )
    processes = jax.process_count()
    if batch_size % processes:
        raise ConfigError(f"batch_size {batch_size} is not divisible by the {processes} processes")
    return batch_size // processes


def shard_batch(local_batch: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """The global batch array from this process's rows, laid out by ``sharding``.

    Every process passes its own ``local_batch`` of identical shape; the global batch
    is their concatenation along the first axis, in process order. A batch already on
    the devices with this layout (:mod:`jaxcodec.train.device_data`) is returned as it is.
    """
    if isinstance(local_batch, jax.Array) and local_batch.sharding == sharding:
        return local_batch
    local_batch = np.asarray(local_batch)
    global_shape = (local_batch.shape[0] * jax.process_count(),) + local_batch.shape[1:]
    return jax.make_array_from_process_local_data(sharding, local_batch, global_shape)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places every array of ``tree`` on all devices of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))
