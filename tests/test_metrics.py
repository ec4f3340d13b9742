"""Tests for jaxcodec.eval.metrics against scikit-image and an independent NumPy MS-SSIM.

The photos are scikit-image's bundled astronaut and camera images. The MS-SSIM
reference below is written from Wang, Simoncelli & Bovik (2003) with SciPy
filters, in float64, without using any code from jaxcodec.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.signal
from skimage import data, filters
from skimage import metrics as skm

from jaxcodec.eval import metrics
from jaxcodec.errors import ImageError

WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])


# ---------------------------------------------------------------- test images


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """RGB photo, cropped to 320 x 384 (face and suit) to keep the tests fast."""
    return data.astronaut()[0:320, 96:480].astype(np.float64) / 255.0


@pytest.fixture(scope="module")
def camera() -> np.ndarray:
    """Grey photo, cropped to 320 x 384 (the cameraman), channel axis kept."""
    return data.camera()[32:352, 64:448, None].astype(np.float64) / 255.0


def distortions(img: np.ndarray, seed: int = 0) -> np.ndarray:
    """Three distorted versions of an HWC image in [0, 1], stacked to NHWC."""
    rng = np.random.default_rng(seed)
    noisy = np.clip(img + rng.normal(0.0, 0.08, img.shape), 0.0, 1.0)
    blurred = filters.gaussian(img, sigma=2.0, channel_axis=-1)
    dimmed = 0.6 * img + 0.15  # luminance and contrast change, structure intact
    return np.stack([noisy, blurred, dimmed])


def sk_ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    return skm.structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
        channel_axis=-1,
    )


# ------------------------------------------------ independent MS-SSIM in NumPy


def _ref_filter(img2d: np.ndarray) -> np.ndarray:
    """11-tap Gaussian (sigma 1.5), separable, cropped to the 'valid' region."""
    w = scipy.signal.windows.gaussian(11, std=1.5)
    w = w / w.sum()
    out = ndi.correlate1d(img2d, w, axis=0, mode="reflect")
    out = ndi.correlate1d(out, w, axis=1, mode="reflect")
    return out[5:-5, 5:-5]


def _ref_ssim_cs(a: np.ndarray, b: np.ndarray, max_val: float) -> tuple[float, float]:
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    mu_a, mu_b = _ref_filter(a), _ref_filter(b)
    var_a = _ref_filter(a * a) - mu_a**2
    var_b = _ref_filter(b * b) - mu_b**2
    cov = _ref_filter(a * b) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return float(np.mean(lum * cs)), float(np.mean(cs))


def _ref_down(img2d: np.ndarray) -> np.ndarray:
    """Wang et al.'s low-pass (2x2 box, replicated border) then every other pixel."""
    box = ndi.correlate(img2d, np.full((2, 2), 0.25), mode="nearest", origin=(-1, -1))
    return box[::2, ::2]


