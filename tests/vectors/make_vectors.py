r"""Writes the committed test-vector streams of the shipped models and their decoded hashes.

Each shipped model codes one fixed image at each of a few qualities; ``vectors.json``
records, per stream, the model and quality that made it and the SHA-256 of its exact
decoded image (``uint8`` bytes in ``H, W, C`` order, with the shape). ``tests/test_vectors.py``
decodes every stream and checks the hash bit for bit, so a change to a decoder, a
shipped model or its tables that alters any decoded pixel is caught.

    python tests/vectors/make_vectors.py            # every shipped model
    python tests/vectors/make_vectors.py --models bmshj2017-factorized-q3

Only rerun after a deliberate change to a decoder or a shipped model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import jaxcodec  # noqa: E402
from jaxcodec import data, pretrained  # noqa: E402

INDEX = os.path.join(HERE, "vectors.json")


def decoded_hash(image: np.ndarray) -> str:
    """SHA-256 of a decoded image's ``uint8`` bytes (C order) and shape."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    return hashlib.sha256(repr(image.shape).encode() + image.tobytes()).hexdigest()


def source_image(model: str) -> tuple[np.ndarray, str]:
    """The image a model's vectors code: an MNIST digit, or a photo crop of odd size."""
    with open(os.path.join(pretrained.shipped_models()[model]["path"], "meta.json")) as f:
        channels = json.load(f)["batch_shape"][-1]
    if channels == 1:
        digit = data.open_dataset("sample:mnist", "test").native(0)
        return digit, "sample:mnist test image 0"
    photo = data.open_dataset("sample:photos", "test").native(0)
    return photo[101:101 + 75, 203:203 + 118], "sample:photos image 0, rows 101:176, columns 203:321"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="", help="comma-separated shipped models (default: all)")
    parser.add_argument("--per-model", type=int, default=2, help="qualities coded per model (lowest, highest)")
    args = parser.parse_args()
    shipped = pretrained.shipped_models()
    names = args.models.split(",") if args.models else sorted(shipped)
    index = json.load(open(INDEX)) if os.path.isfile(INDEX) else {}
    for name in names:
        codec = pretrained.get_codec(name)
        image, described = source_image(name)
        qualities = list(codec.qualities)
        picks = sorted({qualities[0], qualities[-1]})[: args.per_model]
        for quality in picks:
            stream = jaxcodec.compress(image, codec, quality)
            decoded = jaxcodec.decompress(stream)  # found from the header, as a user would
            file = f"{name}-{quality}.jxc"
            with open(os.path.join(HERE, file + ".tmp"), "wb") as f:
                f.write(stream)
            os.replace(os.path.join(HERE, file + ".tmp"), os.path.join(HERE, file))
            index[file] = {"model": name, "quality": quality, "source": described,
                           "shape": list(decoded.shape), "sha256": decoded_hash(decoded)}
            print(f"{file}: {len(stream)} bytes, decoded {decoded.shape} {index[file]['sha256'][:16]}")
    with open(INDEX + ".tmp", "w") as f:
        json.dump(dict(sorted(index.items())), f, indent=1)
    os.replace(INDEX + ".tmp", INDEX)


if __name__ == "__main__":
    main()
