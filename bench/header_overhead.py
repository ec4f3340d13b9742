r"""What the ``.jxc`` header and check cost a small image: each stream as written (version 3)
against the same header and payload in the version-1 layout.

::

    .venv/bin/python bench/header_overhead.py --data npz:/path/to/mnist.npz --limit 200

Compresses the first ``--limit`` test images of ``--data`` with each of ``--models`` at each
of ``--qualities`` and prints, per model and quality, the mean stream bytes, the mean
overhead (stream minus payload) of version 3 and of version 1, and the bpp the difference
saves. The payloads are the same in both layouts, so distortion is unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses

from _common import run_main
from jaxcodec import api, data
from jaxcodec.codecs import container


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="sample:mnist")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--models", default="mnist-conv-ae,mnist-deep-ae")
    parser.add_argument("--qualities", default="2,6,8")
    args = parser.parse_args()

    dataset = data.open_dataset(args.data, "test")
    images = [dataset.native(i) for i in range(min(args.limit, len(dataset)))]
    for model in args.models.split(","):
        for quality in (int(q) for q in args.qualities.split(",")):
            new = old = payload_bytes = pixels = 0
            for image in images:
                stream = api.compress(image, model, quality=quality)
                header, payload = container.unpack(stream)
                # the 8-byte hash a version-1 header holds: its value does not change the size
                v1 = container.pack(dataclasses.replace(header, layout=1, table_hash=bytes(8)), payload)
                new, old, payload_bytes = new + len(stream), old + len(v1), payload_bytes + len(payload)
                pixels += image.shape[0] * image.shape[1]
            n = len(images)
            print(f"{model} q{quality}: {new / n:.2f} bytes a stream; overhead {(new - payload_bytes) / n:.2f} "
                  f"bytes (version 3) against {(old - payload_bytes) / n:.2f} (version 1): "
                  f"{(old - new) * 8 / pixels:.3f} bpp saved")


if __name__ == "__main__":
    run_main(main)
