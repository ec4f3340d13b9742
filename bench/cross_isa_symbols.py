"""Symbols decoded under other vector units: do they agree with the encoder's, every time?

Encodes ``--images`` crops of the photos in ``--photos`` (random sizes and places, random
qualities in the model's range) with a model in this process, then decodes every stream's
symbols (``codec.decode_symbols``) in fresh processes whose XLA code is limited to each
``--isa`` (``XLA_FLAGS=--xla_cpu_max_isa=...``), and counts the streams whose symbols differ
from the encoder's. For the mean-scale hyperprior the decoder's entropy parameters come from
its integer network (:mod:`jaxcodec.entropy.integer_net`), whose products NumPy's BLAS
computes, so each decoding process also runs OpenBLAS's kernels for that ISA
(``OPENBLAS_CORETYPE``: AVX2 Haswell, AVX Sandybridge, SSE4_2 Prescott; their float64 sums of
random reals differ in the last bits); the count should be zero::

    .venv/bin/python bench/cross_isa_symbols.py --model /work/runs/mbt2018_mean \\
        --photos /work/runs/photos/val --images 200

``--tile N`` codes the streams in tiles of ``N`` latent positions (instead of the shipped 64,
which these crops never exceed), so that the hyperprior's entropy parameters are computed a
block of tiles at a time (:func:`jaxcodec.entropy.integer_net.run_window`), as for large images.

Prints one line per ISA, ``ISA: K of N streams differ``, and exits non-zero if any does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from _common import random_quality

# OpenBLAS's kernel family for each XLA ISA (a decoder on such a CPU would run both).
BLAS_CORES = {"AVX512": "SkylakeX", "AVX2": "Haswell", "AVX": "Sandybridge", "SSE4_2": "Prescott"}

_DECODE = """
import sys, numpy as np
from jaxcodec import zoo
codec = zoo.get_codec(sys.argv[1])
folder, count = sys.argv[2], int(sys.argv[3])
for i in range(count):
    np.save(f"{folder}/{i}.out.npy", codec.decode_symbols(open(f"{folder}/{i}.jxc", "rb").read()))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model name, model folder or training workdir")
    parser.add_argument("--photos", required=True, help="folder of photos to cut crops from")
    parser.add_argument("--images", type=int, default=100, help="streams to encode")
    parser.add_argument("--isa", default="AVX2,SSE4_2", help="comma-separated XLA ISAs to decode under")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tile", type=int, default=0, help="latent positions per coded tile (default: the codec's)")
    args = parser.parse_args()

    from jaxcodec import data, zoo
    from jaxcodec.codecs import factorized, hyperprior

    if args.tile:
        factorized.STREAM_TILE = hyperprior.STREAM_TILE = args.tile

    codec = zoo.get_codec(args.model)
    photos = data.open_dataset(f"folder:{args.photos}", "test")
    rng = np.random.default_rng(args.seed)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.images):
            photo = photos.native(int(rng.integers(len(photos))))
            h = int(rng.integers(32, min(257, photo.shape[0] + 1)))
            w = int(rng.integers(32, min(385, photo.shape[1] + 1)))
            y, x = int(rng.integers(0, photo.shape[0] - h + 1)), int(rng.integers(0, photo.shape[1] - w + 1))
            quality = random_quality(codec, rng)
            stream = codec.encode(np.ascontiguousarray(photo[y:y + h, x:x + w]), quality)
            with open(f"{folder}/{i}.jxc", "wb") as f:
                f.write(stream)
            np.save(f"{folder}/{i}.npy", codec.decode_symbols(stream))
        failed = False
        for isa in args.isa.split(","):
            env = dict(os.environ, XLA_FLAGS=f"--xla_cpu_max_isa={isa}")
            if isa in BLAS_CORES:
                env["OPENBLAS_CORETYPE"] = BLAS_CORES[isa]
            run = subprocess.run([sys.executable, "-c", _DECODE, args.model, folder, str(args.images)],
                                 cwd=root, env=env, capture_output=True, text=True)
            if run.returncode:
                print(f"{isa}: the decoding process failed: {run.stderr.strip().splitlines()[-1]}")
                failed = True
                continue
            differ = sum(not np.array_equal(np.load(f"{folder}/{i}.npy"), np.load(f"{folder}/{i}.out.npy"))
                         for i in range(args.images))
            print(f"{isa}: {differ} of {args.images} streams differ")
            failed |= differ > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
