r"""Packs the training photos into one training archive that travels to an accelerator lease.

A lease receives the repository's working tree (tracked files and untracked ones git does not
ignore) plus carried paths, 64 MiB in all. By default the archive is sized to the room that
the tree leaves, less ``--reserve`` (the wheels the recipe carries and some growth of the
tree)::

    python tools/photo_splits.py workdirs/photos --data ../shared/data --extra workdirs/photos-debian
    python tools/training_archive.py --photos workdirs/photos/train            # lease/photos-train.tar

Each photo is shrunk to at most ``--max-side`` pixels (default 512) and coded as a JPEG of
``--quality`` (default 95) at 4:4:4 (:mod:`jaxcodec.train.photo_archive`); when they do not all fit,
a seeded random subset does, and the tool says how many. It writes ``OUT`` and ``OUT.sha256``
and prints the figures: photos taken and available, bytes, PSNR of the coded photos against
the shrunk originals, and the room left under 64 MiB. Only the train split goes in: never
point ``--photos`` at validation photos. ``lease/`` is ignored by git.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxcodec import image as imageio
from jaxcodec.train import photo_archive  # noqa: E402
from jaxcodec.errors import JaxcodecError  # noqa: E402

LEASE_BYTES = 64 << 20  # what travels to a lease: the working tree plus carried paths
DEFAULT_OUT = os.path.join("lease", "photos-train.tar")
MIB = 1 << 20


def tree_bytes(root: str = ROOT) -> int:
    """Bytes of the files that travel with the working tree: tracked files and untracked
    files git does not ignore (``git ls-files``). Raises JaxcodecError outside a git checkout."""
    total = 0
    for args in (["ls-files", "-z"], ["ls-files", "-z", "--others", "--exclude-standard"]):
        try:
            out = subprocess.run(["git", "-C", root, *args], check=True, capture_output=True).stdout
        except (OSError, subprocess.CalledProcessError):
            raise JaxcodecError(f"{root} is not a git checkout; give --budget") from None
        for name in out.decode().split("\0"):
            path = os.path.join(root, name)
            if name and os.path.isfile(path) and not os.path.islink(path):
                total += os.path.getsize(path)
    return total


def _mib(n: float) -> str:
    return f"{n / MIB:.2f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default=DEFAULT_OUT, help=f"archive to write (default {DEFAULT_OUT})")
    parser.add_argument("--photos", required=True, help="folder of training photos (the train split only)")
    parser.add_argument("--max-side", type=int, default=512, help="longer side of the stored photos (default 512)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality, 4:4:4 (default 95)")
    parser.add_argument("--budget", type=float, default=None,
                        help="archive bytes in MiB (default: the room the working tree leaves under 64 MiB, less --reserve)")
    parser.add_argument("--reserve", type=float, default=2.0, help="MiB kept free beside the archive (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="order in which photos are taken when not all fit")
    args = parser.parse_args(argv)
    try:
        if not 1 <= args.quality <= 100 or args.max_side < 64:
            raise JaxcodecError("--quality must lie in 1..100 and --max-side be at least 64")
        files = imageio.image_files(args.photos)
        if os.path.basename(os.path.normpath(args.photos)) == "val":
            raise JaxcodecError(f"{args.photos} looks like a validation split; pack the train split only")
        tree = tree_bytes()
        if args.budget is not None:
            budget = int(args.budget * MIB)
        else:
            budget = LEASE_BYTES - tree - int(args.reserve * MIB)
        if budget <= 0:
            raise JaxcodecError(f"the working tree ({_mib(tree)}) leaves no room under 64 MiB")
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        manifest = photo_archive.build(files, args.out, max_side=args.max_side, quality=args.quality,
                                       budget=budget, seed=args.seed)
    except JaxcodecError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    photos = manifest["photos"]
    psnr = np.array([p["psnr"] for p in photos])
    pixels = sum(p["width"] * p["height"] for p in photos)
    size = manifest["archive_bytes"]
    print(f"{args.out}: {len(photos)} of {manifest['available']} photos"
          f"{'' if len(photos) == manifest['available'] else ' (a seeded random subset: the rest did not fit)'}, "
          f"longer side <= {args.max_side}, JPEG q{args.quality} 4:4:4, {_mib(size)} "
          f"({pixels / 1e6:.1f} Mpx, {8 * size / pixels:.2f} bits/px)")
    print(f"PSNR of the stored photos against the shrunk originals: mean {psnr.mean():.1f} dB, "
          f"5th percentile {np.percentile(psnr, 5):.1f} dB, min {psnr.min():.1f} dB")
    print(f"working tree {_mib(tree)} + archive {_mib(size)} = {_mib(tree + size)}; "
          f"{_mib(LEASE_BYTES - tree - size)} left under 64 MiB")
    print(f"sha256 {manifest['sha256']}  ({photo_archive.sidecar(args.out)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
