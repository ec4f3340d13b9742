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
(:func:`jaxcodec.ops.conv.stride1_conv` chooses).
The transforms add rounding: the result differs from the direct convolution by about
2·10⁻⁵ of its largest value in float32.

The gradients are Winograd transforms too (Lavin & Gray's Sec. 5: the transposed
algorithm). :func:`conv3x3` has a custom VJP that keeps the backward pass in the tile
domain: with ``M = V·U`` the forward product, the output gradient's tiles give
``dM = A dY Aᵀ``; then ``dU = Vᵀ·dM`` and ``dV = dM·Uᵀ`` are matrix products, the
kernel gradient is ``Gᵀ dU G`` and the input gradient ``B dV Bᵀ``, its overlapping
tiles added into place by whole-tile shifts. JAX's own transpose of the forward
pass reaches the same numbers through one full-size padded copy per tile row and
column, several times slower on CPU.
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
# Aᵀ M A of all tiles at once: with the 6×6 tile positions flattened, the output
# transform is one product with the Kronecker matrix Aᵀ ⊗ Aᵀ (16 × 36), which XLA runs
# faster than 24 separate row and column sums of full-size arrays.
_KRON_AT = np.kron(_AT, _AT)


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


def _leading_product(matrix: np.ndarray, z: jax.Array) -> jax.Array:
    """``matrix (p, q)`` applied along the leading axis of ``z (q, …)``: ``(p, …)``."""
    return lax.dot_general(jnp.asarray(matrix, z.dtype), z, (((1,), (0,)), ((), ())))


def _output_tiles(m: jax.Array, n: int, th: int, tw: int, ho: int, wo: int) -> jax.Array:
    """``Y = Aᵀ M A`` of every tile, assembled into the ``(N, ho, wo, C_out)`` output."""
    y = _leading_product(_KRON_AT, m).reshape(TILE, TILE, n, th, tw, -1)
    y = y.transpose(2, 3, 0, 4, 1, 5).reshape(n, TILE * th, TILE * tw, -1)
    return y[:, :ho, :wo]


def _tiles_of_output(g: jax.Array, th: int, tw: int) -> jax.Array:
    """``(N, ho, wo, C) → (4, 4, N, th, tw, C)``: the output (gradient) cut into its
    non-overlapping ``TILE×TILE`` tiles, zero past the image."""
    n, ho, wo, c = g.shape
    g = jnp.pad(g, ((0, 0), (0, TILE * th - ho), (0, TILE * tw - wo), (0, 0)))
    return g.reshape(n, th, TILE, tw, TILE, c).transpose(2, 4, 0, 1, 3, 5)


def _shift_tiles(z: jax.Array, axis: int) -> jax.Array:
    """Moves every tile one tile further along ``axis`` (zeros enter at the start)."""
    pad = [(0, 0)] * z.ndim
    pad[axis] = (1, 0)
    return lax.slice_in_dim(jnp.pad(z, pad), 0, z.shape[axis], axis=axis)


def _overlap_add(d: list[list[jax.Array]], axis: int) -> list[list[jax.Array]]:
    """Folds the last two of the ``6`` tile rows (``axis`` 1: along tile rows, or
    columns with ``axis`` 2) onto the first two rows of the next tile: tiles start
    every ``TILE`` pixels, so position ``TILE + i`` of tile ``t`` is position ``i`` of
    tile ``t + 1``. ``d[a][b]`` is an ``(N, th, tw, C)`` array; each must already have
    one spare tile at the end of ``axis``."""
    if axis == 1:
        return [
            [d[a][b] + _shift_tiles(d[a + TILE][b], 1) if a < _ALPHA - TILE else d[a][b] for b in range(len(d[a]))]
            for a in range(TILE)
        ]
    return [
        [row[b] + _shift_tiles(row[b + TILE], 2) if b < _ALPHA - TILE else row[b] for b in range(TILE)] for row in d
    ]


@jax.custom_vjp
def conv3x3(x: jax.Array, w: jax.Array) -> jax.Array:
    """Stride-1 SAME ``3×3`` convolution (NHWC input, HWIO kernel) by ``F(4×4, 3×3)``;
    equals ``lax.conv_general_dilated(x, w, (1, 1), "SAME")`` up to float rounding,
    gradients included (computed in the tile domain; see the module docstring)."""
    return _conv3x3_fwd(x, w)[0]


def _conv3x3_fwd(x, w):
    if w.shape[:2] != (3, 3):
        raise ValueError(f"conv3x3 needs a 3x3 kernel, got {w.shape[:2]}")
    n, h, wd, _ = x.shape
    th, tw = -(-h // TILE), -(-wd // TILE)
    xp = jnp.pad(x, ((0, 0), (1, TILE * th + 1 - h), (1, TILE * tw + 1 - wd), (0, 0)))
    v = _input_tiles(xp, th, tw)
    u = _kernel_transform(w)
    m = lax.dot_general(v, u, (((2,), (1,)), ((0,), (0,))))  # (36, tiles, C_out)
    return _output_tiles(m, n, th, tw, h, wd), (v, u, x.shape)


def _conv3x3_bwd(res, g):
    v, u, (n, h, wd, cin) = res
    th, tw = -(-h // TILE), -(-wd // TILE)
    # dM = A dY Aᵀ per tile: the transposed Kronecker product of the forward pass.
    gt = _tiles_of_output(g, th, tw).reshape(TILE * TILE, -1)
    dm = _leading_product(_KRON_AT.T, gt).reshape(_ALPHA * _ALPHA, n * th * tw, -1)
    du = lax.dot_general(v, dm, (((1,), (1,)), ((0,), (0,))))  # (36, C_in, C_out)
    dv = lax.dot_general(dm, u, (((2,), (2,)), ((0,), (0,))))  # (36, tiles, C_in)
    # Kernel: U = G w Gᵀ, so dw = Gᵀ dU G.
    du = du.reshape(_ALPHA, _ALPHA, *du.shape[1:])
    krows = _combine(_G.T, [du[a] for a in range(_ALPHA)])  # 3 × (6, C_in, C_out)
    dw = jnp.stack([jnp.stack(_combine(_G.T, [r[b] for b in range(_ALPHA)])) for r in krows])
    # Input: V = Bᵀ d B per tile, so each tile's gradient is B dV Bᵀ; tiles overlap by two.
    dv = dv.reshape(_ALPHA, _ALPHA, n, th, tw, cin)
    dv = jnp.pad(dv, ((0, 0), (0, 0), (0, 0), (0, 1), (0, 1), (0, 0)))  # a spare tile per axis
    drows = _combine(_BT.T, [dv[a] for a in range(_ALPHA)])  # 6 × (6, N, th+1, tw+1, C_in)
    d = [_combine(_BT.T, [r[b] for b in range(_ALPHA)]) for r in drows]  # 6 × 6 × (N, th+1, tw+1, C_in)
    d = _overlap_add(_overlap_add(d, 1), 2)  # 4 × 4
    dxp = jnp.stack([jnp.stack(r) for r in d])  # (4, 4, N, th+1, tw+1, C_in)
    dxp = dxp.transpose(2, 3, 0, 4, 1, 5).reshape(n, TILE * (th + 1), TILE * (tw + 1), cin)
    return dxp[:, 1 : 1 + h, 1 : 1 + wd], dw


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)
