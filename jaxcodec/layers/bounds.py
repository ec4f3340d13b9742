"""Lower bounds with a useful gradient, and the non-negative re-parameterisation of GDN.

* :func:`lower_bound` -- ``max(x, bound)`` whose gradient still flows where it pushes
  ``x`` upwards (TensorFlow Compression's ``lower_bound``, CompressAI's ``LowerBound``).
* :func:`nonnegative` / :func:`nonnegative_init` -- Ballé's parameterisation of GDN's β
  and γ by their square roots ("Efficient nonlinear transforms for lossy image
  compression", PCS 2018, Sec. 2; tfc ``GDNParameter``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["PEDESTAL", "REPARAM_OFFSET", "lower_bound", "nonnegative", "nonnegative_init"]


@jax.custom_vjp
def lower_bound(x: jax.Array, bound: float | jax.Array) -> jax.Array:
    """``max(x, bound)`` whose gradient still flows where it pushes ``x`` upwards.

    A plain ``max`` has zero gradient below the bound, so a parameter stuck there can
    never come back. As in TensorFlow Compression's ``lower_bound`` and CompressAI's
    ``LowerBound``, the gradient passes through when ``x >= bound`` or when gradient
    descent would increase ``x`` (``g < 0``).
    """
    return jnp.maximum(x, bound)


def _lower_bound_fwd(x, bound):
    return jnp.maximum(x, bound), (x, bound)


def _lower_bound_bwd(res, g):
    x, bound = res
    pass_through = (x >= bound) | (g < 0)
    return jnp.where(pass_through, g, 0.0).astype(x.dtype), jnp.zeros_like(bound)


lower_bound.defvjp(_lower_bound_fwd, _lower_bound_bwd)

# Ballé's re-parameterisation offset (tfc.GDN / CompressAI's NonNegativeParametrizer).
REPARAM_OFFSET = 2.0**-18
PEDESTAL = REPARAM_OFFSET**2


def nonnegative(stored: jax.Array, minimum: float = 0.0) -> jax.Array:
    """Maps a stored parameter ``s`` to ``max(s, sqrt(minimum + ε²))² − ε²`` (ε = 2⁻¹⁸).

    GDN's β and γ must stay non-negative (β ≥ ``minimum``) for the normalisation to be
    defined. Storing their square root keeps them non-negative and makes gradient steps
    on small values relatively smaller; the pedestal ε² keeps the square root's
    gradient finite near zero (Ballé 2018, tfc ``GDNParameter``; CompressAI's
    ``NonNegativeParametrizer``).
    """
    bound = (minimum + PEDESTAL) ** 0.5
    return lower_bound(stored, bound) ** 2 - PEDESTAL


def nonnegative_init(value: jax.Array) -> jax.Array:
    """Inverse of :func:`nonnegative`: the stored value that represents ``value``."""
    return jnp.sqrt(jnp.maximum(value + PEDESTAL, PEDESTAL))
