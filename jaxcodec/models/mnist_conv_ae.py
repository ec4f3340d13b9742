"""Convolutional autoencoder that codes a 28×28 digit as 28 numbers.

Reimplements "Image Compression using Convolutional Autoencoders" (Baskaran, R, P and
Saseendran; poster): a 28×28 MNIST digit is reduced to a 28×1 vector by an encoder
``Conv – ReLU – Conv – Conv – Dense – Dense`` and rebuilt by the mirrored decoder
``Dense – Dense – Conv – Conv – ReLU – Conv``; the loss is "reconstruction loss +
regularizer" and quality is reported as PSNR.

Choices the poster leaves open, made here:

* Every hidden layer is followed by a ReLU (the poster's diagram shows one ReLU; a stack of
  linear convolutions would collapse into one linear map).
* Down-sampling: the second and third convolutions have stride 2 (28 → 14 → 7).
  Up-sampling: each decoder convolution outputs ``4·C`` channels that are rearranged
  into a 2× larger map (sub-pixel convolution, Shi et al. 2016, CVPR, "Real-Time Single
  Image and Video Super-Resolution ...", Sec. 2.2) instead of a transposed convolution,
  which XLA runs several times slower on CPU.
* The latent is ``tanh`` of the last encoder layer, so it lies in ``(-1, 1)``: a known
  range that :mod:`jaxcodec.codecs.latent` quantises uniformly at any bit depth.
* Reconstruction loss: mean squared error (``config.model.loss = "mse"``), because the
  quality measure is PSNR, a function of MSE alone; ``"bce"`` (pixel-wise binary cross
  entropy on the decoder's logits) is available.
* Regulariser: ``config.model.latent_l2 · mean(z²)``, an L2 penalty on the latent that
  pulls the codes towards the centre of the range, where the entropy coder's histogram is
  dense, so it acts as a crude rate term; plus optional decoupled weight decay
  (``config.model.weight_decay``, AdamW, Loshchilov & Hutter 2019).
* Optional quantisation noise (``config.model.noise_bits``): during training the latent
  gets uniform noise one quantisation step wide at that bit depth, the additive-noise
  proxy for rounding of Ballé et al. 2017 (ICLR, Sec. 2), so the decoder sees latents like
  those it will decode.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcodec.ops.pixel_shuffle import depth_to_space


LATENT_RANGE = (-1.0, 1.0)
MODEL_NAME = "mnist_conv_ae"


class Encoder(nn.Module):
    """``Conv(3×3) – ReLU – Conv(3×3, /2) – Conv(3×3, /2) – Dense – Dense – tanh``."""

    features: Sequence[int] = (16, 32, 32)
    hidden: int = 128
    latent_dim: int = 28

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        f1, f2, f3 = self.features
        x = nn.relu(nn.Conv(f1, (3, 3), name="conv1")(x))
        x = nn.relu(nn.Conv(f2, (3, 3), strides=2, name="conv2")(x))
        x = nn.relu(nn.Conv(f3, (3, 3), strides=2, name="conv3")(x))
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(self.hidden, name="dense1")(x))
        return jnp.tanh(nn.Dense(self.latent_dim, name="dense2")(x))


class Decoder(nn.Module):
    """``Dense – Dense – Conv(×2 sub-pixel) – Conv(×2 sub-pixel) – ReLU – Conv``; logits."""

    features: Sequence[int] = (16, 32, 32)
    hidden: int = 128
    image_shape: Sequence[int] = (28, 28, 1)
    output_bias: float = 0.0

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        f1, f2, f3 = self.features
        h, w, c = self.image_shape
        x = nn.relu(nn.Dense(self.hidden, name="dense1")(z))
        x = nn.relu(nn.Dense((h // 4) * (w // 4) * f3, name="dense2")(x))
        x = x.reshape(x.shape[0], h // 4, w // 4, f3)
        x = nn.relu(depth_to_space(nn.Conv(4 * f2, (3, 3), name="conv1")(x)))
        x = nn.relu(depth_to_space(nn.Conv(4 * f1, (3, 3), name="conv2")(x)))
        return nn.Conv(c, (3, 3), name="conv3", bias_init=nn.initializers.constant(self.output_bias))(x)


class ConvAutoencoder(nn.Module):
    """Encoder and decoder; ``__call__`` returns ``(logits, latent)``."""

    features: Sequence[int] = (16, 32, 32)
    hidden: int = 128
    latent_dim: int = 28
    image_shape: Sequence[int] = (28, 28, 1)
    output_bias: float = 0.0

    def setup(self):
        self.encoder = Encoder(self.features, self.hidden, self.latent_dim)
        self.decoder = Decoder(self.features, self.hidden, self.image_shape, self.output_bias)

    def encode(self, x: jax.Array) -> jax.Array:
        return self.encoder(x)

    def decode_logits(self, z: jax.Array) -> jax.Array:
        return self.decoder(z)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        z = self.encoder(x)
        return self.decoder(z), z
