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
from typing import Iterator

from jaxcodec.errors import ConfigError

__all__ = ["DEFAULT_MAX_MEMORY", "Span", "budget", "memory_budget", "parse_bytes", "spans", "tile_for"]

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
