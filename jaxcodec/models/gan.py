"""A DCGAN-style generator/discriminator pair (Flax modules; training:
:mod:`jaxcodec.train.tasks.gan`, codec: :mod:`jaxcodec.codecs.gan_reversal`).

Implements the first step of "GAN reversal" compression (Tolunay & Ghalayini,
*Generative Neural Network Based Image Compression*, CS 229 poster): train a GAN on a
dataset; an image is then compressed to the generator latent recovered by gradient
descent (:mod:`jaxcodec.codecs.inversion`) and decompressed by running the generator.

Architecture (Radford, Metz & Chintala 2016, "DCGAN", Sec. 3), with changes for this
project:

* Up-sampling is nearest-neighbour ×2 followed by a 3×3 convolution (Odena, Dumoulin
  & Olah 2016, "Deconvolution and checkerboard artifacts") instead of a transposed
  convolution: XLA on CPU runs input-dilated convolutions about 9× slower, and the
  inversion back-propagates through the generator thousands of times.
* Down-sampling in the discriminator is space-to-depth ×2 followed by a stride-1
  convolution (an exact re-parametrisation of a 4×4 stride-2 convolution on aligned
  windows), so the input gradient that the generator update needs is a plain
  convolution too.
* No normalisation layers, so every step is a pure function of the state (no batch
  statistics). Per-pixel feature normalisation (Karras et al. 2018, Sec. 4.2) was
  left out on purpose: with zero-initialised biases it makes ``G(c·z) = G(z)`` for
  every ``c > 0``, so the length of ``z`` could not be recovered by inversion.
* Latent prior ``z ~ U[-1, 1]^d`` (the poster's "future work"), which is also the box
  that stochastic clipping keeps the recovered latent in (Lipton & Tripathi 2017).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcodec.errors import ConfigError


MODEL_NAME = "gan"
LATENT_RANGE = (-1.0, 1.0)  # the uniform prior's support, also the quantiser's range
def _upsampling_plan(image_size: int) -> tuple[int, int]:
    """Returns ``(num_doublings, base_size)``: halve while even and above 4.

    28 → 14 → 7 (two doublings from 7×7), 64 → 4 (four), 128 → 4 (five).
    """
    n, size = 0, image_size
    while size % 2 == 0 and size > 4:
        size //= 2
        n += 1
    if n == 0:
        raise ConfigError(f"image_size {image_size} cannot be halved; use e.g. 28, 32, 64 or 128")
    return n, size


def upsample_nearest(x: jax.Array) -> jax.Array:
    """Nearest-neighbour ×2 up-sampling of an NHWC tensor (a broadcast, no convolution)."""
    b, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c))
    return x.reshape(b, 2 * h, 2 * w, c)


def space_to_depth(x: jax.Array) -> jax.Array:
    """Moves each 2×2 block of an NHWC tensor into channels: (B,H,W,C) → (B,H/2,W/2,4C)."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h // 2, w // 2, 4 * c)


def _widths(num_stages: int, width: int, max_width: int) -> list[int]:
    """Channel widths from the coarsest resolution (index 0) to the finest (index n)."""
    return [min(width * 2 ** (num_stages - i), max_width) for i in range(num_stages + 1)]


class Generator(nn.Module):
    """Maps latents ``z (B, d)`` in [-1, 1] to images ``(B, S, S, C)`` in [0, 1]."""

    image_size: int
    channels: int
    width: int = 32
    max_width: int = 256
    convs_per_stage: int = 1

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        n, base = _upsampling_plan(self.image_size)
        widths = _widths(n, self.width, self.max_width)
        h = nn.Dense(base * base * widths[0], name="project")(z)
        h = h.reshape(z.shape[0], base, base, widths[0])
        h = nn.leaky_relu(h, 0.2)
        for i in range(1, n + 1):
            h = upsample_nearest(h)
            for j in range(self.convs_per_stage):
                h = nn.leaky_relu(nn.Conv(widths[i], (3, 3), name=f"conv{i}_{j}")(h), 0.2)
        h = nn.Conv(self.channels, (3, 3), name="to_image")(h)
        return nn.sigmoid(h)


class Discriminator(nn.Module):
    """Maps images ``(B, S, S, C)`` in [0, 1] to real/fake logits ``(B,)``."""

    image_size: int
    width: int = 32
    max_width: int = 256

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, _ = _upsampling_plan(self.image_size)
        widths = _widths(n, self.width, self.max_width)
        h = 2.0 * x - 1.0
        h = nn.leaky_relu(nn.Conv(widths[n], (3, 3), name="from_image")(h), 0.2)
        for i in range(n, 0, -1):
            h = space_to_depth(h)
            h = nn.leaky_relu(nn.Conv(widths[i - 1], (2, 2), name=f"down{i}")(h), 0.2)
        h = h.reshape(h.shape[0], -1)
        return nn.Dense(1, name="logit")(h)[:, 0]


def sample_latents(rng: jax.Array, num: int, latent_dim: int) -> jax.Array:
    """Draws ``num`` latents from the uniform prior U[-1, 1]^d."""
    return jax.random.uniform(rng, (num, latent_dim), minval=-1.0, maxval=1.0)
