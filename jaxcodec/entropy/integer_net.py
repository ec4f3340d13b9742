"""Integer networks: a trained convolutional network evaluated in exact integer arithmetic.

Ballé, Johnston & Minnen, "Integer networks for data compression with latent-variable
models", ICLR 2019: a decoder that recomputes its entropy model's parameters in floating
point can pick another probability table than the encoder did (another CPU's vector
unit, another backend, another library version), and from that symbol on the stream
decodes to garbage. Computed with integers and a rounding rule fixed in the format, the
parameters are the same everywhere.

Here a trained float network (:class:`jaxcodec.models.hyperprior.HyperSynthesis`) is
converted once (:func:`quantize_hyper_synthesis`):

* weights: per output channel, ``round(w · 2^f_c)`` with ``f_c`` the largest shift that
  keeps every weight within ±(2¹⁵ − 1);
* activations: fixed point with :data:`ACTIVATION_BITS` fractional bits, clipped to
  ±2²⁰ (±4096), the network's input (integer hyper-latents) clipped to ±4096, its outputs
  with :data:`OUTPUT_BITS` fractional bits;
* biases: ``round(b · 2^(f_in + f_c))``, added to the accumulator;
* each layer's accumulator is brought to the next fixed point by a right shift that
  rounds half up, ``floor((acc + 2^(s−1)) / 2^s)``; ReLU is ``max(0, ·)``.

Every product is below 2²⁰ · 2¹⁵ and every accumulator below 2⁴⁷, so the arithmetic is
carried out in float64 by NumPy's matrix product, where integer values below 2⁵³ are exact
whatever the summation order, blocking or thread count (:func:`conv3x3`): exact integer
results, at BLAS speed. With 15-bit weights and 8 fractional activation bits the
entropy parameters lie within about 10⁻³ of the float network's, far below the spacing of
the scale table (a factor 1.13), so no retraining is needed (the rate it costs is measured
in the tests).

A window of the output needs only the hyper-latents under it and :func:`reach` positions
around them (:func:`run_window`): each output value depends on a fixed neighbourhood, the
arithmetic is exact, and at the latent's own border the window ends where the latent ends,
so the layers pad there as they pad the whole latent. So the entropy parameters of a large
image are computed a block at a time, each block exactly what the whole network gives.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from jaxcodec.ops.pixel_shuffle import depth_to_space

WEIGHT_BITS = 15  # |integer weight| <= 2**15 - 1
ACTIVATION_BITS = 8  # fractional bits of the hidden activations
OUTPUT_BITS = 12  # fractional bits of the outputs (mean and scale)
ACTIVATION_LIMIT = 1 << 20  # |hidden activation| in fixed point, i.e. ±4096
OUTPUT_LIMIT = 1 << 24  # |output| in fixed point, i.e. ±4096
INPUT_LIMIT = ACTIVATION_LIMIT >> ACTIVATION_BITS  # |integer input|
PATCH_BYTES = 16 << 20  # about the largest patch matrix one layer builds (conv3x3)


@dataclasses.dataclass(frozen=True)
class IntegerConv:
    """A ``k×k`` stride-1 SAME convolution in fixed point (see the module docstring).

    ``kernel (k, k, cin, cout)`` and ``bias (cout,)`` hold integers (as float64);
    ``shift (cout,)`` is the right shift from the accumulator to the output's fixed point.
    """

    kernel: np.ndarray
    bias: np.ndarray
    shift: np.ndarray
    upsample: bool  # followed by a 2x depth-to-space (a sub-pixel layer)
    relu: bool


def _quantize(kernel: np.ndarray, bias: np.ndarray, in_bits: int, out_bits: int, upsample: bool,
              relu: bool) -> IntegerConv:
    kernel = np.asarray(kernel, np.float64)
    bias = np.asarray(bias, np.float64)
    largest = np.max(np.abs(kernel.reshape(-1, kernel.shape[-1])), axis=0)
    shifts = np.floor(np.log2(((1 << WEIGHT_BITS) - 1) / np.maximum(largest, 1e-30))).astype(np.int64)
    shifts = np.clip(shifts, out_bits - in_bits, 24)  # never a left shift of the accumulator
    scale = np.exp2(shifts.astype(np.float64))
    return IntegerConv(
        kernel=np.round(kernel * scale),
        bias=np.round(bias * np.exp2((shifts + in_bits).astype(np.float64))),
        shift=(shifts + in_bits - out_bits).astype(np.float64),
        upsample=upsample,
        relu=relu,
    )


def quantize_hyper_synthesis(params: Mapping[str, Any]) -> list[IntegerConv]:
    """The integer layers of a trained ``HyperSynthesis`` (``conv0`` and ``conv1`` sub-pixel
    up-samplings with ReLU, ``conv2`` the output), from its parameter dict."""
    p = {k: {n: np.asarray(v) for n, v in layer.items()} for k, layer in params.items()}
    return [
        _quantize(p["conv0"]["kernel"], p["conv0"]["bias"], 0, ACTIVATION_BITS, True, True),
        _quantize(p["conv1"]["kernel"], p["conv1"]["bias"], ACTIVATION_BITS, ACTIVATION_BITS, True, True),
        _quantize(p["conv2"]["kernel"], p["conv2"]["bias"], ACTIVATION_BITS, OUTPUT_BITS, False, False),
    ]


def _round_shift(acc: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``floor((acc + 2^(s−1)) / 2^s)`` per channel, exact for integer float64 ``acc``."""
    half = np.where(shift > 0, np.exp2(shift - 1.0), 0.0)
    return np.floor((acc + half) / np.exp2(shift))


