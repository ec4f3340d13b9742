r"""Peak memory of ``python -m jaxcodec compress`` and ``decompress`` against image size.

::

    .venv/bin/python bench/memory.py                                  # 1 to 100 megapixels
    .venv/bin/python bench/memory.py --sizes 4000x4000,6000x4000 --max-memory 1T   # one window
    .venv/bin/python bench/memory.py --json out/memory.json --plot out/memory.png

For each ``--sizes`` entry (``WIDTHxHEIGHT``) a photo mosaic of that size is written as a
PNG: cells of 1000 × 1000 pixels, each a photo (scikit-image's astronaut, coffee, chelsea
and rocket, or every photo of ``--photos``) cropped square and resized, so that the image
has a photo's detail everywhere. Then ``python -m jaxcodec compress`` (the default model
and quality) and ``decompress`` run on it, each as a fresh process, and the table gives
each command's peak resident memory (``ru_maxrss`` of the child, what ``/usr/bin/time -v``
reports as "Maximum resident set size") and wall time. ``--max-memory`` is passed to both
commands (default: theirs, :data:`jaxcodec.tiling.DEFAULT_MAX_MEMORY`); ``1T`` transforms
every image in one window, as the codec did before tiling. ``--max-pixels`` is raised to
fit the largest size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


from _common import load_photos, run_main

DEFAULT_SIZES = "1000x1000,2000x2000,4000x4000,6000x4000,8000x6000,10000x10000"
CELL = 1000


def mosaic(width: int, height: int, photos: list[np.ndarray]) -> np.ndarray:
    """A ``height × width`` RGB image of ``CELL``-sized squares cut from the photos in turn."""
    from PIL import Image

    cells = []
    for photo in photos:
        side = min(photo.shape[:2])
        y, x = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
        square = Image.fromarray(np.ascontiguousarray(photo[y : y + side, x : x + side, :3]))
        cells.append(np.asarray(square.resize((CELL, CELL), Image.BICUBIC)))
    out = np.empty((height, width, 3), np.uint8)
    k = 0
    for y in range(0, height, CELL):
        for x in range(0, width, CELL):
            cell = cells[k % len(cells)]
            out[y : y + CELL, x : x + CELL] = cell[: min(CELL, height - y), : min(CELL, width - x)]
            k += 1
    return out


def run(args: list[str]) -> tuple[float, float, str]:
    """``(peak resident MB, wall seconds, stderr)`` of ``python -m jaxcodec ARGS``."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "jaxcodec", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read()
    if process.returncode != 0:
        sys.exit(f"error: python -m jaxcodec {' '.join(args)} failed: {stderr.strip()}")
    return usage.ru_maxrss / 1024, seconds, stderr


def main() -> None:
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="WIDTHxHEIGHT[,...]")
    parser.add_argument("--photos", default=None, help="folder of photos for the mosaic")
    parser.add_argument("--max-memory", default=None, help="passed to compress and decompress (e.g. 512M, 1T)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default=None, help="PNG of peak memory against megapixels")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    photos = load_photos(args.photos)
    extra = ["--max-pixels", str(max(w * h for w, h in sizes))]
    if args.max_memory:
        extra += ["--max-memory", args.max_memory]
    rows = []
    print("| image | megapixels | compress: peak MB | s | decompress: peak MB | s | bpp |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="jaxcodec-memory-") as folder:
        for width, height in sizes:
            png, jxc, out = (os.path.join(folder, f"{width}x{height}.{e}") for e in ("png", "jxc", "out.png"))
            Image.fromarray(mosaic(width, height, photos)).save(png, compress_level=1)
            enc_mb, enc_s, _ = run(["compress", png, jxc, *extra])
            dec_mb, dec_s, _ = run(["decompress", jxc, out, *extra])
            bpp = os.path.getsize(jxc) * 8 / (width * height)
            rows.append({"width": width, "height": height, "megapixels": width * height / 1e6,
                         "compress_peak_mb": round(enc_mb), "compress_seconds": round(enc_s, 1),
                         "decompress_peak_mb": round(dec_mb), "decompress_seconds": round(dec_s, 1),
                         "bpp": round(bpp, 4)})
            print(f"| {width}x{height} | {width * height / 1e6:.0f} | {enc_mb:.0f} | {enc_s:.0f} | {dec_mb:.0f} | "
                  f"{dec_s:.0f} | {bpp:.3f} |", flush=True)
            for path in (png, jxc, out):
                os.remove(path)
    if args.json:
        from jaxcodec.fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps({"max_memory": args.max_memory, "rows": rows}, indent=1))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        mp = [r["megapixels"] for r in rows]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(mp, [r["compress_peak_mb"] / 1024 for r in rows], "o-", label="compress")
        ax.plot(mp, [r["decompress_peak_mb"] / 1024 for r in rows], "s-", label="decompress")
        ax.set_xlabel("megapixels")
        ax.set_ylabel("peak resident memory (GB)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(f"python -m jaxcodec, --max-memory {args.max_memory or 'default (1G)'}")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)


if __name__ == "__main__":
    run_main(main)
