"""Image-quality metrics in JAX: MSE, PSNR, SSIM and MS-SSIM, plus bits per pixel.

Every image metric takes two batches of images ``x`` and ``y`` in NHWC layout
(``(N, H, W, C)``, any number of channels, grey C = 1 and RGB C = 3 being the usual
cases) and returns one float32 value per image, shape ``(N,)``. Inputs are cast to
float32. They are pure functions, already wrapped in :func:`jax.jit` (so an eager
call compiles once per input shape instead of dispatching op by op) and usable
inside other jitted or vmapped code. Shapes are checked with plain Python at trace
time; a wrong shape raises :class:`jaxcodec.errors.ImageError`.

SSIM and MS-SSIM can be differentiated in reverse mode (``jax.grad``, for a
training loss) but not in forward mode (``jax.jvp``), because the window filter
has a custom VJP. Compiling MS-SSIM for a new image size takes a few seconds on a
CPU; running it is cheap (about 0.2 s for a 512x768 RGB image on 2 cores).

``max_val`` is the dynamic range of the pixels: 1.0 for float images in [0, 1]
(the project's convention), 255.0 for 8-bit values.

The Gaussian filtering behind SSIM is separable and done in float32 with
elementwise arithmetic (see :func:`_gaussian_filter_valid`), so an accelerator
never drops to reduced-precision (TF32/bf16) convolutions, which would spoil the
variance terms ``E[x^2] - E[x]^2``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.errors import ImageError

__all__ = [
    "MS_SSIM_WEIGHTS",
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "bpp",
    "ms_ssim",
    "ms_ssim_num_scales",
    "mse",
    "psnr",
    "ssim",
]

SSIM_WINDOW = 11
"""Side of the Gaussian window (Wang et al. 2004, Sec. III-C)."""
SSIM_SIGMA = 1.5
"""Standard deviation of the Gaussian window, in pixels (Wang et al. 2004)."""
SSIM_K1 = 0.01
"""Luminance stabiliser, C1 = (K1 * max_val)^2 (Wang et al. 2004, Eq. 7)."""
SSIM_K2 = 0.03
"""Contrast stabiliser, C2 = (K2 * max_val)^2 (Wang et al. 2004, Eq. 10)."""
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Per-scale exponents, finest scale first (Wang, Simoncelli & Bovik 2003, Sec. 3.1)."""

Array = Any  # a jax.Array, a NumPy array, or anything jnp.asarray accepts


def _check_pair(x: Array, y: Array, name: str, min_side: int = 1) -> tuple[jax.Array, jax.Array]:
    """Checks that x and y are equally shaped NHWC batches; returns them as float32."""
    xs, ys = tuple(np.shape(x)), tuple(np.shape(y))
    if len(xs) != 4 or len(ys) != 4:
        raise ImageError(f"{name} expects NHWC batches (4-D), got shapes {xs} and {ys}")
    if xs != ys:
        raise ImageError(f"{name} expects images of equal shape, got {xs} and {ys}")
    if min(xs[1], xs[2]) < min_side:
        raise ImageError(
            f"{name} needs images at least {min_side}x{min_side} pixels, got {xs[1]}x{xs[2]}"
        )
    if xs[3] < 1:
        raise ImageError(f"{name} expects at least one channel, got shape {xs}")
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)


@jax.jit
def mse(x: Array, y: Array) -> jax.Array:
    """Mean squared error of each image, averaged over height, width and channels.

    Returns float32 of shape ``(N,)``.
    """
    x, y = _check_pair(x, y, "mse")
    return jnp.mean(jnp.square(x - y), axis=(1, 2, 3))


@jax.jit
def psnr(x: Array, y: Array, max_val: float = 1.0) -> jax.Array:
    """Peak signal-to-noise ratio of each image, in dB: ``10 log10(max_val^2 / MSE)``.

    The MSE is taken per image over all pixels and channels (for RGB this is the
    "PSNR-RGB" that CompressAI reports), not per channel. Identical images
    (MSE = 0) give ``+inf``, as scikit-image's ``peak_signal_noise_ratio`` does;
    average such values with care (:func:`jaxcodec.eval.bdrate.bd_rate` drops
    non-finite points). Returns float32 of shape ``(N,)``.
    """
    err = mse(x, y)
    return 10.0 * jnp.log10(jnp.square(jnp.float32(max_val)) / err)


