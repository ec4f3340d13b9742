r"""Assembles extra real training photos from Debian packages (for the photo codecs).

The factorized ladder and ComRec were trained on random crops of ``photos-train/`` (46
wallpapers from Debian's plasma/ukui/lomiri-20.04 packages, much of it smooth digital
artwork) plus these 48 photos, closer to the natural photos the codecs are evaluated on:

* ``mate-backgrounds`` — the 12 photos of ``/usr/share/backgrounds/mate/nature/``;
* ``lomiri-wallpapers-16.04`` — its 15 photos (Ubuntu Touch wallpapers);
* ``opencv-doc`` — 20 colour photos of OpenCV's ``examples/data`` (listed below);
* matplotlib's ``grace_hopper.jpg`` (installed with matplotlib).

Each is converted to RGB and downscaled with Lanczos to at most 1280 px on the long side,
as ``photos-train`` was; licences are in each package's ``copyright`` file, copied beside
the photos. None of them is among the evaluation images (``sample:photos``)::

    python tools/debian_photos.py OUT_DIR            # needs apt-get and Debian's archive
    cp photos-train/*.png OUT_DIR/                    # then train on folder:OUT_DIR
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

from PIL import Image

OPENCV_PHOTOS = (
    "aloeL.jpg", "apple.jpg", "baboon.jpg", "building.jpg", "butterfly.jpg", "ela_original.jpg", "fruits.jpg",
    "graf1.png", "home.jpg", "leuvenA.jpg", "left.jpg", "messi5.jpg", "orange.jpg", "pca_test1.jpg",
    "squirrel_cls.jpg", "stuff.jpg", "smarties.png", "board.jpg", "starry_night.jpg", "HappyFish.jpg",
)
PACKAGES = {
    "mate-backgrounds": ["usr/share/backgrounds/mate/nature/*.jpg"],
    "lomiri-wallpapers-16.04": ["usr/share/backgrounds/*.jpg"],
    "opencv-doc": [f"usr/share/doc/opencv-doc/examples/data/{n}" for n in OPENCV_PHOTOS],
}
MAX_SIDE = 1280


def save_downscaled(src: str, dest: str) -> None:
    image = Image.open(src).convert("RGB")
    scale = MAX_SIDE / max(image.size)
    if scale < 1:
        image = image.resize((round(image.size[0] * scale), round(image.size[1] * scale)), Image.LANCZOS)
    tmp = dest + ".tmp.png"
    image.save(tmp)
    os.replace(tmp, dest)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="folder to write the photos into (created)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    count = 0
    with tempfile.TemporaryDirectory() as work:
        for package, patterns in PACKAGES.items():
            done = subprocess.run(["apt-get", "download", package], cwd=work, capture_output=True, text=True)
            debs = glob.glob(os.path.join(work, f"{package}_*.deb"))
            if done.returncode or not debs:
                print(f"error: apt-get download {package} failed: {done.stderr.strip()[-200:]}", file=sys.stderr)
                return 1
            root = os.path.join(work, package)
            subprocess.run(["dpkg-deb", "-x", debs[0], root], check=True)
            for pattern in patterns:
                for src in sorted(glob.glob(os.path.join(root, pattern))):
                    name = "x_" + os.path.splitext(os.path.basename(src))[0] + ".png"
                    save_downscaled(src, os.path.join(args.out, name))
                    count += 1
            copyright_file = os.path.join(root, "usr/share/doc", package, "copyright")
            if os.path.isfile(copyright_file):
                shutil.copy(copyright_file, os.path.join(args.out, f"COPYRIGHT.{package}"))
    import matplotlib

    hopper = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data", "grace_hopper.jpg")
    save_downscaled(hopper, os.path.join(args.out, "x_grace_hopper.png"))
    print(f"wrote {count + 1} photos to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
