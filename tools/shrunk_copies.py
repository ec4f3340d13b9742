r"""Copies a folder of photos shrunk (Lanczos) and stored losslessly as PNG.

The validation photos are JPEG files (quality 95, about 1024×768). Against such sources,
JPEG re-encoding at qualities near 95 lands on the sources' own 8×8 block grid and its
error collapses (a jump of 5 dB at about 1.2 bpp), which no other codec can do: part of
what the split measures is "JPEG coding a JPEG". Standard photo test sets are instead
made by shrinking higher-resolution scans (Kodak's 768×512 photos are PhotoCD scans scaled
down), and shrinking by 2× averages the source's block grid away too. This tool makes that
second view of a split, for ``eval.py`` to measure beside the first::

    python tools/shrunk_copies.py /work/runs/photos/val /work/runs/photos/val-half --max-side 512
    python eval.py --data folder:/work/runs/photos/val-half --codecs mbt2018-mean,jpeg,webp,avif

Photos whose longer side is already at most ``--max-side`` are copied as they are (as PNG).
The copy is written into a temporary folder beside ``DST`` and renamed into place, so an
interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from jaxcodec import fileio
from jaxcodec import image as imageio
from jaxcodec.errors import JaxcodecError
from jaxcodec.train.photo_archive import shrink


def shrunk_copies(src: str, dst: str, max_side: int) -> list[tuple[int, int]]:
    """Writes ``dst/NAME.png`` for every image of ``src``, its longer side at most
    ``max_side``; returns the ``(height, width)`` of each copy, in name order."""
    if max_side < 1:
        raise JaxcodecError(f"max side must be at least 1 pixel, got {max_side}")
    files = imageio.image_files(src)
    sizes = []
    with fileio.atomic_dir(dst, prefix=".shrunk-copies.") as tmp:
        for path in files:
            image = shrink(np.ascontiguousarray(imageio.read_rgb_uint8(path)), max_side)
            imageio.write_image(os.path.join(tmp, os.path.splitext(os.path.basename(path))[0] + ".png"), image)
            sizes.append(image.shape[:2])
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", help="folder of photos")
    parser.add_argument("dst", help="folder to create (replaced if it exists)")
    parser.add_argument("--max-side", type=int, default=512, help="longest side of a copy, in pixels")
    args = parser.parse_args()
    try:
        sizes = shrunk_copies(args.src, args.dst, args.max_side)
    except (JaxcodecError, OSError) as error:
        sys.exit(f"error: {error}")
    pixels = sum(h * w for h, w in sizes)
    print(f"{len(sizes)} photos -> {args.dst} (PNG, longer side <= {args.max_side}; {pixels / len(sizes):,.0f} pixels on average)")


if __name__ == "__main__":
    main()
