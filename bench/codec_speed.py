"""Codec speed: real encode + decode of one 512x768 photo, jaxcodec against CompressAI.

Measures wall-clock seconds of jaxcodec's ``FactorizedCodec`` (Ballé 2017 factorized
prior, ``default_config(quality=3)``: N=128, M=192): ``codec.encode(image_uint8, 3)``
→ ``.jxc`` bytes (analysis transform, rounding, ANS coding with the integer tables of
``task.finalize``) and ``codec.decode(bytes)`` → uint8 image; and of CompressAI's
``FactorizedPrior(128, 192)``: ``model.compress(x)`` / ``model.decompress(strings, shape)``
after ``model.update(force=True)``, in a subprocess of ``--peer-python`` with
``torch.set_num_threads(2)``. Both code the same ``--height`` x ``--width`` RGB image
(scikit-image's ``coffee`` photo resized with Lanczos, or the centre of the first photo
of ``--photos DIR``). Both models are UNTRAINED (freshly initialised), which is fine
for timing but makes the byte counts meaningless. Each side is warmed up first (jit
compilation / first call excluded); the median of ``--repeats`` runs is reported.

    .venv/bin/python bench/codec_speed.py --peer-python /work/peer-venv/bin/python --repeats 5

The last line is ``ratio: X`` with X = CompressAI total s / jaxcodec total s
(jaxcodec speed / CompressAI speed). ``--refine N`` also times jaxcodec's encoder with N
steps of latent refinement (:mod:`jaxcodec.refinement`; CompressAI has no counterpart, so
it is reported on its own line and kept out of the ratio).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import add_peer_args, configure_allocator, fit_image, load_photos, run_peer  # noqa: E402
from jaxcodec import engine, sharding  # noqa: E402
from jaxcodec.layers import ALGORITHMS  # noqa: E402
from jaxcodec.models.factorized import FactorizedTask, default_config  # noqa: E402


def jax_codec_speed(image: np.ndarray, repeats: int, quality: int, refine: int = 0,
                    conv_algorithm: str = "auto") -> dict:
    """Median encode/decode seconds of an untrained FactorizedCodec on ``image``
    (``refine_s``: the encoder with ``refine`` refinement steps, if any)."""
    config = default_config(quality=quality)
    config.model.conv_algorithm = conv_algorithm
    task = FactorizedTask(config)
    mesh = sharding.data_mesh(jax.local_devices()[:1])
    dummy = np.zeros((1, 16, 16, 3), np.float32)
    state = engine.make_init(task, mesh)(jax.random.key(0), sharding.shard_batch(dummy, sharding.batch_sharding(mesh)))
    codec = task.make_codec(state, task.finalize(state))

    t = time.perf_counter()
    data = codec.encode(image, quality)  # warm-up: compiles g_a and g_s for this shape
    out = codec.decode(data)
    warmup_s = time.perf_counter() - t
    assert out.shape == image.shape and out.dtype == np.uint8, (out.shape, out.dtype)
    enc, dec = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        data = codec.encode(image, quality)
        enc.append(time.perf_counter() - t)
        t = time.perf_counter()
        out = codec.decode(data)
        dec.append(time.perf_counter() - t)
    result = {"encode_s": statistics.median(enc), "decode_s": statistics.median(dec), "bytes": len(data),
              "warmup_s": warmup_s}
    if refine:
        slow = codec.refined(refine)
        slow.encode(image, quality)  # warm-up: compiles the refinement step
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            slow.encode(image, quality)
            times.append(time.perf_counter() - t)
        result["refine_s"] = statistics.median(times)
    return result


def line(name: str, r: dict) -> str:
    return (f"{name}: encode {r['encode_s']:.3f} s, decode {r['decode_s']:.3f} s, "
            f"total {r['encode_s'] + r['decode_s']:.3f} s ({r['bytes']} bytes, untrained)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_peer_args(parser)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side (median reported)")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--quality", type=int, default=3)
    parser.add_argument("--photos", default=None, help="folder of photos (default: scikit-image's coffee)")
    parser.add_argument("--refine", type=int, default=0, help="also time the encoder with this many refinement steps")
    parser.add_argument("--conv-algorithm", choices=ALGORITHMS, default="auto",
                        help="jaxcodec's sub-pixel convolutions (model.conv_algorithm)")
    args = parser.parse_args()
    malloc = configure_allocator()

    photos = load_photos(args.photos)
    photo = photos[0] if args.photos else photos[1]  # skimage: coffee, 400x600 (same 2:3 aspect)
    image = fit_image(photo, args.height, args.width)
    print(f"codec speed: factorized prior N=128 M=192, one {args.height}x{args.width} RGB photo, "
          f"UNTRAINED weights (timing only), median of {args.repeats} after warm-up")

    j = jax_codec_speed(image, args.repeats, args.quality, args.refine, args.conv_algorithm)
    print(line(f"jaxcodec   (jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} cores, {malloc}, {args.conv_algorithm} conv)", j) + f", warm-up {j['warmup_s']:.1f} s")
    if args.refine:
        print(f"jaxcodec encode with {args.refine} refinement steps: {j['refine_s']:.3f} s "
              f"({(j['refine_s'] - j['encode_s']) / args.refine * 1000:.0f} ms per step; not in the ratio)")

    if not args.peer_python:
        print("no --peer-python given: CompressAI side not run, no ratio measured")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "image.npy")
        np.save(path, image)
        c = run_peer(args.peer_python, "codec", path, "--repeats", str(args.repeats),
                     "--device", args.peer_device, malloc=args.peer_malloc)
    print(line(f"compressai (torch {c['torch']}, {c['device']}, {c['threads']} threads, {args.peer_malloc} malloc)", c))
    ratio = (c["encode_s"] + c["decode_s"]) / (j["encode_s"] + j["decode_s"])
    print(f"ratio: {ratio:.3f}")


if __name__ == "__main__":
    main()
