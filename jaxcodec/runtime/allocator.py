"""Host memory allocator settings that keep XLA's large buffers from page-faulting.

XLA on CPU allocates each execution's working memory (one block of all its temporaries,
and each large output) with ``malloc`` and frees it when the execution ends. glibc's
``malloc`` serves blocks above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and returns them with ``munmap``, and a worker thread's arena falls back to
``mmap`` for any block larger than its 64 MiB heap. So every train step and every
encode of a large image touches new pages: about 40,000 minor page faults per pass of
a 512×768 image through the factorized prior's analysis transform (151 MiB of
temporaries), some 15% of its time on the 2-core development machine.

:func:`configure` asks glibc (``mallopt``, see ``man 3 mallopt``) to serve every
thread from the main arena (``M_ARENA_MAX = 1``), never to ``mmap`` a block
(``M_MMAP_MAX = 0``) and to give freed memory back to the system only when more than
1 GiB lies free at the top of the heap (``M_TRIM_THRESHOLD``). Freed blocks are then
reused, already mapped, by the next execution. The price is that the process keeps
its peak heap mapped.

The settings are process-wide, so the library does not apply them on import: the entry
points (``train.py``, ``eval.py``, ``python -m jaxcodec``, the benchmarks) call
:func:`configure` before JAX starts its threads, and a notebook may do the same. Set
``JAXCODEC_MALLOC=system`` to leave the allocator alone. Threads that already made
their own arena keep it, so call it early. Elsewhere than Linux with glibc it does
nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

from jaxcodec.errors import ConfigError

__all__ = ["ENV", "GLIBC_ENV", "configure"]

ENV = "JAXCODEC_MALLOC"

# mallopt parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
TRIM_THRESHOLD = 1 << 30
# The same settings as glibc environment variables, read when a process starts (for
# another program, e.g. a peer in a benchmark).
GLIBC_ENV = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}

_configured = False


def configure(environ=None) -> bool:
    """Applies the settings of the module docstring once per process.

    Returns True when they are in effect (now or from an earlier call), False when
    ``JAXCODEC_MALLOC=system`` opts out or the C library is not glibc.
    """
    global _configured
    if _configured:
        return True
    setting = (os.environ if environ is None else environ).get(ENV, "keep").strip().lower()
    if setting == "system":
        return False
    if setting != "keep":
        raise ConfigError(f"{ENV} must be 'keep' or 'system', got {setting!r}")
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no glibc mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = all(
        mallopt(param, value) == 1
        for param, value in ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    )
    _configured = ok
    return ok
