"""Running a convolutional transform over a large image in tiles, with exact halos.

A learned codec's analysis and synthesis transforms are stacks of convolutions: each
output value depends only on the inputs within the stack's receptive field. So a large
image can be transformed one tile at a time: each tile is cut out together with a
margin (the *halo*) at least as wide as that field, transformed, and only its interior
is kept. Inside the image the halo supplies exactly the neighbours the whole image
would have supplied; at the image's own border the tile's window ends where the image
ends, so the convolutions pad there as they pad the whole image. The result is the
whole image's transform up to float rounding (XLA sums in another order for another
input size), without seams, in memory for one window instead of for the whole image.

Windows all have one size per image (those at the border are shifted inwards, not
cut short), so a transform compiles once per image size however many tiles it has;
the tiles of one axis are balanced (their sizes differ by at most one), so the halos
add little: about 30% more pixels for 1,000-pixel tiles and a 64-pixel halo.

The tile size comes from a memory budget (:func:`budget`, :data:`DEFAULT_MAX_MEMORY`
unless :func:`memory_budget` sets another; ``python -m jaxcodec compress/decompress
--max-memory``): the largest window whose transform's working memory, at the codec's
estimated bytes per pixel, fits the budget. An image no larger than one window is
transformed whole, exactly as without tiling.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import re
from typing import Callable, Iterator, Sequence

import numpy as np

from jaxcodec.errors import ConfigError

__all__ = ["DEFAULT_MAX_MEMORY", "Span", "analyse", "budget", "halo", "memory_budget", "parse_bytes", "spans", "stream_tiles", "synthesise",
           "tile_for", "window_pixels", "windows"]

#: Working memory of one transform over one window, unless a caller sets another budget:
#: 1 GiB, a 1,400-pixel square window of the shipped photo models (about 500 bytes per
#: pixel, measured with ``bench/memory.py``).
DEFAULT_MAX_MEMORY = 1 << 30
_BUDGET: contextvars.ContextVar[int] = contextvars.ContextVar("jaxcodec_memory_budget", default=DEFAULT_MAX_MEMORY)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def budget() -> int:
    """The memory budget in force, in bytes."""
    return _BUDGET.get()


@contextlib.contextmanager
def memory_budget(nbytes: int) -> Iterator[None]:
    """Transforms inside the block keep their working memory within ``nbytes``."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 1:
        raise ConfigError(f"the memory budget must be a whole number of bytes >= 1, got {nbytes!r}")
    token = _BUDGET.set(nbytes)
    try:
        yield
    finally:
        _BUDGET.reset(token)


