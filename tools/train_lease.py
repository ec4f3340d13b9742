r"""One accelerator lease of training: a named config for a given number of minutes, then a package.

Trains on device-resident data (:mod:`jaxcodec.train.device_data`), prints a progress line about
every 20 s (steps/s, loss, time left), and writes a resumable package (:mod:`jaxcodec.train.lease`:
at most 8 files of at most 16 MiB, 64 MiB together: the parameters, Adam's moments as far
as they fit, the step, the seed that fixes the data order, the config and the log) into
``--out`` (default ``$OUT`` when set, else ``lease/package``) every ``--save-minutes`` and at
the end. ``--minutes`` (default 9) bounds the whole run, compilation and the last save
included, so it ends inside a 10-minute command with a margin.

Before a lease, on the CPU (``lease/`` is ignored by git and travels only when carried)::

    python tools/photo_splits.py workdirs/photos --data ../shared/data --extra workdirs/photos-debian
    python tools/training_archive.py --photos workdirs/photos/train     # lease/photos-train.tar + .sha256
    python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 -d lease/wheels ml-collections==1.1.0 constriction==0.5.0
    python tools/train_lease.py travel lease/photos-train.tar lease/photos-train.tar.sha256 lease/wheels

(the last line checks that the working tree and the carried files fit 64 MiB; the archive
is sized to the tree as it is when it is built, so build it just before the lease).

The one command of a lease on one H200 (carry ``lease/photos-train.tar``,
``lease/photos-train.tar.sha256`` and ``lease/wheels``; ``timeout_s`` 600)::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
        lease/wheels/*.whl && export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 && python3 \
        tools/train_lease.py --config configs/mbt2018_mean.py --archive lease/photos-train.tar \
        --minutes 9 --config.batch_size=16 --config.data.crop=256 --config.data.flip=True \
        --config.learning_rate=3e-4 --compile-cache lease/xla-cache.tar

The package comes back as ``$OUT``'s files, with ``xla-cache.tar``: the programs the lease
compiled (``--compile-cache``; carried to the next lease as ``lease/xla-cache.tar``, it spares
that lease the compiling, which took two of the H200 lease's eight minutes, when the machine
kind, JAX and the program are the same, and costs nothing when they are not). Then, on the CPU::

    python tools/train_lease.py check PACKAGE                 # limits and hashes
    python tools/train_lease.py unpack PACKAGE WORKDIR        # a training workdir train.py resumes
    python tools/train_lease.py pack WORKDIR PACKAGE          # a workdir's latest checkpoint as a package

and a later lease continues with ``--resume PACKAGE`` (the package carried, or a workdir),
with ``--config.FIELD=VALUE`` overrides on top of its config. A package can travel to a
lease only when the working tree, the archive and it fit 64 MiB together.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import tempfile
import time

BEGAN = time.perf_counter()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

try:
    import ml_collections  # noqa: F401  (the config type; carried as a wheel to a lease)

    from jaxcodec.train import config_files, photo_archive
    from jaxcodec.errors import ConfigError, JaxcodecError
except ImportError as error:  # a lease machine without the carried wheels
    print(f"error: Python package {error.name or error} is missing; carry its wheel (see this tool's docstring)",
          file=sys.stderr)
    sys.exit(1)

DEFAULT_OUT = os.path.join("lease", "package")
CACHE_FILE = "xla-cache.tar"  # the compilation cache a run writes beside its package (--compile-cache)


def _value(text: str):
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(config, overrides: list[str]) -> None:
    """Applies ``--config.a.b=VALUE`` arguments (VALUE a Python literal, or a string)."""
    for arg in overrides:
        name, sep, text = arg[len("--config."):].partition("=")
        if not arg.startswith("--config.") or not sep or not name:
            raise ConfigError(f"unexpected argument {arg}; overrides read --config.FIELD=VALUE")
        *parents, last = name.split(".")
        target = config
        for part in parents:
            if part not in target:
                raise ConfigError(f"unknown config field config.{name}")
            target = target[part]
        if last not in target:
            raise ConfigError(f"unknown config field config.{name}")
        value, old = _value(text), target[last]
        if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(old, tuple) and isinstance(value, list):
            value = tuple(value)
        try:
            target[last] = value
        except TypeError:
            raise ConfigError(f"config.{name} takes {type(old).__name__} values, got {text!r}") from None


def _data(args, config, tmp: str) -> dict:
    """Points the config at the training photos; returns what the package records of them."""
    if args.archive:
        digest = photo_archive.verify(args.archive, args.sha256)
        manifest = photo_archive.read_manifest(args.archive)
        config.data.train = "folder:" + photo_archive.extract(args.archive, os.path.join(tmp, "photos"))
        config.data.train_split = photo_archive.SPLIT
        print(f"training archive {args.archive}: sha256 {digest[:16]}..., {len(manifest['photos'])} photos "
              f"(of {manifest['available']}), longer side <= {manifest['max_side']}, JPEG q{manifest['quality']}",
              flush=True)
        return {"archive": os.path.basename(args.archive), "sha256": digest, "photos": len(manifest["photos"])}
    if args.data:
        config.data.train = args.data
        return {"spec": args.data}
    raise ConfigError("give the training photos: --archive TAR (a training archive) or --data SPEC")


def _start(args, overrides):
    """``(config, state or None, step)`` of a new run, a package or a workdir."""
    import jax

    from jaxcodec.train import lease
    from jaxcodec.train import run_files
    from jaxcodec.train import sharding
    from jaxcodec.train.tasks import build_task

    if args.resume is None:
        if not args.config:
            raise ConfigError("give --config FILE for a new run, or --resume PACKAGE|WORKDIR")
        config = config_files.load(args.config)
        apply_overrides(config, overrides)
        return config, None, 0
    if os.path.isfile(os.path.join(args.resume, lease.MANIFEST)):
        manifest = lease.read_manifest(args.resume)
        config = config_files.load(args.config) if args.config else lease.config_of(manifest)
        apply_overrides(config, overrides)
        mesh = sharding.data_mesh(jax.local_devices()[:1])
        abstract = run_files.abstract_state(build_task(config), mesh, manifest["batch_shape"], manifest["dtype"])
        state, _ = lease.load(args.resume, abstract)
        print(f"resuming package {args.resume} at step {manifest['step']} "
              f"(optimiser moments: {manifest['optimizer']})", flush=True)
        return config, state, int(manifest["step"])
    if os.path.isdir(os.path.join(args.resume, run_files.CHECKPOINT_DIR)):
        config, state, step, _ = lease.latest_of_workdir(args.resume)
        if args.config:
            config = config_files.load(args.config)
        apply_overrides(config, overrides)
        print(f"continuing training workdir {args.resume} at step {step}", flush=True)
        return config, state, step
    raise ConfigError(f"--resume {args.resume} is neither a package nor a training workdir")


def _train(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="train_lease.py [train]", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="config file of a new run (configs/NAME.py)")
    parser.add_argument("--resume", help="a package or a training workdir to continue")
    parser.add_argument("--archive", help="training archive (tools/training_archive.py)")
    parser.add_argument("--sha256", help="the archive's SHA-256 (default: its .sha256 file)")
    parser.add_argument("--data", help="a dataset spec instead of --archive (folder:PATH, ...)")
    parser.add_argument("--minutes", type=float, default=9.0, help="the whole run, last save included (default 9)")
    parser.add_argument("--out", help=f"package folder (default $OUT, else {DEFAULT_OUT})")
    parser.add_argument("--save-minutes", type=float, default=3.0, help="package written this often (default 3)")
    parser.add_argument("--log-seconds", type=float, default=20.0, help="a progress line at most this often")
    parser.add_argument("--max-mib", type=float, default=60.0, help="a package's arrays at most (default 60)")
    parser.add_argument("--compile-cache", help="a compilation cache an earlier lease wrote (its xla-cache.tar): "
                        "start with its programs, and write the cache back into the package folder as "
                        f"{CACHE_FILE} (a path that does not exist yet starts an empty one)")
    args, overrides = parser.parse_known_args(argv)
    if args.minutes <= 0 or args.save_minutes <= 0:
        raise ConfigError("--minutes and --save-minutes must be positive")
    out = args.out or os.environ.get("OUT") or DEFAULT_OUT
    with tempfile.TemporaryDirectory(prefix="jaxcodec-lease-") as tmp:
        if args.archive:  # the hash first, before anything heavy
            photo_archive.verify(args.archive, args.sha256)
        cache = _seed_cache(args.compile_cache)
        config, state, step = _start(args, overrides)
        data = _data(args, config, tmp)
        from jaxcodec.train import lease

        lease.train_for(config, out, minutes=args.minutes, start=state, start_step=step,
                        save_minutes=args.save_minutes, log_seconds=args.log_seconds,
                        max_bytes=int(args.max_mib * 2**20), began=BEGAN, extra={"data": data})
        if args.compile_cache:
            _write_cache(cache, out)
    return 0


def _seed_cache(tar_path: str | None) -> str | None:
    """Turns the compilation cache on before anything compiles (JAX decides once per process
    whether to use it), first filled from ``tar_path`` when given; returns its folder."""
    from jaxcodec.runtime import xla_cache

    if tar_path:
        folder = xla_cache.cache_dir()
        if folder is None:
            raise ConfigError(f"--compile-cache needs the compilation cache on ({xla_cache.ENV} is off)")
        if os.path.exists(tar_path):
            print(f"compilation cache {tar_path}: {xla_cache.unpack(tar_path, folder)} files", flush=True)
        else:
            print(f"compilation cache {tar_path}: none yet, this run writes one", flush=True)
    return xla_cache.enable()  # a second run of the same program on this machine skips compiling


def _write_cache(folder: str | None, out: str) -> None:
    """Writes the cache into the package folder as :data:`CACHE_FILE`, if it fits what a lease
    hands back beside the package, and prints what the cache did in this run."""
    from jaxcodec.runtime import xla_cache
    from jaxcodec.train import lease

    counts = xla_cache.counts()
    line = (f"compilation cache: {counts['loaded']} programs loaded ({counts['saved_seconds']:.0f}s of compiling "
            f"saved), {counts['kept']} compiled and kept")
    files, size = lease.check_limits(out)
    room = min(lease.FILE_BYTES, lease.TOTAL_BYTES - size)
    written = None
    if folder is not None and files < lease.MAX_FILES:
        written = xla_cache.pack(folder, os.path.join(out, CACHE_FILE), room)
    if written is None:
        print(f"{line}; not written (no entry, or no room beside the package: {files} files, "
              f"{size / 2**20:.1f} MiB)", flush=True)
    else:
        print(f"{line}; written to {os.path.join(out, CACHE_FILE)} ({written / 2**20:.2f} MiB)", flush=True)


def _travel(paths: list[str]) -> int:
    """Prints what a lease would receive: the working tree and the carried ``paths``; 1 when
    that passes 64 MiB."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from training_archive import LEASE_BYTES, tree_bytes

    tree, carried = tree_bytes(), 0
    for path in paths:
        if not os.path.exists(path):
            raise ConfigError(f"carried path {path} does not exist")
        files = [path] if os.path.isfile(path) else [os.path.join(r, n) for r, _, ns in os.walk(path) for n in ns]
        carried += sum(os.path.getsize(f) for f in files)
    total = tree + carried
    line = (f"working tree {tree / 2**20:.2f} MiB + carried {carried / 2**20:.2f} MiB = {total / 2**20:.2f} MiB "
            f"of a lease's 64 MiB")
    if total > LEASE_BYTES:
        raise ConfigError(line + ": too much; rebuild the archive (tools/training_archive.py sizes it to the room)")
    print(line + f"; {(LEASE_BYTES - total) / 2**20:.2f} MiB to spare")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and not argv[0].startswith("-") else "train"
    rest = argv[1:] if argv and argv[0] == command else argv
    try:
        if command == "train":
            return _train(rest)
        from jaxcodec.train import lease

        if command == "unpack" and len(rest) == 2:
            step = lease.unpack(rest[0], rest[1])
            print(f"{rest[1]}: a training workdir at step {step}; train.py --workdir {rest[1]} resumes it")
            return 0
        if command == "pack" and len(rest) == 2:
            manifest = lease.pack(rest[0], rest[1])
            print(f"{rest[1]}: package of step {manifest['step']}, {len(manifest['files']) + 1} files, "
                  f"{sum(f['bytes'] for f in manifest['files'].values()) / 2**20:.1f} MiB, "
                  f"optimiser moments: {manifest['optimizer']}")
            return 0
        if command == "travel" and rest:
            return _travel(rest)
        if command == "check" and len(rest) == 1:
            manifest = lease.read_manifest(rest[0])
            files, size = lease.check_limits(rest[0])
            lease.verify_files(rest[0], manifest)
            print(f"{rest[0]}: package of step {manifest['step']} ({manifest['config']['model']['name']}), "
                  f"{files} files, {size / 2**20:.1f} MiB, optimiser moments: {manifest['optimizer']}; "
                  "within a lease's limits, hashes match")
            return 0
        raise ConfigError("usage: train_lease.py [train] --config FILE|--resume PATH ... | unpack PACKAGE WORKDIR "
                          "| pack WORKDIR PACKAGE | check PACKAGE | travel CARRIED...")
    except JaxcodecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    from jaxcodec.runtime import allocator

    allocator.configure()  # before JAX starts its threads (JAX is imported by main)
    sys.exit(main())
