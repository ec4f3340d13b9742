"""ComCNN + JPEG + RecCNN: a learned pre- and post-processor around a real JPEG codec.

Reimplements Jiang, Tao, Liu, Zhao & Ji, "An End-to-End Compression Framework Based on
Convolutional Neural Networks" (IEEE TCSVT 28(10), 2018; arXiv:1708.00838), also the
"double network" of the CS 230 poster "Honey, I Shrunk the Image". The pipeline:

1. **ComCNN** maps the RGB image ``x`` in ``[0, 1]`` to a *compact image* ``c`` of half
   the height and width with 3 channels (Jiang Sec. III-A).
2. ``c`` is rounded to 8 bits and coded by a standard codec, here libjpeg through
   Pillow at quality ``q`` (JPEG, ITU-T T.81), then decoded to ``ĉ``.
3. ``ĉ`` is up-sampled to full size with bicubic interpolation (``jax.image.resize``,
   Keys' cubic kernel with ``a = -0.5``, in the codec and in training alike).
4. **RecCNN** predicts the residual ``r`` and ``x̂ = up(ĉ) + r`` (Jiang Sec. III-B).

The stream is a :mod:`jaxcodec.codecs.container` ``.jxc`` whose payload is a plain JPEG file of
the compact image (any JPEG decoder opens it); bpp counts every byte of the container.

Choices the paper leaves open, or that differ from it, made here:

* **Architecture.** ComCNN: ``conv 3×3, 64 – ReLU – conv 3×3 stride 2, 64 – ReLU –
  conv 3×3, 3`` as in Jiang, but its output is *added to a 2×2 box down-sampling* of the
  input, and its last convolution starts at zero, so training starts from the classical
  "down-sample → JPEG → bicubic up-sample" codec instead of from a blank compact image.
  RecCNN: ``conv – ReLU – (depth-2)×(conv – ReLU) – conv`` with 3×3 kernels; Jiang uses
  20 layers of 64 channels, the default here is 10 (``config.model.rec_depth``) so that it
  trains on a laptop CPU; its last convolution also starts at zero (``x̂ = up(ĉ)`` at
  step 0). **No batch normalisation**: Jiang puts BN after the middle convolutions; with
  Adam, residual learning and zero-initialised output layers the plain stack trains
  stably, and the state stays ``{params, opt}`` without running statistics.
* **Training: both networks in one jitted step.** The codec is not differentiable, so
  Jiang alternates: RecCNN learns on the real decoded compact image with loss
  ``‖r − (x − up(ĉ))‖²`` (Eq. 2), ComCNN through a stand-in for the codec with loss
  ``‖x − x̂‖²`` (Eq. 3). Here the real JPEG round trip runs on the host
  (:meth:`jaxcodec.train.tasks.comrec.ComRecTask.host_transform`, between the data and the jitted step), and
  :meth:`~jaxcodec.train.tasks.comrec.ComRecTask.train_step` updates both networks, each with its own Adam, from
  gradients taken at the same point (a simultaneous instead of a sequential
  alternation, so one step costs one forward and one backward pass).
* **Codec stand-in for ComCNN** (``config.model.proxy``):
  ``"straight_through"`` (default) uses ``c + stop_gradient(ĉ − c)``: the forward pass
  sees exactly the JPEG-decoded compact image the deployed decoder sees (JPEG error,
  8-bit rounding and clipping included), the backward pass treats the codec as the
  identity (Bengio, Léonard & Courville 2013, arXiv:1308.3432). Then Jiang's two losses
  are the same number, ``‖x − up(ĉ) − r‖²``, and one gradient gives both updates.
  ``"identity"`` is Jiang's own assumption: ComCNN's loss uses ``c`` itself, never
  seeing the JPEG error, with RecCNN held fixed.
* **Quality.** One model serves every JPEG quality: each training image gets a quality
  drawn uniformly from ``config.model.train_qualities`` (one entry trains a
  single-quality model, as in Jiang). The codec accepts any libjpeg quality 1..100;
  ``config.model.qualities`` is the ladder an RD sweep visits.
* **Grey images** are replicated to RGB, coded, and averaged back to one channel
  (header ``channels = 1``). Odd sizes are padded to even by edge replication and the
  output is cropped.
* ``table_hash`` is :func:`jaxcodec.entropy.coder.table_hash` of every parameter array, so a
  stream from other weights is refused with :class:`~jaxcodec.errors.ModelError`.
* **Large images** are transformed in tiles with exact halos (:mod:`jaxcodec.tiling`):
  ComCNN reads 3 pixels beyond a compact pixel's own two, the bicubic up-sampling two
  compact pixels and RecCNN ``rec_depth`` full-resolution pixels, so windows of the
  compact image with :attr:`jaxcodec.codecs.comrec.ComRecCodec.halo` compact pixels around each tile give the
  whole image's result up to float rounding, in memory for one window. The stream is the
  same (one JPEG of the whole compact image, a quarter of the pixels), and its declared
  size is checked against :func:`jaxcodec.limits.max_pixels` before the JPEG is decoded.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcodec.ops.conv import conv2d


MODEL_NAME = "comrec"
_HE = nn.initializers.he_normal()  # He et al. 2015 (ICCV), Sec. 2.2: keeps ReLU activations' scale


def box_downsample(x: jax.Array) -> jax.Array:
    """``(N, 2h, 2w, C) → (N, h, w, C)``: mean of each 2×2 block."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def upsample(c: jax.Array) -> jax.Array:
    """Bicubic 2× up-sampling ``(N, h, w, C) → (N, 2h, 2w, C)`` (Jiang Sec. III, step 3).

    ``jax.image.resize`` with Keys' cubic kernel (``a = -0.5``) and half-pixel centres;
    the codec and the training step use this same function, so they agree exactly.
    """
    n, h, w, ch = c.shape
    return jax.image.resize(c, (n, 2 * h, 2 * w, ch), "bicubic")


