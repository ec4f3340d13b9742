r"""The variable-rate model's BD-rate penalty against rungs trained for one rate each.

A variable-rate model (one set of weights for the whole ladder; Cui et al., CVPR 2021, gain
units) pays for its generality with some rate at each quality. This measures it on real
streams: each rung codec (a model trained, or fine-tuned, at one quality ``q`` only:
``model.quality_range=(q,q)``) is coded at its own ``q``, the variable-rate model at the same
qualities, on every image of ``--data``; both curves' mean bpp (from real bytes) and PSNR /
MS-SSIM give the Bjøntegaard delta rate of the variable-rate model against the rungs
(positive: the one model needs that many percent more bits than the separate rungs)::

    python bench/variable_rate_penalty.py --data folder:/work/runs/photos/val \
        --variable /work/runs/penalty/variable \
        --rung 1=/work/runs/penalty/q1 --rung 3=/work/runs/penalty/q3 \
        --rung 5=/work/runs/penalty/q5 --rung 8=/work/runs/penalty/q8 --out out/penalty

``tools/variable_rate_penalty.sh`` trains such runs from one start. Writes ``--out``/
``penalty.json`` (every point and the BD figures) and ``penalty.png`` (both curves); the last
line printed is ``penalty: X% (PSNR), Y% (MS-SSIM)``. Also gives the weight bytes the one
model saves against the rungs together.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from _common import run_main
from jaxcodec import zoo
from jaxcodec.eval import bdrate, plots
from jaxcodec.eval.rate_distortion import evaluate_codec, load_images
from jaxcodec.errors import ConfigError
from jaxcodec.fileio import atomic_write_text


def parse_rung(text: str) -> tuple[float, str]:
    quality, eq, path = text.partition("=")
    try:
        if not eq or not path:
            raise ValueError
        return float(quality), path
    except ValueError:
        raise argparse.ArgumentTypeError(f"a rung is QUALITY=MODEL_OR_WORKDIR, got {text!r}") from None


def parameter_bytes(codec) -> int:
    """Bytes of the codec's parameters in float32 (what a model's weights weigh)."""
    import jax

    return int(sum(np.asarray(leaf).size * 4 for leaf in jax.tree_util.tree_leaves(codec.params)))


def point(entry: dict) -> tuple[float, float, float]:
    r = entry["results"]
    return r["bpp"][0], r["psnr-rgb"][0], r["ms-ssim-rgb"][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="images to code (eval.py's dataset spec)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--variable", required=True, help="the variable-rate model (shipped name or workdir)")
    parser.add_argument("--rung", type=parse_rung, action="append", required=True,
                        help="QUALITY=MODEL_OR_WORKDIR, a model trained at that quality only (repeat, 4 or more)")
    parser.add_argument("--limit", type=int, default=None, help="code at most this many images")
    parser.add_argument("--out", default="out/penalty")
    args = parser.parse_args()
    rungs = sorted(args.rung)
    if len(rungs) < 2 or len({q for q, _ in rungs}) != len(rungs):
        raise ConfigError("--rung: give two or more rungs (four for a cubic BD fit), each at its own quality")

    images, _ = load_images(args.data, args.split, limit=args.limit)
    if not images:
        raise ConfigError(f"--data {args.data}: no images")
    qualities = [q for q, _ in rungs]
    variable = zoo.get_codec(args.variable)
    print(f"{len(images)} images; variable-rate model {args.variable} at qualities {qualities}", flush=True)
    var_entry = evaluate_codec(variable, images, qualities)
    var_r = var_entry["results"]
    rung_points, weight_bytes = [], 0
    for (q, path), vb, vp, vm in zip(rungs, var_r["bpp"], var_r["psnr-rgb"], var_r["ms-ssim-rgb"]):
        codec = zoo.get_codec(path)
        weight_bytes += parameter_bytes(codec)
        bpp, psnr, msssim = point(evaluate_codec(codec, images, [q]))
        rung_points.append((bpp, psnr, msssim))
        print(f"q{q:g}: rung {bpp:.4f} bpp {psnr:.2f} dB {msssim:.4f} | variable {vb:.4f} bpp {vp:.2f} dB "
              f"{vm:.4f}", flush=True)
    rb, rp, rm = (list(col) for col in zip(*rung_points))
    penalty_psnr = bdrate.bd_rate(rb, rp, var_r["bpp"], var_r["psnr-rgb"])
    penalty_msssim = bdrate.bd_rate(rb, rm, var_r["bpp"], var_r["ms-ssim-rgb"])
    delta_db = bdrate.bd_psnr(rb, rp, var_r["bpp"], var_r["psnr-rgb"])
    one = parameter_bytes(variable)

    os.makedirs(args.out, exist_ok=True)
    rung_curve = {"quality": qualities, "bpp": rb, "psnr-rgb": rp, "ms-ssim-rgb": rm}
    report = {
        "data": args.data, "num_images": len(images), "variable": args.variable,
        "rungs": {f"{q:g}": path for q, path in rungs},
        "curves": {"rungs": rung_curve, "variable": {k: var_r[k] for k in rung_curve}},
        "bd_rate_psnr_percent": penalty_psnr, "bd_rate_ms_ssim_percent": penalty_msssim,
        "bd_psnr_db": delta_db, "weight_bytes": {"variable": one, "rungs": weight_bytes},
    }
    atomic_write_text(os.path.join(args.out, "penalty.json"), json.dumps(report, indent=2) + "\n")
    plots.plot_rd({"dataset": args.data, "num_images": len(images), "codecs": {
        f"{len(rungs)} rungs, one quality each": {"results": rung_curve},
        "variable-rate model": {"results": report["curves"]["variable"]},
    }}, os.path.join(args.out, "penalty.png"))
    print(f"weights: one model {one / 1e6:.1f} MB (float32) vs {len(rungs)} rungs {weight_bytes / 1e6:.1f} MB")
    print(f"BD-PSNR of the variable-rate model: {delta_db:+.3f} dB")
    print(f"penalty: {penalty_psnr:+.2f}% (PSNR), {penalty_msssim:+.2f}% (MS-SSIM)")


if __name__ == "__main__":
    run_main(main)
