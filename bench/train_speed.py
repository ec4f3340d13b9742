"""Training speed: jaxcodec's Ballé 2017 factorized prior against CompressAI's, side by side.

Measures optimisation steps per second of ``FactorizedTask(default_config(quality=3))``
(N=128, M=192, GDN, sub-pixel synthesis, Adam lr 1e-4, gradient clipping at norm 1,
``λ·255²·MSE + bpp`` with λ=0.0067; ``--upsample transposed`` gives CompressAI's exact
synthesis taps instead of the default sub-pixel layers) at batch ``--batch`` of ``--patch``² real photo
patches, through the engine's own jitted step (``jaxcodec.engine.make_train_step``:
state donated, step rng folded in), and the same for CompressAI's
``FactorizedPrior(128, 192)`` (same loss, Adam lr 1e-4, ``clip_grad_norm_(1.0)``,
``torch.set_num_threads(2)``) on the same patches in a subprocess of ``--peer-python``.
Compilation and ``--warmup`` steps are excluded; both sides cycle through the same
pre-loaded pool of batches, so no data loading is timed. The sides run one after the
other, never at the same time.

    .venv/bin/python bench/train_speed.py --peer-python /work/peer-venv/bin/python --steps 20

Patches come from scikit-image's sample photos, or from ``--photos DIR``. The last
line is ``ratio: X`` with X = jaxcodec steps/s / CompressAI steps/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import add_peer_args, configure_allocator, load_photos, random_crops, run_peer  # noqa: E402
from jaxcodec import engine, sharding  # noqa: E402
from jaxcodec.layers import ALGORITHMS  # noqa: E402
from jaxcodec.models.factorized import FactorizedTask, default_config  # noqa: E402


def jax_train_speed(pool: np.ndarray, steps: int, warmup: int, quality: int, upsample: str,
                    conv_algorithm: str = "auto") -> dict:
    """Steps/s of the engine's jitted, donating train step over ``pool`` (uint8 batches)."""
    config = default_config(quality=quality)
    config.model.conv_algorithm = conv_algorithm
    config.model.upsample = upsample
    task = FactorizedTask(config)
    mesh = sharding.data_mesh(jax.local_devices()[:1])
    data_sharding = sharding.batch_sharding(mesh)
    batches = [sharding.shard_batch(b.astype(np.float32) / 255.0, data_sharding) for b in pool]
    init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
    state = engine.make_init(task, mesh)(init_rng, batches[0])
    step_fn = engine.make_train_step(task, mesh, train_rng)

    t = time.perf_counter()
    state, metrics = step_fn(state, batches[0], np.int32(0))  # compiles
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t
    for i in range(1, 1 + warmup):
        state, metrics = step_fn(state, batches[i % len(batches)], np.int32(i))
    jax.block_until_ready(state)

    t = time.perf_counter()
    for i in range(1 + warmup, 1 + warmup + steps):
        state, metrics = step_fn(state, batches[i % len(batches)], np.int32(i))
    jax.block_until_ready(state)
    dt = time.perf_counter() - t
    return {"steps_per_s": steps / dt, "images_per_s": steps * pool.shape[1] / dt, "seconds": dt,
            "compile_s": compile_s, "last_loss": float(metrics["loss"]), "lmbda": task.lmbda,
            "clip_norm": float(config.model.clip_norm or 0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_peer_args(parser)
    parser.add_argument("--steps", type=int, default=50, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps after compilation")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--quality", type=int, default=3)
    parser.add_argument("--pool", type=int, default=8, help="distinct batches cycled through")
    parser.add_argument("--photos", default=None, help="folder of photos (default: scikit-image samples)")
    parser.add_argument("--upsample", choices=("subpixel", "transposed"), default="subpixel",
                        help="synthesis up-sampling: the default sub-pixel layers (36 taps per 2x2 output "
                             "block), or transposed convolutions with CompressAI's 25 taps")
    parser.add_argument("--conv-algorithm", choices=ALGORITHMS, default="auto",
                        help="jaxcodec's sub-pixel convolutions (model.conv_algorithm)")
    args = parser.parse_args()
    malloc = configure_allocator()

    photos = load_photos(args.photos)
    pool = random_crops(photos, args.pool * args.batch, args.patch).reshape(
        args.pool, args.batch, args.patch, args.patch, 3)
    print(f"train speed: factorized prior N=128 M=192 ({args.upsample} synthesis), batch {args.batch} x "
          f"{args.patch}x{args.patch} real photo patches ({len(photos)} photos), Adam, {args.steps} timed steps "
          f"after {args.warmup} warm-up steps")

    j = jax_train_speed(pool, args.steps, args.warmup, args.quality, args.upsample, args.conv_algorithm)
    print(f"jaxcodec   (jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} cores, {malloc}, {args.conv_algorithm} conv): "
          f"{j['steps_per_s']:.3f} steps/s, {j['images_per_s']:.2f} images/s "
          f"(compile {j['compile_s']:.1f} s, loss {j['last_loss']:.1f})")

    if not args.peer_python:
        print("no --peer-python given: CompressAI side not run, no ratio measured")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "batches.npy")
        np.save(path, pool)
        c = run_peer(args.peer_python, "train", path, "--steps", str(args.steps), "--warmup", str(args.warmup),
                     "--lmbda", str(j["lmbda"]), "--clip-norm", str(j["clip_norm"]),
                     "--device", args.peer_device, malloc=args.peer_malloc)
    print(f"compressai (torch {c['torch']}, {c['device']}, {c['threads']} threads, {args.peer_malloc} malloc): {c['steps_per_s']:.3f} steps/s, "
          f"{c['images_per_s']:.2f} images/s (loss {c['last_loss']:.1f})")
    print(f"ratio: {j['steps_per_s'] / c['steps_per_s']:.3f}")


if __name__ == "__main__":
    main()
