"""A persistent XLA compilation cache for the command line and `eval.py`.

``python -m jaxcodec compress/decompress`` runs one image per process, so without a
cache it compiles the transforms on every call: for a 512×768 photo the decoder's
Winograd layers (:mod:`jaxcodec.ops.winograd`) take a few seconds to compile and a
fraction of a second to run. ``eval.py`` codes every image with every quality of a
ladder: the encoder's and decoder's programs for one image size are the same for all of
them (the weights are arguments), and JAX's cache keys programs by their text, so only
the first quality compiles them. :func:`enable` points JAX's persistent compilation
cache at ``$JAXCODEC_CACHE_DIR`` (default ``$XDG_CACHE_HOME/jaxcodec/xla``, i.e.
``~/.cache/jaxcodec/xla``), keeping programs that took at least half a second to
compile, at most 256 MiB of them (least recently used go first). JAX keys each entry by
the program, the compiler options and its own version, so a stale entry is never used.
``JAXCODEC_CACHE_DIR=off`` turns it off. A folder that cannot be created or written
turns it off too, with one warning line on stderr (the cache only saves time).

A cache also travels: :func:`pack` writes a folder's entries into one tar file and
:func:`unpack` puts them into another folder, so a short accelerator lease can start with
the programs an earlier lease of the same machine kind compiled (``tools/train_lease.py
--compile-cache``; on an H200 compiling the training step took about two of a lease's eight
minutes). :func:`counts` says how many programs this process loaded from the cache and how
many it compiled and kept.
"""

from __future__ import annotations

import os
import sys
import tarfile

from jaxcodec.errors import ConfigError

__all__ = ["ENV", "MAX_BYTES", "cache_dir", "counts", "enable", "pack", "unpack"]

ENV = "JAXCODEC_CACHE_DIR"
MAX_BYTES = 256 << 20
MIN_COMPILE_SECONDS = 0.5


def cache_dir(environ=None) -> str | None:
    """The cache folder the environment asks for, or None when it is turned off."""
    environ = os.environ if environ is None else environ
    path = environ.get(ENV)
    if path is None:
        base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "jaxcodec", "xla")
    return None if path.strip().lower() in ("", "off", "none") else path


def enable(environ=None) -> str | None:
    """Turns the cache on for this process; returns its folder (None: turned off)."""
    import jax

    path = cache_dir(environ)
    if path is None:
        return None
    try:
        os.makedirs(path, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(f"{path} is not writable")
    except OSError as e:
        print(f"warning: compilation cache off: cannot use {path}: {e.strerror or e}", file=sys.stderr)
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    # JAX would also point XLA's GPU autotuning cache into this folder; that option's path is
    # part of every program's key, so the entries would only hit in the very same folder.
    try:
        jax.config.update("jax_persistent_cache_enable_xla_caches", "none")
    except (AttributeError, KeyError, ValueError):  # a JAX without the option: keys hold no such path
        pass
    _listen()
    return path


_COUNTS = {"loaded": 0, "kept": 0, "saved_seconds": 0.0}
_LISTENING = []


def _listen() -> None:
    """Counts JAX's cache events from now on (once per process)."""
    if _LISTENING:
        return
    import jax

    def event(name: str, **_) -> None:
        if name == "/jax/compilation_cache/cache_hits":
            _COUNTS["loaded"] += 1
        elif name == "/jax/compilation_cache/cache_misses":  # recorded as a compiled program is written
            _COUNTS["kept"] += 1

    def duration(name: str, seconds: float, **_) -> None:
        if name == "/jax/compilation_cache/compile_time_saved_sec":
            _COUNTS["saved_seconds"] += seconds

    jax.monitoring.register_event_listener(event)
    jax.monitoring.register_event_duration_secs_listener(duration)
    _LISTENING.append(True)


def counts() -> dict[str, float]:
    """``{"loaded", "kept", "saved_seconds"}`` since :func:`enable`: programs taken from the
    cache, programs compiled and written to it, and the compile time the loaded ones saved."""
    return dict(_COUNTS)


def _entries(folder: str) -> list[str]:
    return sorted(n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n)))


def pack(folder: str, tar_path: str, max_bytes: int) -> int | None:
    """Writes the cache ``folder``'s entries into the tar file ``tar_path`` (whole or not at
    all); returns the bytes written, or None (nothing written) when the folder holds no entry
    or they would pass ``max_bytes``."""
    from jaxcodec.fileio import atomic_path

    names = _entries(folder)
    if not names or sum(os.path.getsize(os.path.join(folder, n)) for n in names) + 1024 * (len(names) + 2) > max_bytes:
        return None
    with atomic_path(tar_path) as tmp, tarfile.open(tmp, "w") as tar:
        for name in names:
            tar.add(os.path.join(folder, name), arcname=name, recursive=False)
    return os.path.getsize(tar_path)


def unpack(tar_path: str, folder: str) -> int:
    """Puts the entries of a tar file of :func:`pack` into the cache ``folder``; returns how
    many. Only plain files with plain names are taken: anything else (a path, a link) makes
    the file a :class:`jaxcodec.errors.ConfigError`, as does a file that is not a tar."""
    try:
        with tarfile.open(tar_path, "r:") as tar:
            members = tar.getmembers()
            for member in members:
                if not member.isfile() or os.path.basename(member.name) != member.name or member.name in ("", ".", ".."):
                    raise ConfigError(f"compilation cache {tar_path}: {member.name!r} is not a plain cache entry")
            os.makedirs(folder, exist_ok=True)
            for member in members:
                with tar.extractfile(member) as src, open(os.path.join(folder, member.name), "wb") as dst:
                    dst.write(src.read())
    except (tarfile.TarError, OSError) as error:
        raise ConfigError(f"compilation cache {tar_path}: cannot read it ({error})") from None
    return len(members)
