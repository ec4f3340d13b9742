"""The training engine: one loop for every model family.

:func:`train_and_evaluate` builds the :class:`~jaxcodec.train.task.Task` named by
``config.model.name`` and calls :func:`train`, which

* shards each batch over a ``"data"`` mesh axis and replicates the state
  (:mod:`jaxcodec.train.sharding`), the state created already sharded by
  ``jax.jit(task.init_state, out_shardings=...)``; with several processes each reads
  its own part of the batch;
* jits ``task.train_step`` once, donating the state, with the step's rng
  ``fold_in(rng, step)`` (the big_vision recipe);
* runs the optional hooks: ``pretrain`` once before the first step (saved as
  checkpoint 0 and marked done in it, so a resumed run never repeats it),
  ``host_transform`` on every training batch before it is sharded (not on eval
  batches), and ``finalize`` after the last step, given the same endless iterator of
  host training batches, its arrays saved atomically as ``codec_tables.npz``;
* starts from another run's parameters when ``config.init_from`` names its workdir
  or a shipped single model (fresh optimiser), passed first through the optional ``warm_start(params)`` hook;
* checkpoints with Orbax every ``config.checkpoint_every`` steps and at the end, and
  resumes from the workdir's latest checkpoint (with a fresh data order, so the
  first batches are not replayed);
* logs a progress line (``step 120/2000  loss 0.0213  12.3 steps/s  host 4%  ETA
  2m35s``), TensorBoard scalars and ``metrics.jsonl`` every ``config.log_every``
  steps, and evaluates every ``config.eval_every`` steps on ``config.eval_batches``
  batches (metrics prefixed ``eval_``). ``host`` is the share of wall time spent
  outside the jitted step: reading and transforming data and copying it to the
  devices (:class:`jaxcodec.train.progress.Progress`); the whole-run figure is in
  :class:`TrainResult`;
* stops with :class:`~jaxcodec.errors.JaxcodecError` (``loss became nan at step
  57; ...``) when a metric whose name ends in ``loss`` becomes NaN or infinite. Every
  step is checked, but the metrics are read back from the devices only at log and
  checkpoint steps, so the check never stalls the pipeline, and a NaN state is
  never checkpointed.

A workdir holds ``config.json``, ``meta.json``, ``checkpoints/``, TensorBoard event
files, ``metrics.jsonl`` (one JSON object per log or eval step) and, for tasks with a
``finalize`` hook, ``codec_tables.npz``: :mod:`jaxcodec.train.run_files` names them and
reads a run back (:func:`~jaxcodec.train.run_files.load_checkpoint`). A run holds
``train.lock`` in it while it runs, so a second run on the same workdir stops at once with
one line; a resumed run first cuts ``metrics.jsonl`` and the event files back to its
checkpoint's step (:mod:`jaxcodec.train.workdir`).

Config fields read here (optional ones default to :data:`DEFAULTS` and
:data:`DATA_DEFAULTS`): ``model.name``, ``batch_size`` (global, over all devices),
``num_steps``, ``seed``, ``log_every``, ``eval_every``, ``eval_batches``,
``checkpoint_every``, ``keep_checkpoints``, ``data.train``, ``data.train_split``,
``data.eval``, ``data.eval_split``, ``data.image_size``, ``data.crop``,
``data.downscale`` (training patches only); the tasks read ``learning_rate`` and ``model.*``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from typing import Any, Callable, Iterator

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from jaxcodec.train import progress as progress_lib
from jaxcodec.train import run_files
from jaxcodec.train import summaries
from jaxcodec.train import sharding
from jaxcodec.train import workdir as workdir_files
from jaxcodec.train.checkpoint import Checkpointer
from jaxcodec.errors import ConfigError, JaxcodecError
from jaxcodec.fileio import first_missing, make_dirs
from jaxcodec.train.task import State, Task

# Optional engine settings and their defaults. ``checkpoint_every`` or
# ``eval_every`` = 0 means only at the last step; ``keep_checkpoints`` = None keeps all.
DEFAULTS = {
    "seed": 0,
    "log_every": 100,
    "eval_every": 1000,
    "eval_batches": 10,
    "checkpoint_every": 1000,
    "keep_checkpoints": 3,
    "init_from": "",
}
DATA_DEFAULTS = {
    "train_split": "train",
    "eval": None,
    "eval_split": "test",
    "image_size": None,
    "crop": None,
    "downscale": 1.0,
}


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
      state: the final train state (replicated on the mesh).
      history: one dict per log or eval step: ``step``, the metrics (eval ones
        prefixed ``eval_``) and, for train logs, ``steps_per_sec`` and ``host_fraction``.
      start_step: the step the run started (or resumed) from.
      steps_per_sec: whole-run training speed, compilation excluded.
      host_fraction: whole-run share of wall time spent outside the jitted step
        (reading, host transforms, host-to-device copies), compilation excluded.
      tables: the arrays ``task.finalize`` returned, or None.
    """

    state: State
    history: list[dict[str, float]]
    start_step: int
    steps_per_sec: float
    host_fraction: float
    tables: dict[str, np.ndarray] | None


