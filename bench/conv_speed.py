"""Convolution speed on this machine: how close the factorized model's layers run to peak,
and what :func:`jaxcodec.ops.conv.down_conv2d`'s phase-split input gradient saves.

For the analysis transform's largest layer (batch 8, 64×64×128 → 32×32×128, 5×5, stride 2)
and the synthesis transform's largest (32×32×128 → 64×64×128 sub-pixel, 3×3 to 512):

* forward GFLOP/s of each (2 · multiply-adds / time);
* the input gradient of the strided layer by XLA's own transposed convolution vs by
  :func:`jaxcodec.ops.conv.down_conv2d` (four stride-1 phases), side by side;
* the sub-pixel layer's ``3×3`` convolution by XLA vs by ``F(4×4, 3×3)`` Winograd
  (:mod:`jaxcodec.ops.winograd`), forward and forward + backward, at the training shape and
  at a 512×768 image's (1×128×192×128 → 512), side by side; GFLOP/s count the direct
  convolution's multiply-adds for both;
* the strided layer's forward pass by XLA vs by Winograd over the space-to-depth input
  (:func:`jaxcodec.ops.conv.strided_conv`), at the training shape and at a 512×768
  image's (1×256×384×128), and its input gradient by direct vs Winograd phases;
* the strided layer's weight gradient by XLA over the whole batch vs image by image,
  summed (:func:`jaxcodec.ops.conv.strided_weight_grad`);
* the last synthesis layer (64×64×128 → 12 channels, 3×3): XLA's gradient vs
  :func:`jaxcodec.ops.conv.thin_conv2d`'s; GDN at 8×64×64×128: JAX's differentiation
  of the formula vs :func:`jaxcodec.layers.gdn.gdn`'s backward pass.

    .venv/bin/python bench/conv_speed.py

The last line is ``ratio: X`` with X = XLA input-gradient time / phase-split time
(``auto``: Winograd phases where they pay).
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


from _common import configure_allocator
from jaxcodec.layers import gdn
from jaxcodec.ops import conv, conv_impl
from jaxcodec.ops.pixel_shuffle import depth_to_space

_DIMS = ("NHWC", "HWIO", "NHWC")


def _by(algorithm: str, fn):
    """``fn`` traced under ``conv_impl(algorithm)`` (the block inside the jitted body)."""

    def run(*args):
        with conv_impl(algorithm):
            return fn(*args)

    return run


def _seconds(fn, *args, repeats: int = 10) -> float:
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    configure_allocator()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(8, 64, 64, 128)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(5, 5, 128, 128)) * 0.01, jnp.float32)
    g = jnp.asarray(rng.normal(size=(8, 32, 32, 128)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(8, 32, 32, 128)), jnp.float32)
    w_sub = jnp.asarray(rng.normal(size=(3, 3, 128, 512)) * 0.01, jnp.float32)

    def strided(x, w):
        return lax.conv_general_dilated(x, w, (2, 2), ((2, 2), (2, 2)), dimension_numbers=_DIMS)

    def input_grad(layer):
        return jax.jit(lambda x, w, g: jax.vjp(lambda v: layer(v, w), x)[1](g)[0])

    print(f"jax {jax.__version__}, {jax.default_backend()}, {os.cpu_count()} cores; median of 10")
    macs = 8 * 32 * 32 * 25 * 128 * 128
    t = _seconds(jax.jit(strided), x, w)
    print(f"analysis 64->32 layer, forward: {t * 1e3:.1f} ms, {2 * macs / t / 1e9:.0f} GFLOP/s")
    macs_sub = 8 * 32 * 32 * 9 * 128 * 512
    t = _seconds(jax.jit(lambda y, w: depth_to_space(conv.conv2d(y, w))), y, w_sub)
    print(f"synthesis 32->64 sub-pixel layer, forward: {t * 1e3:.1f} ms, {2 * macs_sub / t / 1e9:.0f} GFLOP/s")
    for name, shape in (("batch 8, 32x32", (8, 32, 32, 128)), ("one 512x768 image, 128x192", (1, 128, 192, 128))):
        v = jnp.asarray(rng.normal(size=shape), jnp.float32)
        macs_v = int(np.prod(shape)) * 9 * 512
        line = []
        for algorithm in ("direct", "winograd"):
            forward = jax.jit(_by(algorithm, conv.stride1_conv))
            both = jax.jit(jax.grad(_by(algorithm, lambda v, w: jnp.sum(conv.stride1_conv(v, w) ** 2)), (0, 1)))
            tf, tb = _seconds(forward, v, w_sub), _seconds(both, v, w_sub)
            line.append(f"{algorithm} {tf * 1e3:.1f} ms ({2 * macs_v / tf / 1e9:.0f} GFLOP/s) / {tb * 1e3:.1f} ms")
        print(f"sub-pixel 3x3 conv 128->512, {name}, forward / forward+backward: {'; '.join(line)}")
    for name, shape in (("batch 8, 64x64", (8, 64, 64, 128)), ("one 512x768 image, 256x384", (1, 256, 384, 128))):
        v = jnp.asarray(rng.normal(size=shape), jnp.float32)
        times = [_seconds(jax.jit(_by(a, conv.strided_conv)), v, w) for a in ("direct", "winograd")]
        print(f"strided 5x5 layer 128->128, {name}, forward: direct {times[0] * 1e3:.1f} ms, "
              f"space-to-depth Winograd {times[1] * 1e3:.1f} ms")

    np.testing.assert_allclose(input_grad(strided)(x, w, g), input_grad(conv.down_conv2d)(x, w, g),
                               rtol=1e-4, atol=1e-4)
    t_xla = _seconds(input_grad(strided), x, w, g)
    t_phase = _seconds(input_grad(_by("direct", conv.down_conv2d)), x, w, g)
    t_auto = _seconds(input_grad(conv.down_conv2d), x, w, g)
    print(f"input gradient of the strided layer: XLA {t_xla * 1e3:.1f} ms, phase-split {t_phase * 1e3:.1f} ms, "
          f"phase-split by Winograd (auto) {t_auto * 1e3:.1f} ms")

    whole = jax.jit(lambda x, w, g: jax.vjp(lambda w_: strided(x, w_), w)[1](g)[0])
    chunked = jax.jit(lambda x, w, g: conv.strided_weight_grad(x, w, g, backend="cpu"))
    np.testing.assert_allclose(whole(x, w, g), chunked(x, w, g), rtol=1e-4, atol=1e-2)
    t_a, t_b = _seconds(whole, x, w, g), _seconds(chunked, x, w, g)
    print(f"weight gradient of the strided layer: XLA over the batch of 8 {t_a * 1e3:.1f} ms "
          f"({2 * macs / t_a / 1e9:.0f} GFLOP/s), XLA image by image, summed (strided_weight_grad) "
          f"{t_b * 1e3:.1f} ms ({2 * macs / t_b / 1e9:.0f} GFLOP/s)")

    v = jnp.asarray(rng.normal(size=(8, 64, 64, 128)), jnp.float32)
    w_thin = jnp.asarray(rng.normal(size=(3, 3, 128, 12)) * 0.01, jnp.float32)
    g_thin = jnp.asarray(rng.normal(size=(8, 64, 64, 12)), jnp.float32)

    def grads(layer):
        return jax.jit(jax.grad(lambda v, w, g: jnp.sum(layer(v, w) * g), (0, 1)))

    def xla_same(v, w):
        return lax.conv_general_dilated(v, w, (1, 1), "SAME", dimension_numbers=_DIMS)

    t_a, t_b = _seconds(grads(xla_same), v, w_thin, g_thin), _seconds(grads(conv.thin_conv2d), v, w_thin, g_thin)
    print(f"last synthesis layer 128->12 at 8x64x64, backward: XLA {t_a * 1e3:.1f} ms, thin_conv2d {t_b * 1e3:.1f} ms")

    beta = jnp.ones((128,))
    gamma = jnp.asarray(0.1 * np.eye(128) + 0.001 * rng.random((128, 128)), jnp.float32)

    def formula(v, b, c, inverse=False):
        return v * lax.rsqrt(jnp.dot(v * v, c.T) + b)

    def gdn_grads(fn):
        return jax.jit(jax.grad(lambda v, b, c: jnp.sum(fn(v, b, c) * v), (0, 1, 2)))

    t_a, t_b = _seconds(gdn_grads(formula), v, beta, gamma), _seconds(gdn_grads(gdn), v, beta, gamma)
    print(f"GDN at 8x64x64x128, forward+backward: differentiated formula {t_a * 1e3:.1f} ms, gdn {t_b * 1e3:.1f} ms")
    print(f"ratio: {t_xla / t_auto:.2f}")


if __name__ == "__main__":
    main()
