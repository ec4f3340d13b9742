"""Flax convolution layers of the learned transforms: strided, sub-pixel and transposed.

* :class:`DownConv` -- a ``k×k`` convolution with stride 2 (the analysis transform's
  down-sampling).
* :class:`TransposedConv` -- CompressAI's stride-2 transposed convolution.
* :class:`SubPixelConv` -- up-sampling by a stride-1 convolution to ``4·C`` channels
  followed by :func:`~jaxcodec.ops.pixel_shuffle.depth_to_space` (Shi et al., "Real-time
  single image and video super-resolution using an efficient sub-pixel convolutional
  neural network", CVPR 2016, Sec. 2.2), its kernel initialised by :func:`icnr`. A ``5×5``
  transposed convolution with stride 2 (CompressAI's ``deconv``) is exactly a ``3×3``
  sub-pixel convolution whose kernel has 11 of its 36 taps per channel pair fixed at
  zero: output phase ``p`` of ``out[2i + p]`` only reads ``in[i-1 .. i+1]``. The sub-pixel
  layer learns all 36, so it can express every transposed convolution and avoids the
  input-dilated convolutions that XLA runs slowly on CPU.

The computations (custom gradients, phases, Winograd on CPU) are in
:mod:`jaxcodec.ops.conv`; which algorithm they use is set by
:func:`jaxcodec.ops.conv.conv_impl` around the call, not by the layers.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcodec.ops.conv import down_conv2d, stride1_conv, transposed_conv2d
from jaxcodec.ops.pixel_shuffle import depth_to_space

__all__ = ["DownConv", "SubPixelConv", "TransposedConv", "icnr"]


class DownConv(nn.Module):
    """``kernel_size×kernel_size`` convolution with stride 2 and SAME padding
    (:func:`jaxcodec.ops.conv.down_conv2d`).

    With ``kernel_size = 5`` and an even input this is CompressAI's
    ``conv(in, out, 5, stride=2)`` (padding 2): output pixel ``i`` reads inputs
    ``2i-2 .. 2i+2``.
    """

    features: int
    kernel_size: int = 5
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        if k % 2 == 0:
            raise ValueError(f"DownConv needs an odd kernel size, got {k}")
        w = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features), x.dtype)
        b = self.param("bias", nn.initializers.zeros, (self.features,), x.dtype)
        return down_conv2d(x, w) + b


def icnr(base_init: Callable, block: int = 2) -> Callable:
    """ICNR initialisation (Aitken et al., "Checkerboard artifact free sub-pixel
    convolution", arXiv:1707.02937, 2017): the ``b²`` sub-kernels start equal, so the
    initial layer is a nearest-neighbour up-sampling of a convolution and has no
    checkerboard pattern."""

    def init(key, shape, dtype=jnp.float32):
        kh, kw, cin, cout4 = shape
        base = base_init(key, (kh, kw, cin, cout4 // (block * block)), dtype)
        return jnp.tile(base, (1, 1, 1, block * block))

    return init


class SubPixelConv(nn.Module):
    """Stride-1 ``kernel_size×kernel_size`` convolution to ``4·features`` channels,
    then :func:`depth_to_space`: a learned 2× up-sampling.

    ``kernel_size = 3`` covers a ``5×5`` stride-2 transposed convolution (see the
    module docstring); ``kernel_size = 2`` covers a ``3×3`` one. The convolution runs by
    :func:`~jaxcodec.ops.conv.stride1_conv` (the algorithm of :func:`jaxcodec.ops.conv.conv_impl`).
    """

    features: int
    kernel_size: int = 3
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        w = self.param("kernel", icnr(self.kernel_init), (k, k, x.shape[-1], 4 * self.features), x.dtype)
        b = self.param("bias", nn.initializers.zeros, (4 * self.features,), x.dtype)
        return depth_to_space(stride1_conv(x, w) + b)


class TransposedConv(nn.Module):
    """``kernel_size×kernel_size`` transposed convolution with stride 2 (CompressAI's
    ``deconv``: padding ``k//2``, output padding 1, so the output is exactly 2× the
    input), :func:`jaxcodec.ops.conv.transposed_conv2d`. The alternative to :class:`SubPixelConv` with
    exactly CompressAI's taps.
    """

    features: int
    kernel_size: int = 5
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        w = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features), x.dtype)
        b = self.param("bias", nn.initializers.zeros, (self.features,), x.dtype)
        return transposed_conv2d(x, w) + b
