r"""Inversion throughput: one vmap-batched jitted descent vs a per-image Python loop.

GAN reversal (seed 001) recovers a generator latent per image by Adam on ``L(G(z), x)``
(:mod:`jaxcodec.codecs.inversion`). This compares, with the same loss, steps, learning-rate
schedule and clipping:

(a) batched: :func:`jaxcodec.codecs.inversion.invert` on all ``--batch`` images at once (one
    vmapped computation over the batch, the project's default loop for the backend);
(b) looped: the per-image step of :func:`jaxcodec.codecs.inversion.make_inversion_step`,
    jitted once for a single image and driven image by image, step by step, from
    Python, on the first ``--loop-images`` images (a subset: its images/s rate is
    comparable with (a)'s).

Targets are ``G(z*)`` for ``z*`` drawn from the prior U[-1, 1]^d. Compilation is
excluded (both paths are warmed up; results are block_until_ready'd). One restart per
image. The last line is ``ratio: X`` = batched images/s / looped images/s::

    .venv/bin/python bench/inversion_speed.py --steps 200

``--model`` picks the generator: a shipped model (default ``gan-mnist``), a trained
``gan`` workdir, or ``none`` for a freshly initialised one of ``--config`` (same shapes
and operations, so the same speed).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np


from _common import load_generator, run_main
from jaxcodec.codecs import inversion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="gan-mnist",
                        help="shipped model name or trained gan workdir; none: a fresh generator")
    parser.add_argument("--config", default="configs/gan_mnist.py", help="generator of --model none")
    parser.add_argument("--batch", type=int, default=256, help="images inverted as one batch (a)")
    parser.add_argument("--loop-images", type=int, default=16, help="images inverted one by one (b)")
    parser.add_argument("--steps", type=int, default=200, help="Adam steps per image, both paths")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--loss", default="l2")
    parser.add_argument("--clip", default="stochastic", help="stochastic, project or none")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    clip = None if args.clip == "none" else args.clip
    settings = dict(steps=args.steps, lr=args.lr, loss=args.loss, clip=clip, schedule="cosine")

    task, params, described = load_generator(args.model, args.config, args.seed)
    d, apply = task.latent_dim, task.generator.apply
    z_true = inversion.init_latents(jax.random.PRNGKey(args.seed + 1), (args.batch, d))
    images = jax.jit(apply)(params, z_true).block_until_ready()
    keys = jax.random.split(jax.random.PRNGKey(args.seed + 2), args.batch)  # one key per image
    print(f"backend {jax.default_backend()} ({jax.device_count()} device(s), {os.cpu_count()} CPUs), "
          f"inversion loop {inversion.default_loop()}")
    print(f"generator: {described}; d={d}, "
          f"images {tuple(images.shape[1:])} = G(z*), z* ~ U[-1,1]^d")
    print(f"{args.steps} Adam steps (lr {args.lr}, cosine), loss {args.loss}, clip {args.clip}, 1 restart",
          flush=True)

    # (a) batched: the project's invert on the whole batch.
    def run_batched():
        z, loss = inversion.invert(apply, params, images, latent_dim=d, rng=keys, restarts=1, **settings)
        return jax.block_until_ready((z, loss))

    t0 = time.perf_counter()
    run_batched()  # warm-up: compiles (same shapes and settings as the timed call)
    print(f"(a) warm-up (compile + one run): {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    z_batch, loss_batch = run_batched()
    batched_s = time.perf_counter() - t0
    batched_rate = args.batch / batched_s
    print(f"(a) batched: {args.batch} images in {batched_s:.2f} s = {batched_rate:.2f} images/s", flush=True)

    # (b) looped: the same per-image step, jitted once for one image, driven from Python.
    init, one_step = inversion.make_inversion_step(apply, **settings)
    step = jax.jit(one_step)

    @jax.jit
    def start(key):  # the same starts and clipping noise as invert's image i with restarts=1
        init_key, noise_key = jax.random.split(key)
        z0 = inversion.init_latents(init_key, (1, d))[0]
        return z0, init(z0), jax.random.fold_in(noise_key, 0)

    final_loss = jax.jit(lambda p, z, x: inversion.latent_loss(z, x, p, apply, args.loss))

    def invert_one(i):
        z, state, noise = start(keys[i])
        for t in range(args.steps):
            z, state, _ = step(params, z, state, images[i], noise, t)
        return jax.block_until_ready((z, final_loss(params, z, images[i])))

    invert_one(0)  # warm-up: compiles start, step and final_loss
    n = min(args.loop_images, args.batch)
    z_loop, loss_loop = np.zeros((n, d), np.float32), np.zeros(n, np.float32)
    t0 = time.perf_counter()
    for i in range(n):
        z_loop[i], loss_loop[i] = invert_one(i)
        if (i + 1) % max(n // 4, 1) == 0:
            so_far = time.perf_counter() - t0
            print(f"(b) looped: {i + 1}/{n} images, {so_far:.1f} s, {(i + 1) / so_far:.2f} images/s", flush=True)
    looped_s = time.perf_counter() - t0
    looped_rate = n / looped_s
    print(f"(b) looped:  {n} images in {looped_s:.2f} s = {looped_rate:.2f} images/s")

    # Same starts and noise, but round-off differs between batch sizes, and stochastic clipping
    # can turn a tiny difference into a different trajectory: compare losses, not only z.
    gap = np.abs(z_loop - np.asarray(z_batch)[:n]).max()
    mae = np.abs(np.asarray(z_batch) - np.asarray(z_true)).mean(axis=1)
    print(f"check on the {n} looped images: max |z_looped - z_batched| = {gap:.2e}, median MSE(x) "
          f"looped {np.median(loss_loop):.2e} / batched {np.median(np.asarray(loss_batch)[:n]):.2e}; "
          f"all {args.batch}: median mean|z - z*| {np.median(mae):.2e}")
    print(f"ratio: {batched_rate / looped_rate:.1f}")


if __name__ == "__main__":
    run_main(main)
