"""A training workdir's files, and what is read back from them.

The engine (:mod:`jaxcodec.train.engine`) keeps a run in its workdir: ``config.json`` (the
run's config), ``meta.json`` (the input batch shape and dtype, so the state can be rebuilt
without the data), ``checkpoints/`` (:mod:`jaxcodec.train.checkpoint`), ``metrics.jsonl`` and,
for tasks with a ``finalize`` hook, ``codec_tables.npz``. This module names those files, writes
the small ones atomically and reads a run back: :func:`read_config`; :func:`load_checkpoint`,
which rebuilds ``(config, state, tables)`` on any machine from the files alone (the state's
structure from :func:`abstract_state`, never from the training data); and
:func:`warm_start_params`, the parameters a new run copies from a workdir or a shipped model
(``config.init_from``). Code that only reads runs (the zoo, checkpoint averaging) imports it
without the training loop.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from jaxcodec.errors import ConfigError, ModelError, one_line
from jaxcodec.fileio import atomic_path, atomic_write_text
from jaxcodec.train import sharding
from jaxcodec.train.checkpoint import Checkpointer
from jaxcodec.train.task import State, Task

CONFIG_FILE = "config.json"
META_FILE = "meta.json"
TABLES_FILE = "codec_tables.npz"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
#: ``meta.json`` key that is false where the checkpoint holds no optimiser state.
OPTIMIZER_STATE_KEY = "optimizer_state"


# ---------------------------------------------------------------------------------
# Files


def _write_json(path: str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True))


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
    """Writes ``config`` as the workdir's ``config.json`` (atomically), which :func:`read_config` reads."""
    _write_json(os.path.join(workdir, CONFIG_FILE), json.loads(config.to_json_best_effort()))


def write_meta(workdir: str, batch_shape: tuple[int, ...], dtype: Any) -> None:
    """Writes the workdir's ``meta.json`` (atomically): the global input batch shape and dtype,
    from which :func:`load_checkpoint` rebuilds the state's structure without the data."""
    _write_json(os.path.join(workdir, META_FILE), {"batch_shape": list(batch_shape), "dtype": str(dtype)})


def save_tables(path: str, tables: dict[str, Any]) -> None:
    """Writes ``tables`` as an ``.npz`` atomically (:func:`jaxcodec.fileio.atomic_path`), synced to disk."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in tables.items()})
        f.flush()
        os.fsync(f.fileno())


def load_tables(path: str) -> dict[str, np.ndarray] | None:
    """The arrays of a ``codec_tables.npz``, or None when the file does not exist."""
    if not os.path.isfile(path):
        return None
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _config_from_json(path: str) -> ml_collections.ConfigDict:
    try:
        with open(path) as f:
            return ml_collections.ConfigDict(json.load(f))
    except FileNotFoundError:
        raise ModelError(f"{os.path.dirname(path) or '.'} is not a training workdir (no {CONFIG_FILE})") from None
    except json.JSONDecodeError as e:
        raise ModelError(f"{path} is not valid JSON: {e}") from None


def read_config(workdir: str) -> ml_collections.ConfigDict:
    """A training workdir's config (its ``config.json``); a one-line ModelError if it has none."""
    return _config_from_json(os.path.join(workdir, CONFIG_FILE))


# ---------------------------------------------------------------------------------
# Restoring


def abstract_state(task: Task, mesh: Mesh, batch_shape: tuple[int, ...], dtype: Any = jnp.float32) -> State:
    """The state's structure as ``jax.ShapeDtypeStruct`` leaves, replicated on ``mesh``."""
    batch = jax.ShapeDtypeStruct(tuple(batch_shape), jnp.dtype(dtype))
    shapes = jax.eval_shape(task.init_state, jax.random.key(0), batch)
    rep = sharding.replicated(mesh)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rep), shapes)


