"""jaxcodec.ops.full_precision_jit: a codec's programs ask every backend for full float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec import zoo
from jaxcodec.ops import full_precision_jit


def _conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def test_products_and_convolutions_are_traced_at_highest_precision():
    x, w = jnp.ones((1, 8, 8, 3)), jnp.ones((3, 3, 3, 4))
    full = full_precision_jit(lambda x, w: _conv(x, w) @ jnp.ones((4, 2))).lower(x, w).as_text()
    plain = jax.jit(lambda x, w: _conv(x, w) @ jnp.ones((4, 2))).lower(x, w).as_text()
    assert full.count("precision HIGHEST") >= 2  # the convolution and the product
    assert "precision HIGHEST" not in plain
    np.testing.assert_allclose(full_precision_jit(_conv)(x, w), _conv(x, w))


def test_the_shipped_decoders_synthesis_is_full_precision():
    codec = zoo.get_codec("mbt2018-mean")
    y = jnp.zeros((1, 4, 4, codec.latent_channels), jnp.float32)
    text = codec.programs.synthesis.lower(codec.params, y, jnp.ones((1,), jnp.float32)).as_text()
    assert "precision HIGHEST" in text and "DEFAULT" not in text
