"""Shape classes: which requests share compiled programs, and what each request compiled.

JAX compiles a jitted function once per input shape. The learned photo codec pads every
image to a multiple of its downsampling factor (16 for ``bmshj2017-factorized``: edge
replication, the stream keeps the true size) before its transforms run, so its encoder
and decoder are compiled once per *shape class* ``(⌈H/16⌉·16, ⌈W/16⌉·16)``, and all
nine qualities of the ladder share them (same architecture, the weights are arguments).
A 500×375 and a 510×380 photo are one class (512×384). A model that does not state its
multiple counts each size as its own class; digit models take one size.

The server keys its requests by ``(model, class)``:

* the first request of a class compiles while later requests of the same class wait for
  it (:meth:`ShapeClasses.use`), instead of compiling the same program side by side;
* at most ``limit`` classes stay compiled: each compiled program keeps machine code mapped
  in the process, so when a new class would go past the limit, the server waits until no
  request is running and clears JAX's caches (:func:`jax.clear_caches`) before it goes on.

:func:`counting_compiles` records the XLA compilations a thread triggers (JAX's
``/jax/core/compile/backend_compile_duration`` event, with the function's name), which
the request log and the ``X-Compiles`` header report.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Hashable, Iterator

import jax

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"

_local = threading.local()
_listening = False
_listen_lock = threading.Lock()


def side_multiple(codec: Any) -> int:
    """The multiple a codec pads image sides to before its compiled transforms run: its
    ``downsampling`` (or its ladder members'); 1 for a codec that does not say (each size
    its own class, which never undercounts the programs)."""
    members = getattr(codec, "members", None)
    if isinstance(members, dict) and members:
        codec = next(iter(members.values()))
    multiple = getattr(codec, "downsampling", None)
    return multiple if isinstance(multiple, int) and multiple > 0 else 1


def shape_class(height: int, width: int, multiple: int) -> tuple[int, int]:
    """``(height, width)`` rounded up to ``multiple``."""
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def _on_duration(event: str, duration: float, **kwargs: Any) -> None:
    if event != BACKEND_COMPILE_EVENT:
        return
    log = getattr(_local, "log", None)
    if log is not None:
        log.append((str(kwargs.get("fun_name", "?")), float(duration)))


def _listen() -> None:
    global _listening
    with _listen_lock:
        if not _listening:
            jax.monitoring.register_event_duration_secs_listener(_on_duration)
            _listening = True


@contextlib.contextmanager
def counting_compiles() -> Iterator[list[tuple[str, float]]]:
    """Yields a list that collects ``(function name, seconds)`` for every XLA compilation
    this thread runs inside the block."""
    _listen()
    outer = getattr(_local, "log", None)
    log: list[tuple[str, float]] = []
    _local.log = log
    try:
        yield log
    finally:
        _local.log = outer
        if outer is not None:
            outer.extend(log)


class ShapeClasses:
    """The ``(model, class)`` keys compiled so far: at most ``limit``, then a clear.

    Args:
      limit: keys kept before the caches are cleared.
      clear: what clearing means (default :func:`jax.clear_caches`).
    """

    def __init__(self, limit: int, clear: Callable[[], None] = jax.clear_caches):
        self.limit = int(limit)
        self._clear = clear
        self._cond = threading.Condition()
        self._ready: dict[Hashable, threading.Event] = {}
        self._active = 0
        self._clearing = False
        self.clears = 0

    @property
    def known(self) -> list[Hashable]:
        """The keys compiled (or compiling) since the last clear."""
        with self._cond:
            return list(self._ready)

    @contextlib.contextmanager
    def use(self, *keys: Hashable) -> Iterator[bool]:
        """Runs a request that compiles for the classes ``keys``; yields whether any of them is
        new (this request compiles it). A request waits until the first request of each of
        its known classes is done."""
        with self._cond:
            while self._clearing:
                self._cond.wait()
            new = [k for k in dict.fromkeys(keys) if k not in self._ready]
            if new and len(self._ready) + len(new) > self.limit:
                self._clearing = True
                while self._active:
                    self._cond.wait()
                try:
                    self._clear()
                    self._ready.clear()
                    self.clears += 1
                finally:
                    self._clearing = False
                    self._cond.notify_all()
                new = list(dict.fromkeys(keys))
            for key in new:
                self._ready[key] = threading.Event()
            waits = [self._ready[k] for k in keys if k not in new]
            mine = [self._ready[k] for k in new]
            self._active += 1
        try:
            for event in waits:
                event.wait()
            yield bool(new)
        finally:
            for event in mine:
                event.set()
            with self._cond:
                self._active -= 1
                self._cond.notify_all()