def conv3x3(x: np.ndarray, layer: IntegerConv) -> np.ndarray:
    """One integer layer on ``x (H, W, cin)`` of integers (float64): SAME zero padding,
    accumulate, add the bias, round-shift, ReLU, clip, optional depth-to-space."""
    k = layer.kernel.shape[0]
    pad = k // 2
    h, w, c = x.shape
    padded = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(0, 1))  # (h, w, c, k, k)
    kernel = layer.kernel.reshape(k * k * c, -1)
    limit = ACTIVATION_LIMIT if layer.relu else OUTPUT_LIMIT
    out = np.empty((h, w, kernel.shape[1]), np.float64)
    # A block of rows at a time, so the patch matrix stays near PATCH_BYTES however large
    # the image (every output value is exact, so the blocking changes nothing).
    rows = max(1, PATCH_BYTES // (8 * w * k * k * c))
    for r in range(0, h, rows):
        part = windows[r : r + rows]
        patches = part.transpose(0, 1, 3, 4, 2).reshape(-1, k * k * c)
        block = _round_shift(patches @ kernel + layer.bias, layer.shift)
        if layer.relu:
            block = np.maximum(block, 0.0)
        out[r : r + rows] = np.clip(block, -limit, limit).reshape(part.shape[0], w, -1)
    return np.asarray(depth_to_space(out[None]))[0] if layer.upsample else out


def reach(layers: list[IntegerConv]) -> int:
    """Hyper-latent positions beyond a window's own that its outputs depend on: walking
    back from the output, a ``k×k`` layer adds ``k // 2`` positions of its input, and a 2×
    up-sampling halves them (rounded up), the last layer first."""
    positions = 0
    for layer in reversed(layers):
        if layer.upsample:
            positions = -(-positions // 2)
        positions += layer.kernel.shape[0] // 2
    return positions


def upsampling(layers: list[IntegerConv]) -> int:
    """Output positions per hyper-latent position, along each axis."""
    return 1 << sum(layer.upsample for layer in layers)


def run_window(layers: list[IntegerConv], z: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """The outputs of :func:`run` at output ``rows × cols`` only, from the hyper-latents
    under them and :func:`reach` around them (module docstring): identical to
    ``run(layers, z)[rows, cols]``."""
    factor, margin = upsampling(layers), reach(layers)
    window = []
    for span, size in ((rows, z.shape[0]), (cols, z.shape[1])):
        start, stop, _ = span.indices(size * factor)
        low = max(0, start // factor - margin)
        high = min(size, -(-stop // factor) + margin)
        window.append((low, high, start - low * factor, stop - low * factor))
    (r0, r1, ra, rb), (c0, c1, ca, cb) = window
    return run(layers, z[r0:r1, c0:c1])[ra:rb, ca:cb]


def run(layers: list[IntegerConv], z: np.ndarray) -> np.ndarray:
    """The network on integer hyper-latents ``z (h, w, C)``: int64 outputs in fixed point
    with :data:`OUTPUT_BITS` fractional bits (``(4h, 4w, 2M)``: means, then scales)."""
    x = np.clip(np.asarray(z, np.float64), -INPUT_LIMIT, INPUT_LIMIT)
    for layer in layers:
        x = conv3x3(x, layer)
    return x.astype(np.int64)
