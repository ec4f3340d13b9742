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
"""

from __future__ import annotations

import os
import sys

__all__ = ["ENV", "MAX_BYTES", "cache_dir", "enable"]

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
    return path
