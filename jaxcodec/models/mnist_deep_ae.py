"""Deep autoencoder 784-1000-500-196 with optional RBM pre-training.

Reimplements "Deep Convolutional AutoEncoder-based Lossy Image Compression" (Patel,
Desai, Solani, Chinathambi and Bangar; SKNCOE), which follows Hinton & Salakhutdinov,
"Reducing the dimensionality of data with neural networks", Science 313:504 (2006):

* encoder: a flattened 28×28 digit (784 values) → 1000 → 500 → 196 sigmoid units; the
  196 code units are the compressed representation, so the latent lies in ``(0, 1)``
  and :mod:`jaxcodec.codecs.latent` quantises it uniformly over ``[0, 1]``;
* decoder: the mirror 196 → 500 → 1000 → 784, sigmoid units, sigmoid output;
* loss: pixel-wise binary cross-entropy with the intensities in ``[0, 1]`` as targets
  (the paper's ``binary_cross_entropy``; H&S's "cross-entropy error", Fig. 1), optimised
  with Adam (Kingma & Ba 2015), as the paper does; H&S fine-tuned with conjugate
  gradients instead;
* pre-training (``config.model.pretrain``): greedy layer-wise RBMs 784-1000, 1000-500,
  500-196 trained with CD-1 (:mod:`jaxcodec.models.rbm`), then "unrolled" (H&S Fig. 1):
  encoder layer ``i`` gets ``W_i`` and the hidden biases of RBM ``i``, the mirrored
  decoder layer gets ``W_iᵀ`` and the visible biases. After unrolling the encoder and
  decoder weights are separate parameters and fine-tuned freely, as in H&S.

H&S used linear (Gaussian) hidden units in the top RBM so the 30-d code could spread over
the real line. Here the top RBM has binary (sigmoid) hidden units like the others: the
paper describes a sigmoid network, and a bounded code in ``(0, 1)`` is what a uniform
quantiser over a fixed range needs (a linear code would need a range estimated from data
and clipping). :func:`jaxcodec.models.rbm.pretrain_stack` supports the linear top layer
for other uses.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax


LATENT_RANGE = (0.0, 1.0)
MODEL_NAME = "mnist_deep_ae"


class DeepAutoencoder(nn.Module):
    """Fully connected sigmoid autoencoder; ``__call__`` returns ``(logits, code)``.

    Parameters are named ``enc_0 .. enc_{n-1}`` (input side first) and ``dec_0 ..
    dec_{n-1}`` (code side first) so :func:`jaxcodec.train.tasks.mnist_deep_ae.unroll` can fill them from RBMs.
    """

    layer_sizes: Sequence[int] = (784, 1000, 500, 196)
    image_shape: Sequence[int] = (28, 28, 1)

    def setup(self):
        sizes = list(self.layer_sizes)
        self.enc = [nn.Dense(n, name=f"enc_{i}") for i, n in enumerate(sizes[1:])]
        self.dec = [nn.Dense(n, name=f"dec_{i}") for i, n in enumerate(reversed(sizes[:-1]))]

    def encode(self, x: jax.Array) -> jax.Array:
        h = x.reshape(x.shape[0], -1)
        for layer in self.enc:
            h = jax.nn.sigmoid(layer(h))
        return h

    def decode_logits(self, z: jax.Array) -> jax.Array:
        h = z
        for layer in self.dec[:-1]:
            h = jax.nn.sigmoid(layer(h))
        return self.dec[-1](h).reshape((z.shape[0],) + tuple(self.image_shape))

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        z = self.encode(x)
        return self.decode_logits(z), z