# ---------------------------------------------------------------------------------
# Config


def setting(config: ml_collections.ConfigDict, name: str) -> Any:
    """``config.<name>`` (dotted for ``data.*``), or its default from :data:`DEFAULTS`."""
    if name.startswith("data."):
        key, section, defaults = name[5:], config.get("data"), DATA_DEFAULTS
    else:
        key, section, defaults = name, config, DEFAULTS
    if section is not None and key in section:
        return section[key]
    if key in defaults:
        return defaults[key]
    raise ConfigError(f"config has no {name!r}")


def initial_state(task: Task, config: ml_collections.ConfigDict, mesh: Mesh, rng: jax.Array,
                  first: jax.Array) -> State:
    """A new run's state at step 0: initialised from ``rng`` (shapes from the batch ``first``),
    then the task's own start (``initial_params``, e.g. transforms taken from another family's
    model) and ``config.init_from``'s parameters
    (:func:`jaxcodec.train.run_files.warm_start_params`), in that order."""
    state = make_init(task, mesh)(rng, first)
    if hasattr(task, "initial_params"):
        state = {**state, "params": sharding.replicate(task.initial_params(jax.device_get(state["params"])), mesh)}
    source = setting(config, "init_from")
    if source:
        params = run_files.warm_start_params(task, state, source)
        _print(f"parameters initialised from {source}")
        state = {**state, "params": sharding.replicate(params, mesh)}
    return state


def _positive_int(config: ml_collections.ConfigDict, name: str, *, allow_zero: bool = False) -> int:
    value = setting(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (0 if allow_zero else 1):
        bound = "a non-negative" if allow_zero else "a positive"
        raise ConfigError(f"config.{name} must be {bound} integer, got {value!r}")
    return int(value)


def _check_config(config: ml_collections.ConfigDict) -> None:
    for name in ("model", "data"):
        if name not in config:
            raise ConfigError(f"config has no {name!r} section")
    if not setting(config, "data.train"):
        raise ConfigError("config.data.train is empty; give a dataset spec such as sample:mnist")
    _positive_int(config, "num_steps")
    _positive_int(config, "batch_size")
    _positive_int(config, "log_every")
    _positive_int(config, "checkpoint_every", allow_zero=True)
    _positive_int(config, "eval_every", allow_zero=True)
    _positive_int(config, "eval_batches")
    keep = setting(config, "keep_checkpoints")
    if keep is not None:
        _positive_int(config, "keep_checkpoints")
    from jaxcodec import crops

    crops.check_downscale(setting(config, "data.downscale"), setting(config, "data.crop"))


def _due(step: int, every: int, num_steps: int) -> bool:
    return step == num_steps or (every > 0 and step % every == 0)


def data_seed(seed: int, start_step: int) -> int:
    """The data-order seed of a run starting at ``start_step``.

    A resumed run draws a fresh order instead of replaying the first batches.
    """
    if start_step == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(start_step)]).generate_state(1)[0] & 0x7FFFFFFF)


# ---------------------------------------------------------------------------------
# Jitted functions


