"""Pictures people would rather look at: rate-distortion curves and image grids."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from jaxcodec.fileio import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_rd(results: Mapping[str, Any], path: str | os.PathLike, max_bpp: float | None = None) -> None:
    """Writes a PNG with PSNR–bpp and MS-SSIM–bpp curves, one line per codec (dashed for a
    stored curve, one not measured in this run); where curves overlap, the one listed first
    is drawn on top.

    Args:
      results: the document from :func:`jaxcodec.eval.rate_distortion.evaluate`.
      path: the PNG to write (atomically).
      max_bpp: optional right edge of the rate axis.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    count = len(results["codecs"])
    for index, (name, entry) in enumerate(results["codecs"].items()):
        r = entry["results"]
        order = np.argsort(r["bpp"])
        bpp = np.asarray(r["bpp"])[order]
        stored = "stored" in entry  # a curve of an earlier run (eval.py --reference): dashed
        style = ("--" if stored else "-") if len(bpp) > 1 else ""
        label = f"{name} (stored)" if stored else name
        for ax, key in zip(axes, ("psnr-rgb", "ms-ssim-rgb")):
            ax.plot(bpp, np.asarray(r[key], dtype=float)[order], style, marker="o", ms=3, label=label,
                    zorder=2 + (count - index) / count)
    for ax, label in zip(axes, ("PSNR (dB)", "MS-SSIM")):
        ax.set_xlabel("bits per pixel (from real bytes)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if max_bpp is not None:
            ax.set_xlim(0, max_bpp)
    axes[0].legend(fontsize=8)
    images = results["num_images"]
    fig.suptitle(f"{results['dataset']}" + (f" — {images} images" if images else ""), fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def save_grid(
    rows: Sequence[Sequence[np.ndarray]],
    path: str | os.PathLike,
    row_labels: Sequence[str] | None = None,
    scale: int = 1,
) -> None:
    """Writes a PNG grid of ``uint8`` images: one row per list (e.g. originals, then decoded).

    Images in a row may differ in size; each cell is padded to the largest. Grey images
    are shown as grey; ``scale`` enlarges small images (e.g. 28×28 digits) by pixel
    repetition.
    """
    from PIL import Image, ImageDraw

    cells = [[_rgb(im) for im in row] for row in rows]
    h = max(c.shape[0] for row in cells for c in row) * scale
    w = max(c.shape[1] for row in cells for c in row) * scale
    label_w = 0 if not row_labels else 8 * max(len(line) for s in row_labels for line in s.split("\n")) + 8
    pad = 2
    ncol = max(len(row) for row in cells)
    canvas = Image.new("RGB", (label_w + ncol * (w + pad), len(cells) * (h + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, row in enumerate(cells):
        y = i * (h + pad)
        if row_labels:
            lines = row_labels[i].count("\n") + 1
            draw.multiline_text((4, y + h // 2 - 6 * lines), row_labels[i], fill="black", spacing=2)
        for j, c in enumerate(row):
            im = Image.fromarray(c)
            if scale != 1:
                im = im.resize((c.shape[1] * scale, c.shape[0] * scale), Image.NEAREST)
            canvas.paste(im, (label_w + j * (w + pad), y))
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return image.astype(np.uint8)
