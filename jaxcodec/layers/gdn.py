"""Generalized divisive normalization (GDN) and its approximate inverse (IGDN).

Ballé, Laparra & Simoncelli, "Density modeling of images using a generalized
normalization transformation", ICLR 2016, eq. 5 with the exponents fixed to 2 and 1/2 as
in "End-to-end optimized image compression", ICLR 2017, Sec. 2:
``y_i = x_i / sqrt(β_i + Σ_j γ_ij x_j²)``; IGDN (ICLR 2017, eq. 9) is
``y_i = x_i · sqrt(β_i + Σ_j γ_ij x_j²)``. :func:`gdn` has a hand-written backward pass
(``bench/conv_speed.py`` times it against JAX's differentiation of the formula).
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxcodec.layers.bounds import nonnegative, nonnegative_init

__all__ = ["GDN", "activation_layer", "gdn"]


class GDN(nn.Module):
    """Generalized divisive normalization over channels (Ballé et al. 2016/2017).

    ``GDN(x)_i = x_i / sqrt(β_i + Σ_j γ_ij x_j²)`` and, with ``inverse=True``,
    ``IGDN(x)_i = x_i · sqrt(β_i + Σ_j γ_ij x_j²)``. β and γ are stored through
    :func:`nonnegative` (β ≥ ``beta_min``, γ ≥ 0) and start at β = 1, γ = 0.1·I, the
    initialisation of CompressAI and tfc.
    """

    inverse: bool = False
    beta_min: float = 1e-6
    gamma_init: float = 0.1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        beta_s = self.param("beta", lambda key, s: nonnegative_init(jnp.ones(s)), (c,))
        gamma_s = self.param("gamma", lambda key, s: nonnegative_init(self.gamma_init * jnp.eye(s[0])), (c, c))
        beta = nonnegative(beta_s, self.beta_min)
        gamma = nonnegative(gamma_s)
        return gdn(x, beta, gamma, self.inverse)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def gdn(x: jax.Array, beta: jax.Array, gamma: jax.Array, inverse: bool = False) -> jax.Array:
    """``x_i / sqrt(β_i + Σ_j γ_ij x_j²)`` over the last axis (``x_i · sqrt(…)`` when
    ``inverse``), with the gradient of ``γ`` summed over row blocks: XLA's single
    product contracting every pixel runs 1.3× slower on CPU (measured at 8×64×64×128)."""
    return _gdn_fwd(x, beta, gamma, inverse)[0]


def _gdn_fwd(x, beta, gamma, inverse):
    # gamma[i, j] weighs x_j² in the norm of channel i.
    norm = jnp.dot(x * x, gamma.T) + beta
    scale = jnp.sqrt(norm) if inverse else lax.rsqrt(norm)
    return x * scale, (x, scale, gamma)


def _gdn_bwd(inverse, res, g):
    x, scale, gamma = res
    # d scale / d norm: ½ / sqrt(norm) for IGDN, −½ · norm^(−3/2) for GDN.
    dnorm = g * x * (0.5 / scale if inverse else -0.5 * scale * scale * scale)
    c = x.shape[-1]
    rows = x.size // c
    blocks = next(b for b in (8, 4, 2, 1) if rows % b == 0)
    dn, sq = dnorm.reshape(blocks, rows // blocks, c), (x * x).reshape(blocks, rows // blocks, c)
    dgamma = jnp.sum(lax.dot_general(dn, sq, (((1,), (1,)), ((0,), (0,)))), axis=0)
    dbeta = jnp.sum(dnorm.reshape(-1, c), axis=0)
    dx = g * scale + 2.0 * x * jnp.dot(dnorm, gamma)
    return dx, dbeta, dgamma


gdn.defvjp(_gdn_fwd, _gdn_bwd)


def activation_layer(kind: str, inverse: bool) -> Callable[[jax.Array], jax.Array]:
    """The non-linearity between convolutions: ``"gdn"`` (IGDN when ``inverse``) or ``"relu"``."""
    if kind == "gdn":
        return GDN(inverse=inverse)
    if kind == "relu":
        return nn.relu
    raise ValueError(f"activation must be 'gdn' or 'relu', got {kind!r}")
