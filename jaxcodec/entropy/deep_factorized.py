"""Ballé's "deep factorized" density: a learned univariate model per latent channel.

Ballé, Minnen, Singh, Hwang & Johnston, "Variational image compression with a scale
hyperprior", ICLR 2018, Appendix 6.1. Each channel ``c`` has its own cumulative
distribution ``F_c(y) = σ(f_K ∘ … ∘ f_1(y))``, a composition of small dense layers

    f_k(x) = g_k(H_k x + b_k),   g_k(x) = x + tanh(a_k) ⊙ tanh(x)   (k < K),
    f_K(x) = sigmoid-logit output of H_K x + b_K,

with ``H_k = softplus(Ĥ_k)`` element-wise non-negative and ``tanh(a_k) > −1``, so every
``f_k`` is monotonically increasing and ``F_c`` is a valid CDF. With ``filters =
(3, 3, 3)`` the layers map ``1 → 3 → 3 → 3 → 1``.

The model of a rounded latent (or of a latent plus uniform noise, its training
proxy) is the probability of its unit bin (Ballé 2018, eq. 6 / Appendix 6.1):

    p(ŷ) = F(ŷ + ½) − F(ŷ − ½),

computed from the logits ``l± = f(ŷ ± ½)`` with the *sign trick*: with
``s = −sign(l₊ + l₋)`` it equals ``|σ(s·l₊) − σ(s·l₋)|``, which subtracts two small
numbers in the far tails instead of two numbers close to 1 (tfc / CompressAI). The
likelihood is bounded below by ``1e-9`` so that ``−log2 p`` stays finite.

The density is written once, :func:`cumulative_logits`, a pure function of the
parameters and an array module: :class:`DeepFactorized` evaluates it with ``jax.numpy``
(float32, differentiable, for training) and the table builder with NumPy in float64
(the same arithmetic in the same order; the CoDeX / TensorFlow Compression arrangement
of one model function for both).

Integer tables (:func:`build_tables`) are computed once, from the trained
parameters, in NumPy **float64**, and then stored with the model: the coder never
evaluates the density in float32 at coding time, so streams decode bit-exactly on
any machine. Instead of CompressAI's auxiliary quantile loss, the support of each
table is found numerically at table-build time: it is the smallest integer range
holding all but ``tail_mass`` of the density. Values outside it are escaped by
:func:`jaxcodec.entropy.coder.encode_symbols`, never clipped.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.entropy import coder as entropy
from jaxcodec.layers.bounds import lower_bound

__all__ = [
    "DeepFactorized",
    "cumulative_logits",
    "float64_layers",
    "LIKELIHOOD_BOUND",
    "build_tables",
    "cdf_logits_np",
    "pmf_np",
    "support",
]

LIKELIHOOD_BOUND = 1e-9
DEFAULT_TAIL_MASS = 1e-9
_MAX_HALF_RANGE = 1 << 15  # widest support searched for a table: ±32768
_MAX_SYMBOLS = 1 << 12  # longest table (escape included); rarer values are escaped


Layer = tuple[Any, Any, Any]  # (matrix (C, d_out, d_in), bias (C, d_out, 1), factor (C, d_out, 1) or None)


def cumulative_logits(layers: Sequence[Layer], y: Any, xnp: Any) -> Any:
    """Logit of ``F_c(y)`` (module docstring) for ``y`` of shape ``(n, C)``, channels the
    minor axis, with the array module ``xnp`` (``jax.numpy`` or ``numpy``).

    ``layers`` are ``(matrix, bias, factor)`` per layer, ``factor`` None for the last:
    ``h ← b + softplus(Ĥ) h`` then ``h ← h + tanh(a) ⊙ tanh(h)`` (Ballé et al. 2018,
    Appendix 6.1). One ``(n, C)`` array per unit: with d ≤ 3 units the dense layers are a
    few broadcast multiply-adds that XLA fuses and vectorises over C (a trailing unit axis
    of size 3 vectorises poorly on CPU); flattened to ``(n, C)`` because XLA:CPU (jax 0.10)
    crashes on the gradient of the same computation on higher-rank tensors. NumPy in
    float64 evaluates the same sums in the same order, for the integer tables.
    """
    units = [y]
    for matrix, bias, factor in layers:
        weights = xnp.logaddexp(matrix, 0.0)  # softplus: H_k = softplus(Ĥ_k) ≥ 0
        out = []
        for j in range(matrix.shape[1]):
            h = bias[:, j, 0] + sum(u * weights[:, j, i] for i, u in enumerate(units))
            if factor is not None:
                h = h + xnp.tanh(factor[:, j, 0]) * xnp.tanh(h)
            out.append(h)
        units = out
    return units[0]


def _uniform(low: float, high: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, low, high)

    return init


class DeepFactorized(nn.Module):
    """Per-channel deep factorized density over the last axis of a latent tensor.

    Parameters (``C`` channels, layer ``k`` with ``d_in → d_out`` units):
    ``matrix_k (C, d_out, d_in)`` (``H_k = softplus(matrix_k)``), ``bias_k (C, d_out, 1)``
    and, for every layer but the last, ``factor_k (C, d_out, 1)``. The initialisation
    is CompressAI's: the composition starts as a logistic of scale ``init_scale``
    (roughly uniform over ``±init_scale``), biases uniform in ``[−½, ½]``.
    """

    channels: int
    filters: Sequence[int] = (3, 3, 3)
    init_scale: float = 10.0

    def setup(self):
        dims = (1,) + tuple(self.filters) + (1,)
        scale = self.init_scale ** (1.0 / (len(dims) - 1))
        c = self.channels
        matrices, biases, factors = [], [], []
        for k in range(len(dims) - 1):
            init = float(np.log(np.expm1(1.0 / scale / dims[k + 1])))
            shape = (c, dims[k + 1], dims[k])
            matrices.append(self.param(f"matrix_{k}", nn.initializers.constant(init), shape))
            biases.append(self.param(f"bias_{k}", _uniform(-0.5, 0.5), (c, dims[k + 1], 1)))
            if k < len(dims) - 2:
                factors.append(self.param(f"factor_{k}", nn.initializers.zeros, (c, dims[k + 1], 1)))
        self.matrices, self.biases, self.factors = matrices, biases, factors

    def logits_cumulative(self, y: jax.Array) -> jax.Array:
        """Logit of ``F_c(y)`` for ``y`` of shape ``(..., C)``; same shape out
        (:func:`cumulative_logits` with ``jax.numpy``)."""
        factors = list(self.factors) + [None] * (len(self.matrices) - len(self.factors))
        layers = list(zip(self.matrices, self.biases, factors))
        return cumulative_logits(layers, y.reshape(-1, y.shape[-1]), jnp).reshape(y.shape)

    def __call__(self, y: jax.Array) -> jax.Array:
        """Likelihood ``p(y) = F(y + ½) − F(y − ½)`` of ``y (..., C)``, bounded below
        by :data:`LIKELIHOOD_BOUND` (with gradients that can lift it off the bound)."""
        # Two calls, not one on the stacked pair: XLA fuses the stack into every unit of
        # the layers and recomputes it (7× slower forward on CPU, measured).
        lower = self.logits_cumulative(y - 0.5)
        upper = self.logits_cumulative(y + 0.5)
        sign = jax.lax.stop_gradient(-jnp.sign(lower + upper))
        lik = jnp.abs(jax.nn.sigmoid(sign * upper) - jax.nn.sigmoid(sign * lower))
        return lower_bound(lik, LIKELIHOOD_BOUND)


# --------------------------------------------------------------------------------------
# NumPy float64 evaluation and integer tables
# --------------------------------------------------------------------------------------


def float64_layers(params: Mapping[str, Any]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """``[(matrix, bias, factor or None), ...]`` as float64 arrays, in layer order."""
    params = params.get("params", params)
    layers, k = [], 0
    while f"matrix_{k}" in params:
        factor = params.get(f"factor_{k}")
        layers.append(
            (
                np.asarray(params[f"matrix_{k}"], np.float64),
                np.asarray(params[f"bias_{k}"], np.float64),
                None if factor is None else np.asarray(factor, np.float64),
            )
        )
        k += 1
    if not layers:
        raise ValueError("no deep factorized parameters (matrix_0, bias_0, ...) found")
    return layers


def cdf_logits_np(params: Mapping[str, Any], y: np.ndarray) -> np.ndarray:
    """Float64 logit of ``F_c(y)``; ``y`` has shape ``(C, n)``, one row per channel
    (:func:`cumulative_logits` with NumPy)."""
    y = np.asarray(y, np.float64)
    return cumulative_logits(float64_layers(params), y.T, np).T


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, relatively accurate in both tails."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def pmf_np(params: Mapping[str, Any], values: np.ndarray) -> np.ndarray:
    """Float64 ``F(v + ½) − F(v − ½)`` (sign trick) for integer ``values (C, n)``."""
    values = np.asarray(values, np.float64)
    lower = cdf_logits_np(params, values - 0.5)
    upper = cdf_logits_np(params, values + 0.5)
    sign = -np.sign(lower + upper)
    sign[sign == 0] = -1.0
    return np.abs(_sigmoid(sign * upper) - _sigmoid(sign * lower))


def support(params: Mapping[str, Any], tail_mass: float = DEFAULT_TAIL_MASS) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the integer range ``[lo, hi]`` outside which each tail holds at
    most ``tail_mass / 2`` of the density (found on a grid that widens until it does)."""
    limit = float(np.log(tail_mass / 2) - np.log1p(-tail_mass / 2))  # logit(tail_mass / 2)
    half = 64
    while True:
        grid = np.arange(-half, half + 1, dtype=np.float64)
        num_channels = float64_layers(params)[0][0].shape[0]
        edges = np.broadcast_to(grid, (num_channels, grid.size))
        below = cdf_logits_np(params, edges - 0.5) <= limit  # F(v - ½) ≤ tail/2
        above = cdf_logits_np(params, edges + 0.5) >= -limit  # 1 − F(v + ½) ≤ tail/2
        covered = below[:, 0].all() and above[:, -1].all()
        if covered or half >= _MAX_HALF_RANGE:
            break
        half *= 4
    # lo: the largest v with F(v - ½) ≤ tail/2; hi: the smallest v with 1 − F(v + ½) ≤ tail/2.
    lo = np.where(below.any(axis=1), grid.size - 1 - np.argmax(below[:, ::-1], axis=1), 0)
    hi = np.where(above.any(axis=1), np.argmax(above, axis=1), grid.size - 1)
    hi = np.maximum(hi, lo)
    return grid[lo].astype(np.int64), grid[hi].astype(np.int64)


