r"""Training speed of the MNIST autoencoders (seeds 003 and 004) through the real engine.

Runs :func:`jaxcodec.train.engine.train` — the same jitted, state-donating step, data
pipeline, progress logging and checkpointing as ``train.py`` — for a few hundred
steps at batch 128 on MNIST, and prints per model

* training images/s (compilation excluded: the engine's whole-run figure), and
* the share of wall time spent outside the jitted step (reading and batching the data,
  host-to-device copies), which the engine measures in
  :class:`jaxcodec.train.progress.Progress`; the target is below 10%.

The deep autoencoder runs without RBM pre-training here (pre-training is a separate,
one-off phase; its CD-1 steps are not the fine-tuning step measured).

    python bench/mnist_train_speed.py                               # embedded 5000-digit sample
    python bench/mnist_train_speed.py --data npz:/path/to/mnist.npz --steps 600
"""

from __future__ import annotations

import argparse
import importlib
import tempfile


from _common import configure_allocator
from absl import logging

from jaxcodec.train import engine
from jaxcodec.train.tasks import build_task

MODELS = {
    "mnist_conv_ae (seed 004)": ("configs.mnist_conv_ae", {}),
    "mnist_deep_ae (seed 003)": ("configs.mnist_deep_ae", {"pretrain": False}),
}


def measure(config_module: str, model_overrides: dict, data: str, steps: int, batch: int) -> engine.TrainResult:
    config = importlib.import_module(config_module).get_config()
    config.data.train = data
    config.data.eval = ""
    config.batch_size = batch
    config.num_steps = steps
    config.log_every = max(steps // 4, 1)
    config.checkpoint_every = 0  # one save, at the end
    config.eval_every = 0
    for key, value in model_overrides.items():
        config.model[key] = value
    if "finalize_batches" in config.model:
        config.model.finalize_batches = 1
    with tempfile.TemporaryDirectory() as workdir:
        return engine.train(build_task(config), config, workdir)


def main() -> None:
    configure_allocator()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="sample:mnist", help="dataset spec (sample:mnist, npz:PATH, tfds:mnist)")
    p.add_argument("--steps", type=int, default=400, help="training steps per model")
    p.add_argument("--batch", type=int, default=128, help="global batch size")
    args = p.parse_args()
    logging.set_verbosity(logging.WARNING)
    rows = []
    for name, (module, overrides) in MODELS.items():
        print(f"== {name}: {args.steps} steps, batch {args.batch}, {args.data}", flush=True)
        result = measure(module, overrides, args.data, args.steps, args.batch)
        rows.append((name, result.steps_per_sec * args.batch, result.host_fraction))
    print()
    print(f"{'model':28s} {'images/s':>10s} {'outside jit':>12s}")
    for name, images_per_sec, host in rows:
        print(f"{name:28s} {images_per_sec:10.0f} {100 * host:11.1f}%")
    worst = max(host for _, _, host in rows)
    print(f"max share outside the jitted step: {100 * worst:.1f}% (target < 10%)")


if __name__ == "__main__":
    main()
