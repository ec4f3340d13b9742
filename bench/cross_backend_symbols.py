"""Streams encoded on one backend, decoded on another: do the symbols agree, every time?

Two halves, run on two machines (a GPU and a CPU, say) with the same model:

* ``encode`` cuts ``--images`` crops from a photo set (random places, a few fixed sizes so that a
  GPU compiles each program only a handful of times, random qualities in the model's range),
  encodes them here and writes one ``.npz``: the streams, the symbols this machine decodes from
  them (``codec.decode_symbols``), its reconstructions, and where it ran (backend, device);
* ``check FILE`` decodes every stream of such a file here and counts the streams whose symbols
  differ from the encoding machine's (the count should be zero: the entropy parameters that
  choose each symbol's table come from the integer network, :mod:`jaxcodec.entropy.integer_net`,
  whatever the backend), the streams that fail to decode, and how far the reconstructions are
  apart (the synthesis transform and the means are floating point, so they may differ in the
  last bits, by a level or so of 8 bits).

On the GPU machine and back::

    python bench/cross_backend_symbols.py encode --model mbt2018-mean --photos sample:photos \\
        --images 60 --out cpu.npz                                      # on the CPU, carried over
    python bench/cross_backend_symbols.py check cpu.npz                # on the GPU
    python bench/cross_backend_symbols.py encode ... --out gpu.npz     # on the GPU, brought back
    python bench/cross_backend_symbols.py check gpu.npz                # on the CPU

``check`` prints one line and exits non-zero when any stream's symbols differ or fail to decode.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/_common, also when imported by path

from _common import random_quality  # noqa: E402

#: Crop sizes (height, width): few shapes, so few compilations, some not multiples of 64.
SIZES = ((256, 384), (200, 320), (128, 128), (96, 232))


def _where() -> str:
    import jax

    device = jax.devices()[0]
    return f"{jax.default_backend()} ({getattr(device, 'device_kind', device.platform)})"


def _pack(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Arrays of any shapes as one flat array and the offsets that cut it again."""
    offsets = np.cumsum([0] + [a.size for a in arrays]).astype(np.int64)
    flat = np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0)
    return flat, offsets


def _unpack(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def encode(model: str, photos: str, images: int, seed: int, out: str) -> None:
    """Writes ``out``: the streams of ``images`` random crops and what this machine decodes."""
    from jaxcodec import data, zoo

    codec = zoo.get_codec(model)
    dataset = data.open_dataset(photos, "test")
    rng = np.random.default_rng(seed)
    streams, symbols, pictures, shapes, qualities = [], [], [], [], []
    for i in range(images):
        photo = dataset.native(int(rng.integers(len(dataset))))
        h, w = SIZES[i % len(SIZES)]
        h, w = min(h, photo.shape[0]), min(w, photo.shape[1])
        y, x = int(rng.integers(0, photo.shape[0] - h + 1)), int(rng.integers(0, photo.shape[1] - w + 1))
        quality = random_quality(codec, rng)
        stream = codec.encode(np.ascontiguousarray(photo[y:y + h, x:x + w]), quality)
        streams.append(np.frombuffer(stream, np.uint8))
        symbols.append(codec.decode_symbols(stream).astype(np.int32))
        picture = codec.decode(stream)
        pictures.append(picture)
        shapes.append(picture.shape)
        qualities.append(quality)
    stream_flat, stream_offsets = _pack(streams)
    symbol_flat, symbol_offsets = _pack(symbols)
    picture_flat, picture_offsets = _pack(pictures)
    tmp = out + ".partial.npz"
    np.savez_compressed(tmp, model=model, where=_where(), streams=stream_flat, stream_offsets=stream_offsets,
                        symbols=symbol_flat, symbol_offsets=symbol_offsets, pictures=picture_flat.astype(np.uint8),
                        picture_offsets=picture_offsets, shapes=np.array(shapes, np.int64),
                        qualities=np.array(qualities, np.float64))
    os.replace(tmp, out)
    print(f"{out}: {images} streams of {model} encoded on {_where()}, {stream_flat.size} bytes")


def check(path: str, model: str | None = None) -> dict:
    """Decodes every stream of an :func:`encode` file here; the counts of :func:`main`'s line."""
    from jaxcodec import zoo
    from jaxcodec.errors import JaxcodecError

    saved = np.load(path)
    codec = zoo.get_codec(model or str(saved["model"]))
    streams = _unpack(saved["streams"], saved["stream_offsets"])
    symbols = _unpack(saved["symbols"], saved["symbol_offsets"])
    pictures = _unpack(saved["pictures"], saved["picture_offsets"])
    differ = failed = 0
    worst, changed, total = 0, 0, 0
    for stream, expected, picture, shape in zip(streams, symbols, pictures, saved["shapes"]):
        try:
            got = codec.decode_symbols(stream.tobytes())
            image = codec.decode(stream.tobytes())
        except JaxcodecError:
            failed += 1
            continue
        differ += not np.array_equal(got, expected)
        delta = np.abs(image.astype(np.int16) - picture.reshape(shape).astype(np.int16))
        worst = max(worst, int(delta.max()))
        changed += int(np.count_nonzero(delta))
        total += delta.size
    return {"encoded_on": str(saved["where"]), "decoded_on": _where(), "streams": len(streams), "differ": differ,
            "failed": failed, "max_level_difference": worst, "pixels_changed": changed / max(total, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    e = verbs.add_parser("encode", help="encode crops here and save the streams with this machine's symbols")
    e.add_argument("--model", default="mbt2018-mean", help="model name, model folder or training workdir")
    e.add_argument("--photos", default="sample:photos", help="dataset spec of the photos to cut crops from")
    e.add_argument("--images", type=int, default=60, help="streams to encode")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", required=True, help="the .npz to write")
    c = verbs.add_parser("check", help="decode the streams of an encode file here and compare")
    c.add_argument("file")
    c.add_argument("--model", help="the model (default: the one the file names)")
    args = parser.parse_args(argv)
    if args.verb == "encode":
        encode(args.model, args.photos, args.images, args.seed, args.out)
        return 0
    result = check(args.file, args.model)
    print(f"encoded on {result['encoded_on']}, decoded on {result['decoded_on']}: {result['differ']} of "
          f"{result['streams']} streams' symbols differ, {result['failed']} failed to decode; reconstructions: "
          f"max |difference| {result['max_level_difference']} levels, "
          f"{100 * result['pixels_changed']:.3f}% of values changed")
    return 1 if result["differ"] or result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