def make_init(task: Task, mesh: Mesh) -> Callable[[jax.Array, jax.Array], State]:
    """``task.init_state`` jitted to produce a state replicated over ``mesh``.

    It runs once, so on CPU it is compiled without XLA's backend optimisations: the
    optimising CPU backend spends about a minute on the unrolled threefry random
    bits of a small conv net's initialisers, against 6 s unoptimised (measured on
    the 2-core development machine; the parameters agree to 1 ulp).
    """
    options = {"xla_backend_optimization_level": 0} if mesh.devices.flat[0].platform == "cpu" else None
    return jax.jit(
        task.init_state,
        in_shardings=(sharding.replicated(mesh), sharding.batch_sharding(mesh)),
        out_shardings=sharding.replicated(mesh),
        compiler_options=options,
    )


def make_train_step(task: Task, mesh: Mesh, rng: jax.Array) -> Callable[[State, jax.Array, jax.Array], tuple]:
    """``(state, batch, step) -> (state, metrics)``, jitted once, donating the state.

    The step's rng is ``fold_in(rng, step)``, so a resumed run draws the same noise
    for a given step as an uninterrupted one.
    """
    rep, data = sharding.replicated(mesh), sharding.batch_sharding(mesh)

    def step_fn(state, batch, step):
        return task.train_step(state, batch, jax.random.fold_in(rng, step))

    return jax.jit(step_fn, in_shardings=(rep, data, rep), out_shardings=(rep, rep), donate_argnums=(0,))


def make_eval_step(task: Task, mesh: Mesh) -> Callable[[State, jax.Array], dict]:
    """``task.eval_step`` jitted with a replicated state and a sharded batch."""
    rep = sharding.replicated(mesh)
    return jax.jit(task.eval_step, in_shardings=(rep, sharding.batch_sharding(mesh)), out_shardings=rep)


# ---------------------------------------------------------------------------------
# Metrics


def _is_loss(name: str) -> bool:
    return name.endswith("loss")


def _reduce(pending: list[dict[str, jax.Array]], first_step: int) -> dict[str, float]:
    """Means of the metrics of consecutive steps; raises if a loss is not finite.

    ``first_step`` is the 1-based number of the first step in ``pending``.
    """
    host = jax.device_get(pending)
    for i, metrics in enumerate(host):
        for name, value in sorted(metrics.items()):
            if _is_loss(name) and not np.all(np.isfinite(value)):
                kind = "nan" if np.any(np.isnan(value)) else "inf"
                raise JaxcodecError(
                    f"{name} became {kind} at step {first_step + i}; lower config.learning_rate "
                    "or check the data"
                )
    names = host[0].keys() if host else ()
    return {k: float(np.mean([np.mean(m[k]) for m in host])) for k in names}


