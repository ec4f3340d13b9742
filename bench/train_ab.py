r"""Two versions of the factorized model's train step, timed alternately in one process.

Run-to-run noise on a small machine (about ±10% between runs of ``train_speed.py``) hides
changes of a few percent. This compiles the default train step and one with a variant
applied, then times them in turns (``--rounds`` rounds of ``--steps`` steps each), so both
see the same machine state, and reports the median step time of each::

    .venv/bin/python bench/train_ab.py --variant xla-weight-grad

Variants (each one undoes one of jaxcodec's choices):

* ``xla-weight-grad``: strided layers' weight gradients by XLA over the whole batch
  (not image by image, :func:`jaxcodec.ops.conv.strided_weight_grad`);
* ``direct``: traced under ``jaxcodec.ops.conv_impl("direct")`` (no Winograd);
* ``winograd``: traced under ``conv_impl("winograd")`` (Winograd everywhere, the
  space-to-depth strided forward included).

Ends with ``ratio: X`` = variant's median step time / default's (above 1: the default is
faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np


from _common import load_photos, positive, random_crops, run_main
from jaxcodec.ops import conv, conv_impl
from jaxcodec.train import engine
from jaxcodec.train import sharding
from jaxcodec.train.tasks.factorized import FactorizedTask, default_config

VARIANTS = ("xla-weight-grad", "direct", "winograd")


def build(variant: str | None, batches, quality: int):
    """``[step, state]`` of a compiled train step, with ``variant`` applied while tracing."""
    config = default_config(quality=quality)
    saved = conv._WEIGHT_GRAD_CHUNK
    if variant == "xla-weight-grad":
        conv._WEIGHT_GRAD_CHUNK = 2**62
    algorithm = variant if variant in ("direct", "winograd") else "auto"
    try:
        task = FactorizedTask(config)
        mesh = sharding.data_mesh(jax.local_devices()[:1])
        init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
        state = engine.make_init(task, mesh)(init_rng, batches[0])
        step = engine.make_train_step(task, mesh, train_rng)
        with conv_impl(algorithm):  # read while the step is traced; the compiled step keeps it
            state, _ = step(state, batches[0], np.int32(0))  # traces and compiles with the variant
        jax.block_until_ready(state)
    finally:
        conv._WEIGHT_GRAD_CHUNK = saved
    return [step, state]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--rounds", type=positive, default=8)
    parser.add_argument("--steps", type=positive, default=5, help="steps per round and side")
    parser.add_argument("--batch", type=positive, default=8)
    parser.add_argument("--patch", type=positive, default=128)
    parser.add_argument("--quality", type=int, default=3)
    args = parser.parse_args()

    mesh = sharding.data_mesh(jax.local_devices()[:1])
    pool = random_crops(load_photos(None), 8 * args.batch, args.patch)
    pool = pool.reshape(8, args.batch, args.patch, args.patch, 3)
    batches = [sharding.shard_batch(b.astype(np.float32) / 255.0, sharding.batch_sharding(mesh)) for b in pool]
    sides = {"default": build(None, batches, args.quality), args.variant: build(args.variant, batches, args.quality)}
    print(f"train step A/B: factorized prior, batch {args.batch} x {args.patch}x{args.patch}, "
          f"{args.rounds} rounds of {args.steps} steps per side, jax {jax.__version__} {jax.default_backend()}")
    times: dict[str, list[float]] = {name: [] for name in sides}
    count = 1
    for r in range(args.rounds):
        for name, side in sides.items():
            step, state = side
            t = time.perf_counter()
            for _ in range(args.steps):
                state, _ = step(state, batches[count % len(batches)], np.int32(count))
                count += 1
            jax.block_until_ready(state)
            times[name].append((time.perf_counter() - t) / args.steps)
            side[1] = state
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {t[-1] * 1e3:.0f} ms" for n, t in times.items()),
              flush=True)
    medians = {n: statistics.median(t) for n, t in times.items()}
    for name, m in medians.items():
        print(f"{name:<16} median {m * 1e3:.1f} ms per step")
    print(f"ratio: {medians[args.variant] / medians['default']:.3f}")


if __name__ == "__main__":
    run_main(main)
