"""Training in an accelerator lease: a time-boxed run and the resumable package it leaves.

A lease runs one command of at most 10 minutes and hands back at most 8 files of at most
16 MiB each, 64 MiB together. :func:`train_for` trains a task for a given number of minutes
on device-resident data (:mod:`jaxcodec.train.device_data`; the host pipeline when the images do
not fit), prints a progress line (steps/s, loss, time left) at most every ``log_seconds``,
and writes a **package** every ``save_minutes`` and at the end, so even a command killed at
its limit hands something back. A package, or a training workdir, is where the next run
starts; :func:`unpack` turns a package into a training workdir that ``train.py`` resumes
(so lease and CPU runs can take turns) and :func:`pack` a workdir into a package.

A package is one folder::

    package.json   {"format": "jaxcodec-lease-package/1", "step", "seed", "config",
                    "batch_shape", "dtype", "optimizer", "files": {NAME: {"bytes", "sha256"}},
                    "leaves": [{"path", "shape", "dtype", "stored", "parts": [[FILE, KEY], ...]}],
                    "data", "history"}
    state-K.npz    the state's arrays, cut into parts so that no file passes 16 MiB

The parameters (and every array outside the optimiser) are stored exactly. Adam's moments
are stored in float32 when everything fits ``max_bytes`` (default 60 MiB); else in bfloat16;
else only the second moments (bfloat16), the first restarting from zero (β₁ = 0.9 rebuilds
them within tens of steps); else none (``optimizer`` says which). The mean-scale hyperprior
at N=128, M=192 has 32.6 MiB of parameters, so its package keeps the second moments: 49 MiB
in 4 files. The data order is fixed by ``(seed, step)`` (device-resident batches), so a run
resumed from a package with float32 moments continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxcodec import fileio
from jaxcodec.train import device_data
from jaxcodec.train import engine
from jaxcodec.train import progress
from jaxcodec.train import run_files
from jaxcodec.train import sharding
from jaxcodec.errors import ConfigError, JaxcodecError, ModelError, one_line

FORMAT = "jaxcodec-lease-package/1"
MANIFEST = "package.json"
MAX_FILES = 8  # what a lease hands back
FILE_BYTES = 16 << 20
TOTAL_BYTES = 64 << 20
#: Default room for the arrays, leaving 4 MiB of the 64 for the manifest and the margin.
DEFAULT_MAX_BYTES = 60 << 20
_PART_BYTES = FILE_BYTES - (256 << 10)  # a file's arrays; the rest for zip headers
_TIERS = ("float32", "bfloat16", "second moments in bfloat16", "none")


class PackageError(JaxcodecError):
    """A package that is missing, damaged, of another format or over a lease's limits."""


# ---------------------------------------------------------------------------------
# What is stored


def _kind(path: tuple, top: str) -> str:
    """``"exact"`` (parameters, counters), ``"nu"`` (Adam's second moments) or ``"mu"``
    (other optimiser arrays: first moments)."""
    if not top.endswith("opt"):
        return "exact"
    names = {getattr(k, "name", None) for k in path}
    return "nu" if "nu" in names else "mu"


def _leaves(state: Any) -> list[tuple[str, str, Any]]:
    """``(path, kind, leaf)`` of every array of the state, in tree order."""
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        top = str(getattr(path[0], "key", "")) if path else ""
        kind = _kind(path, top) if jnp.issubdtype(leaf.dtype, jnp.floating) and leaf.size > 1 else "exact"
        out.append((jax.tree_util.keystr(path), kind, leaf))
    return out


