"""Tests for jaxcodec.eval.bdrate: closed-form cases and an independent VCEG-M33 re-derivation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from jaxcodec.eval.bdrate import bd_psnr, bd_rate
from jaxcodec.errors import JaxcodecError

# A JPEG-like rate-distortion curve (bits per pixel, dB) with a realistic bend.
ANCHOR_BPP = [0.25, 0.5, 1.0, 1.5, 2.0]
ANCHOR_PSNR = [24.6, 28.9, 32.6, 34.8, 36.3]
# A better codec, sampled at other rates.
TEST_BPP = [0.2, 0.45, 0.9, 1.3, 1.8]
TEST_PSNR = [27.1, 30.8, 34.7, 36.6, 38.0]


def vceg_m33_reference(r1, p1, r2, p2, *, mode: str) -> float:
    """Bjøntegaard's spreadsheet method, written out directly: raw np.polyfit cubics in
    log10(rate), np.polyint antiderivatives, 10**diff for the rate."""
    r1, p1, r2, p2 = (np.asarray(v, dtype=np.float64) for v in (r1, p1, r2, p2))
    l1, l2 = np.log10(r1), np.log10(r2)
    if mode == "rate":
        x1, y1, x2, y2 = p1, l1, p2, l2
    else:
        x1, y1, x2, y2 = l1, p1, l2, p2
    c1, c2 = np.polyfit(x1, y1, 3), np.polyfit(x2, y2, 3)
    lo, hi = max(x1.min(), x2.min()), min(x1.max(), x2.max())
    int1 = np.polyval(np.polyint(c1), hi) - np.polyval(np.polyint(c1), lo)
    int2 = np.polyval(np.polyint(c2), hi) - np.polyval(np.polyint(c2), lo)
    avg = (int2 - int1) / (hi - lo)
    return (10**avg - 1) * 100 if mode == "rate" else avg


@pytest.mark.parametrize("scale, expected", [(0.8, -20.0), (1.25, 25.0), (0.5, -50.0)])
def test_scaled_rates_give_the_scale(scale, expected):
    rates = [r * scale for r in ANCHOR_BPP]
    assert bd_rate(ANCHOR_BPP, ANCHOR_PSNR, rates, ANCHOR_PSNR) == pytest.approx(expected, abs=1e-9)


def test_linear_curve_closed_form():
    # PSNR = c + k log2(rate): each doubling of the rate buys k dB.
    k, c = 6.02, 30.0
    bpp = np.array([0.125, 0.25, 0.5, 1.0, 2.0])
    psnr = c + k * np.log2(bpp)
    d = 1.5  # test codec: d dB better at every rate
    assert bd_rate(bpp, psnr, bpp, psnr + d) == pytest.approx((2 ** (-d / k) - 1) * 100, abs=1e-9)
    assert bd_psnr(bpp, psnr, bpp, psnr + d) == pytest.approx(d, abs=1e-9)
    # 20 % fewer bits at equal quality is worth -k log2(0.8) dB at equal rate.
    assert bd_psnr(bpp, psnr, 0.8 * bpp, psnr) == pytest.approx(-k * math.log2(0.8), abs=1e-9)


def test_shifted_psnr_on_cubic_curve_matches_quadrature():
    # log(rate) is an exact cubic in PSNR, so the fits are exact and BD-rate is the
    # mean of g(p - d) - g(p) over the common interval, integrated numerically.
    def g(p):
        t = p - 26.0
        return math.log(0.05) + 0.15 * t + 0.004 * t**2 + 0.0002 * t**3

    p_anchor = np.array([26.0, 29.0, 32.0, 35.0, 38.0])
    d = 1.5
    rates = np.exp([g(p) for p in p_anchor])
    lo, hi = 26.0 + d, 38.0
    mean_diff = integrate.quad(lambda p: g(p - d) - g(p), lo, hi)[0] / (hi - lo)
    want = (math.exp(mean_diff) - 1) * 100
    got = bd_rate(rates, p_anchor, rates, p_anchor + d)
    assert got == pytest.approx(want, abs=1e-8)
    assert -40 < got < -10


def test_matches_independent_vceg_m33_derivation():
    got_rate = bd_rate(ANCHOR_BPP, ANCHOR_PSNR, TEST_BPP, TEST_PSNR)
    got_psnr = bd_psnr(ANCHOR_BPP, ANCHOR_PSNR, TEST_BPP, TEST_PSNR)
    want_rate = vceg_m33_reference(ANCHOR_BPP, ANCHOR_PSNR, TEST_BPP, TEST_PSNR, mode="rate")
    want_psnr = vceg_m33_reference(ANCHOR_BPP, ANCHOR_PSNR, TEST_BPP, TEST_PSNR, mode="psnr")
    assert got_rate == pytest.approx(want_rate, abs=1e-7)
    assert got_psnr == pytest.approx(want_psnr, abs=1e-9)
    assert got_rate < -20 and got_psnr > 1.5  # the test codec is clearly better


def test_swapping_curves_inverts_the_rate_ratio():
    ab = bd_rate(ANCHOR_BPP, ANCHOR_PSNR, TEST_BPP, TEST_PSNR) / 100
    ba = bd_rate(TEST_BPP, TEST_PSNR, ANCHOR_BPP, ANCHOR_PSNR) / 100
    assert (1 + ab) * (1 + ba) == pytest.approx(1.0, abs=1e-12)
    assert bd_psnr(ANCHOR_BPP, ANCHOR_PSNR, TEST_BPP, TEST_PSNR) == pytest.approx(
        -bd_psnr(TEST_BPP, TEST_PSNR, ANCHOR_BPP, ANCHOR_PSNR), abs=1e-12
    )


def test_order_and_unusable_points_do_not_matter():
    want = bd_rate(ANCHOR_BPP, ANCHOR_PSNR, TEST_BPP, TEST_PSNR)
    perm = [3, 0, 4, 2, 1]
    shuffled_bpp = [TEST_BPP[i] for i in perm] + [4.0, float("nan"), 0.0]
    shuffled_psnr = [TEST_PSNR[i] for i in perm] + [float("inf"), 40.0, 20.0]
    got = bd_rate(ANCHOR_BPP, ANCHOR_PSNR, shuffled_bpp, shuffled_psnr)
    assert got == pytest.approx(want, abs=1e-9)


def test_non_overlapping_curves_give_nan():
    high = [p + 20 for p in ANCHOR_PSNR]
    assert math.isnan(bd_rate(ANCHOR_BPP, ANCHOR_PSNR, ANCHOR_BPP, high))
    far_rates = [r * 1000 for r in ANCHOR_BPP]
    assert math.isnan(bd_psnr(ANCHOR_BPP, ANCHOR_PSNR, far_rates, ANCHOR_PSNR))


def test_few_points_fall_back_to_lower_degree_then_nan():
    # Three points on a straight line in (PSNR, log rate): the quadratic fit is exact.
    bpp = np.array([0.25, 0.5, 1.0])
    psnr = 30.0 + 6.0 * np.log2(bpp)
    assert bd_rate(bpp, psnr, 0.8 * bpp, psnr) == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(bpp[:2], psnr[:2], 0.8 * bpp[:2], psnr[:2]) == pytest.approx(-20.0, abs=1e-9)
    assert math.isnan(bd_rate(bpp[:1], psnr[:1], bpp, psnr))
    assert math.isnan(bd_psnr(bpp, psnr, [0.5, 0.5], [30.0, 31.0]))  # one distinct rate


def test_mismatched_lengths_raise():
    with pytest.raises(JaxcodecError, match="pair up"):
        bd_rate([0.1, 0.2, 0.3], [30, 31], TEST_BPP, TEST_PSNR)
