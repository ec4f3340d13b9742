"""Rate control: the quality whose stream fits a byte budget, hits a rate, or reaches a PSNR.

Three targets (:func:`fit`): ``max_bytes`` (the largest quality whose stream has at most
that many bytes), ``bpp`` (the stream whose rate is closest) and ``psnr`` (the smallest
stream whose decoded image reaches it). Streams only grow with quality, so each target is
a search over the codec's qualities:

* a codec of continuous rate that can estimate its size (the mean-scale hyperprior:
  ``quality_range`` and ``rate_function``) is searched first on the estimate, which costs
  no entropy coding and reuses one analysis transform, then finished with at most
  :data:`MAX_ENCODES` real encodes, each of which measures how far the real size lies
  from the estimate (the header, the coders' last words) and corrects the next quality;
* a codec with a range of qualities (JPEG, WebP, AVIF, JPEG XL: integers) or a list of
  them (a ladder of models) is bisected with real encodes, which are cheap for the
  standard codecs (JPEG: 7 encodes cover 1..100).

A target no quality can meet (a budget below the smallest stream, a PSNR above what the
best quality reaches) is a :class:`TargetError` that names the nearest achievable value.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import numpy as np

from jaxcodec.codecs.protocol import Codec
from jaxcodec.errors import ConfigError, JaxcodecError

MAX_ENCODES = 4  # real encodes after the estimate, for a codec of continuous rate
BUDGET_FILL = 0.985  # aim a byte budget this far below its limit (the target lands within 3% below)
_PRECISION = 1e-3  # quality resolution of a continuous search (the stream keeps thousandths)


class TargetError(JaxcodecError):
    """A rate or quality target that no quality of the codec meets for this image."""


@dataclasses.dataclass
class Fit:
    """The stream chosen for a target, with what was spent finding it."""

    data: bytes
    quality: float
    encodes: int  # real encodes made by the search
    psnr: float | None = None


def _psnr(image: np.ndarray, decoded: np.ndarray) -> float:
    mse = np.mean((image.astype(np.float64) - decoded.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


class _Encoder:
    """Real encodes of one image, counted and remembered by quality."""

    def __init__(self, codec: Codec, image: np.ndarray):
        self.codec, self.image, self.count, self.cache, self.psnrs = codec, image, 0, {}, {}

    def __call__(self, quality: Any) -> bytes:
        if quality not in self.cache:
            self.count += 1
            self.cache[quality] = self.codec.encode(self.image, quality)
        return self.cache[quality]

    def psnr(self, quality: Any) -> float:
        if quality not in self.psnrs:
            self.psnrs[quality] = _psnr(self.image, self.codec.decode(self(quality)))
        return self.psnrs[quality]


def candidates(codec: Codec) -> Sequence[Any] | tuple[float, float]:
    """The qualities to search: ``(low, high)`` reals for a continuous codec, else a sorted list."""
    span = getattr(codec, "quality_range", None)
    if span is not None and not isinstance(codec.qualities[0], (int, np.integer)):
        return float(span[0]), float(span[1])
    if span is not None and hasattr(codec, "rate_function"):
        return float(span[0]), float(span[1])
    if span is not None:
        return list(range(int(math.ceil(span[0])), int(math.floor(span[1])) + 1))
    return sorted(codec.qualities)


def _largest(qualities: Sequence[Any], ok: Callable[[Any], bool]) -> Any | None:
    """The largest quality for which the monotone ``ok`` (true, then false) holds, by bisection."""
    lo, hi, best = 0, len(qualities) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if ok(qualities[mid]):
            best, lo = qualities[mid], mid + 1
        else:
            hi = mid - 1
    return best


def _smallest(qualities: Sequence[Any], ok: Callable[[Any], bool]) -> Any | None:
    """The smallest quality for which the monotone ``ok`` (false, then true) holds."""
    lo, hi, best = 0, len(qualities) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if ok(qualities[mid]):
            best, hi = qualities[mid], mid - 1
        else:
            lo = mid + 1
    return best


def _crossing(g: Callable[[float], float], lo: float, hi: float, *, width: float, close: float,
              low_side: bool) -> tuple[float, float]:
    """Where the increasing ``g`` crosses zero in ``[lo, hi]``, as a bracket ``(lo, hi)``
    with ``g(lo) <= 0 < g(hi)`` (``lo`` if ``g`` is positive throughout, ``hi`` if it never is).

    Regula falsi with the Illinois step (Dowell & Jarratt, BIT 1971: the end that stays put
    has its value halved, which makes the convergence superlinear), at qualities rounded to the
    stream's thousandths. It stops when the bracket is ``width`` wide, or when a point lands
    on the wanted side (``g <= 0`` with ``low_side``, else ``g > 0``) within ``close`` of zero.
    A rate-quality curve is smooth, so a few evaluations replace bisection's dozen."""
    g_lo, g_hi = g(lo), g(hi)
    if g_lo > 0:
        return lo, lo
    if g_hi <= 0:
        return hi, hi
    kept = 0  # which end stayed put last time: -1 lo, +1 hi
    while hi - lo > width:
        t = round(min(max(lo + (hi - lo) * g_lo / (g_lo - g_hi), lo + _PRECISION), hi - _PRECISION), 3)
        if not lo < t < hi:
            break
        g_t = g(t)
        if g_t > 0:
            hi, g_hi = t, g_t
            if kept == -1:
                g_lo *= 0.5
            kept = -1
            if not low_side and g_t <= close:
                break
        else:
            lo, g_lo = t, g_t
            if kept == 1:
                g_hi *= 0.5
            kept = 1
            if low_side and -g_t <= close:
                break
    return lo, hi


