"""Function-preserving widening of trained convolutional transforms (more hidden channels).

A trained ``g_a``/``g_s`` of ``N`` hidden channels is embedded in one of ``N' > N``: the
old weights keep their places, every new channel gets the fresh (random) weights of its
own initialisation on the way in, and **zero** weights on the way out into the old
channels, so the wider network computes exactly what the narrow one did (Chen, Goodfellow
& Shlens, "Net2Net: accelerating learning via knowledge transfer", ICLR 2016, Sec. 2-3,
with the new units silenced rather than split: the zero outgoing weights receive a
gradient from the first step, the random incoming ones break the symmetry between the new
units; their incoming kernels start small, :data:`NEW_KERNEL_SCALE`). GDN keeps this property with the new channels' cross terms at zero (``γ_ij = 0``
between an old and a new channel, which the fresh initialisation ``γ = 0.1·I`` already has).

Sub-pixel convolutions (:class:`jaxcodec.layers.SubPixelConv`) keep ``4·F`` outputs laid out
as ``(r·2 + s)·F + c`` (:func:`jaxcodec.ops.pixel_shuffle.depth_to_space`), so their output
axis is widened per sub-pixel group; any output axis made of equal blocks (the hyper-synthesis'
``[μ, σ]``) widens per block the same way (``output_groups``).

The same embedding adds *latent* channels (``M' > M``): ``g_a``'s last layer gains outputs
with small fresh kernels, ``h_a``'s first layer takes the new inputs with zero weights, and
``h_s`` predicts a mean and a scale for each new channel from small fresh weights, so the new
channels start near zero under the smallest coding scale and cost almost no bits. (A latent
channel silenced on its way into ``g_s`` too never comes alive; the mean-scale task gives it
live weights there and a zero mean instead: :mod:`jaxcodec.train.tasks.hyperprior`.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["can_widen", "widen", "widen_table"]

SUBPIXEL_GROUPS = 4  # 2x2 sub-pixel offsets per output channel
# Factor on the new channels' fresh kernels. Adam's first steps move every weight by about its
# learning rate whatever its gradient, so the zero weights out of the new channels all move at
# once; at full scale (unit activations through GDN/IGDN) the first update alone took a trained
# model from 30 dB to 12 dB on its training patches. Small new activations keep those first
# steps small; the incoming kernels are then soon Adam's own.
NEW_KERNEL_SCALE = 0.01


def _grouped(shape: tuple[int, ...], grouped_axis: int | None, groups: int) -> tuple[int, ...]:
    if grouped_axis is None:
        return shape
    axis = grouped_axis % len(shape)
    return shape[:axis] + (groups, shape[axis] // groups) + shape[axis + 1 :]


def _embed(source: np.ndarray, fresh: np.ndarray, grouped_axis: int | None, in_axis: int | None,
           scale: float = 1.0, groups: int = SUBPIXEL_GROUPS) -> np.ndarray:
    """``fresh·scale`` with ``source`` in its leading corner (per block of ``groups`` equal
    blocks along ``grouped_axis``), and zeros from the new inputs (``in_axis`` beyond the
    source's size) into every old output."""
    src = np.asarray(source, np.float32).reshape(_grouped(source.shape, grouped_axis, groups))
    out = (np.asarray(fresh, np.float32) * np.float32(scale)).reshape(_grouped(fresh.shape, grouped_axis, groups))
    out[tuple(slice(0, n) for n in src.shape)] = src
    if in_axis is not None and fresh.shape[in_axis] > source.shape[in_axis]:
        silenced = [slice(0, n) for n in src.shape]  # old outputs ...
        silenced[in_axis % source.ndim] = slice(source.shape[in_axis], None)  # ... from the new inputs
        out[tuple(silenced)] = 0.0
    return out.reshape(fresh.shape)


def _walk(source: Mapping, fresh: Mapping, groups: int, new_scale: float) -> dict:
    """Every leaf of ``fresh`` with its ``source`` embedded: a kernel ``(k, k, in, out)``
    silences its new inputs and scales its fresh values by ``new_scale``; kernels and biases
    whose outputs come in ``groups > 1`` blocks widen per block; GDN's β and γ need the
    embedding alone."""
    out = {}
    for name, value in fresh.items():
        if isinstance(value, Mapping):
            out[name] = _walk(source[name], value, groups, new_scale)
            continue
        grouped = -1 if groups > 1 and name in ("kernel", "bias") else None
        in_axis, scale = (2, new_scale) if name == "kernel" else (None, 1.0)
        out[name] = _embed(np.asarray(source[name]), np.asarray(value), grouped, in_axis, scale, groups)
    return out


def can_widen(source: Any, fresh: Any) -> bool:
    """Whether ``source`` and ``fresh`` have the same names and ranks, no array of ``source``
    is larger than its counterpart in ``fresh``, and at least one is smaller."""
    import jax

    if jax.tree.structure(source) != jax.tree.structure(fresh):
        return False
    shapes = [(np.shape(s), np.shape(f)) for s, f in zip(jax.tree.leaves(source), jax.tree.leaves(fresh))]
    if not shapes or any(len(s) != len(f) or any(a > b for a, b in zip(s, f)) for s, f in shapes):
        return False
    return any(s != f for s, f in shapes)


def widen_table(source: np.ndarray, fresh: np.ndarray) -> np.ndarray:
    """``fresh`` (a per-channel table such as the conditional decoder's, channels last) with the
    narrower ``source`` in its leading corner: the new channels keep their fresh values."""
    return _embed(np.asarray(source), np.asarray(fresh), None, None)


def widen(source: Mapping, fresh: Mapping, subpixel: bool = False, new_scale: float = NEW_KERNEL_SCALE,
          output_groups: int | None = None) -> dict:
    """The parameters ``fresh`` of a wider transform with the narrower trained ``source``
    embedded so that the wider one computes the same function (module docstring).
    ``subpixel``: the transform's convolutions are sub-pixel up-samplings (``g_s``);
    ``output_groups``: instead, the outputs are that many equal blocks, each widened in place
    (2 for ``h_s``'s ``[μ, σ]``); ``new_scale``: factor on the fresh kernels of the new
    channels (:data:`NEW_KERNEL_SCALE`)."""
    groups = int(output_groups) if output_groups else (SUBPIXEL_GROUPS if subpixel else 1)
    return _walk(source, fresh, groups, float(new_scale))