def _gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian taps (computed in float64, returned as float32)."""
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return (g / g.sum()).astype(np.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _filter_axis(z: jax.Array, axis: int) -> jax.Array:
    """Correlates ``z`` with the SSIM window along ``axis``, 'valid' borders.

    A weighted sum of 11 shifted slices. This is the arithmetic of a depthwise
    ``lax.conv_general_dilated``, which XLA's CPU backend runs about 30x slower for
    single-channel groups (measured on a 512x512x15 stack, 2 CPU cores); the slices
    fuse into one elementwise kernel on every backend and stay in full float32 on
    accelerators (no TF32/bf16 convolution).
    """
    taps = _gaussian_window()
    out_len = z.shape[axis] - len(taps) + 1
    # The barrier keeps XLA from fusing this pass into its consumers, which would
    # recompute it once per tap (or per use) instead of reading it back.
    z = jax.lax.optimization_barrier(z)
    return sum(
        float(t) * jax.lax.slice_in_dim(z, i, i + out_len, axis=axis) for i, t in enumerate(taps)
    )


def _filter_axis_fwd(z: jax.Array, axis: int) -> tuple[jax.Array, None]:
    return _filter_axis(z, axis), None


def _filter_axis_bwd(axis: int, _: None, g: jax.Array) -> tuple[jax.Array]:
    # The adjoint of a 'valid' correlation is a 'full' one with the flipped taps;
    # the Gaussian is symmetric, so: zero-pad by 10 and filter again. This keeps the
    # backward pass as small as the forward one (instead of 11 pads and adds).
    pad = [(0, 0)] * g.ndim
    pad[axis] = (SSIM_WINDOW - 1, SSIM_WINDOW - 1)
    return (_filter_axis(jnp.pad(g, pad), axis),)


_filter_axis.defvjp(_filter_axis_fwd, _filter_axis_bwd)


def _gaussian_filter_valid(z: jax.Array) -> jax.Array:
    """Filters every channel of an NHWC batch with the SSIM window, 'valid' borders.

    Separable: along H, then along W (:func:`_filter_axis`). Output is
    ``(N, H - 10, W - 10, K)``.
    """
    return jax.lax.optimization_barrier(_filter_axis(_filter_axis(z, 1), 2))


def _ssim_and_cs(x: jax.Array, y: jax.Array, max_val: Array) -> tuple[jax.Array, jax.Array]:
    """Per-channel mean SSIM and mean contrast-structure term, each ``(N, C)``.

    Wang et al. 2004, Eqs. 13-14 with a Gaussian window: local means, variances and
    covariance are Gaussian-weighted moments (population form, i.e. no N/(N-1)
    correction). SSIM = l * cs with
    ``l = (2 mx my + C1) / (mx^2 + my^2 + C1)`` and
    ``cs = (2 sxy + C2) / (sx^2 + sy^2 + C2)``.
    Both maps are averaged over the 'valid' region.
    """
    c = x.shape[-1]
    max_val = jnp.asarray(max_val, jnp.float32)
    c1 = jnp.square(SSIM_K1 * max_val)
    c2 = jnp.square(SSIM_K2 * max_val)
    # Moments are taken about max_val/2 (variances are shift-invariant): smaller
    # magnitudes lose less to float32 cancellation in E[x^2] - E[x]^2.
    xc, yc = x - 0.5 * max_val, y - 0.5 * max_val
    stats = _gaussian_filter_valid(jnp.concatenate([xc, yc, xc * xc, yc * yc, xc * yc], axis=-1))
    mxc, myc, mxx, myy, mxy = (stats[..., i * c : (i + 1) * c] for i in range(5))
    var_x = mxx - mxc * mxc
    var_y = myy - myc * myc
    cov_xy = mxy - mxc * myc
    mx, my = mxc + 0.5 * max_val, myc + 0.5 * max_val
    luminance = (2.0 * mx * my + c1) / (mx * mx + my * my + c1)
    cs = (2.0 * cov_xy + c2) / (var_x + var_y + c2)
    return jnp.mean(luminance * cs, axis=(1, 2)), jnp.mean(cs, axis=(1, 2))


@jax.jit
def ssim(x: Array, y: Array, max_val: float = 1.0) -> jax.Array:
    """Structural similarity of each image (Wang, Bovik, Sheikh & Simoncelli 2004).

    An 11x11 Gaussian window with sigma = 1.5, K1 = 0.01, K2 = 0.03, population
    (not sample) covariances, and only the 'valid' region where the window fits
    inside the image; the SSIM map is averaged over that region and then over
    channels. This matches scikit-image's ``structural_similarity(...,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=max_val, channel_axis=-1)``. Images must be at least 11x11.
    Returns float32 of shape ``(N,)``; 1 means identical.
    """
    x, y = _check_pair(x, y, "ssim", min_side=SSIM_WINDOW)
    s, _ = _ssim_and_cs(x, y, max_val)
    return jnp.mean(s, axis=-1)


def ms_ssim_num_scales(height: int, width: int) -> int:
    """How many MS-SSIM scales fit an image: at most 5, at least 1.

    A scale fits when the image, after halving (rounding up) once per earlier
    scale, still has both sides >= 11, the SSIM window. Five scales need a
    smaller side of at least ``(11 - 1) * 2**4 + 1 = 161`` pixels; a 28x28 image
    gets 2 scales (28 and 14 pixels), a 20x20 image 1. Images smaller than 11x11
    get 0, and :func:`ms_ssim` refuses them.
    """
    side, n = min(height, width), 0
    while n < len(MS_SSIM_WEIGHTS) and side >= SSIM_WINDOW:
        n += 1
        side = math.ceil(side / 2)
    return n


def _downsample2(z: jax.Array) -> jax.Array:
    """2x2 average pooling, stride 2; an odd side is padded by repeating its last row/column.

    This is the low-pass-and-subsample step of Wang et al. 2003 (their code filters
    with a 2x2 box, symmetric borders, and keeps every other pixel); the output is
    ``ceil(H/2) x ceil(W/2)``, as in ``tf.image.ssim_multiscale``.
    """
    n, h, w, c = z.shape
    z = jnp.pad(z, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return z.reshape(n, (h + 1) // 2, 2, (w + 1) // 2, 2, c).mean(axis=(2, 4))


def _safe_pow(v: jax.Array, p: float) -> jax.Array:
    """``v ** p`` for ``v >= 0``, with a zero (not NaN) gradient where ``v == 0``."""
    pos = v > 0
    return jnp.where(pos, jnp.where(pos, v, 1.0) ** p, 0.0)


@jax.jit
def ms_ssim(x: Array, y: Array, max_val: float = 1.0) -> jax.Array:
    """Multi-scale structural similarity of each image (Wang, Simoncelli & Bovik 2003).

    ``MS-SSIM = prod_{j<M} cs_j ** w_j * ssim_M ** w_M``: the contrast-structure term
    at the finer scales and the full SSIM (with luminance) at the coarsest, with
    weights ``w = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)`` (Sec. 3.1). Each
    scale uses the same window as :func:`ssim`; between scales the image is 2x2
    average-pooled (:func:`_downsample2`). The per-scale means are taken per
    channel, multiplied across scales per channel, then averaged over channels.

    As in pytorch_msssim and ``tf.image.ssim_multiscale``, each cs and the final
    SSIM are clipped at 0 (ReLU) before the power, so that a negative correlation
    cannot make the product negative or undefined; a clipped term contributes 0
    and has zero gradient.

    Small images: when fewer than 5 scales fit (smaller side < 161, see
    :func:`ms_ssim_num_scales`), the first M fitting scales are used with the first
    M weights renormalised to sum to 1. With M = 1 (smaller side 11..20) the result is
    SSIM clipped at 0. A 28x28 MNIST digit gets M = 2. Values computed on images
    of different sizes are therefore not on the same scale ladder. Images must be
    at least 11x11. Returns float32 of shape ``(N,)``; 1 means identical.
    """
    x, y = _check_pair(x, y, "ms_ssim", min_side=SSIM_WINDOW)
    scales = ms_ssim_num_scales(x.shape[1], x.shape[2])
    weights = np.asarray(MS_SSIM_WEIGHTS[:scales], np.float64)
    weights = weights / weights.sum()
    out = None
    for j in range(scales):
        s, cs = _ssim_and_cs(x, y, max_val)
        last = j == scales - 1
        term = _safe_pow(jax.nn.relu(s if last else cs), float(weights[j]))
        out = term if out is None else out * term
        if not last:
            x, y = _downsample2(x), _downsample2(y)
    return jnp.mean(out, axis=-1)


def bpp(num_bytes: int, height: int, width: int) -> float:
    """Bits per pixel of a compressed image: ``num_bytes * 8 / (height * width)``.

    Pixels, not samples: an RGB image is counted once per pixel, not per channel
    (the convention of CompressAI and of the compression literature).
    """
    if height <= 0 or width <= 0:
        raise ImageError(f"bpp needs a positive image size, got {height}x{width}")
    if num_bytes < 0:
        raise ImageError(f"bpp needs a non-negative byte count, got {num_bytes}")
    return float(num_bytes) * 8.0 / (int(height) * int(width))
