r"""Mixed precision's cost and effect: the same training in float32 and with bfloat16
convolutions (``config.model.compute_dtype``, :func:`jaxcodec.ops.conv_dtype`).

Both runs start from the same parameters and see the same batches. Reported per dtype:
the train step's FLOPs as XLA's cost analysis counts them, the median step time, the
achieved TFLOP/s (and its share of ``--peak-tflops`` when given: an H200's dense peak is
about 989 TFLOP/s in bfloat16 and 67 in float32), the training loss over the last fifth of
the steps, and the float32 evaluation loss (rounded latents) on held-out crops::

    .venv/bin/python bench/mixed_precision.py --model mbt2018_mean --steps 300
    python bench/mixed_precision.py --model factorized --batch 16 --patch 256 --steps 2000 --peak-tflops 989,67   # on a GPU

Writes the two loss curves to ``--plot`` (PNG) when given. Ends with
``loss change: X%`` (bfloat16's final training loss against float32's) and
``speed ratio: Y`` (float32's step time / bfloat16's).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from _common import load_photos, positive, random_crops, run_main
from jaxcodec.train.tasks import factorized as factorized_task
from jaxcodec.train.tasks import hyperprior as hyperprior_task

DTYPES = ("float32", "bfloat16")


def make_task(model: str, dtype: str, features: int | None, latent: int | None):
    """The training task of ``model`` with its convolutions in ``dtype``."""
    module = factorized_task if model == "factorized" else hyperprior_task
    config = module.default_config()
    if features:
        config.model.features = features
    if latent:
        config.model.latent_channels = latent
    config.model.compute_dtype = dtype
    config.learning_rate = 1e-4
    return factorized_task.FactorizedTask(config) if model == "factorized" else hyperprior_task.MeanScaleTask(config)


def flops_of(compiled) -> float:
    """FLOPs of one call of a compiled program, by XLA's cost analysis (0 if it gives none)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", 0.0))


def run(model: str, dtype: str, args, batches, held_out) -> dict:
    task = make_task(model, dtype, args.features, args.latent)
    state = task.init_state(jax.random.key(0), batches[0])
    step = jax.jit(task.train_step, donate_argnums=0)
    compiled = step.lower(state, batches[0], jax.random.key(0)).compile()
    flops = flops_of(compiled)
    losses, times = [], []
    for i in range(args.steps):
        t = time.perf_counter()
        state, metrics = compiled(state, batches[i % len(batches)], jax.random.key(i))
        losses.append(float(metrics["loss"]))  # waits for the step
        times.append(time.perf_counter() - t)
        if (i + 1) % max(1, args.steps // 10) == 0:
            print(f"  {dtype} step {i + 1}/{args.steps}: loss {losses[-1]:.4f}, {times[-1] * 1e3:.0f} ms", flush=True)
    evaluate = jax.jit(task.eval_step)
    eval_loss = float(np.mean([float(evaluate(state, b)["loss"]) for b in held_out]))
    step_time = statistics.median(times[len(times) // 5 :] or times)
    tail = losses[-max(1, args.steps // 5) :]
    return {"flops": flops, "step_time": step_time, "tflops": flops / step_time / 1e12,
            "train_loss": float(np.mean(tail)), "eval_loss": eval_loss, "losses": losses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("factorized", "mbt2018_mean"), default="mbt2018_mean")
    parser.add_argument("--steps", type=positive, default=300)
    parser.add_argument("--batch", type=positive, default=8)
    parser.add_argument("--patch", type=positive, default=128, help="a multiple of 64")
    parser.add_argument("--features", type=int, default=None, help="N (default: the config's)")
    parser.add_argument("--latent", type=int, default=None, help="M (default: the config's)")
    parser.add_argument("--photos", default=None, help="folder of training photos (default: scikit-image's)")
    parser.add_argument("--peak-tflops", default=None, help="BF16,FP32 peak TFLOP/s of the device, for the share")
    parser.add_argument("--plot", default=None, help="PNG of the two loss curves")
    args = parser.parse_args()

    photos = load_photos(args.photos)
    pool = random_crops(photos, 16 * args.batch, args.patch).reshape(16, args.batch, args.patch, args.patch, 3)
    batches = [jnp.asarray(b.astype(np.float32) / 255.0) for b in pool]
    held = random_crops(photos, 4 * args.batch, args.patch, seed=1).reshape(4, args.batch, args.patch, args.patch, 3)
    held_out = [jnp.asarray(b.astype(np.float32) / 255.0) for b in held]
    peaks = dict(zip(("bfloat16", "float32"), map(float, args.peak_tflops.split(",")))) if args.peak_tflops else {}
    print(f"mixed precision: {args.model}, batch {args.batch} x {args.patch}x{args.patch}, {args.steps} steps, "
          f"jax {jax.__version__} {jax.default_backend()} ({jax.devices()[0].device_kind})")
    results = {dtype: run(args.model, dtype, args, batches, held_out) for dtype in DTYPES}
    for dtype, r in results.items():
        share = f", {100 * r['tflops'] / peaks[dtype]:.1f}% of peak" if dtype in peaks else ""
        print(f"{dtype:<9} {r['flops'] / 1e9:8.1f} GFLOP/step  {r['step_time'] * 1e3:8.1f} ms/step  "
              f"{r['tflops']:7.3f} TFLOP/s{share}  train loss {r['train_loss']:.4f}  eval loss {r['eval_loss']:.4f}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for dtype, r in results.items():
            ax.plot(np.arange(1, args.steps + 1), r["losses"], label=dtype, alpha=0.8)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (λ·255²·MSE + bpp)")
        ax.set_yscale("log")
        ax.set_title(f"{args.model}: float32 vs bfloat16 convolutions")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")
    f32, bf16 = results["float32"], results["bfloat16"]
    print(f"eval loss change: {100 * (bf16['eval_loss'] / f32['eval_loss'] - 1):+.2f}%")
    print(f"loss change: {100 * (bf16['train_loss'] / f32['train_loss'] - 1):+.2f}%")
    print(f"speed ratio: {f32['step_time'] / bf16['step_time']:.3f}")


if __name__ == "__main__":
    run_main(main)
