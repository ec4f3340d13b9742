r"""Writes and checks the committed test vectors of the shipped models.

Each shipped model codes one fixed image at a few qualities. Per stream, ``vectors.json``
records the model and quality that made it, the SHA-256 of its **symbols** (what the
entropy decoder recovers: ``codec.decode_symbols``) and the shape of the decoded image;
the decoded image itself is committed beside the stream as a PNG (``NAME.png``).

What a decoder promises, and what :func:`check` asserts:

* the symbols are identical on every machine and backend (integer tables make the
  entropy decoder exact), so their hash is compared exactly;
* the pixels are the reference image's up to the synthesis transform's float rounding,
  as JPEG specifies its inverse DCT's accuracy rather than its exact output: at most
  :data:`MAX_ABS_DIFF` per value and at most :data:`MAX_DIFF_SHARE` of the values
  differing. Measured drift (docs/formats.md, "What a decoder promises"): max 1, at most 0.015% of
  the values, between XLA's AVX-512, AVX2 and SSE4.2 code, Winograd and direct
  convolutions, and a float64 synthesis.

    python tests/vectors/make_vectors.py            # write every shipped model's vectors
    python tests/vectors/make_vectors.py --models bmshj2017-factorized-q3
    python tests/vectors/make_vectors.py --check    # decode every vector here, report drift

Only rewrite vectors after a deliberate change to a decoder or a shipped model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
INDEX = os.path.join(HERE, "vectors.json")
MAX_ABS_DIFF = 1  # largest |decoded - reference| of any value
MAX_DIFF_SHARE = 0.005  # largest share of values that may differ from the reference


def symbols_hash(symbols: np.ndarray) -> str:
    """SHA-256 of integer symbols (as int64, C order) and their shape."""
    symbols = np.ascontiguousarray(symbols, dtype=np.int64)
    return hashlib.sha256(repr(symbols.shape).encode() + symbols.tobytes()).hexdigest()


def reference_image(file: str, shape: list[int]) -> np.ndarray:
    """The committed decoded image of vector ``file`` (``NAME.png``), as ``uint8`` of ``shape``."""
    with Image.open(os.path.join(HERE, os.path.splitext(file)[0] + ".png")) as im:
        return np.asarray(im, dtype=np.uint8).reshape(shape)


def pixel_drift(decoded: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """``(max |Δ|, share of differing values)`` of two ``uint8`` images of one shape."""
    diff = np.abs(decoded.astype(np.int16) - reference.astype(np.int16))
    return int(diff.max(initial=0)), float(np.count_nonzero(diff)) / max(diff.size, 1)


def check(file: str, entry: dict) -> list[str]:
    """Decodes vector ``file`` as a user would and returns what breaks the promise
    (empty when the symbols are exact and the pixels within tolerance)."""
    import jaxcodec
    from jaxcodec import zoo
    from jaxcodec.codecs import container

    with open(os.path.join(HERE, file), "rb") as f:
        stream = f.read()
    problems = []
    symbols = zoo.get_codec(entry["model"]).decode_symbols(stream)
    if symbols_hash(symbols) != entry["symbols_sha256"]:
        problems.append(f"{file}: symbols differ from the recorded ones")
    decoded = jaxcodec.decompress(stream)
    header = container.unpack(stream)[0]
    if list(decoded.shape) != entry["shape"] or [header.height, header.width] != entry["shape"][:2]:
        return problems + [f"{file}: decoded shape {decoded.shape}, recorded {entry['shape']}"]
    worst, share = pixel_drift(decoded, reference_image(file, entry["shape"]))
    if worst > MAX_ABS_DIFF or share > MAX_DIFF_SHARE:
        problems.append(f"{file}: pixels drift by up to {worst} in {100 * share:.3f}% of the values "
                        f"(allowed {MAX_ABS_DIFF} in {100 * MAX_DIFF_SHARE:g}%)")
    return problems


def load_index() -> dict:
    return json.load(open(INDEX)) if os.path.isfile(INDEX) else {}


def source_image(model: str) -> tuple[np.ndarray, str]:
    """The image a model's vectors code: an MNIST digit, or a photo crop of odd size."""
    from jaxcodec import data, zoo

    codec = zoo.get_codec(model)
    if getattr(codec, "image_shape", (0, 0, 3))[-1] == 1:
        digit = data.open_dataset("sample:mnist", "test").native(0)
        return digit, "sample:mnist test image 0"
    photo = data.open_dataset("sample:photos", "test").native(0)
    return photo[101:101 + 75, 203:203 + 118], "sample:photos image 0, rows 101:176, columns 203:321"


