"""Winograd convolution: the ``3×3`` layers with fewer multiplications.

Lavin & Gray, "Fast algorithms for convolutional neural networks", CVPR 2016, Sec. 4:
the minimal filtering algorithm ``F(m×m, r×r)`` computes an ``m×m`` tile of a
correlation with an ``r×r`` kernel as

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A

where ``d`` is the ``(m+r−1)²`` input tile. Summed over input channels, the
element-wise product becomes ``(m+r−1)²`` independent matrix products
``M[ξ,ν] = V[ξ,ν] · U[ξ,ν]`` (tiles × C_in times C_in × C_out), so a layer costs
``(m+r−1)²/m²`` multiplications per output and channel pair instead of ``r²``.
With ``F(4×4, 3×3)`` (the matrices of the paper's Sec. 4.2, interpolation points
0, ±1, ±2, ∞) that is 2.25 instead of 9: on the 2-core CPU the wide layers of the
factorized prior's synthesis run about 1.6-1.9× faster than XLA's direct convolution,
whose matrix-product kernels are already near the cores' peak (``bench/conv_speed.py``).
Small layers lose: the transforms are a fixed cost of memory passes
(:func:`jaxcodec.layers.stride1_conv` chooses).
The transforms add rounding: the result differs from the direct convolution by about
2·10⁻⁵ of its largest value in float32.

Everything is matrix products and element-wise sums, so JAX differentiates it with
the same structure (the gradients are Winograd transforms too).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

__all__ = ["TILE", "conv3x3"]

TILE = 4  # m of F(m×m, 3×3)

# F(4×4, 3×3), Lavin & Gray 2016, Sec. 4.2.
_BT = np.array(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    np.float64,
)
_G = np.array(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    np.float64,
)
_AT = np.array(
    [
        [1, 1, 1, 1, 1, 0],
        [0, 1, -1, 2, -2, 0],
        [0, 1, 1, 4, 4, 0],
        [0, 1, -1, 8, -8, 1],
    ],
    np.float64,
)
_ALPHA = TILE + 2  # input tile size m + r − 1


def _combine(matrix: np.ndarray, terms: list[jax.Array]) -> list[jax.Array]:
    """``[Σ_j matrix[i, j] · terms[j] for each row i]``, skipping zero coefficients."""
    out = []
    for row in matrix:
        acc = None
        for coef, term in zip(row, terms):
            if coef == 0:
                continue
            t = term if coef == 1 else -term if coef == -1 else term * float(coef)
            acc = t if acc is None else acc + t
        out.append(acc)
    return out


def _kernel_transform(k: jax.Array) -> jax.Array:
    """``U = G k Gᵀ`` per channel pair: ``(3, 3, C_in, C_out) → (36, C_in, C_out)``."""
    rows = _combine(_G, [k[a] for a in range(3)])  # each (3, C_in, C_out)
    return jnp.stack([t for r in rows for t in _combine(_G, [r[b] for b in range(3)])])


def _input_tiles(xp: jax.Array, th: int, tw: int) -> jax.Array:
    """``V = Bᵀ d B`` of every input tile, ``(36, N·th·tw, C)``: rows first (tiles
    start every ``TILE`` pixels and overlap by two), then columns."""
    n, _, _, c = xp.shape
    rows = _combine(_BT, [xp[:, a : a + TILE * th : TILE] for a in range(_ALPHA)])
    tiles = [t for r in rows for t in _combine(_BT, [r[:, :, b : b + TILE * tw : TILE] for b in range(_ALPHA)])]
    return jnp.stack(tiles).reshape(_ALPHA * _ALPHA, n * th * tw, c)


def _output_tiles(m: jax.Array, n: int, th: int, tw: int, ho: int, wo: int) -> jax.Array:
    """``Y = Aᵀ M A`` of every tile, assembled into the ``(N, ho, wo, C_out)`` output."""
    m = m.reshape(_ALPHA, _ALPHA, n, th, tw, -1)
    rows = _combine(_AT, [m[a] for a in range(_ALPHA)])
    y = jnp.stack([jnp.stack(_combine(_AT, [r[b] for b in range(_ALPHA)])) for r in rows])  # (4, 4, n, th, tw, d)
    y = y.transpose(2, 3, 0, 4, 1, 5).reshape(n, TILE * th, TILE * tw, -1)
    return y[:, :ho, :wo]


def conv3x3(x: jax.Array, w: jax.Array) -> jax.Array:
    """Stride-1 SAME ``3×3`` convolution (NHWC input, HWIO kernel) by ``F(4×4, 3×3)``;
    equals ``lax.conv_general_dilated(x, w, (1, 1), "SAME")`` up to float rounding."""
    if w.shape[:2] != (3, 3):
        raise ValueError(f"conv3x3 needs a 3x3 kernel, got {w.shape[:2]}")
    n, h, wd, _ = x.shape
    th, tw = -(-h // TILE), -(-wd // TILE)
    xp = jnp.pad(x, ((0, 0), (1, TILE * th + 1 - h), (1, TILE * tw + 1 - wd), (0, 0)))
    v = _input_tiles(xp, th, tw)
    m = lax.dot_general(v, _kernel_transform(w), (((2,), (1,)), ((0,), (0,))))  # (36, tiles, C_out)
    return _output_tiles(m, n, th, tw, h, wd)