def _solve(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """The largest quality in ``[lo, hi]`` where the increasing, positive ``f`` (bytes) is at most
    ``target`` (to the stream's thousandths, or within 0.2% below ``target``); ``lo`` if none is."""
    log_target = math.log(target)
    return _crossing(lambda q: math.log(f(q)) - log_target, lo, hi, width=_PRECISION, close=2e-3, low_side=True)[0]


def _continuous_bytes(codec: Codec, encoder: _Encoder, target: float, span: tuple[float, float],
                      below: bool) -> Fit:
    """A continuous codec's stream nearest ``target`` bytes (at most ``target`` when ``below``).

    The stream's size is modelled as the estimate plus a constant (the header and the coders'
    last words), the constant measured by every real encode; each encode re-solves the model
    for the quality, on the estimate alone."""
    estimate_bits = codec.rate_function(encoder.image)
    memo: dict[float, float] = {}

    def estimate(q: float) -> float:  # bytes; quality rounded as the stream keeps it
        q = round(q / _PRECISION) * _PRECISION
        if q not in memo:
            memo[q] = estimate_bits(q) / 8.0
        return memo[q]

    lo, hi = span
    aim = target * (BUDGET_FILL if below else 1.0)
    overhead = 0.0
    best: tuple[float, bytes] | None = None
    tried: set[float] = set()
    for _ in range(MAX_ENCODES):
        q = round(_solve(lambda v: estimate(v) + overhead, aim, lo, hi), 3)
        if q in tried:
            break
        tried.add(q)
        data = encoder(q)
        size = len(data)
        overhead = size - estimate(q)
        fits = size <= target if below else True
        if fits and (best is None or abs(size - target) < abs(len(best[1]) - target)):
            best = (q, data)
        if (below and fits and size >= 0.97 * target) or (not below and abs(size / target - 1) <= 0.03):
            break
    if best is None:  # every try overshot the budget: the smallest stream decides
        data = encoder(lo)
        if len(data) > target:
            raise TargetError(f"{codec.name}: the smallest stream for this image has {len(data)} bytes, "
                              f"more than {int(target)}")
        best = (lo, data)
    return Fit(best[1], best[0], encoder.count)


def fit(image: np.ndarray, codec: Codec, *, max_bytes: int | None = None, bpp: float | None = None,
        psnr: float | None = None) -> Fit:
    """The stream of ``image`` that meets exactly one target; see the module docstring.

    Raises:
      ConfigError: not exactly one target, or a target that is not a positive number.
      TargetError: no quality meets the target (the message gives the nearest achievable value).
    """
    given = {k: v for k, v in (("max_bytes", max_bytes), ("bpp", bpp), ("psnr", psnr)) if v is not None}
    if len(given) != 1:
        raise ConfigError("give exactly one target: max_bytes, bpp or psnr")
    (name, value), = given.items()
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a positive number, got {given[name]!r}")
    image = np.asarray(image)
    pixels = image.shape[0] * image.shape[1]
    encoder = _Encoder(codec, image)
    space = candidates(codec)
    continuous = isinstance(space, tuple)

    if name == "psnr":
        top = space[1] if continuous else space[-1]
        best_psnr = encoder.psnr(top)
        if best_psnr < value:
            raise TargetError(f"{codec.name} reaches at most {best_psnr:.2f} dB on this image (quality {top:g}), "
                              f"below {value:g} dB")
        if continuous:  # the smallest quality reaching it, to 0.01
            quality = _crossing(lambda q: encoder.psnr(q) - value + 1e-9, space[0], space[1], width=0.01,
                                close=0.0, low_side=False)[1]
        else:
            quality = _smallest(space, lambda q: encoder.psnr(q) >= value)
        return Fit(encoder(quality), quality, encoder.count, encoder.psnr(quality))

    target = value if name == "max_bytes" else value * pixels / 8.0
    below = name == "max_bytes"
    if continuous and hasattr(codec, "rate_function"):
        return _continuous_bytes(codec, encoder, target, space, below)
    if continuous:  # a real range without an estimate: bisect on real encodes
        lo, hi = space
        quality = _solve(lambda q: len(encoder(round(q, 3))), target, lo, hi)
        space = [round(quality, 3)]
    if below:
        quality = _largest(space, lambda q: len(encoder(q)) <= target)
        if quality is None:
            raise TargetError(f"{codec.name}: the smallest stream for this image has {len(encoder(space[0]))} "
                              f"bytes (quality {space[0]:g}), more than {int(target)}")
        return Fit(encoder(quality), quality, encoder.count)
    below_q = _largest(space, lambda q: len(encoder(q)) <= target)
    options = [q for q in (below_q, _next(space, below_q)) if q is not None]
    quality = min(options, key=lambda q: abs(len(encoder(q)) - target))
    return Fit(encoder(quality), quality, encoder.count)


def _next(space: Sequence[Any], quality: Any | None) -> Any | None:
    if quality is None:
        return space[0]
    i = list(space).index(quality)
    return space[i + 1] if i + 1 < len(space) else None


class AtRate:
    """A codec seen through rate targets: its qualities are rates in bpp, and ``encode`` codes
    each image at the quality whose rate is closest (:func:`fit`). An evaluation over it
    reports every codec at the same rates, so tables compare like with like (``eval.py
    --match_bpp``)."""

    def __init__(self, codec: Codec, rates: Sequence[float]):
        rates = sorted(float(r) for r in rates)
        if not rates or rates[0] <= 0:
            raise ConfigError(f"rates must be positive numbers of bits per pixel, got {rates}")
        self.codec, self.qualities = codec, rates
        self.name = codec.name
        self.description = f"{codec.description}, at matched rates"

    def encode(self, image: np.ndarray, quality: Any) -> bytes:
        return fit(image, self.codec, bpp=quality).data

    def decode(self, data: bytes) -> np.ndarray:
        return self.codec.decode(data)
