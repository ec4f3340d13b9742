"""Machine code of compiled programs: how much this process holds, and letting it go.

Every program XLA:CPU compiles is machine code mapped into the process, a few memory
mappings each, and a Linux process may hold at most ``vm.max_map_count`` mappings (65,530
by default); past that LLVM fails with "Cannot allocate memory" and the process dies.
The codecs compile their programs per image size (the factorized ladder shares them
across qualities: :func:`jaxcodec.codecs.factorized.programs`), so a long loop over
images of many sizes, such as ``eval.py`` on a folder of photos, keeps adding code.
:func:`release_if_crowded` drops every compiled program (``jax.clear_caches()``; they
are compiled again on next use) once the mappings pass a share of the limit.
``bench/program_memory.py`` measures the mappings per image size.
"""

from __future__ import annotations

import jax

__all__ = ["MAPS", "map_limit", "mappings", "release_if_crowded"]

MAPS = "/proc/self/maps"
MAX_MAP_COUNT = "/proc/sys/vm/max_map_count"
DEFAULT_SHARE = 0.5


def mappings() -> int | None:
    """The memory mappings this process holds (lines of ``/proc/self/maps``), or ``None``
    where the system does not say (not Linux)."""
    try:
        with open(MAPS, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return None


def map_limit() -> int | None:
    """The system's limit on a process's mappings (``vm.max_map_count``), or ``None``."""
    try:
        with open(MAX_MAP_COUNT) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def release_if_crowded(share: float = DEFAULT_SHARE) -> bool:
    """Drops all compiled programs if the process holds more than ``share`` of its
    mapping limit; returns whether it did. Costs one read of ``/proc/self/maps``
    (well under a millisecond at a few thousand mappings); does nothing where the
    counts are unknown."""
    limit = map_limit()
    held = mappings() if limit else None
    if held is None or held <= share * limit:
        return False
    jax.clear_caches()
    return True