def parse_bytes(text: str) -> int:
    """``"512M"``, ``"1.5G"``, ``"2GB"``, ``"800MiB"`` or a plain number of bytes → bytes
    (K, M, G, T are powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?\s*", str(text), re.IGNORECASE)
    value = float(match.group(1)) * _UNITS[match.group(2).lower()] if match else 0.0
    if not match or not 1 <= value < 1 << 60:
        raise ConfigError(f"a memory size must look like 512M, 1.5G or 2GB, got {text!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class Span:
    """One tile along one axis: ``[start, stop)`` is kept, ``[window_start, window_stop)``
    is transformed (the tile and its halo)."""

    start: int
    stop: int
    window_start: int
    window_stop: int

    @property
    def inner(self) -> slice:
        """Where the tile lies inside its window."""
        return slice(self.start - self.window_start, self.stop - self.window_start)

    @property
    def window(self) -> slice:
        return slice(self.window_start, self.window_stop)

    @property
    def tile(self) -> slice:
        return slice(self.start, self.stop)


def spans(length: int, tile: int, halo: int) -> list[Span]:
    """Splits ``[0, length)`` into the fewest tiles of at most ``tile`` units (balanced),
    each with a window of one common size, ``min(length, max tile + 2 * halo)``, that
    holds the tile and ``halo`` units on each side where the axis goes on."""
    if length < 1 or tile < 1 or halo < 0:
        raise ValueError(f"spans needs length >= 1, tile >= 1 and halo >= 0, got {length}, {tile}, {halo}")
    count = math.ceil(length / tile)
    size = math.ceil(length / count)  # balanced: every tile has size or size - 1 units
    window = min(length, size + 2 * halo)
    out = []
    for i in range(count):
        start, stop = length * i // count, length * (i + 1) // count
        window_start = min(max(start - halo, 0), length - window)
        out.append(Span(start, stop, window_start, window_start + window))
    return out


def tile_for(bytes_per_unit: float, halo: int, nbytes: int | None = None) -> int:
    """The largest tile side (in units) whose square window, tile plus ``halo`` on each
    side, fits ``nbytes`` (default: :func:`budget`) at ``bytes_per_unit`` per unit of
    area; at least 1."""
    side = math.isqrt(int((budget() if nbytes is None else nbytes) // max(bytes_per_unit, 1e-9)))
    return max(side - 2 * halo, 1)


def halo(kernel_sizes: Sequence[int], step: int) -> int:
    """The halo, in latent positions of ``step`` pixels, of an analysis made of stride-2
    convolutions of ``kernel_sizes``: it reads ``Σ_i (k_i // 2)·2^i`` pixels beyond a latent
    position's own (its synthesis reads less), rounded up, with two positions to spare."""
    reach = sum((int(k) // 2) << i for i, k in enumerate(kernel_sizes))
    return -(-reach // step) + 2


def windows(height: int, width: int, bytes_per_unit: float, halo: int) -> tuple[list[Span], list[Span]]:
    """The tiles and windows of an ``(height, width)`` latent whose transform takes
    ``bytes_per_unit`` per latent position: tiles as large as :func:`budget` allows, with
    ``halo`` positions around them."""
    tile = tile_for(bytes_per_unit, halo)
    return spans(height, tile, halo), spans(width, tile, halo)


def window_pixels(image: np.ndarray, ys: Span, xs: Span, step: int) -> np.ndarray:
    """The float32 ``(1, h', w', 3)`` input of one window of a latent with ``step`` pixels
    per position: the uint8 ``image``'s pixels under it, RGB (grey replicated), edge-replicated
    where the window passes the image's bottom or right edge (as the whole image is padded)."""
    height, width = image.shape[:2]
    r0, r1, c0, c1 = ys.window_start * step, ys.window_stop * step, xs.window_start * step, xs.window_stop * step
    part = image[r0:min(r1, height), c0:min(c1, width)]
    part = np.pad(part, ((0, r1 - min(r1, height)), (0, c1 - min(c1, width)), (0, 0)), mode="edge")
    if part.shape[2] == 1:
        part = np.repeat(part, 3, axis=2)
    return (part.astype(np.float32) / 255.0)[None]


def analyse(window_latent: Callable[[Span, Span], np.ndarray], rows: list[Span], cols: list[Span]) -> np.ndarray:
    """The whole latent ``(h, w, C)`` from ``window_latent(ys, xs)``, the latent of each
    window ``(h', w', C)``: each window's tile kept, its halo dropped."""
    out = None
    for ys in rows:
        for xs in cols:
            latent = np.asarray(window_latent(ys, xs))
            if out is None:
                out = np.empty((rows[-1].stop, cols[-1].stop) + latent.shape[2:], latent.dtype)
            out[ys.tile, xs.tile] = latent[ys.inner, xs.inner]
    return out


def synthesise(window_image: Callable[[slice, slice], np.ndarray], rows: list[Span], cols: list[Span], step: int,
               height: int, width: int) -> np.ndarray:
    """The uint8 ``(height, width, 3)`` image from ``window_image(rows, cols)``, the pixels
    ``(h'·step, w'·step, 3)`` synthesised from the latent window ``[rows, cols]``: each
    window's tile kept, cropped to the image."""
    out = np.empty((height, width, 3), np.uint8)
    for ys in rows:
        for xs in cols:
            x = np.asarray(window_image(ys.window, xs.window))
            r0, r1 = ys.start * step, min(ys.stop * step, height)
            c0, c1 = xs.start * step, min(xs.stop * step, width)
            dy, dx = ys.window_start * step, xs.window_start * step
            out[r0:r1, c0:c1] = x[r0 - dy : r1 - dy, c0 - dx : c1 - dx]
    return out


def stream_tiles(h: int, w: int, tile: int) -> list[tuple[slice, slice]]:
    """The square tiles of side ``tile`` (0: one tile) that a stream codes an ``(h, w)``
    latent in: from the top left, in raster order, the last row and column cut short."""
    tile = tile or max(h, w)
    return [(slice(y, min(y + tile, h)), slice(x, min(x + tile, w)))
            for y in range(0, h, tile) for x in range(0, w, tile)]