def plan(state: Any, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The first tier of :data:`_TIERS` whose arrays fit ``max_bytes``; PackageError if
    not even the parameters do."""
    sizes = {"exact": 0, "mu": 0, "nu": 0}
    for _, kind, leaf in _leaves(state):
        sizes[kind] += int(np.prod(leaf.shape)) * 4 if kind != "exact" else int(np.prod(leaf.shape)) * leaf.dtype.itemsize
    need = {"float32": sizes["exact"] + sizes["mu"] + sizes["nu"],
            "bfloat16": sizes["exact"] + (sizes["mu"] + sizes["nu"]) // 2,
            "second moments in bfloat16": sizes["exact"] + sizes["nu"] // 2,
            "none": sizes["exact"]}
    for tier in _TIERS:
        if need[tier] <= max_bytes:
            return tier
    raise PackageError(f"the parameters take {sizes['exact'] / 2**20:.1f} MiB, more than the "
                       f"{max_bytes / 2**20:.1f} MiB a package may hold")


def _stored(kind: str, tier: str) -> str | None:
    """How an array of ``kind`` is stored in ``tier``: its own dtype, ``"bfloat16"`` or None (left out)."""
    if kind == "exact" or tier == "float32":
        return "same"
    if tier == "bfloat16" or (tier == "second moments in bfloat16" and kind == "nu"):
        return "bfloat16"
    return None


# ---------------------------------------------------------------------------------
# Writing and reading


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(folder: str, state: Any, *, step: int, config: ml_collections.ConfigDict, batch_shape,
         dtype: str = "float32", max_bytes: int = DEFAULT_MAX_BYTES, extra: dict | None = None) -> dict:
    """Writes ``state`` as a package into ``folder``; returns its manifest.

    Files are written under temporary names and renamed, the manifest last, then files of
    an earlier package that this one does not use are removed. Raises PackageError when the
    result would break a lease's limits.
    """
    tier = plan(state, max_bytes)
    host = jax.device_get(state)
    files: list[dict[str, np.ndarray]] = [{}]
    used = [0]
    leaves = []
    for path, kind, leaf in _leaves(host):
        how = _stored(kind, tier)
        entry = {"path": path, "shape": list(np.shape(leaf)), "dtype": str(np.asarray(leaf).dtype), "stored": how,
                 "parts": []}
        leaves.append(entry)
        if how is None:
            continue
        array = np.asarray(leaf)
        if how == "bfloat16":
            array = array.astype(jnp.bfloat16).view(np.uint16)
        flat = np.ascontiguousarray(array).reshape(-1)
        start = 0
        while start < flat.size or not entry["parts"]:
            room = (_PART_BYTES - used[-1]) // flat.itemsize
            if room <= 0:
                files.append({})
                used.append(0)
                continue
            part = flat[start:start + room]
            key = f"a{len(files[-1])}"
            files[-1][key] = part
            used[-1] += part.nbytes
            entry["parts"].append([f"state-{len(files) - 1}.npz", key])
            start += part.size
    if len(files) + 1 > MAX_FILES:
        raise PackageError(f"the state needs {len(files)} files of 16 MiB; a package may hold {MAX_FILES - 1}")
    fileio.make_dirs(folder)
    written = {}
    for i, arrays in enumerate(files):
        name = f"state-{i}.npz"
        tmp = os.path.join(folder, f".{name}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        written[name] = tmp
    manifest = {"format": FORMAT, "step": int(step), "seed": int(config.get("seed", 0)),
                "config": json.loads(config.to_json_best_effort()), "batch_shape": list(batch_shape),
                "dtype": str(dtype), "optimizer": tier, "files": {}, "leaves": leaves, **(extra or {})}
    for name, tmp in written.items():
        manifest["files"][name] = {"bytes": os.path.getsize(tmp), "sha256": _sha256(tmp)}
        os.replace(tmp, os.path.join(folder, name))
    fileio.atomic_write_text(os.path.join(folder, MANIFEST), json.dumps(manifest, indent=1))
    for name in os.listdir(folder):
        if name.startswith("state-") and name.endswith(".npz") and name not in manifest["files"]:
            os.remove(os.path.join(folder, name))
    check_limits(folder)
    return manifest


def check_limits(folder: str) -> tuple[int, int]:
    """``(files, bytes)`` of a package folder; PackageError if it breaks what a lease hands
    back (:data:`MAX_FILES` files, :data:`FILE_BYTES` each, :data:`TOTAL_BYTES` together)."""
    if not os.path.isdir(folder):
        raise PackageError(f"{folder} is not a package folder")
    sizes = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            sizes[os.path.relpath(path, folder)] = os.path.getsize(path)
    big = [n for n, s in sizes.items() if s > FILE_BYTES]
    if len(sizes) > MAX_FILES or big or sum(sizes.values()) > TOTAL_BYTES:
        raise PackageError(f"{folder} holds {len(sizes)} files, {sum(sizes.values()) / 2**20:.1f} MiB"
                           f"{', ' + big[0] + ' over 16 MiB' if big else ''}: over a lease's "
                           f"{MAX_FILES} files of 16 MiB, 64 MiB together")
    return len(sizes), sum(sizes.values())


def read_manifest(folder: str) -> dict:
    """The manifest of a package; PackageError when there is none or of another format."""
    try:
        with open(os.path.join(folder, MANIFEST)) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise PackageError(f"{folder} is not a package (no {MANIFEST})") from None
    except (OSError, json.JSONDecodeError) as error:
        raise PackageError(f"{folder}/{MANIFEST} is unreadable: {one_line(error)}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackageError(f"{folder} is not a package of format {FORMAT}")
    return manifest


def verify_files(folder: str, manifest: dict) -> None:
    """Checks every file the manifest lists against its SHA-256; PackageError if one differs."""
    for name, info in manifest["files"].items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path) or _sha256(path) != info["sha256"]:
            raise PackageError(f"{path} is missing or damaged (its SHA-256 differs from {MANIFEST}'s); "
                               "was the package's last save interrupted?")


def load(folder: str, abstract: Any) -> tuple[Any, dict]:
    """``(state, manifest)`` of a package, the state shaped and placed like ``abstract``
    (``jax.ShapeDtypeStruct`` leaves with shardings); moments that were left out are zeros.
    Every file is checked against its SHA-256 first."""
    manifest = read_manifest(folder)
    check_limits(folder)
    verify_files(folder, manifest)
    arrays = {name: np.load(os.path.join(folder, name), allow_pickle=False) for name in manifest["files"]}
    stored = {leaf["path"]: leaf for leaf in manifest["leaves"]}
    flat, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    out = []
    for path, target in flat:
        key = jax.tree_util.keystr(path)
        leaf = stored.get(key)
        if leaf is None or tuple(leaf["shape"]) != tuple(target.shape):
            raise PackageError(f"the package in {folder} does not fit this model: "
                               f"{key} {'is missing' if leaf is None else 'has shape ' + str(tuple(leaf['shape']))}")
        if leaf["stored"] is None:
            value = np.zeros(target.shape, target.dtype)
        else:
            parts = [arrays[f][k] for f, k in leaf["parts"]]
            flat_value = np.concatenate(parts) if parts else np.zeros(0)
            if leaf["stored"] == "bfloat16":
                flat_value = flat_value.view(jnp.bfloat16)
            value = flat_value.astype(target.dtype).reshape(target.shape)
        out.append(jax.device_put(value, target.sharding))
    for f in arrays.values():
        f.close()
    return jax.tree_util.tree_unflatten(treedef, out), manifest


def config_of(manifest: dict) -> ml_collections.ConfigDict:
    """The training config a package was written with."""
    return ml_collections.ConfigDict(manifest["config"])


# ---------------------------------------------------------------------------------
# Conversions


def unpack(folder: str, workdir: str) -> int:
    """Writes the package as a new training workdir (``config.json``, ``meta.json``, a
    checkpoint at the package's step, ``metrics.jsonl`` from its history) that ``train.py``
    resumes; returns the step. Refuses a workdir that already has checkpoints."""
    from jaxcodec.train.checkpoint import Checkpointer
    from jaxcodec.train.tasks import build_task

    manifest = read_manifest(folder)
    checkpoints = os.path.join(workdir, run_files.CHECKPOINT_DIR)
    if os.path.isdir(checkpoints) and os.listdir(checkpoints):
        raise PackageError(f"{workdir} already has checkpoints; unpack into a new folder")
    config = config_of(manifest)
    mesh = sharding.data_mesh(jax.local_devices()[:1])
    abstract = run_files.abstract_state(build_task(config), mesh, manifest["batch_shape"], manifest["dtype"])
    state, _ = load(folder, abstract)
    fileio.make_dirs(workdir)
    fileio.atomic_write_text(os.path.join(workdir, run_files.CONFIG_FILE),
                             json.dumps(manifest["config"], indent=2))
    fileio.atomic_write_text(os.path.join(workdir, run_files.META_FILE), json.dumps(
        {"batch_shape": manifest["batch_shape"], "dtype": manifest["dtype"]}, indent=2))
    with Checkpointer(checkpoints) as ckpt:
        ckpt.save(int(manifest["step"]), state, {"pretrain_done": True}, force=True)
        ckpt.wait()
    history = [h for h in manifest.get("history", []) if h.get("step", 0) <= manifest["step"]]
    fileio.atomic_write_text(os.path.join(workdir, run_files.METRICS_FILE),
                             "".join(json.dumps(h) + "\n" for h in history))
    return int(manifest["step"])


def latest_of_workdir(workdir: str) -> tuple[ml_collections.ConfigDict, Any, int, list]:
    """``(config, state, step, batch_shape)`` of a training workdir's latest checkpoint,
    read without writing anything into it."""
    from jaxcodec.train.checkpoint import Checkpointer

    checkpoints = os.path.join(workdir, run_files.CHECKPOINT_DIR)
    if not os.path.isdir(checkpoints):
        raise ModelError(f"{workdir} is not a training workdir (no checkpoints)")
    with Checkpointer(checkpoints, read_only=True) as ckpt:
        step = ckpt.latest_step()
    if step is None:
        raise ModelError(f"{workdir} has no checkpoint")
    config, state, _ = run_files.load_checkpoint(workdir, step)
    with open(os.path.join(workdir, run_files.META_FILE)) as f:
        batch_shape = json.load(f)["batch_shape"]
    return config, state, int(step), batch_shape


def pack(workdir: str, folder: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """Writes a workdir's latest checkpoint as a package; returns its manifest."""
    config, state, step, batch_shape = latest_of_workdir(workdir)
    return save(folder, state, step=step, config=config, batch_shape=batch_shape, max_bytes=max_bytes,
                extra={"source": os.path.abspath(workdir)})


# ---------------------------------------------------------------------------------
# The time-boxed run


def _reduce(pending: list[dict], first_step: int) -> dict[str, float]:
    host = jax.device_get(pending)
    for i, metrics in enumerate(host):
        for name, value in metrics.items():
            if name.endswith("loss") and not np.all(np.isfinite(value)):
                raise JaxcodecError(f"{name} became {'nan' if np.any(np.isnan(value)) else 'inf'} at step "
                                    f"{first_step + i}; lower config.learning_rate or check the data")
    return {k: float(np.mean([np.mean(m[k]) for m in host])) for k in (host[0] if host else {})}


def train_for(
    config: ml_collections.ConfigDict,
    out: str,
    *,
    minutes: float,
    start: Any = None,
    start_step: int = 0,
    save_minutes: float = 3.0,
    log_seconds: float = 20.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    extra: dict | None = None,
    clock: Callable[[], float] = time.perf_counter,
    began: float | None = None,
    say: Callable[[str], None] = lambda line: print(line, flush=True),
) -> dict:
    """Trains ``config``'s task until ``minutes`` after ``began`` (default: now), less the time
    its last save is expected to take, then writes the package into ``out``; returns its manifest.

    ``start`` is a state to continue (a package's or a workdir's, any placement) at step
    ``start_step``; None starts a new run as ``train.py`` would (from scratch, or from
    ``config.init_from``). The batches come from the devices when the
    training images fit there (``config.data.device_resident`` is set here), else from the
    host pipeline. Stops early at ``config.num_steps``.
    """
    from jaxcodec import data as data_lib
    from jaxcodec.train.tasks import build_task

    began = clock() if began is None else began
    deadline = began + 60.0 * float(minutes)
    phases: dict[str, float] = {}  # seconds of each start-up phase, reported with the first step

    def phase_done(name: str) -> None:
        phases[name] = clock() - began - sum(phases.values())

    phase_done("setup")  # imports, the archive, the config
    config = ml_collections.ConfigDict(config.to_dict())
    config.data.device_resident = True
    task = build_task(config)
    mesh = sharding.data_mesh()
    num_steps = int(config.num_steps)
    if start_step >= num_steps:
        raise ConfigError(f"the run is already at step {start_step} of config.num_steps {num_steps}")
    seed = int(config.get("seed", 0))
    batches = device_data.train_batches(config, mesh, start_step, task)
    if batches is None:
        local_bs = sharding.local_batch_size(config.batch_size, mesh)
        batches = data_lib.batches(
            config.data.train, config.data.get("train_split", "train"), batch_size=local_bs,
            image_size=config.data.get("image_size"), crop=config.data.get("crop"),
            downscale=config.data.get("downscale", 1.0), seed=engine.data_seed(seed, start_step))
    data_sharding = sharding.batch_sharding(mesh)
    first = sharding.shard_batch(next(batches), data_sharding)
    jax.block_until_ready(first)
    phase_done("data")  # reading, decoding, uploading, the first draw
    batch_shape = [int(config.batch_size), *first.shape[1:]]
    init_rng, train_rng, _ = jax.random.split(jax.random.key(seed), 3)
    if start is None:
        state = engine.initial_state(task, config, mesh, init_rng, first)  # config.init_from too
    else:
        abstract = run_files.abstract_state(task, mesh, batch_shape, first.dtype)
        state = jax.tree.map(lambda value, a: jax.device_put(np.asarray(value).astype(a.dtype), a.sharding),
                             start, abstract)
    step_fn = engine.make_train_step(task, mesh, train_rng)
    jax.block_until_ready(state)
    phase_done("state")  # initialised, warm-started or restored
    history: list[dict] = []
    step = start_step

    def write() -> dict:
        return save(out, state, step=step, config=config, batch_shape=batch_shape, dtype=str(first.dtype),
                    max_bytes=max_bytes, extra={**(extra or {}), "history": history})

    clock_lib = progress.Progress(num_steps, start_step, clock=clock)
    log_every = max(1, int(config.get("log_every", 100)))
    pending: list[dict] = []
    save_cost = 5.0  # seconds, until a save has been timed
    last_save = last_print = last_done = clock()
    step_seconds = 0.0
    batch = first
    say(f"training {config.model.name} from step {start_step} for {format_minutes(deadline - clock())}, "
        f"batch {config.batch_size} of {'x'.join(map(str, batch_shape[1:]))} on {mesh.size} {mesh.devices.flat[0].platform} device(s)")
    while step < num_steps:
        if clock() + 2 * (save_cost + step_seconds) > deadline:
            break
        with clock_lib.host():
            if batch is None:
                batch = sharding.shard_batch(next(batches), data_sharding)
        state, metrics = step_fn(state, batch, np.int32(step))
        batch = None
        if pending:  # at most two steps in flight, so the clock sees the device's progress
            jax.block_until_ready(pending[-1])
            now = clock()
            step_seconds, last_done = now - last_done, now
        pending.append(metrics)
        step += 1
        if step == start_step + 1:
            jax.block_until_ready(state)
            last_done = clock()
            clock_lib.start_totals(step)
            phase_done("first step")  # compiling the step, then running it once
            say(f"compiled; first step done {format_minutes(sum(phases.values()))} after the start ("
                + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in phases.items()) + ")")
        if step % log_every == 0 or step == num_steps:
            values = _reduce(pending, step - len(pending) + 1)
            pending = []
            timing = clock_lib.report(step)
            history.append({"step": step, **values, **{k: v for k, v in timing.items() if k != "eta_sec"}})
            if clock() - last_print >= log_seconds:
                last_print = clock()
                timing["eta_sec"] = max(deadline - clock(), 0.0)
                say(progress.format_line(step, num_steps, values, timing).replace("ETA", "time left"))
        if clock() - last_save >= 60.0 * save_minutes:
            with clock_lib.paused():
                if pending:
                    _reduce(pending, step - len(pending) + 1)  # never save a NaN state
                t = clock()
                write()
                save_cost = max(clock() - t, 1.0)
                last_save = clock()
                say(f"package at step {step} written to {out} ({save_cost:.1f}s)")
    if pending:
        history.append({"step": step, **_reduce(pending, step - len(pending) + 1)})
    manifest = write()
    rate = clock_lib.steps_per_sec
    say(f"stopped at step {step} ({step - start_step} steps, {rate:.3g} steps/s, "
        f"{100 * clock_lib.host_fraction:.1f}% of the time outside the jitted step); package in {out}: "
        f"{len(manifest['files']) + 1} files, {sum(f['bytes'] for f in manifest['files'].values()) / 2**20:.1f} MiB, "
        f"optimiser moments: {manifest['optimizer']}")
    return manifest


def format_minutes(seconds: float) -> str:
    return progress.format_duration(max(seconds, 0.0)) if math.isfinite(seconds) else "?"
