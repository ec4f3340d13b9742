"""Training speed: jaxcodec's Ballé 2017 factorized prior against CompressAI's, side by side.

Measures optimisation steps per second of ``FactorizedTask(default_config(quality=3))``
(N=128, M=192, GDN, sub-pixel synthesis, Adam lr 1e-4, gradient clipping at norm 1,
``λ·255²·MSE + bpp`` with λ=0.0067; ``--upsample transposed`` gives CompressAI's exact
synthesis taps instead of the default sub-pixel layers) at batch ``--batch`` of ``--patch``² real photo
patches, through the engine's own jitted step (``jaxcodec.train.engine.make_train_step``:
state donated, step rng folded in), and the same for CompressAI's
``FactorizedPrior(128, 192)`` (same loss, Adam lr 1e-4, ``clip_grad_norm_(1.0)``,
``torch.set_num_threads(2)``) on the same patches in a subprocess of ``--peer-python``.
Compilation and ``--warmup`` steps are excluded; both sides cycle through the same
pre-loaded pool of batches, so no data loading is timed. The sides run one after the
other, never at the same time, taking turns for ``--rounds`` rounds of ``--steps`` steps
(jaxcodec's state carries on from round to round; CompressAI starts a fresh subprocess
with its own warm-up each round), so a slow spell of the machine falls on both; each
round's ratio is printed, and steps/s are counted over all rounds.

    .venv/bin/python bench/train_speed.py --peer-python /work/peer-venv/bin/python --steps 50 --rounds 3

``--model mbt2018-mean`` times the mean-scale hyperprior instead (``MeanScaleTask``, N=128,
M=192, a quality drawn per image) against CompressAI's ``MeanScaleHyperprior(128, 192)``
trained at quality 4's λ.

Patches come from scikit-image's sample photos, or from ``--photos DIR``. The last
line is ``ratio: X`` with X = jaxcodec steps/s / CompressAI steps/s.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np


from _common import add_peer_args, configure_allocator, load_photos, positive, random_crops, take_turns
from jaxcodec.train import engine
from jaxcodec.train import sharding
from jaxcodec.ops import conv_impl
from jaxcodec.ops.conv import ALGORITHMS
from jaxcodec.models.hyperprior import LAMBDAS
from jaxcodec.train.tasks import hyperprior as hyperprior_task
from jaxcodec.train.tasks.factorized import FactorizedTask, default_config


class JaxTraining:
    """The engine's jitted, donating train step over ``pool`` (uint8 batches), compiled and
    warmed up on construction; :meth:`run` times further steps from where it left off."""

    def __init__(self, pool: np.ndarray, warmup: int, quality: int, upsample: str, conv_algorithm: str = "auto",
                 model: str = "factorized"):
        if model == "factorized":
            config = default_config(quality=quality)
            config.model.upsample = upsample
            task = FactorizedTask(config)
            self.lmbda = task.lmbda
        else:  # one model for every rate: λ drawn per image; the peer trains at quality 4's λ
            config = hyperprior_task.default_config()
            config.learning_rate = 1e-4
            task = hyperprior_task.MeanScaleTask(config)
            self.lmbda = LAMBDAS[3]
        mesh = sharding.data_mesh(jax.local_devices()[:1])
        data_sharding = sharding.batch_sharding(mesh)
        self.batches = [sharding.shard_batch(b.astype(np.float32) / 255.0, data_sharding) for b in pool]
        self.images = pool.shape[1]
        init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
        self.state = engine.make_init(task, mesh)(init_rng, self.batches[0])
        self.step_fn = engine.make_train_step(task, mesh, train_rng)
        self.clip_norm = float(config.model.clip_norm or 0.0)
        self.i = 0
        t = time.perf_counter()
        with conv_impl(conv_algorithm):  # read while the step is traced; the compiled step keeps it
            self._steps(1)  # compiles
        self.compile_s = time.perf_counter() - t
        self._steps(warmup)

    def _steps(self, n: int) -> None:
        for _ in range(n):
            self.state, self.metrics = self.step_fn(self.state, self.batches[self.i % len(self.batches)],
                                                    np.int32(self.i))
            self.i += 1
        jax.block_until_ready(self.state)

    def run(self, steps: int) -> dict:
        t = time.perf_counter()
        self._steps(steps)
        dt = time.perf_counter() - t
        return {"steps": steps, "seconds": dt, "steps_per_s": steps / dt, "images_per_s": steps * self.images / dt,
                "last_loss": float(self.metrics["loss"])}


def combined(rounds: list[dict]) -> dict:
    """Steps/s over all rounds: all steps over all their seconds."""
    steps, seconds = sum(r["steps"] for r in rounds), sum(r["seconds"] for r in rounds)
    images = sum(r["images_per_s"] * r["seconds"] for r in rounds)
    return {"steps_per_s": steps / seconds, "images_per_s": images / seconds, "last_loss": rounds[-1]["last_loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_peer_args(parser)
    parser.add_argument("--steps", type=positive, default=50, help="timed steps per side and round")
    parser.add_argument("--rounds", type=positive, default=3,
                        help="rounds in which the two sides take turns (steps/s over all rounds reported)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps after compilation (each peer round too)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--quality", type=int, default=3)
    parser.add_argument("--pool", type=int, default=8, help="distinct batches cycled through")
    parser.add_argument("--photos", default=None, help="folder of photos (default: scikit-image samples)")
    parser.add_argument("--upsample", choices=("subpixel", "transposed"), default="subpixel",
                        help="synthesis up-sampling: the default sub-pixel layers (36 taps per 2x2 output "
                             "block), or transposed convolutions with CompressAI's 25 taps")
    parser.add_argument("--conv-algorithm", choices=ALGORITHMS, default="auto",
                        help="jaxcodec's convolution algorithm (jaxcodec.ops.conv_impl)")
    parser.add_argument("--model", choices=("factorized", "mbt2018-mean"), default="factorized",
                        help="the factorized prior, or the mean-scale hyperprior (N=128, M=192 both; CompressAI's "
                             "FactorizedPrior or MeanScaleHyperprior as the peer)")
    args = parser.parse_args()
    malloc = configure_allocator()

    photos = load_photos(args.photos)
    pool = random_crops(photos, args.pool * args.batch, args.patch).reshape(
        args.pool, args.batch, args.patch, args.patch, 3)
    title = "factorized prior" if args.model == "factorized" else "mean-scale hyperprior"
    print(f"train speed: {title} N=128 M=192 ({args.upsample} synthesis), batch {args.batch} x "
          f"{args.patch}x{args.patch} real photo patches ({len(photos)} photos), Adam, {args.rounds} rounds of "
          f"{args.steps} timed steps per side after {args.warmup} warm-up steps")

    jaxcodec = JaxTraining(pool, args.warmup, args.quality, args.upsample, args.conv_algorithm, args.model)
    name = (f"jaxcodec   (jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} cores, {malloc}, "
            f"{args.conv_algorithm} conv)")

    def report(j: dict) -> None:
        print(f"{name}: {j['steps_per_s']:.3f} steps/s, {j['images_per_s']:.2f} images/s "
              f"(compile {jaxcodec.compile_s:.1f} s, loss {j['last_loss']:.1f})")

    if not args.peer_python:
        report(combined([jaxcodec.run(args.steps) for _ in range(args.rounds)]))
        print("no --peer-python given: CompressAI side not run, no ratio measured")
        return
    peer_args = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--lmbda", str(jaxcodec.lmbda),
                 "--clip-norm", str(jaxcodec.clip_norm), "--device", args.peer_device, "--model", args.model]
    ours, theirs = take_turns(
        args.rounds, pool, lambda: jaxcodec.run(args.steps), args.peer_python, "train", peer_args,
        speed=lambda r: r["steps_per_s"], describe=lambda r: f"{r['steps_per_s']:.3f} steps/s", malloc=args.peer_malloc)
    j, c = combined(ours), combined(theirs)
    report(j)
    print(f"compressai (torch {theirs[-1]['torch']}, {theirs[-1]['device']}, {theirs[-1]['threads']} threads, "
          f"{args.peer_malloc} malloc): {c['steps_per_s']:.3f} steps/s, {c['images_per_s']:.2f} images/s "
          f"(loss {c['last_loss']:.1f})")
    print(f"ratio: {j['steps_per_s'] / c['steps_per_s']:.3f}")

if __name__ == "__main__":
    main()