def ref_ms_ssim(
    a: np.ndarray, b: np.ndarray, max_val: float = 1.0, renormalise: bool = True
) -> float:
    """MS-SSIM of two HWC images: per channel product over scales, mean over channels."""
    side, scales = min(a.shape[:2]), 0
    while scales < 5 and side >= 11:
        scales, side = scales + 1, -(-side // 2)
    w = WEIGHTS[:scales] / (WEIGHTS[:scales].sum() if renormalise else 1.0)
    per_channel = []
    for ch in range(a.shape[-1]):
        x, y = a[..., ch].astype(np.float64), b[..., ch].astype(np.float64)
        value = 1.0
        for j in range(scales):
            s, cs = _ref_ssim_cs(x, y, max_val)
            if j < scales - 1:
                value *= max(cs, 0.0) ** w[j]
                x, y = _ref_down(x), _ref_down(y)
            else:
                value *= max(s, 0.0) ** w[j]
        per_channel.append(value)
    return float(np.mean(per_channel))


def test_reference_downsampling_is_two_by_two_mean():
    img = np.arange(35, dtype=np.float64).reshape(5, 7)
    down = _ref_down(img)
    assert down.shape == (3, 4)
    assert down[0, 0] == pytest.approx(np.mean(img[0:2, 0:2]))
    assert down[2, 3] == pytest.approx(img[4, 6])  # odd corner: the pixel repeated


# ------------------------------------------------------------------ MSE, PSNR


def test_mse_and_psnr_match_skimage(astronaut):
    dist = distortions(astronaut).astype(np.float32)
    ref = np.broadcast_to(astronaut, dist.shape).astype(np.float32)
    got_mse = np.asarray(metrics.mse(ref, dist))
    got_psnr = np.asarray(metrics.psnr(ref, dist))
    assert got_mse.shape == got_psnr.shape == (3,)
    assert got_mse.dtype == np.float32
    for i in range(3):
        assert got_mse[i] == pytest.approx(skm.mean_squared_error(ref[i], dist[i]), rel=1e-5)
        assert got_psnr[i] == pytest.approx(
            skm.peak_signal_noise_ratio(ref[i], dist[i], data_range=1.0), abs=1e-4
        )
    got255 = np.asarray(metrics.psnr(ref * 255, dist * 255, max_val=255.0))
    np.testing.assert_allclose(got255, got_psnr, atol=1e-4)


def test_psnr_of_identical_images_is_inf():
    x = np.full((2, 8, 8, 1), 0.5, np.float32)
    y = x.copy()
    y[1, 0, 0, 0] = 0.0  # MSE 0.25/64 -> PSNR = 10 log10(256) dB
    got = np.asarray(metrics.psnr(x, y))
    assert np.isposinf(got[0])
    assert got[1] == pytest.approx(10 * math.log10(256), abs=1e-4)


# ----------------------------------------------------------------------- SSIM


def test_ssim_rgb_batch_matches_skimage_per_image(astronaut):
    dist = distortions(astronaut)
    ref = np.broadcast_to(astronaut, dist.shape)
    got = np.asarray(metrics.ssim(ref, dist))
    assert got.shape == (3,) and got.dtype == np.float32
    want = [sk_ssim(astronaut, d) for d in dist]
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert len(set(np.round(want, 3))) == 3  # the three images really differ


def test_ssim_grey_matches_skimage_and_max_val(camera):
    dist = distortions(camera, seed=1)
    ref = np.broadcast_to(camera, dist.shape)
    want = [sk_ssim(camera, d) for d in dist]
    np.testing.assert_allclose(np.asarray(metrics.ssim(ref, dist, 1.0)), want, atol=1e-4)
    want255 = sk_ssim(camera * 255, dist[0] * 255, data_range=255.0)
    got255 = metrics.ssim(ref * 255, dist * 255, 255.0)
    assert float(got255[0]) == pytest.approx(want255, abs=1e-4)


# -------------------------------------------------------------------- MS-SSIM


def test_ms_ssim_rgb_five_scales_matches_reference(astronaut):
    # 201 x 297 (odd sides, > 161): five scales, padding at every level.
    a = astronaut[60:261, 40:337]
    red_only = a.copy()  # per-channel products differ from a product of channel means
    noise = np.random.default_rng(7).normal(0, 0.3, a.shape[:2])
    red_only[..., 0] = np.clip(a[..., 0] + noise, 0, 1)
    dist = np.concatenate([distortions(a, seed=2)[:2], red_only[None]])
    assert metrics.ms_ssim_num_scales(*a.shape[:2]) == 5
    got = np.asarray(metrics.ms_ssim(np.broadcast_to(a, dist.shape), dist))
    want = [ref_ms_ssim(a, d) for d in dist]
    np.testing.assert_allclose(got, want, atol=1e-4)
    # Identical images score 1 (same shape as above: no new compilation).
    same = np.broadcast_to(a, dist.shape)
    np.testing.assert_allclose(np.asarray(metrics.ms_ssim(same, same)), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(metrics.ssim(same, same)), 1.0, atol=1e-6)


def test_ms_ssim_grey_four_scales_matches_reference(camera):
    # 150 x 170: the fifth scale would be 10 pixels, so 4 scales, renormalised weights.
    a = camera[200:350, 150:320]
    dist = distortions(a, seed=3)
    assert metrics.ms_ssim_num_scales(150, 170) == 4
    got = np.asarray(metrics.ms_ssim(np.broadcast_to(a, dist.shape), dist))
    want = [ref_ms_ssim(a, d) for d in dist]
    np.testing.assert_allclose(got, want, atol=1e-4)
    # Without renormalising the four weights the values would be clearly different.
    plain = [ref_ms_ssim(a, d, renormalise=False) for d in dist]
    assert np.min(np.abs(np.asarray(plain) - got)) > 1e-3


def test_ms_ssim_on_mnist_sized_images(camera):
    a = camera[::11, ::11][:28, :28]
    b = np.clip(a + np.random.default_rng(4).normal(0, 0.1, a.shape), 0, 1)
    assert metrics.ms_ssim_num_scales(28, 28) == 2
    got = float(metrics.ms_ssim(a[None], b[None])[0])
    assert got == pytest.approx(ref_ms_ssim(a, b), abs=1e-4)


def test_ms_ssim_with_one_scale_is_ssim(camera):
    a = camera[300:320, 300:320]
    b = np.clip(0.8 * a + 0.1 + np.random.default_rng(5).normal(0, 0.05, a.shape), 0, 1)
    assert metrics.ms_ssim_num_scales(20, 20) == 1
    s = float(metrics.ssim(a[None], b[None])[0])
    assert s > 0.1
    assert float(metrics.ms_ssim(a[None], b[None])[0]) == pytest.approx(s, abs=1e-6)


def test_ms_ssim_num_scales_boundaries():
    assert metrics.ms_ssim_num_scales(161, 400) == 5
    assert metrics.ms_ssim_num_scales(160, 160) == 4
    assert metrics.ms_ssim_num_scales(21, 21) == 2
    assert metrics.ms_ssim_num_scales(11, 11) == 1
    assert metrics.ms_ssim_num_scales(10, 50) == 0


def test_ms_ssim_clips_anticorrelated_and_has_finite_gradient():
    a = jnp.asarray(np.random.default_rng(6).uniform(size=(1, 28, 28, 1)), jnp.float32)
    b = 1.0 - a  # negative correlation: cs < 0 at the first scale, clipped to 0
    assert _ref_ssim_cs(np.asarray(a[0, ..., 0]), np.asarray(b[0, ..., 0]), 1.0)[1] < 0
    assert float(metrics.ms_ssim(a, b)[0]) == 0.0
    assert float(metrics.ssim(a, b)[0]) < 0  # plain SSIM is not clipped

    loss = jax.jit(jax.grad(lambda y: 1.0 - metrics.ms_ssim(a, y).mean()))
    g_clipped = loss(b)
    g_normal = loss(jnp.clip(a + 0.05, 0, 1))
    assert bool(jnp.all(jnp.isfinite(g_clipped))) and bool(jnp.all(jnp.isfinite(g_normal)))
    assert float(jnp.abs(g_normal).max()) > 0


def test_metrics_work_inside_jit_and_vmap(camera):
    a = camera[None, 100:132, 100:132].astype(np.float32)
    b = np.clip(a + 0.05, 0, 1).astype(np.float32)
    eager = metrics.ssim(a, b)

    @jax.jit
    def both(x, y):
        return metrics.ssim(x, y), metrics.psnr(x, y, 1.0)

    s, p = both(a, b)
    assert float(s[0]) == pytest.approx(float(eager[0]), abs=1e-6)
    # vmap over a leading axis of single-image batches gives the batched values.
    stacked = jax.vmap(metrics.ssim)(jnp.stack([a, b]), jnp.stack([b, b]))
    assert stacked.shape == (2, 1)
    assert float(stacked[0, 0]) == pytest.approx(float(eager[0]), abs=1e-6)
    assert float(stacked[1, 0]) == pytest.approx(1.0, abs=1e-6)


# --------------------------------------------------------------------- errors


@pytest.mark.parametrize("fn", [metrics.mse, metrics.psnr, metrics.ssim, metrics.ms_ssim])
def test_bad_shapes_raise_image_error(fn):
    with pytest.raises(ImageError, match="4-D"):
        fn(np.zeros((16, 16, 3)), np.zeros((16, 16, 3)))
    with pytest.raises(ImageError, match="equal shape"):
        fn(np.zeros((1, 16, 16, 3)), np.zeros((1, 16, 16, 1)))


def test_images_smaller_than_window_raise():
    x = np.zeros((1, 10, 40, 1), np.float32)
    for fn in (metrics.ssim, metrics.ms_ssim):
        with pytest.raises(ImageError, match="11x11") as info:
            fn(x, x)
        assert "\n" not in str(info.value)


def test_bpp():
    assert metrics.bpp(1000, 100, 80) == pytest.approx(1.0)
    assert metrics.bpp(3, 2, 3) == pytest.approx(4.0)
    assert isinstance(metrics.bpp(0, 1, 1), float)
    with pytest.raises(ImageError):
        metrics.bpp(10, 0, 5)
