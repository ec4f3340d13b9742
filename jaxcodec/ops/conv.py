"""Convolution kernels that XLA:CPU runs faster written by hand, and the choice of algorithm.

* :func:`down_conv2d` -- a ``k×k`` convolution with stride 2 (the analysis transform's
  down-sampling); it can run by Winograd over the :func:`~jaxcodec.ops.pixel_shuffle.space_to_depth`
  input (:func:`strided_conv`, ``"winograd"``).
* :func:`transposed_conv2d` -- CompressAI's stride-2 transposed convolution, computed as
  four stride-1 phase convolutions.
* :func:`stride1_conv` -- a stride-1 SAME convolution (the sub-pixel layers), by XLA or by
  Winograd's ``F(4×4, 3×3)`` on CPU (:mod:`jaxcodec.ops.winograd`).

Which algorithm runs is read when a function is traced, from :func:`conv_impl`::

    with jaxcodec.ops.conv_impl("direct"):
        y = model.apply(params, x)

``"auto"`` (the default) picks by backend and shape (:func:`winograd_pays`), ``"direct"``
is XLA's own convolution, ``"winograd"`` forces ``F(4×4, 3×3)`` wherever it applies; the
parameters are the same. A jitted function keeps the algorithm it was traced with, so a
program that must use another one is a distinct jitted function that enters
:func:`conv_impl` inside its body.

Mixed precision is chosen the same way, at trace time, by :func:`conv_dtype`::

    with jaxcodec.ops.conv_dtype("bfloat16"):
        loss, grads = jax.value_and_grad(loss_fn)(params, x)

Inside the block the three public convolutions (:func:`down_conv2d`, :func:`stride1_conv`,
:func:`transposed_conv2d`) cast their input and kernel to bfloat16, convolve, and return
the result in the input's dtype; the parameters, the bias additions, GDN and everything
outside the convolutions stay float32, and the gradients reach the float32 parameters
through the casts (Micikevicius et al., "Mixed precision training", ICLR 2018: float32
master weights, reduced-precision arithmetic; bfloat16's 8-bit exponent needs no loss
scaling).

Why the custom gradients. XLA on CPU computes the weight gradient of a convolution
as a convolution whose "kernel" is the whole output-gradient map, which runs at a
fraction of the speed of the forward pass (measured 3-5× slower per FLOP). The
stride-1 convolution :func:`conv2d` therefore has a custom VJP whose weight gradient
is one matrix product per kernel tap, ``dW[i, j] = X_shift(i, j)ᵀ · dY``, which runs
at matrix-multiply speed; its input gradient is the usual stride-1 convolution with
the flipped kernel. Layers with few output channels (:func:`thin_conv2d`) get both
gradients as one matrix product each against the stacked, shifted output gradient.
XLA also runs input-dilated convolutions slowly on CPU (a transposed convolution, and
the input gradient of a strided one), so :func:`transposed_conv2d` splits them into
stride-1 phase convolutions (by Winograd where it pays) and :func:`down_conv2d` uses it
for its input gradient. ``bench/conv_speed.py`` times each against XLA's own.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
from jax import lax

from jaxcodec.ops import winograd
from jaxcodec.ops.pixel_shuffle import depth_to_space, space_to_depth

__all__ = [
    "ALGORITHMS",
    "conv2d",
    "conv_dtype",
    "conv_impl",
    "current_algorithm",
    "current_dtype",
    "down_conv2d",
    "stride1_conv",
    "strided_conv",
    "strided_weight_grad",
    "thin_conv2d",
    "transposed_conv2d",
    "winograd_pays",
]

_DIMS = ("NHWC", "HWIO", "NHWC")
# Below this many output channels the per-tap matrix products of the custom weight
# gradient are too thin to beat XLA's own convolution (measured).
_MIN_FEATURES_FOR_CUSTOM_GRAD = 32
# Below this many input channels a strided layer's weight gradient is one product of
# its patches with the output gradient (1.8x faster than XLA's for 3 channels, measured;
# for wide inputs XLA's own is faster).
_MIN_INPUTS_FOR_XLA_WEIGHT_GRAD = 8
# XLA:CPU computes a strided layer's weight gradient as a convolution whose kernel is the
# output gradient, with the batch as its feature dimension. Past about this many output-
# gradient elements it runs at half speed (8×32×32×128, the training shape's widest strided
# layer: about 65 against 35 ms image by image, bench/conv_speed.py), so on CPU the batch is
# split into chunks of at most this many (at least one image) and their gradients summed.
_WEIGHT_GRAD_CHUNK = 2**17

ALGORITHMS = ("auto", "direct", "winograd")
_ALGORITHM: contextvars.ContextVar[str] = contextvars.ContextVar("jaxcodec_conv_algorithm", default="auto")


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"convolution algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")


@contextlib.contextmanager
def _set_within(var: contextvars.ContextVar, value: str) -> Iterator[None]:
    """``var`` is ``value`` within the block, and what it was before after it."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def conv_impl(algorithm: str) -> contextlib.AbstractContextManager[None]:
    """Within the block, the convolutions traced here run by ``algorithm``: ``"auto"``
    (Winograd where :func:`winograd_pays`), ``"direct"`` (XLA's) or ``"winograd"``.

    The setting is read at trace time (module docstring) and is local to the thread.

    Raises:
      ValueError: ``algorithm`` is none of :data:`ALGORITHMS`.
    """
    _check_algorithm(algorithm)
    return _set_within(_ALGORITHM, algorithm)