def eval_split_metrics(
    eval_fn: Callable, state: State, config: ml_collections.ConfigDict, mesh: Mesh
) -> dict[str, float]:
    """Mean eval metrics over the first ``config.eval_batches`` batches of the eval split.

    The eval data are read in order (no shuffling) and repeat if the split holds
    fewer than ``eval_batches`` batches, so every process sees the same count.
    """
    from jaxcodec import data

    local_bs = sharding.local_batch_size(config.batch_size, mesh)
    batches = data.batches(
        setting(config, "data.eval"),
        setting(config, "data.eval_split"),
        batch_size=local_bs,
        image_size=setting(config, "data.image_size"),
        crop=setting(config, "data.crop"),
        shuffle=False,
        seed=setting(config, "seed"),
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    batch_sharding = sharding.batch_sharding(mesh)
    results = []
    for _, batch in zip(range(setting(config, "eval_batches")), batches):
        results.append(eval_fn(state, sharding.shard_batch(batch, batch_sharding)))
    if not results:
        raise ConfigError(f"eval data {setting(config, 'data.eval')!r} gave no batch of {local_bs}")
    host = jax.device_get(results)
    return {f"eval_{k}": float(np.mean([np.mean(m[k]) for m in host])) for k in host[0]}


# ---------------------------------------------------------------------------------
# Training


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> State:
    """Trains the model family ``config.model.name`` in ``workdir``; returns the final state.

    Starts the multi-process runtime first when the environment describes one
    (:func:`jaxcodec.train.sharding.initialize_distributed`).
    """
    from jaxcodec.train.tasks import build_task

    sharding.initialize_distributed()
    return train(build_task(config), config, workdir).state


def _print(line: str) -> None:
    if jax.process_index() == 0:
        print(line, flush=True)


def train(
    task: Task, config: ml_collections.ConfigDict, workdir: str, *, mesh: Mesh | None = None
) -> TrainResult:
    """Trains ``task`` for ``config.num_steps`` steps, resuming from ``workdir`` if it has a checkpoint.

    ``mesh`` defaults to :func:`jaxcodec.train.sharding.data_mesh` over all devices.
    """
    from jaxcodec import data

    _check_config(config)
    mesh = sharding.data_mesh() if mesh is None else mesh
    local_bs = sharding.local_batch_size(config.batch_size, mesh)
    num_steps = int(config.num_steps)
    seed = setting(config, "seed")
    checkpoint_every = setting(config, "checkpoint_every")
    is_main = jax.process_index() == 0
    workdir = os.path.abspath(workdir)
    created = first_missing(workdir)  # removed again if the run fails before its first batch
    started = False
    make_dirs(workdir)

    lock = contextlib.ExitStack()  # one run per workdir, from before its checkpoints are opened
    if is_main:
        lock.enter_context(workdir_files.lock(workdir))
    try:
        ckpt = Checkpointer(
            os.path.join(workdir, run_files.CHECKPOINT_DIR),
            max_to_keep=setting(config, "keep_checkpoints"),
            save_every=checkpoint_every or num_steps,
        )
        if is_main:  # what a killed run logged after its last checkpoint is trained again
            resumed = ckpt.latest_step() or 0
            workdir_files.truncate_metrics(os.path.join(workdir, run_files.METRICS_FILE), resumed)
            workdir_files.truncate_events(workdir, resumed)
        writer = summaries.EventWriter(workdir) if is_main else None
    except BaseException:
        lock.close()
        raise
    try:
        start_step = ckpt.latest_step() or 0
        from jaxcodec.train import device_data  # config.data.device_resident: batches drawn on the devices

        batches = device_data.train_batches(config, mesh, start_step, task) or data.batches(
            config.data.train,
            setting(config, "data.train_split"),
            batch_size=local_bs,
            image_size=setting(config, "data.image_size"),
            crop=setting(config, "data.crop"),
            downscale=setting(config, "data.downscale"),
            seed=data_seed(seed, start_step),
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
        first = np.asarray(next(batches))
        started = True
        batch_shape = (config.batch_size,) + first.shape[1:]
        init_rng, train_rng, host_rng = jax.random.split(jax.random.key(seed), 3)

        if start_step > num_steps:
            raise ConfigError(
                f"{workdir} already has a checkpoint at step {start_step}, beyond config.num_steps {num_steps}"
            )
        if is_main:
            run_files.write_config(workdir, config)
        meta: dict[str, Any] = {"pretrain_done": False}
        if ckpt.latest_step() is not None:
            state, meta = ckpt.restore(run_files.abstract_state(task, mesh, batch_shape, first.dtype))
            _print(f"resuming from step {start_step} in {workdir}")
        else:
            state = initial_state(task, config, mesh, init_rng, sharding.shard_batch(first, sharding.batch_sharding(mesh)))
            if setting(config, "init_from"):
                meta = {"pretrain_done": True}  # pre-training would overwrite the copied parameters
            if is_main:
                run_files.write_meta(workdir, batch_shape, first.dtype)
                writer.write_hparams(summaries.flatten(config.to_dict()))
        if hasattr(task, "pretrain") and start_step == 0 and not meta.get("pretrain_done", False):
            # Saved as step 0, so a run killed later never repeats the pre-training.
            state = sharding.replicate(task.pretrain(state, batches, config), mesh)
            meta = {"pretrain_done": True}
            ckpt.save(0, state, meta, force=True)

        history: list[dict[str, float]] = []
        clock = progress_lib.Progress(num_steps, start_step)
        state = _loop(
            task, config, mesh, state,
            batches=batches, first=first, start_step=start_step, train_rng=train_rng, host_rng=host_rng,
            ckpt=ckpt, meta=meta, writer=writer, workdir=workdir, history=history, clock=clock,
        )

        tables = None
        tables_path = os.path.join(workdir, run_files.TABLES_FILE)
        if hasattr(task, "finalize") and (start_step < num_steps or not os.path.isfile(tables_path)):
            tables = {k: np.asarray(v) for k, v in task.finalize(state, batches).items()}
            if is_main:
                run_files.save_tables(tables_path, tables)
        elif hasattr(task, "finalize"):
            tables = run_files.load_tables(tables_path)
        ckpt.wait()
        if start_step < num_steps:
            speed = ""
            if np.isfinite(clock.steps_per_sec):
                speed = (f": {clock.steps_per_sec:.3g} steps/s, {100 * clock.host_fraction:.0f}% of the "
                         "time outside the jitted step")
            _print(f"finished step {num_steps} in {workdir}{speed}")
        else:
            _print(f"{workdir} is already at step {num_steps}; nothing to train")
        return TrainResult(state, history, start_step, clock.steps_per_sec, clock.host_fraction, tables)
    finally:
        ckpt.close()
        if writer is not None:
            writer.close()
        lock.close()
        if created and not started:  # a missing dataset, say: leave no empty workdir behind
            shutil.rmtree(created, ignore_errors=True)


def _loop(
    task: Task,
    config: ml_collections.ConfigDict,
    mesh: Mesh,
    state: State,
    *,
    batches: Iterator[np.ndarray],
    first: np.ndarray,
    start_step: int,
    train_rng: jax.Array,
    host_rng: jax.Array,
    ckpt: Checkpointer,
    meta: dict[str, Any],
    writer: summaries.EventWriter | None,
    workdir: str,
    history: list[dict[str, float]],
    clock: progress_lib.Progress,
) -> State:
    """The main loop from ``start_step`` to ``config.num_steps``; see :func:`train`.

    ``first`` is the batch already read from ``batches`` (to size the state).
    Appends log and eval entries to ``history``.
    """
    num_steps = int(config.num_steps)
    log_every = setting(config, "log_every")
    eval_every = setting(config, "eval_every")
    checkpoint_every = setting(config, "checkpoint_every")
    has_eval = bool(setting(config, "data.eval"))
    step_fn = make_train_step(task, mesh, train_rng)
    eval_fn = make_eval_step(task, mesh) if has_eval else None
    host_transform = getattr(task, "host_transform", None)
    data_sharding = sharding.batch_sharding(mesh)
    log_file = open(os.path.join(workdir, run_files.METRICS_FILE), "a") if writer is not None else None

    def record(step: int, values: dict[str, float]) -> None:
        history.append({"step": step, **values})
        if writer is not None:
            writer.write_scalars(step, values)
            writer.flush()
            log_file.write(json.dumps({"step": step, **values}) + "\n")
            log_file.flush()

    pending: list[dict[str, jax.Array]] = []
    try:
        for step in range(start_step, num_steps):
            with clock.host():
                batch = first if first is not None else next(batches)  # device batches stay there
                first = None
                if host_transform is not None:
                    batch = host_transform(state, batch, jax.random.fold_in(host_rng, step))
                batch = sharding.shard_batch(batch, data_sharding)
            state, metrics = step_fn(state, batch, np.int32(step))
            pending.append(metrics)
            done = step + 1
            if done == start_step + 1:
                clock.start_totals(done)

            if _due(done, log_every, num_steps):
                train_metrics = _reduce(pending, done - len(pending) + 1)
                pending = []
                timing = clock.report(done)
                _print(progress_lib.format_line(done, num_steps, train_metrics, timing))
                record(done, {**train_metrics, **{k: v for k, v in timing.items() if k != "eta_sec"}})
            if has_eval and _due(done, eval_every, num_steps):
                with clock.paused():
                    eval_metrics = eval_split_metrics(eval_fn, state, config, mesh)
                _print(progress_lib.format_line(done, num_steps, eval_metrics, {}))
                record(done, eval_metrics)
            if done == num_steps or (checkpoint_every and done % checkpoint_every == 0):
                with clock.paused():
                    if pending:
                        _reduce(pending, done - len(pending) + 1)  # never checkpoint a NaN state
                    ckpt.save(done, state, meta, force=done == num_steps)
    finally:
        if log_file is not None:
            log_file.close()
    return state
