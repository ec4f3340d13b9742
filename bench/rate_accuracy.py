r"""How closely a learned model's rate estimate predicts the bytes it writes.

For each image of ``--data`` and each model, compares the entropy model's estimate (the
test-time rate term of the training loss, under the continuous densities) with the real ANS
payload and the whole ``.jxc`` file:

* a factorized prior: ``Σ −log2 p(round(y))`` (``estimate_bits``), at its one quality;
* the mean-scale hyperprior, at each of ``--qualities``: ``Σ −log2 p(ẑ) + Σ −log2 P(ŷ | μ, σ)``
  from the float networks (Minnen, Ballé & Toderici 2018's rate term: ``μ, σ = h_s(ẑ)``,
  ``ŷ = round(y − μ) + μ``, the discretised Gaussian of
  :func:`jaxcodec.entropy.gaussian_conditional.likelihood`: the model's own forward pass,
  :meth:`jaxcodec.train.tasks.hyperprior.MeanScaleTask.forward`, with rounded latents), where
  the stream codes with the integer network's mean and scale index and the tables of 64
  scales; the tables' own ideal code length (``estimate_bits``, what rate control searches on) is printed beside it.

::

    python bench/rate_accuracy.py                       # the shipped bmshj2017-factorized ladder
    python bench/rate_accuracy.py --models workdirs/fq3 --data folder:/photos
    python bench/rate_accuracy.py --models mbt2018-mean --qualities 1,4,8 --data folder:/photos

Prints one row per model and quality (sums over the images) and ends with ``max payload
error: X%``, the largest ``|payload − estimate| / estimate`` over the rows.
"""

from __future__ import annotations

import numpy as np

from _common import codec_members, model_data_parser, run_main
from jaxcodec import data
from jaxcodec.codecs import container
from jaxcodec.codecs.hyperprior import MeanScaleCodec, check_quality


def _rows(codec, qualities):
    """``(label, estimate(image) -> bits, tables(image) -> bits or None, quality)`` per row."""
    if isinstance(codec, MeanScaleCodec):  # one model, every quality
        import jax

        # the rate term of the model's own forward pass with rounded latents (module docstring)
        rate = jax.jit(lambda params, x, quality: codec.task.forward(params, x, quality, None)[1][0])
        for q in qualities:
            yield (f"q{q:g}", lambda im, q=q: float(rate(codec.params, codec.padded(im), np.full((1,), q, np.float32))),
                   lambda im, q=q: codec.estimate_bits(im, q), q)
    else:
        yield "", codec.estimate_bits, None, codec.qualities[-1]


def main() -> None:
    parser = model_data_parser(__doc__)
    parser.add_argument("--qualities", default="1,4,8",
                        help="qualities of a continuous-rate model (mbt2018-mean), comma-separated")
    args = parser.parse_args()
    qualities = [check_quality(q) for q in args.qualities.split(",")]  # one line for a bad one

    members = codec_members(args.models, "estimate_bits")
    dataset = data.open_dataset(args.data, args.split)
    images = [dataset.native(i) for i in range(len(dataset))]  # uint8, as a user's files
    pixels = sum(im.shape[0] * im.shape[1] for im in images)
    print(f"{len(images)} images of {args.data} ({pixels} pixels)")
    print(f"{'model':<28} {'estimate bpp':>12} {'tables/est':>10} {'payload bpp':>12} {'file bpp':>9} "
          f"{'payload/est':>12} {'worst image':>12}")
    worst_row = 0.0
    for name, codec in members:
        for label, estimate, tables, quality in _rows(codec, qualities):
            est = pay = tot = tab = 0.0
            worst_image = 0.0
            for image in images:
                e = estimate(image)
                stream = codec.encode(image, quality)
                p = 8 * len(container.unpack(stream)[1])
                est, pay, tot = est + e, pay + p, tot + 8 * len(stream)
                tab += tables(image) if tables else e
                worst_image = max(worst_image, abs(p - e) / e)
            worst_row = max(worst_row, abs(pay - est) / est)
            row = f"{name} {label}".strip()
            print(f"{row:<28} {est / pixels:>12.4f} {tab / est:>10.5f} {pay / pixels:>12.4f} {tot / pixels:>9.4f} "
                  f"{pay / est:>12.5f} {100 * worst_image:>11.2f}%", flush=True)
    print(f"max payload error: {100 * worst_row:.2f}%")


if __name__ == "__main__":
    run_main(main)