def current_algorithm() -> str:
    """The algorithm of the innermost :func:`conv_impl` block (``"auto"`` outside any)."""
    return _ALGORITHM.get()


DTYPES = ("float32", "bfloat16")
_DTYPE: contextvars.ContextVar[str] = contextvars.ContextVar("jaxcodec_conv_dtype", default="float32")


def conv_dtype(dtype: str) -> contextlib.AbstractContextManager[None]:
    """Within the block, the convolutions traced here compute in ``dtype``: ``"float32"``
    or ``"bfloat16"`` (mixed precision; module docstring). Read at trace time, local to
    the thread.

    Raises:
      ValueError: ``dtype`` is none of :data:`DTYPES`.
    """
    if dtype not in DTYPES:
        raise ValueError(f"convolution dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return _set_within(_DTYPE, dtype)


def full_precision_jit(fn: Callable, **jit_kwargs) -> Callable:
    """``jax.jit(fn)`` with its float32 products and convolutions at full float32 precision
    on every backend: a codec's programs (analysis, synthesis, entropy parameters).

    On NVIDIA GPUs since Ampere, XLA's default precision for float32 convolutions and matrix
    products is TensorFloat-32 (a 10-bit mantissa), so a GPU decoder drifts from a CPU one:
    on an H200, the shipped ``mbt2018-mean`` decoded 1.05% of a CPU decoder's 8-bit values
    one level apart at the default precision and 0.004% at ``"highest"``
    (``bench/cross_backend_symbols.py``). The symbols never depend on it (integer tables,
    integer entropy parameters); the pixels do. CPUs compute float32 in full either way;
    training keeps the backend's default (TensorFloat-32 is much of a GPU's speed).
    """

    def traced(*args, **kwargs):
        with jax.default_matmul_precision("highest"):  # read while the body is traced
            return fn(*args, **kwargs)

    return jax.jit(traced, **jit_kwargs)


def current_dtype() -> str:
    """The dtype of the innermost :func:`conv_dtype` block (``"float32"`` outside any)."""
    return _DTYPE.get()


def _resolved_algorithm() -> str:
    """:func:`current_algorithm`, except that ``"auto"`` under bfloat16 is ``"direct"``: the
    Winograd transforms' fractions (¼, ⅙, ...) would round at bfloat16's 8-bit mantissa."""
    algorithm = current_algorithm()
    return "direct" if algorithm == "auto" and current_dtype() != "float32" else algorithm


def _in_current_dtype(conv, x: jax.Array, w: jax.Array) -> jax.Array:
    """``conv(x, w)`` computed in :func:`current_dtype`, returned in ``x``'s dtype."""
    dtype = jnp.dtype(current_dtype())
    if x.dtype == dtype:
        return conv(x, w)
    return conv(x.astype(dtype), w.astype(dtype)).astype(x.dtype)


def _same_padding(k: int) -> tuple[int, int]:
    """SAME padding of a stride-1 ``k``-tap convolution (an even kernel pads more after)."""
    return ((k - 1) // 2, k // 2)


def _conv(x: jax.Array, w: jax.Array, stride: int, padding) -> jax.Array:
    return lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=_DIMS)


@jax.custom_vjp
def conv2d(x: jax.Array, w: jax.Array) -> jax.Array:
    """Stride-1 SAME convolution, NHWC input, HWIO kernel, fast gradients on CPU.

    The forward pass and the input gradient are XLA convolutions; the weight gradient
    is a matrix product per tap (see the module docstring). Equals
    ``lax.conv_general_dilated(x, w, (1, 1), "SAME")`` including its gradients.
    """
    kh, kw = w.shape[:2]
    return _conv(x, w, 1, (_same_padding(kh), _same_padding(kw)))


def _conv2d_fwd(x, w):
    return conv2d(x, w), (x, w)


def _conv2d_bwd(res, g):
    x, w = res
    kh, kw, cin, cout = w.shape
    ph, pw = _same_padding(kh), _same_padding(kw)
    # Input gradient: correlation of g with the spatially flipped, transposed kernel.
    w_t = jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2)
    dx = _conv(g, w_t, 1, ((ph[1], ph[0]), (pw[1], pw[0])))
    n, h, wd, _ = x.shape
    xp = jnp.pad(x, ((0, 0), ph, pw, (0, 0)))
    # Contracting batch and space of the 4-D arrays directly (no reshaped transpose)
    # lets XLA pick the faster matrix-product layout.
    contract = (((0, 1, 2), (0, 1, 2)), ((), ()))
    taps = [
        lax.dot_general(xp[:, i : i + h, j : j + wd, :], g, contract, preferred_element_type=w.dtype)
        for i in range(kh)
        for j in range(kw)
    ]
    dw = jnp.stack(taps).reshape(kh, kw, cin, cout)
    return dx, dw


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


