r"""How close a mean-scale hyperprior's qualities come to its transforms' ceiling.

For each quality, over the images of a dataset (means over images, as ``eval.py``):

* **unquantised**: PSNR of ``g_s(g_a(x))`` with the gained latent not rounded at all, the
  best the transforms can reconstruct at that quality whatever the bits;
* **rounded**: PSNR with the latent rounded about its mean, as the codec codes it (the
  float network's means: within a few hundredths of a decibel of the real stream);
* the latent's bits per pixel under the Gaussian conditional (the hyper-latent's not counted);
* how many latent channels carry more than 0.2% of those bits.

When the rounded PSNR at the top quality is within a fraction of a decibel of the
unquantised one and every channel is busy, more rate cannot buy quality: the curve flattens
because the transforms (here, the count of latent channels ``M``) are the limit, not the
entropy model (Ballé et al. 2018 sized ``M`` by rate for this reason; CompressAI's
mean-scale models use M=192 for the lower and M=320 for the higher qualities)::

    python tools/transform_ceiling.py --model mbt2018-mean --data folder:/work/runs/photos/val

With ``--channels-from K`` it also asks whether the channels ``K..M`` carry information (for
a model widened from ``K`` latent channels, ``configs/mbt2018_mean_m192.py``): the unquantised
PSNR with those channels replaced by their predicted means (what the decoder knows of them
without their symbols), and the share of their symbols that are not zero::

    python tools/transform_ceiling.py --model /work/runs/m192 --data folder:/work/runs/photos/val-half \
        --limit 6 --qualities 4,8 --channels-from 128
"""

from __future__ import annotations

import argparse
import sys

import jax.numpy as jnp
import numpy as np

from jaxcodec import data, zoo
from jaxcodec.entropy import gaussian_conditional
from jaxcodec.eval import metrics
from jaxcodec.errors import JaxcodecError

BUSY_SHARE = 0.002  # a channel carrying more than this share of the latent's bits is busy


def _psnr(decoded: jnp.ndarray, original: jnp.ndarray) -> float:
    return float(metrics.psnr(jnp.clip(decoded, 0.0, 1.0)[None], original[None])[0])


def measure(codec, image: np.ndarray, quality: float, channels_from: int = 0) -> dict[str, float]:
    """``{"unquantised", "rounded" (PSNR dB), "bpp" (latent), "busy" (channels)}`` of one
    uint8 image at ``quality`` through ``codec``'s float networks; with ``channels_from = K``
    (``0 < K < M``) also ``"without"`` (unquantised PSNR, the channels ``K..`` replaced by
    their predicted means) and ``"nonzero"`` (the share of those channels' symbols that are
    not zero)."""
    model, params = codec.model, codec.params
    h, w = image.shape[:2]
    x = jnp.asarray(codec.padded(image))
    original = x[0, :h, :w]
    q = jnp.full((1,), float(quality))
    y = model.apply(params, x, q, method=model.analysis)
    z_hat = jnp.round(model.apply(params, y, method=model.hyper_analysis))
    mean, scale = model.apply(params, z_hat, method=model.entropy_parameters)
    y_hat = jnp.round(y - mean) + mean
    bits = -jnp.log2(gaussian_conditional.likelihood(y_hat, mean, scale))
    per_channel = np.asarray(bits.sum(axis=(0, 1, 2)), np.float64)
    figures = {
        "unquantised": _psnr(model.apply(params, y, q, method=model.synthesis)[0, :h, :w], original),
        "rounded": _psnr(model.apply(params, y_hat, q, method=model.synthesis)[0, :h, :w], original),
        "bpp": float(per_channel.sum()) / (h * w),
        "busy": float(np.sum(per_channel > BUSY_SHARE * per_channel.sum())),
    }
    if channels_from:
        without = y.at[..., channels_from:].set(mean[..., channels_from:])
        figures["without"] = _psnr(model.apply(params, without, q, method=model.synthesis)[0, :h, :w], original)
        figures["nonzero"] = float(jnp.mean(jnp.round(y - mean)[..., channels_from:] != 0))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mbt2018-mean", help="a mean-scale hyperprior: shipped name or workdir")
    parser.add_argument("--data", default="sample:photos", help="dataset spec, as eval.py's --data")
    parser.add_argument("--split", default="test")
    parser.add_argument("--qualities", default="1,4,6,7,8", help="comma-separated qualities")
    parser.add_argument("--limit", type=int, default=0, help="at most this many images (0: all)")
    parser.add_argument("--channels-from", type=int, default=0,
                        help="also measure the latent channels from this index on (0: do not)")
    args = parser.parse_args()
    try:
        codec = zoo.get_codec(args.model)
        if not hasattr(codec, "latent_channels") or not hasattr(codec.model, "entropy_parameters"):
            raise JaxcodecError(f"{args.model} is not a mean-scale hyperprior")
        qualities = [float(q) for q in args.qualities.split(",")]
        low, high = codec.quality_range
        if not all(low <= q <= high for q in qualities):
            raise JaxcodecError(f"qualities must lie in {low:g}..{high:g}, got {args.qualities}")
        if args.channels_from and not 0 < args.channels_from < codec.latent_channels:
            raise JaxcodecError(f"--channels-from must lie in 1..{codec.latent_channels - 1}, got {args.channels_from}")
        dataset = data.open_dataset(args.data, args.split)
        count = len(dataset) if args.limit <= 0 else min(args.limit, len(dataset))
        images = [np.ascontiguousarray(dataset.native(i)) for i in range(count)]
    except (JaxcodecError, ValueError, OSError) as error:
        sys.exit(f"error: {error}")
    print(f"{args.model} (M={codec.latent_channels}) on {args.data}: {count} images")
    k = args.channels_from
    extra = f"  without {k}.. dB  nonzero {k}.." if k else ""
    print("quality  unquantised dB  rounded dB  latent bpp  busy channels" + extra)
    for quality in qualities:
        rows = [measure(codec, image, quality, k) for image in images]
        mean = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
        extra = f"  {mean['without']:{12 + len(str(k))}.2f}  {mean['nonzero']:{8 + len(str(k))}.4f}" if k else ""
        print(f"{quality:7g}  {mean['unquantised']:14.2f}  {mean['rounded']:10.2f}  {mean['bpp']:10.3f}  "
              f"{mean['busy']:6.1f}/{codec.latent_channels}" + extra, flush=True)


if __name__ == "__main__":
    main()