def _write(path: str, write) -> None:
    with open(path + ".tmp", "wb") as f:
        write(f)
    os.replace(path + ".tmp", path)


def untiled_stream(codec, image: np.ndarray, quality: float) -> bytes:
    """The mean-scale hyperprior's stream of ``image`` in its earlier layout (header tile 0:
    the hyper-latent's part, then the whole latent in one part, no guards; with the content
    check), which decoders still read: built from the codec's own symbols."""
    import dataclasses
    import struct

    from jaxcodec.codecs import container
    from jaxcodec.entropy import coder as entropy

    z_hat, symbols, indexes = codec.latents(image, quality)
    n = codec.hyper_channels  # the hyper-latent's channels (N unless the hyper-networks are narrower)
    z_bytes = entropy.encode_symbols(z_hat.reshape(-1), np.tile(np.arange(n), z_hat.shape[0] * z_hat.shape[1]),
                                     codec.z_freqs, codec.z_offsets)
    y_bytes = entropy.encode_symbols(symbols.reshape(-1), indexes.reshape(-1), codec.y_freqs, codec.y_offsets)
    header = dataclasses.replace(container.unpack(codec.encode(image, quality))[0], tile=0)
    header = dataclasses.replace(header, check=container.content_check(header, z_hat, symbols))
    return container.pack(header, struct.pack("<I", len(z_bytes)) + z_bytes + y_bytes)


def make(names: list[str], per_model: int) -> None:
    import jaxcodec
    from jaxcodec import zoo

    index = load_index()
    for name in names:
        codec = zoo.get_codec(name)
        image, described = source_image(name)
        qualities = list(codec.qualities)
        chosen = sorted({qualities[0], qualities[-1]})[:per_model]
        if getattr(codec, "quality_range", None):  # continuous rate: and a real quality between two rungs
            chosen.append(round((qualities[0] + qualities[-1]) / 2 + 0.25, 2))
        for quality in chosen:
            stream = jaxcodec.compress(image, codec, quality)
            decoded = jaxcodec.decompress(stream)  # found from the header, as a user would
            file = f"{name}-{quality}.jxc"
            _write(os.path.join(HERE, file), lambda f: f.write(stream))
            png = decoded[..., 0] if decoded.shape[-1] == 1 else decoded
            _write(os.path.join(HERE, f"{name}-{quality}.png"), lambda f: Image.fromarray(png).save(f, "PNG"))
            index[file] = {"model": name, "quality": quality, "source": described, "shape": list(decoded.shape),
                           "symbols_sha256": symbols_hash(codec.decode_symbols(stream))}
            print(f"{file}: {len(stream)} bytes, decoded {decoded.shape}, symbols {index[file]['symbols_sha256'][:16]}")
            if hasattr(codec, "entropy_parameters"):  # the earlier, untiled layout too
                old = untiled_stream(codec, image, quality)
                file = f"{name}-untiled-{quality}.jxc"
                _write(os.path.join(HERE, file), lambda f: f.write(old))
                _write(os.path.join(HERE, f"{name}-untiled-{quality}.png"),
                       lambda f: Image.fromarray(jaxcodec.decompress(old)).save(f, "PNG"))
                index[file] = {"model": name, "quality": quality, "source": f"{described}; the layout before tiled streams",
                               "shape": list(decoded.shape), "symbols_sha256": symbols_hash(codec.decode_symbols(old))}
                print(f"{file}: {len(old)} bytes, the earlier layout")
    _write(INDEX, lambda f: f.write(json.dumps(dict(sorted(index.items())), indent=1).encode()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="", help="comma-separated shipped models (default: all)")
    parser.add_argument("--per-model", type=int, default=2, help="qualities coded per model (lowest, highest)")
    parser.add_argument("--check", action="store_true", help="decode every vector and report, instead of writing")
    args = parser.parse_args()
    if args.check:
        problems = [p for file, entry in sorted(load_index().items()) for p in check(file, entry)]
        print("\n".join(problems) or f"{len(load_index())} vectors: symbols exact, pixels within tolerance")
        return 1 if problems else 0
    from jaxcodec import zoo

    make(args.models.split(",") if args.models else sorted(zoo.shipped_models()), args.per_model)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
    sys.exit(main())
