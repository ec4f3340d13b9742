"""Pixel shuffles: channels to space and back (the sub-pixel rearrangement of Shi et al.,
"Real-time single image and video super-resolution using an efficient sub-pixel
convolutional neural network", CVPR 2016, Sec. 2.2)."""

from __future__ import annotations

import jax

__all__ = ["depth_to_space", "space_to_depth"]


def depth_to_space(x: jax.Array, block: int = 2) -> jax.Array:
    """``(N, H, W, b²·C) → (N, b·H, b·W, C)``; channel ``(r·b + s)·C + c`` goes to
    pixel offset ``(r, s)`` (the sub-pixel shuffle of Shi et al. 2016)."""
    n, h, w, c = x.shape
    if c % (block * block):
        raise ValueError(f"depth_to_space needs channels divisible by {block * block}, got {c}")
    c_out = c // (block * block)
    x = x.reshape(n, h, w, block, block, c_out).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h * block, w * block, c_out)


def space_to_depth(x: jax.Array, block: int = 2) -> jax.Array:
    """Inverse of :func:`depth_to_space`: ``(N, b·H, b·W, C) → (N, H, W, b²·C)``."""
    n, h, w, c = x.shape
    if h % block or w % block:
        raise ValueError(f"space_to_depth needs height and width divisible by {block}, got {h}x{w}")
    x = x.reshape(n, h // block, block, w // block, block, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h // block, w // block, block * block * c)