@jax.custom_vjp
def thin_conv2d(x: jax.Array, w: jax.Array) -> jax.Array:
    """:func:`conv2d` for layers with few output channels (the last layer of a
    synthesis: ``4·3`` channels), with gradients as two matrix products.

    The forward pass is XLA's convolution. Per-tap weight-gradient products
    (:func:`conv2d`) are too thin at this width, and XLA's own gradient runs slowly,
    so the backward pass stacks the ``k²`` shifted copies of the output gradient
    ``dY`` into one ``k²·C_out``-channel map ``P``, with ``P[q, t] = dY[q − t + pad]``:
    then ``dX = P · Wᵀ`` and ``dW = Xᵀ · P`` (contracting batch and space), each one
    matrix product as wide as ``k²·C_out``.
    """
    kh, kw = w.shape[:2]
    return _conv(x, w, 1, (_same_padding(kh), _same_padding(kw)))


def _thin_conv2d_fwd(x, w):
    return thin_conv2d(x, w), (x, w)


def _shifted_taps(g: jax.Array, kh: int, kw: int) -> jax.Array:
    """``(N, H, W, C) → (N, H, W, kh·kw·C)``: tap ``t = (i, j)`` holds ``g[q − t + pad]``
    (zero outside), for the SAME padding of :func:`_same_padding`."""
    (bh, ah), (bw, aw) = _same_padding(kh), _same_padding(kw)
    _, h, wd, _ = g.shape
    gp = jnp.pad(g, ((0, 0), (ah, bh), (aw, bw), (0, 0)))
    return jnp.concatenate(
        [gp[:, kh - 1 - i : kh - 1 - i + h, kw - 1 - j : kw - 1 - j + wd] for i in range(kh) for j in range(kw)], axis=-1
    )


def _thin_conv2d_bwd(res, g):
    x, w = res
    kh, kw, cin, cout = w.shape
    p = _shifted_taps(g, kh, kw)  # (N, H, W, kh·kw·C_out)
    w_mat = w.transpose(0, 1, 3, 2).reshape(kh * kw * cout, cin)
    dx = jnp.dot(p, w_mat, preferred_element_type=x.dtype)
    contract = (((0, 1, 2), (0, 1, 2)), ((), ()))
    dw = lax.dot_general(x, p, contract, preferred_element_type=w.dtype)  # (C_in, kh·kw·C_out)
    return dx, dw.reshape(cin, kh, kw, cout).transpose(1, 2, 0, 3)


thin_conv2d.defvjp(_thin_conv2d_fwd, _thin_conv2d_bwd)


