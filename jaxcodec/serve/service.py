"""The server's state: its catalogue, its workers and shape classes, and each request's job.

:class:`Service` loads the models (in a background thread when the server starts, so
``/healthz`` can say ``loading`` until they are ready), compiles the common shapes
(``warmup``: the shipped samples' size for the default model, and the digit models), and
holds the jobs the routes run on the worker pool. Each job runs inside
:meth:`~jaxcodec.serve.shapes.ShapeClasses.use` for its shape classes and reports the
compilations it triggered.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
from typing import Any, Hashable

import numpy as np

import jaxcodec
from jaxcodec.codecs import standard
from jaxcodec.errors import one_line
from jaxcodec.serve import catalog as catalog_lib
from jaxcodec.serve import work
from jaxcodec.serve.catalog import Catalog, Entry
from jaxcodec.serve.config import ServeConfig
from jaxcodec.serve.errors import Busy, NotFound, Unprocessable
from jaxcodec.serve.pool import WorkerPool
from jaxcodec.serve.shapes import ShapeClasses, counting_compiles, shape_class, side_multiple

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
SAMPLES_DIR = os.path.join(STATIC_DIR, "samples")

Compiles = list[tuple[str, float]]
log = logging.getLogger("jaxcodec.serve")


def sample_paths() -> list[str]:
    """The sample photos the page offers (shipped in ``static/samples``)."""
    return sorted(glob.glob(os.path.join(SAMPLES_DIR, "*.png")))


class Service:
    """Everything a request needs besides HTTP."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.pool = WorkerPool(config.workers, config.queue)
        self.shapes = ShapeClasses(config.max_shape_classes)
        self.catalog: Catalog | None = None
        self.status = "loading"
        self.error: str | None = None
        self.standards: list[Entry] = []
        self._stream_multiples: dict[str, int] = {}
        self._thread: threading.Thread | None = None

    # -- loading --------------------------------------------------------------------------
    def load(self, catalog: Catalog | None = None) -> None:
        """Loads the catalogue (or takes ``catalog``, already loaded) and warms it up;
        afterwards :attr:`status` is ``ok``, or ``error`` with :attr:`error` saying why."""
        start = time.perf_counter()
        try:
            catalog = catalog or Catalog.load(self.config.models)
            self.standards = [catalog.entries.get(n) or catalog_lib.standard_entry(n) for n in catalog_lib.COMPARED]
            for entry in catalog.of_kind("photo", "digit"):
                codec = entry.codec
                members = getattr(codec, "members", None)
                for member in (members.values() if isinstance(members, dict) else [codec]):
                    self._stream_multiples[getattr(member, "name", entry.name)] = side_multiple(codec)
            self.catalog = catalog
            compiled: Compiles = []
            if self.config.warmup:
                with counting_compiles() as compiled:
                    self.warm_up()
            self.status = "ok"
            log.info("ready in %.1f s: %s; warm-up compiled %s", time.perf_counter() - start,
                     ", ".join(catalog.entries), describe_compiles(compiled))
        except Exception as error:  # reported by /healthz; the server stays up to say so
            self.error = one_line(error)
            self.status = "error"
            log.error("models failed to load: %s", self.error)
            raise

    def start_loading(self) -> threading.Thread:
        """Runs :meth:`load` in a background thread (once)."""
        if self._thread is None:
            def target() -> None:
                try:
                    self.load()
                except Exception:
                    pass  # kept in self.error

            self._thread = threading.Thread(target=target, name="jaxcodec-load", daemon=True)
            self._thread.start()
        return self._thread

    def warm_up(self) -> None:
        """Compiles what the page uses first: the default model at its default quality on
        every shipped sample, and each digit model on a blank digit."""
        catalog = self.catalog
        if catalog.default is not None:
            entry = catalog.entries[catalog.default]
            for path in sample_paths():
                with open(path, "rb") as f:
                    self.compress(entry, entry.default_quality, f.read())
        for entry in catalog.of_kind("digit"):
            blank = np.zeros(entry.image_shape, np.uint8)
            self.run_keys(self.keys(entry, blank), work.code, blank, entry, entry.default_quality)

    # -- lookups --------------------------------------------------------------------------
    def ready(self) -> Catalog:
        """The catalogue, or :class:`Busy` while the models load (or failed to)."""
        if self.status == "ok" and self.catalog is not None:
            return self.catalog
        if self.status == "error":
            raise Busy(f"models failed to load: {self.error}")
        raise Busy("models are loading; try again shortly", headers={"Retry-After": "5"})

    def entry(self, name: str | None, kinds: tuple[str, ...]) -> Entry:
        """The offered model ``name`` (None: the default photo model), of one of ``kinds``."""
        catalog = self.ready()
        name = name or catalog.default
        if name is None or name not in catalog.entries:
            offered = ", ".join(catalog.entries)
            raise NotFound(f"unknown model {name!r}; this server offers: {offered}")
        entry = catalog.entries[name]
        if entry.kind not in kinds:
            raise Unprocessable(f"{name} is a {entry.kind} model; this endpoint takes a {' or '.join(kinds)} model")
        return entry

    @staticmethod
    def quality(entry: Entry, text: str | None) -> int:
        """The ``quality`` query parameter for ``entry`` (its default when absent)."""
        if text is None or text == "":
            return entry.default_quality
        try:
            value = int(text)
        except ValueError:
            raise Unprocessable(f"quality must be a whole number, got {text!r}") from None
        if value not in entry.qualities:
            q = entry.qualities
            span = f"{q[0]}..{q[-1]}" if list(q) == list(range(q[0], q[-1] + 1)) else str(list(q))
            raise Unprocessable(f"{entry.name} has no quality {value}; available: {span}")
        return value

    # -- shape classes ------------------------------------------------------------------------
    def keys(self, entry: Entry, image: np.ndarray) -> list[Hashable]:
        """The shape classes ``entry`` compiles programs for when it codes ``image``: the
        model's padded size (learned models) and the image's exact size (the metrics)."""
        h, w = image.shape[:2]
        keys: list[Hashable] = [("metrics", h, w, image.shape[2])]
        if entry.kind != "standard":
            keys.append((entry.name, *shape_class(h, w, side_multiple(entry.codec))))
        return keys

    def run_keys(self, keys: list[Hashable], fn: Any, *args: Any) -> tuple[Any, Compiles]:
        """``fn(*args)`` inside the shape classes ``keys``, with the compilations it ran."""
        with counting_compiles() as log, self.shapes.use(*keys):
            result = fn(*args)
        return result, log

    # -- jobs (run on a worker thread) ----------------------------------------------------
    def compress(self, entry: Entry, quality: int, data: bytes) -> tuple[work.Coded, Compiles]:
        """An uploaded image coded by ``entry`` at ``quality``, decoded and measured."""
        image = work.fit_to_entry(work.decode_upload(data), entry)
        return self.run_keys(self.keys(entry, image), work.code, image, entry, quality)

    def decompress(self, data: bytes) -> tuple[tuple[np.ndarray, bytes], Compiles]:
        """A stream decoded by the model that made it (:func:`jaxcodec.decompress`), and the
        decoded image as PNG."""
        keys: list[Hashable] = []
        if standard.identify(data) is None:
            info = jaxcodec.info(data)
            multiple = self._stream_multiples.get(info["model"], 1)
            keys.append(("stream", info["model"], *shape_class(info["height"], info["width"], multiple)))
        return self.run_keys(keys, _decode_png, data)

    def compare(self, entry: Entry, quality: int, data: bytes, images: bool) -> tuple[dict, Compiles]:
        """The learned codec against JPEG, WebP and AVIF at the same file size."""
        image = work.decode_upload(data)
        return self.run_keys(self.keys(entry, image), work.compare, image, entry, quality, self.standards, images)

    def digits(self, bits: int, data: bytes) -> tuple[dict, Compiles]:
        """A drawn digit through every digit model."""
        entries = self.ready().of_kind("digit")
        if not entries:
            raise NotFound("this server offers no digit models")
        image = work.fit_to_entry(work.decode_upload(data), entries[0])
        keys = [k for e in entries for k in self.keys(e, image)]
        return self.run_keys(list(dict.fromkeys(keys)), work.digits, image, entries, bits)

    def close(self) -> None:
        """Stops the workers."""
        self.pool.shutdown()


def _decode_png(data: bytes) -> tuple[np.ndarray, bytes]:
    image = jaxcodec.decompress(data)
    return image, work.png_bytes(image)


def describe_compiles(log: Compiles) -> str:
    """``"2 (1.31 s)"``: how many programs a request compiled, and how long it took."""
    return f"{len(log)} ({sum(s for _, s in log):.2f} s)" if log else "0"

