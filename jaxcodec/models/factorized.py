"""Flax modules of end-to-end optimised image compression with a factorized prior.

Ballé, Laparra & Simoncelli, "End-to-end optimized image compression", ICLR 2017
(arXiv:1611.01704), in the shape of CompressAI's ``bmshj2018-factorized``
(``FactorizedPrior(N, M)``):

* analysis ``g_a``: four ``5×5`` convolutions with stride 2 (``N, N, N, M`` channels)
  with GDN between them (Ballé 2017, Sec. 2; :class:`jaxcodec.layers.GDN`);
* synthesis ``g_s``: the mirror image with IGDN, each 2× up-sampling a ``3×3``
  sub-pixel convolution (:class:`jaxcodec.layers.SubPixelConv`, which contains every
  ``5×5`` stride-2 transposed convolution) -- ``model.upsample = "transposed"`` gives
  CompressAI's transposed convolutions instead (computed by phases,
  :func:`jaxcodec.ops.conv.transposed_conv2d`);
* entropy model: one deep factorized density per latent channel (Ballé et al. 2018,
  Appendix 6.1; :mod:`jaxcodec.entropy.deep_factorized`).

``model.activation = "relu"`` replaces GDN/IGDN by ReLU and ``model.kernel_sizes``
sets the analysis kernels (the synthesis mirrors them), which gives seed 000's
"ReLU instead of GDN/IGDN, 5×5 and 3×3 instead of 9×9 and 5×5 filters" autoencoder for
192×192 CelebA faces (configs/seed000_celeba.py).

The Flax modules only: training is :mod:`jaxcodec.train.tasks.factorized`, the ``.jxc``
codec :mod:`jaxcodec.codecs.factorized`.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcodec.entropy import deep_factorized as factorized_prior
from jaxcodec.errors import ConfigError
from jaxcodec.layers import GDN, DownConv, SubPixelConv, TransposedConv

MODEL_NAME = "factorized"


def _activation(kind: str, inverse: bool, name: str):
    if kind == "gdn":
        return GDN(inverse=inverse, name=name)
    if kind == "relu":
        return nn.relu
    raise ConfigError(f"model.activation must be 'gdn' or 'relu', got {kind!r}")


class AnalysisTransform(nn.Module):
    """``g_a``: stride-2 convolutions ``N, …, N, M`` with GDN (or ReLU) between them."""

    features: int = 128
    latent_channels: int = 192
    kernel_sizes: Sequence[int] = (5, 5, 5, 5)
    activation: str = "gdn"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n = len(self.kernel_sizes)
        for i, k in enumerate(self.kernel_sizes):
            last = i == n - 1
            features = self.latent_channels if last else self.features
            x = DownConv(features, k, name=f"conv{i}")(x)
            if not last:
                x = _activation(self.activation, False, f"gdn{i}")(x)
        return x


class SynthesisTransform(nn.Module):
    """``g_s``: 2× up-sampling layers ``N, …, N, 3`` with IGDN (or ReLU) between them.

    ``kernel_sizes`` are the nominal (transposed-convolution) sizes, from the latent
    side; a sub-pixel layer for nominal size ``k`` uses a ``(k//2 + 1)``-tap kernel,
    exactly the taps the transposed convolution reads per output phase.
    """

    features: int = 128
    out_channels: int = 3
    kernel_sizes: Sequence[int] = (5, 5, 5, 5)
    activation: str = "gdn"
    upsample: str = "subpixel"

    @nn.compact
    def __call__(self, y: jax.Array, modulation: tuple[jax.Array, jax.Array] | None = None) -> jax.Array:
        """``modulation``: optional per-image ``(scale, bias)``, each ``(B, L−1, N)``, applied
        channel-wise after each hidden layer's IGDN (a conditional decoder, see
        :class:`jaxcodec.models.hyperprior.MeanScaleHyperprior`); ``None`` leaves it out."""
        n = len(self.kernel_sizes)
        x = y
        for i, k in enumerate(self.kernel_sizes):
            last = i == n - 1
            features = self.out_channels if last else self.features
            if self.upsample == "subpixel":
                x = SubPixelConv(features, k // 2 + 1, name=f"conv{i}")(x)
            elif self.upsample == "transposed":
                x = TransposedConv(features, k, name=f"conv{i}")(x)
            else:
                raise ConfigError(f"model.upsample must be 'subpixel' or 'transposed', got {self.upsample!r}")
            if not last:
                x = _activation(self.activation, True, f"igdn{i}")(x)
                if modulation is not None:
                    scale, bias = modulation
                    x = x * scale[:, None, None, i, :] + bias[:, None, None, i, :]
        return x


class FactorizedPriorModel(nn.Module):
    """``g_a``, ``g_s`` and the per-channel deep factorized entropy model."""

    features: int = 128
    latent_channels: int = 192
    kernel_sizes: Sequence[int] = (5, 5, 5, 5)
    activation: str = "gdn"
    upsample: str = "subpixel"
    filters: Sequence[int] = (3, 3, 3)

    def setup(self):
        self.g_a = AnalysisTransform(self.features, self.latent_channels, tuple(self.kernel_sizes), self.activation)
        self.g_s = SynthesisTransform(
            self.features, 3, tuple(reversed(self.kernel_sizes)), self.activation, self.upsample
        )
        self.entropy_bottleneck = factorized_prior.DeepFactorized(self.latent_channels, tuple(self.filters))

    def analysis(self, x: jax.Array) -> jax.Array:
        return self.g_a(x)

    def synthesis(self, y: jax.Array) -> jax.Array:
        return self.g_s(y)

    def likelihood(self, y: jax.Array) -> jax.Array:
        return self.entropy_bottleneck(y)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        y = self.g_a(x)
        return self.g_s(y), self.entropy_bottleneck(y)


def total_bits(likelihoods: jax.Array) -> jax.Array:
    """``Σ −log2 p``: the ideal code length of the latents, in bits."""
    return -jnp.sum(jnp.log(likelihoods)) / math.log(2.0)