def _conv_s1(x: jax.Array, w: jax.Array) -> jax.Array:
    """:func:`conv2d`, or :func:`thin_conv2d` when the layer is too thin for it."""
    if w.shape[-1] >= _MIN_FEATURES_FOR_CUSTOM_GRAD:
        return conv2d(x, w)
    return thin_conv2d(x, w)


# Where F(4×4, 3×3) beats XLA's direct convolution on CPU (bench/conv_speed.py): both
# channel counts at least this wide, and output pixels × the narrower channel count
# above this (the transforms are a fixed cost per pixel and channel; measured:
# 2,048 pixels at 64 channels loses, at 128 breaks even, 1,536 at 192 gains 1.5×).
_WINOGRAD_MIN_FEATURES = 64
_WINOGRAD_MIN_WORK = 2048 * 128


def _on_cpu(backend: str | None) -> bool:
    """Whether ``backend`` (default: JAX's default backend) is the CPU."""
    return (backend or jax.default_backend()) == "cpu"


def winograd_pays(x_shape, w_shape, backend: str | None = None) -> bool:
    """Whether ``"auto"`` runs a convolution of these shapes by Winograd: a
    ``3×3`` kernel, on CPU, wide and large enough (thresholds above)."""
    n, h, w, cin = x_shape
    return (
        tuple(w_shape[:2]) == (3, 3)
        and _on_cpu(backend)
        and min(cin, w_shape[-1]) >= _WINOGRAD_MIN_FEATURES
        and n * h * w * min(cin, w_shape[-1]) > _WINOGRAD_MIN_WORK
    )


def stride1_conv(x: jax.Array, w: jax.Array) -> jax.Array:
    """Stride-1 SAME convolution by XLA (``"direct"``, :func:`conv2d`'s gradients), by
    ``F(4×4, 3×3)`` Winograd (``"winograd"``, :func:`jaxcodec.ops.winograd.conv3x3`; ``3×3``
    kernels only), or by whichever is faster for the shapes (``"auto"``,
    :func:`winograd_pays`), as :func:`conv_impl` says. The two agree to float rounding
    (about 2·10⁻⁵ of the largest output)."""
    algorithm = _resolved_algorithm()
    if algorithm == "winograd" or (algorithm == "auto" and winograd_pays(x.shape, w.shape)):
        return _in_current_dtype(winograd.conv3x3, x, w)
    return _in_current_dtype(_conv_s1, x, w)


