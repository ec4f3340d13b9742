r"""Plots how the shipped ``mbt2018-mean`` improved along its training: BD-rate against JPEG
on the validation split at each shipped checkpoint, with the factorized ladder, WebP and AVIF
on the same photos as reference lines (``results/mbt2018_mean_training.json``)::

    python tools/plot_training_progress.py                      # writes docs/mbt2018_mean_training.png
    python tools/plot_training_progress.py --data FILE --out PNG
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = (("psnr", "PSNR"), ("ms_ssim", "MS-SSIM"))
REFERENCE_STYLES = {"avif": ("AVIF", "tab:red"), "webp": ("WebP", "tab:green"),
                    "bmshj2017-factorized": ("factorized ladder", "tab:gray")}


def load(path: str) -> dict:
    """The progress file, checked: rows of ``steps, BD (PSNR), BD (MS-SSIM)`` in rising steps."""
    with open(path) as f:
        data = json.load(f)
    rows = data.get("mbt2018-mean")
    if not rows or any(len(row) != 3 for row in rows):
        raise ValueError(f"{path}: 'mbt2018-mean' must hold rows [steps, bd_psnr, bd_ms_ssim]")
    steps = [row[0] for row in rows]
    if steps != sorted(steps) or len(set(steps)) != len(steps):
        raise ValueError(f"{path}: the rows' steps must rise")
    return data


def plot(data: dict, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data["mbt2018-mean"]
    steps = [row[0] / 1000 for row in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for column, (ax, (key, label)) in enumerate(zip(axes, METRICS), start=1):
        ax.plot(steps, [row[column] for row in rows], "o-", color="tab:blue", label="mbt2018-mean, as shipped")
        for name, value in data.get(f"references_bd_rate_percent_vs_jpeg_{key}", {}).items():
            ref_label, color = REFERENCE_STYLES.get(name, (name, "black"))
            ax.axhline(value, color=color, linestyle="--", linewidth=1, label=f"{ref_label} ({value:+.1f}%)")
        target = data.get(f"target_bd_rate_percent_vs_jpeg_{key}")
        if target is not None:
            ax.axhline(target, color="black", linestyle=":", linewidth=1, label=f"target ({target:+.0f}%)")
        ax.set_title(f"BD-rate vs JPEG ({label}), validation split")
        ax.set_xlabel(data.get("steps_label", "training steps (thousands)"))
        ax.set_ylabel("BD-rate (%, lower is better)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    tmp = out + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(ROOT, "results", "mbt2018_mean_training.json"))
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "mbt2018_mean_training.png"))
    args = parser.parse_args(argv)
    try:
        data = load(args.data)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    plot(data, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