def load_checkpoint(
    workdir: str, step: int | None = None, *, task: Task | None = None
) -> tuple[ml_collections.ConfigDict, State, dict[str, np.ndarray] | None]:
    """``(config, state, tables)`` of a training workdir, without its training data.

    The task is rebuilt from ``config.json``, the state's structure from
    ``jax.eval_shape(task.init_state, ...)`` on the batch shape in ``meta.json``; the
    checkpoint of ``step`` (default: the latest) is restored onto the local devices.
    ``tables`` is the contents of ``codec_tables.npz``, or None when there is none.
    ``task`` overrides the registry lookup of ``config.model.name`` (for a Task
    defined outside :mod:`jaxcodec.train.tasks`).
    """
    from jaxcodec.train.tasks import build_task

    config = _config_from_json(os.path.join(workdir, CONFIG_FILE))
    try:
        with open(os.path.join(workdir, META_FILE)) as f:
            meta = json.load(f)
        batch_shape, dtype = tuple(meta["batch_shape"]), meta["dtype"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        raise ModelError(f"{workdir} has no valid {META_FILE} (input shape of the model)") from None
    ckpt_dir = os.path.join(workdir, CHECKPOINT_DIR)
    if not os.path.isdir(ckpt_dir):
        raise ModelError(f"{workdir} has no checkpoint")
    task = build_task(config) if task is None else task
    mesh = sharding.data_mesh(jax.local_devices()[:1])
    abstract = abstract_state(task, mesh, batch_shape, dtype)
    with Checkpointer(ckpt_dir, read_only=True) as ckpt:
        if meta.get(OPTIMIZER_STATE_KEY, True):
            state, _ = ckpt.restore(abstract, step)
        else:  # an exported model: the optimiser state was left behind; a fresh one is zeros
            state, _ = ckpt.restore(inference_state(abstract), step)
            state.update(abstract_zeros({k: v for k, v in abstract.items() if k not in state}))
    return config, state, load_tables(os.path.join(workdir, TABLES_FILE))


def inference_state(state: State) -> State:
    """``state`` without its optimiser states (the keys ending in ``opt``), which a
    shipped model does not need: Adam's moments are twice the size of the parameters."""
    return {k: v for k, v in state.items() if not k.endswith("opt")}


def abstract_zeros(abstract: State) -> State:
    """Zero arrays shaped like ``abstract`` (Adam's initial state is all zeros)."""
    return jax.tree.map(lambda a: jax.device_put(np.zeros(a.shape, a.dtype), a.sharding), abstract)


# ---------------------------------------------------------------------------------
# Starting from another run


def _shipped_params(name: str) -> Any:
    """Parameters of the shipped model ``name`` or of an exported model directory (float32: a
    training run restarts from what was exported), or :class:`ConfigError` when ``name`` is
    none of these nor a workdir."""
    from jaxcodec import artefact

    path = name if os.sep in name else os.path.join(artefact.WEIGHTS_DIR, name)
    if not artefact.is_artefact(path):
        raise ConfigError(f"config.init_from: {name} is not a training workdir, a shipped single model "
                          "or an exported model directory")
    _, state, _ = artefact.read(path)
    return jax.tree.map(lambda a: np.asarray(a, np.float32), state["params"])


def warm_start_params(task: Task, state: State, source: str) -> Any:
    """The parameters a new run with the fresh ``state`` starts from when ``config.init_from``
    is ``source``, on the host (the optimiser state stays fresh): fine-tuning one rung of a
    rate-distortion ladder from another. ``source`` is a training workdir, read with its own
    config (its optimiser may differ, e.g. when only the encoder is fine-tuned), or a shipped
    single model or exported model directory; its parameters must have this model's names and
    shapes. They pass through the task's optional ``complete_start`` and ``warm_start`` hooks."""
    from jaxcodec import artefact

    if os.path.isdir(source) and not artefact.is_artefact(source):
        try:  # the source's own state (its optimiser may differ), by a task of this class
            source_config = read_config(source)
            _, source_state, _ = load_checkpoint(source, task=type(task)(source_config))
        except (ModelError, ConfigError) as error:
            raise ConfigError(f"config.init_from: the parameters in {source} do not fit this model "
                              f"({one_line(error).split(': ', 1)[-1]})") from None
        params = jax.device_get(source_state["params"])
    else:
        params = _shipped_params(source)
    if hasattr(task, "complete_start"):  # parts the source never had (e.g. new, identity-initialised)
        params = task.complete_start(params, jax.device_get(state["params"]))

    def layout(tree):  # nested names -> (shape, dtype); unequal when names or shapes differ
        return jax.tree.map(lambda a: (a.shape, a.dtype), tree)

    if layout(state["params"]) != layout(params):
        own, theirs = artefact.flatten(state["params"]), artefact.flatten(params)
        only = sorted(set(theirs) - set(own))
        detail = f"; only in the start: {', '.join(only[:3])}" if only else ""
        raise ConfigError(f"config.init_from: the parameters in {source} do not fit this model "
                          f"(their names or shapes differ{detail})")
    if hasattr(task, "warm_start"):  # a task may adapt the copy (e.g. rescale a latent)
        params = jax.device_get(task.warm_start(params))
    return params