class Conv3x3(nn.Module):
    """``nn.Conv(features, (3, 3))`` (same parameters and initialisers) built on
    :func:`jaxcodec.ops.conv.conv2d`, whose kernel gradient is nine matrix products instead of
    XLA's weight-gradient convolution (on a CPU that halves a full-resolution step)."""

    features: int
    kernel_init: Any = nn.linear.default_kernel_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (3, 3, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return conv2d(x, kernel) + bias


class ComCNN(nn.Module):
    """Compact representation CNN (Jiang Sec. III-A), output added to a 2×2 box down-sampling.

    ``(N, H, W, 3) → (N, H/2, W/2, 3)`` for even H and W.
    """

    features: int = 64

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.relu(Conv3x3(self.features, kernel_init=_HE, name="conv1")(x - 0.5))
        h = nn.relu(nn.Conv(self.features, (3, 3), strides=2, kernel_init=_HE, name="conv2")(h))
        out = Conv3x3(3, kernel_init=nn.initializers.zeros, name="conv3")(h)
        return box_downsample(x) + out


class RecCNN(nn.Module):
    """Reconstruction CNN (Jiang Sec. III-B): the residual between ``x`` and ``up(ĉ)``."""

    depth: int = 10
    features: int = 64

    @nn.compact
    def __call__(self, u: jax.Array) -> jax.Array:
        h = u - 0.5
        for i in range(self.depth - 1):
            h = nn.relu(Conv3x3(self.features, kernel_init=_HE, name=f"conv{i + 1}")(h))
        return Conv3x3(3, kernel_init=nn.initializers.zeros, name=f"conv{self.depth}")(h)


def to_uint8(x: jax.Array) -> jax.Array:
    """``[0, 1]`` floats → 8-bit values: ``round(clip(x) · 255)``."""
    return jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.uint8)