def _phase_kernels(wf: jax.Array) -> list[jax.Array]:
    """The sub-kernels of output phases ``(0, 0), (0, 1), (1, 0), (1, 1)`` (the
    :func:`depth_to_space` order) of a flipped odd ``k×k`` kernel: phase ``r`` of an
    axis meets every second tap from ``(k//2 − r) mod 2``, a SAME stride-1 window
    of ``⌈k/2⌉`` or ``⌊k/2⌋`` taps."""
    k = wf.shape[0]
    first = [(k // 2 - phase) % 2 for phase in (0, 1)]
    return [wf[first[r] :: 2, first[s] :: 2] for r in (0, 1) for s in (0, 1)]


def _merged_phase_kernel(wf: jax.Array) -> jax.Array:
    """The four :func:`_phase_kernels`, zero-padded to the ``(k//2 + 1)``-tap SAME
    window and stacked as ``4·C_out`` channels in :func:`depth_to_space` order."""
    t = wf.shape[0] // 2 + 1
    lead = (t - 1) // 2  # SAME padding before, for t taps

    def embed(n: int) -> tuple[int, int]:
        before = lead - (n - 1) // 2  # an n-tap window starts later by this much
        return before, t - n - before

    return jnp.concatenate(
        [jnp.pad(p, (embed(p.shape[0]), embed(p.shape[1]), (0, 0), (0, 0))) for p in _phase_kernels(wf)], axis=-1
    )


def transposed_conv2d(x: jax.Array, w: jax.Array) -> jax.Array:
    """Stride-2 transposed convolution (PyTorch's ``ConvTranspose2d(k, stride=2,
    padding=k//2, output_padding=1)``, output exactly ``2H × 2W``), ``k`` odd, HWIO
    kernel: ``out[o] = Σ_i x[i] · w[o − 2i + k//2]`` per axis.

    Computed by phases instead of XLA's input-dilated convolution: output pixels of
    parity ``(r, s)`` only meet the kernel taps of that parity, so each phase is a
    stride-1 convolution of ``x`` with a ``⌈k/2⌉`` or ``⌊k/2⌋``-tap sub-kernel, and
    :func:`depth_to_space` interleaves the four (the sub-pixel view of Shi et al. 2016,
    Sec. 2.2). Wide layers run the four convolutions (``k²`` taps in all); thin ones
    (fewer than 32 output channels) one convolution over the merged, zero-padded
    kernel, which XLA runs faster at that width. The algorithm as in
    :func:`stride1_conv`: where Winograd pays for the merged ``3×3`` kernel of a
    ``5×5`` layer, it runs that (36 taps at 2.25 multiplications each instead of 25
    direct taps: about 2× faster for 128 channels at 8×32×32, ``bench/conv_speed.py``).
    """
    algorithm = _resolved_algorithm()
    return _in_current_dtype(lambda a, b: _transposed_conv2d(a, b, algorithm), x, w)


def _transposed_conv2d(x: jax.Array, w: jax.Array, algorithm: str) -> jax.Array:
    k = w.shape[0]
    if k % 2 == 0 or w.shape[1] != k:
        raise ValueError(f"transposed_conv2d needs a square odd kernel, got {w.shape[:2]}")
    wf = jnp.flip(w, (0, 1))
    if k == 1:  # odd output pixels meet no tap: XLA's own input-dilated form
        return lax.conv_general_dilated(x, wf, (1, 1), ((0, 1), (0, 1)), lhs_dilation=(2, 2), dimension_numbers=_DIMS)
    merged_shape = (k // 2 + 1, k // 2 + 1, w.shape[2], 4 * w.shape[3])
    if merged_shape[:2] == (3, 3) and (
        algorithm == "winograd" or (algorithm == "auto" and winograd_pays(x.shape, merged_shape))
    ):
        return depth_to_space(winograd.conv3x3(x, _merged_phase_kernel(wf)))
    if w.shape[-1] < _MIN_FEATURES_FOR_CUSTOM_GRAD:
        return depth_to_space(_conv_s1(x, _merged_phase_kernel(wf)))
    return depth_to_space(jnp.concatenate([_conv_s1(x, p) for p in _phase_kernels(wf)], axis=-1))


def _strided_conv(x: jax.Array, w: jax.Array) -> jax.Array:
    p = w.shape[0] // 2
    return _conv(x, w, 2, ((p, p), (p, p)))


def _space_to_depth_kernel(w: jax.Array) -> jax.Array:
    """The ``3×3`` kernel over :func:`space_to_depth` blocks of a stride-2 ``k×k``
    kernel (``k`` = 3 or 5, padding ``k//2``): output ``o`` reads inputs
    ``2o − k//2 … 2o + k//2``, i.e. blocks ``o − 1 … o + 1``, so the taps, zero-padded
    to ``6×6`` with tap ``t`` at ``t + 2 − k//2``, split into ``3×3`` block offsets times
    ``2×2`` in-block offsets (the depth order of :func:`space_to_depth`)."""
    k, _, cin, cout = w.shape
    front = 2 - k // 2
    wp = jnp.pad(w, ((front, 6 - k - front), (front, 6 - k - front), (0, 0), (0, 0)))
    return wp.reshape(3, 2, 3, 2, cin, cout).transpose(0, 2, 1, 3, 4, 5).reshape(3, 3, 4 * cin, cout)


def strided_conv(x: jax.Array, w: jax.Array) -> jax.Array:
    """:func:`down_conv2d`'s forward pass. By XLA (``"direct"``), or as a stride-1
    ``3×3`` Winograd convolution of the :func:`space_to_depth` input
    (:func:`_space_to_depth_kernel`: 36 taps per ``4·C_in`` channels, 11 of them zero,
    at 2.25 multiplications each against 25 direct taps) with ``"winograd"``; ``"auto"``
    is XLA's (see below; ``bench/conv_speed.py`` times both, and on the 2-core CPU which
    is faster changed between runs). 5×5 and 3×3 kernels; odd sides get a zero row or column, which
    the padding reads anyway."""
    return _strided_conv_by(x, w, current_algorithm())


def _strided_conv_by(x: jax.Array, w: jax.Array, algorithm: str) -> jax.Array:
    k = w.shape[0]
    # "auto" keeps XLA's: the Winograd form gained nothing reliable and adds machine code to
    # every compiled encoder (memory mappings per image size, bench/program_memory.py),
    # which exhausted the process's mappings in a long evaluation.
    if k in (3, 5) and algorithm == "winograd":
        x = jnp.pad(x, ((0, 0), (0, x.shape[1] % 2), (0, x.shape[2] % 2), (0, 0)))
        return winograd.conv3x3(space_to_depth(x), _space_to_depth_kernel(w))
    return _strided_conv(x, w)


def down_conv2d(x: jax.Array, w: jax.Array) -> jax.Array:
    """Stride-2 convolution with padding ``k//2`` (PyTorch's ``Conv2d(k, stride=2,
    padding=k//2)``; output ``⌈H/2⌉ × ⌈W/2⌉``), NHWC input, HWIO kernel.

    Equals ``lax.conv_general_dilated(x, w, (2, 2), padding)`` including its gradients,
    but the input gradient -- the transposed convolution of the output gradient, an
    input-dilated convolution that XLA runs slowly on CPU -- is computed by
    :func:`transposed_conv2d`'s phases (by Winograd where :func:`conv_impl` allows and it
    pays). The forward pass is :func:`strided_conv` (XLA's, or with ``"winograd"`` by
    Winograd over the space-to-depth input). The weight gradient is XLA's own except for inputs of few
    channels (an RGB image), where it is one matrix product of the stride-2 patches
    with the output gradient.

    The algorithm is read once, when the forward pass is traced, and kept for the
    backward pass (which JAX may trace after the :func:`conv_impl` block has closed).
    """
    algorithm = _resolved_algorithm()
    return _in_current_dtype(lambda a, b: _down_conv2d(a, b, algorithm), x, w)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _down_conv2d(x: jax.Array, w: jax.Array, algorithm: str) -> jax.Array:
    return _strided_conv_by(x, w, algorithm)


def _down_conv2d_fwd(x, w, algorithm):
    return _strided_conv_by(x, w, algorithm), (x, w)


def _strided_patches(x: jax.Array, k: int, ho: int, wo: int) -> jax.Array:
    """``(N, H, W, C) → (N, ho, wo, k²·C)``: the ``k×k`` stride-2 windows of
    :func:`_strided_conv`, tap-major."""
    p = k // 2
    xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    return jnp.concatenate([xp[:, i : i + 2 * ho : 2, j : j + 2 * wo : 2] for i in range(k) for j in range(k)], axis=-1)


def _down_conv2d_bwd(algorithm, res, g):
    x, w = res
    k, _, cin, cout = w.shape
    if cin < _MIN_INPUTS_FOR_XLA_WEIGHT_GRAD:
        # Few input channels (the RGB layer): one product of the k²·C_in patches with dY.
        patches = _strided_patches(x, k, g.shape[1], g.shape[2])
        contract = (((0, 1, 2), (0, 1, 2)), ((), ()))
        dw = lax.dot_general(patches, g, contract, preferred_element_type=w.dtype).reshape(k, k, cin, cout)
    else:
        dw = strided_weight_grad(x, w, g)
    # dx[i] = Σ_o g[o] · w[i − 2o + k//2]: the transposed convolution with in/out swapped.
    dx = _transposed_conv2d(g, w.transpose(0, 1, 3, 2), algorithm)[:, : x.shape[1], : x.shape[2], :]
    return dx, dw


_down_conv2d.defvjp(_down_conv2d_fwd, _down_conv2d_bwd)


def strided_weight_grad(x: jax.Array, w: jax.Array, g: jax.Array, backend: str | None = None) -> jax.Array:
    """The gradient of :func:`_strided_conv`'s output with respect to its kernel ``w``
    for the output gradient ``g``: XLA's own, on a single CPU device over chunks of the
    batch whose output gradients hold at most :data:`_WEIGHT_GRAD_CHUNK` elements, summed
    (the gradient is a sum over images). With several devices the batch is sharded across
    them and stays whole: slicing it would move images between devices."""
    n = x.shape[0]
    chunk = max(1, _WEIGHT_GRAD_CHUNK // max(1, math.prod(g.shape[1:])))
    if not _on_cpu(backend) or jax.device_count() > 1:
        chunk = n
    dw = None
    for start in range(0, n, chunk):
        xs, gs = x[start : start + chunk], g[start : start + chunk]
        (part,) = jax.linear_transpose(lambda w_, xs=xs: _strided_conv(xs, w_), w)(gs)
        dw = part if dw is None else dw + part
    return dw
