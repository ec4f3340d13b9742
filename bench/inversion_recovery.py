r"""Precise latent recovery: Lipton & Tripathi's (2017, arXiv:1702.04782, Sec. 3) test.

Draw ``z*`` from the prior U[-1, 1]^d, render ``x = G(z*)``, recover ``z`` from ``x``
by Adam (:func:`jaxcodec.codecs.inversion.invert`; ``--restarts`` random starts per trial,
the lowest image loss kept; ``--refine`` Levenberg–Marquardt iterations after Adam)
and count a trial as recovered when ``mean |z - z*| < 0.01``. Reports the rate for
unconstrained descent, projected clipping and stochastic clipping.

    python bench/inversion_recovery.py            # the shipped gan-mnist generator, Adam only
    python bench/inversion_recovery.py --restarts 4 --refine 30

``--model`` is a shipped model name, a trained ``gan`` workdir, or ``none`` for a freshly
initialised generator of ``--config``. All trials of one mode run as one batch.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np


from jaxcodec.codecs import inversion
from _common import load_generator, run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="gan-mnist",
                        help="shipped model name or trained gan workdir; none: a fresh generator")
    parser.add_argument("--config", default="configs/gan_mnist.py", help="generator of --model none")
    parser.add_argument("--trials", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--restarts", type=int, default=1, help="random starts per trial, lowest loss kept")
    parser.add_argument("--refine", type=int, default=0,
                        help="Levenberg-Marquardt iterations after Adam (jaxcodec.codecs.inversion); 0 = Adam only")
    parser.add_argument("--threshold", type=float, default=1e-2, help="success: mean |z - z*| below this")
    parser.add_argument("--modes", default="none,project,stochastic")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    task, params, described = load_generator(args.model, args.config, args.seed)
    d = task.latent_dim
    z_true = jax.random.uniform(jax.random.PRNGKey(args.seed + 1), (args.trials, d), minval=-1.0, maxval=1.0)
    images = jax.jit(task.generator.apply)(params, z_true)
    print(f"generator: {described}, d={d}")
    # Conditioning of the problem: singular values of the generator's Jacobian at 16 latents.
    jac = jax.vmap(jax.jacfwd(lambda z: task.generator.apply(params, z[None]).reshape(-1)))(z_true[:16])
    sv = np.linalg.svd(np.asarray(jac), compute_uv=False)
    cond = np.median((sv[:, 0] / sv[:, -1]) ** 2)
    print(f"Jacobian singular values at {len(sv)} latents: median largest {np.median(sv[:, 0]):.3g}, median "
          f"smallest {np.median(sv[:, -1]):.3g}; median condition number of JtJ {cond:.3g}")
    print(f"{args.trials} trials, {args.steps} Adam steps (lr {args.lr}, cosine), {args.refine} Levenberg-Marquardt "
          f"iterations, {args.restarts} start(s) each, "
          f"success = mean|z - z*| < {args.threshold}")
    print(f"{'clipping':<12} {'recovered':>10} {'median MAE':>11} {'mean MAE':>9} {'median MSE(x)':>14} {'time s':>7}")
    for mode in args.modes.split(","):
        clip = None if mode == "none" else mode
        t0 = time.perf_counter()
        z, loss = inversion.invert(
            task.generator.apply, params, images, latent_dim=d, steps=args.steps, lr=args.lr,
            loss="l2", restarts=args.restarts, clip=clip, refine=args.refine, rng=jax.random.PRNGKey(args.seed + 2),
        )
        z = np.asarray(z)
        seconds = time.perf_counter() - t0
        mae = np.abs(z - np.asarray(z_true)).mean(axis=1)
        rate = float(np.mean(mae < args.threshold))
        print(f"{mode:<12} {100 * rate:>9.1f}% {np.median(mae):>11.2e} {mae.mean():>9.2e} "
              f"{np.median(np.asarray(loss)):>14.2e} {seconds:>7.1f}", flush=True)


if __name__ == "__main__":
    run_main(main)
