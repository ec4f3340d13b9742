"""Codec speed: real encode + decode of one 512x768 photo, jaxcodec against CompressAI.

Measures wall-clock seconds of jaxcodec's ``FactorizedCodec`` (Ballé 2017 factorized
prior, ``default_config(quality=3)``: N=128, M=192; ``--model mbt2018-mean``: the
mean-scale hyperprior's codec, N=128, M=192, against CompressAI's
``MeanScaleHyperprior(128, 192)``): ``codec.encode(image_uint8, 3)``
→ ``.jxc`` bytes (analysis transform, rounding, ANS coding with the integer tables of
``task.finalize``) and ``codec.decode(bytes)`` → uint8 image; and of CompressAI's
``FactorizedPrior(128, 192)``: ``model.compress(x)`` / ``model.decompress(strings, shape)``
after ``model.update(force=True)``, in a subprocess of ``--peer-python`` with
``torch.set_num_threads(2)``. Both code the same ``--height`` x ``--width`` RGB image
(scikit-image's ``coffee`` photo resized with Lanczos, or the centre of the first photo
of ``--photos DIR``). Both models are UNTRAINED (freshly initialised), which is fine
for timing but makes the byte counts meaningless. Each side is warmed up first (jit
compilation / first call excluded). The two sides take turns for ``--rounds`` rounds of
``--repeats`` runs each (jaxcodec, then CompressAI in a fresh subprocess), so a slow
spell of the machine falls on both; each round's ratio is printed, and the reported
times are the medians over all runs of all rounds.

    .venv/bin/python bench/codec_speed.py --peer-python /work/peer-venv/bin/python --repeats 5 --rounds 3

The last line is ``ratio: X`` with X = CompressAI total s / jaxcodec total s (encode
median + decode median)
(jaxcodec speed / CompressAI speed). ``--refine N`` also times jaxcodec's encoder with N
steps of latent refinement (:mod:`jaxcodec.codecs.refinement`; CompressAI has no counterpart, so
it is reported on its own line and kept out of the ratio). ``--max-bytes-share S`` also times
rate control with the shipped default photo model (trained, so its byte counts mean
something): ``jaxcodec.rate_control.fit(image, codec, max_bytes=N)`` with N the share S of the
way from its smallest to its largest stream of the image, against one encode at the quality
the search picks, and prints how many full encodes the search made (``Fit.encodes``).
``--split`` also prints where jaxcodec's time goes: the transforms (with the copies to and from
the device), entropy coding and stream handling on the host, and the copies alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import numpy as np


from _common import add_peer_args, configure_allocator, fit_image, load_photos, positive, take_turns
from jaxcodec.train import engine
from jaxcodec.train import sharding
from jaxcodec.ops import conv_impl
from jaxcodec.ops.conv import ALGORITHMS
from jaxcodec.train.tasks import hyperprior as hyperprior_task
from jaxcodec.train.tasks.factorized import FactorizedTask, default_config
from jaxcodec.train.tasks.hyperprior import MeanScaleTask


def jax_codec(image: np.ndarray, quality: int, conv_algorithm: str = "auto", model: str = "factorized"):
    """An untrained codec, warmed up on ``image`` (its programs compiled): the factorized
    prior (``default_config(quality)``) or the mean-scale hyperprior (N=128, M=192,
    :mod:`jaxcodec.models.hyperprior`); returns ``(codec, warm-up seconds)``."""
    if model == "mbt2018-mean":
        task = MeanScaleTask(hyperprior_task.default_config())
    else:
        task = FactorizedTask(default_config(quality=quality))
    mesh = sharding.data_mesh(jax.local_devices()[:1])
    dummy = np.zeros((1, 64, 64, 3), np.float32)
    state = engine.make_init(task, mesh)(jax.random.key(0), sharding.shard_batch(dummy, sharding.batch_sharding(mesh)))
    codec = task.make_codec(state, task.finalize(state))
    t = time.perf_counter()
    with conv_impl(conv_algorithm):  # read while the programs are traced; the compiled ones keep it
        out = codec.decode(codec.encode(image, quality))  # compiles g_a and g_s for this shape
    assert out.shape == image.shape and out.dtype == np.uint8, (out.shape, out.dtype)
    return codec, time.perf_counter() - t


def shipped_codec(name: str, image: np.ndarray, quality: float, conv_algorithm: str = "auto"):
    """A shipped model's codec, warmed up on ``image`` at ``quality`` (a single rung at its own,
    :func:`quality_for`); returns ``(codec, quality, warm-up seconds)``."""
    from jaxcodec import zoo

    codec = zoo.get_codec(name)
    quality = quality_for(codec, quality)
    t = time.perf_counter()
    with conv_impl(conv_algorithm):
        out = codec.decode(codec.encode(image, quality))
    assert out.shape == image.shape and out.dtype == np.uint8, (out.shape, out.dtype)
    return codec, quality, time.perf_counter() - t


def time_codec(codec, image: np.ndarray, quality: int, repeats: int) -> dict:
    """Seconds of ``repeats`` encodes and decodes (lists) and the stream's size."""
    enc, dec = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        data = codec.encode(image, quality)
        enc.append(time.perf_counter() - t)
        t = time.perf_counter()
        codec.decode(data)
        dec.append(time.perf_counter() - t)
    return {"encode_all": enc, "decode_all": dec, "bytes": len(data)}


