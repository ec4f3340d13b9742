r"""Damaged ``.jxc`` streams: does anything but a clean error or the right image come out?

::

    .venv/bin/python bench/fuzz_streams.py                      # 10,000 mutations of each stream
    .venv/bin/python bench/fuzz_streams.py --mutations 2000 --json out/fuzz.json

A 192×256 crop of scikit-image's astronaut is compressed by ``--model`` (a factorized
model; another family, such as ``mbt2018-mean``, is fuzzed in its own stream alone, in tiles too;
an MNIST or GAN model codes the embedded MNIST sample's first test digit at its middle bit depth) as the codec
writes it now (``.jxc`` version 3: compact header, tiled payload, guard symbols, content
check), and as a version-1 stream
(one untiled payload, no guard, no check: what the codec wrote before tiling, and what
the committed test vectors are), built from the same symbols. The new
stream is coded in tiles of ``--tile`` latent positions (4: twelve tiles here, instead of
one at the shipped 64), so that tile lengths and guards are exercised too.

Each mutation changes one byte of the stream, a bit flip or a random value, at a position
drawn uniformly, and half of them then recompute the CRC-32 at the end (all of its bytes
that the stream carries), as a tool that edits streams would. Every mutated stream goes through :func:`jaxcodec.decompress`
without a model (the shipped model is found from the header, as ``python -m jaxcodec
decompress`` does), and the outcome is counted:

* ``error``: a :class:`jaxcodec.errors.JaxcodecError` (one line, what the user sees);
* ``same image``: decoded to exactly the original stream's image;
* ``wrong image``: decoded without an error to another image (another size included):
  the failure this counts;
* ``other exception``: anything else raised (a bug);
* ``slow``: a decode that took longer than ``--max-seconds`` (2 s).

A mutation of a CRC byte whose CRC is then recomputed gives the stream back unchanged; it
is counted as ``no change`` and not decoded.
"""

from __future__ import annotations

import argparse
import json
import struct
import time
import zlib


from _common import run_main


def streams(model: str, tile: int) -> tuple[dict[str, bytes], object]:
    """``{"version 3": ..., "version 1": ...}`` of the crop, and the codec."""
    import numpy as np
    import skimage.data

    from jaxcodec import data, zoo
    from jaxcodec.codecs import container
    from jaxcodec.entropy import coder as entropy
    from jaxcodec.codecs import factorized as factorized_codec
    from jaxcodec.codecs import hyperprior as hyperprior_codec

    from jaxcodec.codecs import latent as latent_codec

    codec = zoo.get_codec(model)
    if isinstance(codec, latent_codec.LatentCodec):  # an MNIST or GAN codec: a test digit of the embedded sample
        digit = np.round(data.load_images("sample:mnist", "test", limit=1)[0] * 255).astype(np.uint8)
        return {"stream": codec.encode(digit, codec.qualities[len(codec.qualities) // 2])}, codec
    image = skimage.data.astronaut()[100:292, 128:384]
    if not hasattr(codec, "freqs"):  # a model with its own stream (mbt2018-mean): that stream alone, in tiles
        saved, hyperprior_codec.STREAM_TILE = hyperprior_codec.STREAM_TILE, tile
        try:
            return {"stream": codec.encode(image, codec.qualities[0])}, codec
        finally:
            hyperprior_codec.STREAM_TILE = saved
    saved, factorized_codec.STREAM_TILE = factorized_codec.STREAM_TILE, tile
    try:
        new = codec.encode(image, codec.qualities[0])
    finally:
        factorized_codec.STREAM_TILE = saved
    header, _ = container.unpack(new)
    symbols = codec.decode_symbols(new)
    h, w, m = symbols.shape
    payload = entropy.encode_symbols(symbols.reshape(-1), np.tile(np.arange(m), h * w), codec.freqs, codec.offsets)
    fields = {**header.__dict__, "table_hash": codec.table_hash, "tile": 0, "check": b"", "layout": 1}
    return {"version 3": new, "version 1": container.pack(container.Header(**fields), payload)}, codec


def fuzz(data: bytes, mutations: int, max_seconds: float, seed: int) -> dict[str, int]:
    import numpy as np

    import jaxcodec
    from jaxcodec.codecs import container
    from jaxcodec.errors import JaxcodecError

    reference = jaxcodec.decompress(data)
    rng = np.random.default_rng(seed)
    counts = {"error": 0, "same image": 0, "wrong image": 0, "other exception": 0, "slow": 0,
              "with the CRC recomputed": 0, "no change": 0}
    slowest = 0.0
    for _ in range(mutations):
        edited = bytearray(data)
        position = int(rng.integers(len(edited)))
        if rng.random() < 0.5:
            edited[position] ^= 1 << int(rng.integers(8))
        else:
            edited[position] = (edited[position] + int(rng.integers(1, 256))) % 256
        if rng.random() < 0.5:
            n = container.crc_bytes(data)
            edited[-n:] = struct.pack("<I", zlib.crc32(bytes(edited[:-n])))[:n]
            counts["with the CRC recomputed"] += 1
        if bytes(edited) == data:
            counts["no change"] += 1
            continue
        started = time.perf_counter()
        try:
            decoded = jaxcodec.decompress(bytes(edited))
        except JaxcodecError:
            counts["error"] += 1
        except Exception:  # noqa: BLE001 - what this counts
            counts["other exception"] += 1
        else:
            same = decoded.shape == reference.shape and np.array_equal(decoded, reference)
            counts["same image" if same else "wrong image"] += 1
        seconds = time.perf_counter() - started
        slowest = max(slowest, seconds)
        counts["slow"] += seconds > max_seconds
    counts["slowest decode (ms)"] = round(1000 * slowest)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="bmshj2017-factorized-q3")
    parser.add_argument("--mutations", type=int, default=10_000)
    parser.add_argument("--tile", type=int, default=4, help="latent positions per coded tile of the new stream")
    parser.add_argument("--max-seconds", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the counts here")
    args = parser.parse_args()
    data, _ = streams(args.model, args.tile)
    results = {}
    for name, stream in data.items():
        results[name] = fuzz(stream, args.mutations, args.max_seconds, args.seed)
        results[name]["bytes"] = len(stream)
        print(f"{name} ({len(stream)} bytes): " + ", ".join(f"{k} {v}" for k, v in results[name].items()
                                                            if k != "bytes"), flush=True)
    if args.json:
        from jaxcodec.fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(results, indent=1))


if __name__ == "__main__":
    run_main(main)