def build_tables(
    params: Mapping[str, Any],
    *,
    tail_mass: float = DEFAULT_TAIL_MASS,
    precision: int = entropy.DEFAULT_PRECISION,
) -> tuple[np.ndarray, np.ndarray]:
    """Integer coding tables of every channel's density, in float64.

    All tables share one length ``K``: ``K − 1`` regular symbols starting at
    ``offsets[c]`` (the channel's lower support bound; channels with a narrower
    support get the true, tiny probabilities of the values above it) and the escape
    symbol, which receives the remaining mass. See :func:`jaxcodec.entropy.coder.quantize_pmf`.

    Args:
      params: the :class:`DeepFactorized` parameters (with or without the ``"params"`` level).
      tail_mass: total probability left outside each table's regular symbols.
      precision: bits of the integer frequencies.

    Returns:
      ``(freqs (C, K) int32, offsets (C,) int32)``.
    """
    lo, hi = support(params, tail_mass)
    width = int(np.max(hi - lo + 1))
    num_regular = min(width, _MAX_SYMBOLS - 1, (1 << precision) - 1)
    values = lo[:, None] + np.arange(num_regular)[None, :]
    pmf = pmf_np(params, values)
    escape = np.clip(1.0 - pmf.sum(axis=1, keepdims=True), 0.0, None)
    freqs = entropy.quantize_pmf(np.concatenate([pmf, escape], axis=1), precision)
    return freqs, lo.astype(np.int32)
