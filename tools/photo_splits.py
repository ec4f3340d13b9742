r"""Lays out the photo codecs' training and validation folders.

Validation (never trained or tuned on): the last ``--val`` photos (default 20) of
``Sun-Hays80_*`` in ``photos-more/`` (Sun & Hays 2012's scene photos, about 1024×768).
Training: every other photo of ``photos-more/`` and ``photos-train/``, plus any ``--extra``
folder (for example the photos ``tools/debian_photos.py`` gathers). The folders hold
symbolic links to the originals, so laying them out again costs nothing::

    python tools/photo_splits.py /work/runs/photos --data ../shared/data \
        --extra /work/runs/photos-debian
    python train.py ... --config.data.train=folder:/work/runs/photos/train
    python eval.py --data folder:/work/runs/photos/val ...

Prints the counts and a SHA-256 over the sorted file names of each split, so a run can
record exactly which photos it saw.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".ppm")
VAL_PREFIX = "Sun-Hays80_"


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def split(data: Path, extra: list[Path], val_count: int) -> tuple[list[Path], list[Path]]:
    """``(train, val)`` lists of photo paths; see the module docstring."""
    more = _images(data / "photos-more")
    scenes = [p for p in more if p.name.startswith(VAL_PREFIX)]
    if len(scenes) < val_count:
        raise SystemExit(f"error: {data / 'photos-more'} holds {len(scenes)} {VAL_PREFIX}* photos, need {val_count}")
    val = scenes[len(scenes) - val_count:]
    held = set(val)
    train = [p for p in more if p not in held] + _images(data / "photos-train")
    for folder in extra:
        train += _images(folder)
    return train, val


def _link_all(paths: list[Path], dest: Path) -> str:
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.iterdir():
        if old.is_symlink():
            old.unlink()
    names = set()
    for path in paths:
        name = path.name if path.name not in names else f"{path.parent.name}_{path.name}"
        names.add(name)
        os.symlink(path.resolve(), dest / name)
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder to hold train/ and val/")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder with photos-more/ and photos-train/")
    parser.add_argument("--extra", type=Path, action="append", default=[], help="another folder of training photos")
    parser.add_argument("--val", type=int, default=20, help="validation photos (the last Sun-Hays80 ones)")
    args = parser.parse_args()
    for folder in [args.data / "photos-more", args.data / "photos-train", *args.extra]:
        if not folder.is_dir():
            print(f"error: {folder} is not a folder", file=sys.stderr)
            return 2
    train, val = split(args.data, args.extra, args.val)
    for name, paths in (("train", train), ("val", val)):
        digest = _link_all(paths, args.out / name)
        print(f"{name}: {len(paths)} photos in {args.out / name} (names sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
