"""Bjøntegaard delta rate and delta PSNR between two rate-distortion curves.

G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves",
ITU-T SG16/Q6 VCEG-M33, Austin, 2001. Each curve is a few (rate, PSNR) points,
one per quality setting. The method fits a cubic polynomial through each curve and
compares the two fits over the range where both curves have data:

* **BD-rate**: log(rate) as a cubic in PSNR; the mean difference of the two fits
  over the common PSNR interval, ``d``, gives the average rate ratio ``exp(d)``,
  reported as the percentage ``(exp(d) - 1) * 100``. Negative means the test codec
  needs fewer bits than the anchor for the same quality.
* **BD-PSNR**: PSNR as a cubic in log(rate); the mean difference (test minus
  anchor) over the common log-rate interval, in dB. Positive means the test codec
  is better.

The base of the logarithm does not matter (VCEG-M33 uses log10); the rate unit
does not matter either, as long as both curves use the same one (bits per pixel,
bytes, kbit/s).

Input handling, in this order: points whose rate or PSNR is not finite, or whose
rate is not positive, are dropped (a lossless point with PSNR = inf, say); the
rest are sorted. The polynomial degree is ``min(3, number of points - 1)``: the
standard cubic needs 4 points, and with 3 or 2 points the fit falls back to the
quadratic or straight line through them (which still gives the exact answer when
the curves really are that simple, but is not the standard method: do not mix
such numbers with 4-point ones). A curve with fewer than 2 points, or two curves
whose intervals do not overlap (or only touch), give NaN. Everything is computed
in float64 with NumPy.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.polynomial import Polynomial

from jaxcodec.errors import JaxcodecError

__all__ = ["bd_psnr", "bd_rate"]

_MAX_DEGREE = 3


def _clean_curve(
    rate: Sequence[float], psnr: Sequence[float], which: str
) -> tuple[np.ndarray, np.ndarray]:
    """Returns (log rate, PSNR) as float64 after dropping unusable points."""
    r = np.asarray(rate, dtype=np.float64).reshape(-1)
    p = np.asarray(psnr, dtype=np.float64).reshape(-1)
    if r.shape != p.shape:
        raise JaxcodecError(
            f"{which} curve has {r.size} rates but {p.size} PSNR values; they must pair up"
        )
    keep = np.isfinite(r) & np.isfinite(p) & (r > 0)
    return np.log(r[keep]), p[keep]


def _mean_over(poly: Polynomial, lo: float, hi: float) -> float:
    """Mean value of a polynomial over [lo, hi], from its antiderivative."""
    antiderivative = poly.integ()
    return float((antiderivative(hi) - antiderivative(lo)) / (hi - lo))


def _bd(
    x_anchor: np.ndarray, y_anchor: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> float:
    """Mean of (fit_test - fit_anchor) of y as a polynomial in x over the common x range.

    Returns NaN when a curve has fewer than 2 distinct x values or the ranges do not
    overlap. The fit is in a scaled domain (``Polynomial.fit``), which keeps the
    cubic well conditioned for PSNRs around 30-40 dB.
    """
    fits = []
    for x, y in ((x_anchor, y_anchor), (x_test, y_test)):
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        distinct = np.unique(x).size
        if distinct < 2:
            return float("nan")
        fits.append(Polynomial.fit(x, y, deg=min(_MAX_DEGREE, distinct - 1)))
    lo = max(x_anchor.min(), x_test.min())
    hi = min(x_anchor.max(), x_test.max())
    if not hi > lo:
        return float("nan")
    return _mean_over(fits[1], lo, hi) - _mean_over(fits[0], lo, hi)


def bd_rate(
    rate_anchor: Sequence[float],
    psnr_anchor: Sequence[float],
    rate_test: Sequence[float],
    psnr_test: Sequence[float],
) -> float:
    """Bjøntegaard delta rate of the test curve against the anchor, in percent.

    VCEG-M33: log(rate) is fitted as a polynomial (cubic with 4 or more points) in
    PSNR for each curve; the fits are averaged over the overlapping PSNR interval
    and the difference ``d`` is reported as ``(exp(d) - 1) * 100``. -20 means the
    test codec needs 20 % fewer bits on average at equal PSNR. NaN when the PSNR
    intervals do not overlap or a curve has fewer than 2 usable points (see the
    module docstring for the 2- and 3-point fallback).
    """
    la, pa = _clean_curve(rate_anchor, psnr_anchor, "anchor")
    lt, pt = _clean_curve(rate_test, psnr_test, "test")
    d = _bd(pa, la, pt, lt)
    return float(np.expm1(d) * 100.0) if np.isfinite(d) else float("nan")


def bd_psnr(
    rate_anchor: Sequence[float],
    psnr_anchor: Sequence[float],
    rate_test: Sequence[float],
    psnr_test: Sequence[float],
) -> float:
    """Bjøntegaard delta PSNR of the test curve against the anchor, in dB.

    VCEG-M33: PSNR is fitted as a polynomial (cubic with 4 or more points) in
    log(rate) for each curve, and the mean difference of the fits (test minus
    anchor) over the overlapping log-rate interval is returned. Positive means the
    test codec gives a higher PSNR at equal rate. NaN as for :func:`bd_rate`.
    """
    la, pa = _clean_curve(rate_anchor, psnr_anchor, "anchor")
    lt, pt = _clean_curve(rate_test, psnr_test, "test")
    return _bd(la, pa, lt, pt)
