r"""How closely rate control lands on its targets, over many images and budgets.

For each image of ``--data`` and each ``--shares`` point between the image's smallest and
largest stream (quality 1 and the top quality of ``--model``), asks
:func:`jaxcodec.rate_control.fit` for ``max_bytes=N`` (N that far from the smallest to the
largest stream) and for ``bpp`` of the same rate, and records how full the budget came out
(``bytes / N``: never above 1, the target at least 0.97), how far the rate landed from the
asked one (the target within ±3%), and how many real encodes the search made (the bound is
:data:`jaxcodec.rate_control.MAX_ENCODES` for a model of continuous rate)::

    python bench/rate_control_accuracy.py --data folder:/work/runs/photos/val --model mbt2018-mean

Writes ``--out``/``rate_control.json`` (every fit) and ``rate_control.png`` (budget fill and
rate error against the asked bpp); the last lines give the worst cases, and the exit status is
1 if any budget was exceeded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from _common import run_main
from jaxcodec import rate_control, zoo
from jaxcodec.eval.rate_distortion import load_images
from jaxcodec.errors import ConfigError
from jaxcodec.fileio import atomic_write_text


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    asked = [r["bpp_asked"] for r in rows]
    axes[0].scatter(asked, [r["fill"] for r in rows], s=10)
    axes[0].axhline(1.0, color="r", lw=1)
    axes[0].axhline(0.97, color="r", lw=1, ls="--")
    axes[0].set(xlabel="budget (bpp)", ylabel="bytes written / budget", title="--max-bytes")
    axes[1].scatter(asked, [100 * r["bpp_error"] for r in rows], s=10)
    for y in (-3, 3):
        axes[1].axhline(y, color="r", lw=1, ls="--")
    axes[1].set(xlabel="asked rate (bpp)", ylabel="rate error (%)", title="--bpp")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="images (eval.py's dataset spec)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="mbt2018-mean", help="shipped model, workdir or standard codec")
    parser.add_argument("--shares", default="0.02,0.15,0.35,0.6,0.85,0.98",
                        help="budgets, as shares of the way from the smallest to the largest stream")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images")
    parser.add_argument("--out", default="out/rate_control")
    args = parser.parse_args()
    try:
        shares = [float(s) for s in args.shares.split(",")]
    except ValueError:
        raise ConfigError(f"--shares: comma-separated numbers in (0, 1), got {args.shares!r}") from None
    if not all(0.0 < s < 1.0 for s in shares):
        raise ConfigError(f"--shares: each in (0, 1), got {args.shares!r}")
    images, _ = load_images(args.data, args.split, limit=args.limit)
    if not images:
        raise ConfigError(f"--data {args.data}: no images")
    codec = zoo.get_codec(args.model)
    space = rate_control.candidates(codec)
    low_q, high_q = space[0], space[-1]  # a (low, high) range or a sorted list
    rows = []
    for index, image in enumerate(images):
        pixels = image.shape[0] * image.shape[1]
        low, high = len(codec.encode(image, low_q)), len(codec.encode(image, high_q))
        for share in shares:
            budget = int(low + share * (high - low))
            t = time.perf_counter()
            by_bytes = rate_control.fit(image, codec, max_bytes=budget)
            seconds = time.perf_counter() - t
            t = time.perf_counter()
            codec.encode(image, by_bytes.quality)  # one plain encode at the quality found, for scale
            one_encode = time.perf_counter() - t
            asked = budget * 8 / pixels
            by_rate = rate_control.fit(image, codec, bpp=asked)
            rows.append({
                "image": index, "share": share, "budget": budget, "bytes": len(by_bytes.data),
                "fill": len(by_bytes.data) / budget, "encodes": by_bytes.encodes, "seconds": seconds,
                "encode_seconds": one_encode,
                "bpp_asked": asked, "bpp_error": len(by_rate.data) * 8 / pixels / asked - 1,
                "bpp_encodes": by_rate.encodes,
            })
        r = rows[-len(shares):]
        print(f"image {index + 1}/{len(images)} ({image.shape[1]}x{image.shape[0]}): fill "
              f"{min(x['fill'] for x in r):.4f}..{max(x['fill'] for x in r):.4f}, rate error "
              f"{max(abs(x['bpp_error']) for x in r) * 100:.2f}%, encodes <= "
              f"{max(max(x['encodes'], x['bpp_encodes']) for x in r)}", flush=True)

    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "rate_control.json"),
                      json.dumps({"data": args.data, "model": args.model, "fits": rows}, indent=2) + "\n")
    plot(rows, os.path.join(args.out, "rate_control.png"))
    fills = np.array([r["fill"] for r in rows])
    errors = np.abs([r["bpp_error"] for r in rows])
    encodes = [max(r["encodes"], r["bpp_encodes"]) for r in rows]
    print(f"{len(rows)} budgets on {len(images)} images, {min(r['bpp_asked'] for r in rows):.3f}.."
          f"{max(r['bpp_asked'] for r in rows):.3f} bpp")
    print(f"--max-bytes: {int(np.sum(fills > 1))} over budget, {int(np.sum(fills < 0.97))} more than 3% under; "
          f"fill min {fills.min():.4f}, median {np.median(fills):.4f}")
    cost = [r["seconds"] / r["encode_seconds"] for r in rows]
    print(f"a --max-bytes search takes {np.median(cost):.2f}x one encode at the quality it finds (median; "
          f"largest {max(cost):.2f}x), {np.median([r['seconds'] for r in rows]):.2f} s")
    print(f"--bpp: {int(np.sum(errors > 0.03))} more than 3% off; largest error {errors.max() * 100:.2f}%")
    print(f"encodes per search: at most {max(encodes)} (bound {rate_control.MAX_ENCODES} for a continuous model)")
    if np.any(fills > 1):
        sys.exit(1)


if __name__ == "__main__":
    run_main(main)
