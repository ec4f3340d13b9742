"""Checkpoint averaging: one model whose parameters are the mean of a run's checkpoints.

At a constant learning rate the iterates of a stochastic gradient method wander around a
minimum; their running mean lies nearer its centre than any one of them (Polyak & Juditsky
1992, "Acceleration of stochastic approximation by averaging"; Izmailov et al. 2018,
"Averaging weights leads to wider optima and better generalization", which averages
checkpoints of one run as here). So a long run at a constant rate can be read off as the mean
of its last checkpoints, without lowering the rate. The mean is taken over every
floating-point array of the state but the optimiser's (keys ending in ``opt``); the
optimiser state, the step and any integer arrays are the newest checkpoint's, so the result is
an ordinary training workdir: ``eval.py --codecs OUT``, ``python -m jaxcodec export OUT NAME``,
or ``config.init_from=OUT`` for a run that anneals it.

The averaged model's entropy tables are built anew from its parameters (``task.finalize``),
as at the end of a run. A model whose tables are fitted to data (the MNIST and GAN codecs'
histograms of their training latents) is not averaged: its tables would need the data again.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
from typing import Any, Sequence

import jax
import numpy as np

from jaxcodec.errors import ConfigError, ModelError
from jaxcodec.train import run_files
from jaxcodec.train.checkpoint import Checkpointer


def average_states(states: Sequence[Any]) -> Any:
    """The mean of ``states`` (each a state dict of the same structure), leaf by leaf over
    the floating-point arrays outside the optimiser state, accumulated in float64 and
    stored in each leaf's own dtype; every other entry is the last state's."""
    if len(states) < 2:
        raise ConfigError(f"averaging needs at least two checkpoints, got {len(states)}")
    last = states[-1]

    def mean(*leaves):
        arrays = [np.asarray(leaf) for leaf in leaves]
        if not np.issubdtype(arrays[-1].dtype, np.floating):
            return arrays[-1]
        return np.mean(np.stack([a.astype(np.float64) for a in arrays]), axis=0).astype(arrays[-1].dtype)

    return {key: (last[key] if key.endswith("opt") else jax.tree.map(mean, *[s[key] for s in states]))
            for key in last}


def checkpoint_steps(workdir: str) -> list[int]:
    """The steps of a workdir's complete checkpoints, oldest first."""
    directory = os.path.join(workdir, run_files.CHECKPOINT_DIR)
    if not os.path.isdir(directory):
        raise ModelError(f"{workdir} has no checkpoint")
    with Checkpointer(directory, read_only=True) as ckpt:
        return ckpt.all_steps()


def average_checkpoints(workdir: str, out: str, steps: Sequence[int] | None = None,
                        last: int | None = None) -> list[int]:
    """Writes to ``out`` (a new workdir) the mean of ``workdir``'s checkpoints at ``steps``,
    or of its ``last`` newest, or of all it keeps; returns the steps averaged.

    ``out`` is written whole or not at all: it is built beside itself and renamed. A
    :class:`jaxcodec.errors.ConfigError` (one line) for an ``out`` that exists, a step the
    workdir does not keep, fewer than two steps, or a workdir with fitted entropy tables.
    """
    workdir, out = os.path.abspath(workdir), os.path.abspath(out)
    if os.path.exists(out):
        raise ConfigError(f"{out} exists; averaging writes a new workdir")
    config = run_files.read_config(workdir)
    from jaxcodec.train.tasks import build_task

    task = build_task(config)
    finalize = getattr(task, "finalize", None)
    if finalize is not None and inspect.signature(finalize).parameters["batches"].default is inspect.Parameter.empty:
        raise ConfigError(f"{workdir}: {config.model.name}'s entropy tables are fitted to training data; "
                          "only models whose tables follow from their parameters are averaged")
    if last is not None and last < 2:
        raise ConfigError(f"averaging needs at least two checkpoints, not the last {last}")
    kept = checkpoint_steps(workdir)
    if steps is None:
        chosen = kept[-last:] if last else kept
    else:
        chosen = sorted(set(int(s) for s in steps))
        missing = [s for s in chosen if s not in kept]
        if missing:
            raise ConfigError(f"{workdir} keeps no checkpoint of step {missing[0]}; it keeps {kept}")
    if len(chosen) < 2:
        raise ConfigError(f"averaging needs at least two checkpoints; {workdir} gives {chosen}")
    states = [run_files.load_checkpoint(workdir, step, task=task)[1] for step in chosen]
    averaged = average_states(jax.device_get(states))
    tables = None if finalize is None else {k: np.asarray(v) for k, v in finalize(averaged).items()}

    partial = out + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        os.makedirs(partial)
        for name in (run_files.CONFIG_FILE, run_files.META_FILE):
            shutil.copyfile(os.path.join(workdir, name), os.path.join(partial, name))
        with Checkpointer(os.path.join(partial, run_files.CHECKPOINT_DIR)) as ckpt:
            ckpt.save(chosen[-1], averaged, {"pretrain_done": True, "averaged_steps": chosen,
                                             "averaged_from": workdir}, force=True)
            ckpt.wait()
        if tables is not None:
            run_files.save_tables(os.path.join(partial, run_files.TABLES_FILE), tables)
        with open(os.path.join(partial, "averaged.json"), "w") as f:
            json.dump({"workdir": workdir, "steps": chosen}, f)
        os.rename(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return chosen
