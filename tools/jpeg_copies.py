r"""Copies a folder of training photos as high-quality JPEG (4:4:4), a third of the PNG size.

The GPU stage of the factorized ladder (``make factorized-ladder-gpu``) trains on such a
copy of ``photos-mixed``: quality 95 without chroma subsampling leaves an error near
45 dB PSNR, far below the distortion of any rung (27–40 dB on training patches), and
random crops are downscaled up to 3× before the network sees them::

    python tools/jpeg_copies.py workdirs/photos-mixed workdirs/photos-mixed-jpeg --quality 95

The copy is written into a temporary folder beside ``DST`` and renamed into place, so an
interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import os
import sys

from jaxcodec import fileio
from jaxcodec import image as imageio
from jaxcodec.errors import JaxcodecError


def jpeg_copies(src: str, dst: str, quality: int) -> int:
    """Writes ``dst/NAME.jpg`` for every image of ``src``; returns how many."""
    files = imageio.image_files(src)
    with fileio.atomic_dir(dst, prefix=".jpeg-copies.") as tmp:
        for path in files:
            out = os.path.join(tmp, os.path.splitext(os.path.basename(path))[0] + ".jpg")
            imageio.write_image(out, imageio.read_rgb_uint8(path), quality=quality, subsampling=0)
    return len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", help="folder of photos")
    parser.add_argument("dst", help="folder to create (replaced if it exists)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality, 1..100")
    args = parser.parse_args()
    if not 1 <= args.quality <= 100:
        sys.exit(f"error: --quality must be 1..100, got {args.quality}")
    try:
        n = jpeg_copies(args.src, args.dst, args.quality)
    except (JaxcodecError, OSError) as error:
        sys.exit(f"error: {error}")
    print(f"{n} photos -> {args.dst} (JPEG quality {args.quality}, 4:4:4)")


if __name__ == "__main__":
    main()