def _median_seconds(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after one untimed call (compilation)."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_split(codec, image: np.ndarray, quality: int, repeats: int, model: str) -> str:
    """Where encode and decode spend their time: the transforms (on the device, with the copies
    to and from it), the entropy coding and stream handling on the host (the rest of each
    call), and the copies alone (the padded image to the device, a latent-sized array back)."""
    h, w = image.shape[:2]
    padded = codec.padded(image)
    if model == "factorized":
        symbols = latent = codec.latents(image)
        networks_enc = _median_seconds(lambda: codec.latents(image), repeats)
        networks_dec = _median_seconds(lambda: codec.reconstruct(symbols, h, w), repeats)
    else:  # the hyperprior: g_a and h_a on the device; μ and the scale indexes by the integer network, on the host
        import jax.numpy as jnp

        q = jnp.full((1,), float(quality), jnp.float32)
        y = codec.programs.analysis(codec.params, padded, q)
        latent = np.asarray(y)[0]
        networks_enc = _median_seconds(
            lambda: np.asarray(codec.programs.hyper_analysis(codec.params, codec.programs.analysis(
                codec.params, codec.padded(image), q))), repeats)
        networks_dec = _median_seconds(lambda: np.asarray(codec.programs.synthesis(codec.params, y, q)), repeats)
    stream = codec.encode(image, quality)
    encode = _median_seconds(lambda: codec.encode(image, quality), repeats)
    decode = _median_seconds(lambda: codec.decode(stream), repeats)
    device = jax.devices()[0]
    to_device = _median_seconds(lambda: jax.device_put(padded, device), repeats)
    on_device = jax.device_put(np.asarray(latent, np.float32), device)
    from_device = _median_seconds(lambda: np.asarray(on_device + 0), repeats)  # a fresh array each call: a copy is cached
    return (f"split ({model}): encode {encode:.3f} s = transforms {networks_enc:.3f} s + entropy coding and "
            f"stream {encode - networks_enc:.3f} s; decode {decode:.3f} s = transforms {networks_dec:.3f} s + "
            f"entropy decoding and stream {decode - networks_dec:.3f} s; of the transforms, copies: image to "
            f"the device {to_device * 1e3:.1f} ms, latent back {from_device * 1e3:.1f} ms")


def pooled(rounds: list[dict]) -> dict:
    """Medians over every timed run of every round."""
    enc = [t for r in rounds for t in r["encode_all"]]
    dec = [t for r in rounds for t in r["decode_all"]]
    return {"encode_s": statistics.median(enc), "decode_s": statistics.median(dec), "bytes": rounds[-1]["bytes"]}


def total(r: dict) -> float:
    return statistics.median(r["encode_all"]) + statistics.median(r["decode_all"])


def line(name: str, r: dict, trained: bool = False) -> str:
    return (f"{name}: encode {r['encode_s']:.3f} s, decode {r['decode_s']:.3f} s, "
            f"total {r['encode_s'] + r['decode_s']:.3f} s ({r['bytes']} bytes{'' if trained else ', untrained'})")


def quality_for(codec, quality: float) -> float:
    """``quality``, or a single-rung model's own quality (a ``-qN`` rung codes only N)."""
    if hasattr(codec, "quality_range") or quality in codec.qualities:
        return quality
    return codec.qualities[0]


def time_rate_control(image: np.ndarray, share: float, repeats: int) -> str:
    """Median seconds of ``rate_control.fit(..., max_bytes=N)`` against one encode at the
    quality it picks, with the shipped default photo model."""
    from jaxcodec import rate_control, zoo
    from jaxcodec.api import DEFAULT_MODEL

    codec = zoo.get_codec(DEFAULT_MODEL)
    low, high = (len(codec.encode(image, q)) for q in (min(codec.qualities), max(codec.qualities)))
    budget = int(low + share * (high - low))
    result = rate_control.fit(image, codec, max_bytes=budget)  # warm-up: every rung it tries compiles
    fits, ones = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        result = rate_control.fit(image, codec, max_bytes=budget)
        fits.append(time.perf_counter() - t)
        t = time.perf_counter()
        codec.encode(image, result.quality)
        ones.append(time.perf_counter() - t)
    fit_s, one_s = statistics.median(fits), statistics.median(ones)
    return (f"rate control ({DEFAULT_MODEL}, max_bytes={budget}: {len(result.data)} bytes at quality "
            f"{result.quality:g}): {fit_s:.3f} s = {fit_s / one_s:.1f} encodes of {one_s:.3f} s; "
            f"the search made {result.encodes} full encodes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_peer_args(parser)
    parser.add_argument("--repeats", type=positive, default=5, help="timed runs per side and round")
    parser.add_argument("--rounds", type=positive, default=3,
                        help="rounds in which the two sides take turns (medians over all runs reported)")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--quality", type=float, default=3)
    parser.add_argument("--photos", default=None, help="folder of photos (default: scikit-image's coffee)")
    parser.add_argument("--refine", type=int, default=0, help="also time the encoder with this many refinement steps")
    parser.add_argument("--max-bytes-share", type=float, default=None,
                        help="also time compress(max_bytes=N) of the shipped default photo model, N this share "
                             "of the way from its smallest to its largest stream")
    parser.add_argument("--model", choices=["factorized", "mbt2018-mean"], default="factorized",
                        help="the factorized prior or the mean-scale hyperprior (both N=128, M=192; CompressAI's "
                             "FactorizedPrior or MeanScaleHyperprior on the peer side)")
    parser.add_argument("--shipped", default=None, metavar="NAME",
                        help="time this shipped model (trained, its own N and M) instead of an untrained one; "
                             "no peer (e.g. mbt2018-mean beside bmshj2017-factorized-q5)")
    parser.add_argument("--against", default=None, metavar="NAME",
                        help="with --shipped: a second shipped model timed in turns with it; prints the time "
                             "ratio (e.g. --shipped mbt2018-mean --against bmshj2017-factorized-q5)")
    parser.add_argument("--conv-algorithm", choices=ALGORITHMS, default="auto",
                        help="jaxcodec's convolution algorithm (jaxcodec.ops.conv_impl)")
    parser.add_argument("--split", action="store_true",
                        help="also split jaxcodec's times into transforms, entropy coding and copies")
    args = parser.parse_args()
    if args.against and not args.shipped:
        parser.error("--against needs --shipped")
    if float(args.quality).is_integer():
        args.quality = int(args.quality)  # the ladders' rungs are whole numbers
    malloc = configure_allocator()

    photos = load_photos(args.photos)
    photo = photos[0] if args.photos else photos[1]  # skimage: coffee, 400x600 (same 2:3 aspect)
    image = fit_image(photo, args.height, args.width)
    if args.shipped:
        if args.peer_python:
            parser.error("--shipped times a shipped model alone: no --peer-python")
        codec, args.quality, warmup_s = shipped_codec(args.shipped, image, args.quality, args.conv_algorithm)
        from jaxcodec.codecs.hyperprior import MeanScaleCodec

        args.model = "mbt2018-mean" if isinstance(codec, MeanScaleCodec) else "factorized"
        print(f"codec speed: shipped {args.shipped} ({codec.description}), one {args.height}x{args.width} RGB "
              f"photo, {args.rounds} rounds of {args.repeats} runs after warm-up")
    else:
        print(f"codec speed: {args.model} N=128 M=192, one {args.height}x{args.width} RGB photo, "
              f"UNTRAINED weights (timing only), {args.rounds} rounds of {args.repeats} runs per side after warm-up")
        codec, warmup_s = jax_codec(image, args.quality, args.conv_algorithm, args.model)
    jax_name = (f"jaxcodec   (jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} cores, "
                f"{malloc}, {args.conv_algorithm} conv)")
    if args.peer_python:
        ours, theirs = take_turns(
            args.rounds, image, lambda: time_codec(codec, image, args.quality, args.repeats), args.peer_python,
            "codec", ["--repeats", str(args.repeats), "--device", args.peer_device, "--model", args.model],
            speed=lambda r: 1.0 / total(r),
            describe=lambda r: f"{total(r):.3f} s", malloc=args.peer_malloc)
    elif args.against:
        other, other_quality, _ = shipped_codec(args.against, image, args.quality, args.conv_algorithm)
        ours, others = [], []
        for _ in range(args.rounds):  # in turns, so a slow spell of the machine falls on both
            ours.append(time_codec(codec, image, args.quality, args.repeats))
            others.append(time_codec(other, image, other_quality, args.repeats))
    else:
        ours = [time_codec(codec, image, args.quality, args.repeats) for _ in range(args.rounds)]
    j = pooled(ours)
    print(line(jax_name, j, trained=bool(args.shipped)) + f", warm-up {warmup_s:.1f} s")
    if args.against:
        o = pooled(others)
        print(line(f"{args.against} (quality {other_quality:g})", o, trained=True))
        print(f"time ratio {args.shipped} (quality {args.quality:g}) / {args.against}: "
              f"{(j['encode_s'] + j['decode_s']) / (o['encode_s'] + o['decode_s']):.2f}")
    if args.refine:
        slow = codec.refined(args.refine)
        slow.encode(image, args.quality)  # warm-up: compiles the refinement step
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            slow.encode(image, args.quality)
            times.append(time.perf_counter() - t)
        refine_s = statistics.median(times)
        print(f"jaxcodec encode with {args.refine} refinement steps: {refine_s:.3f} s "
              f"({(refine_s - j['encode_s']) / args.refine * 1000:.0f} ms per step; not in the ratio)")
    if args.split:
        print(time_split(codec, image, args.quality, args.repeats, args.model))
    if args.max_bytes_share is not None:
        print(time_rate_control(image, args.max_bytes_share, args.repeats))
    if not args.peer_python:
        print("no --peer-python given: CompressAI side not run, no ratio measured")
        return
    c = pooled(theirs)
    print(line(f"compressai (torch {theirs[-1]['torch']}, {theirs[-1]['device']}, {theirs[-1]['threads']} threads, "
               f"{args.peer_malloc} malloc)", c))
    ratio = (c["encode_s"] + c["decode_s"]) / (j["encode_s"] + j["decode_s"])
    print(f"ratio: {ratio:.3f}")


if __name__ == "__main__":
    main()
