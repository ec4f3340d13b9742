r"""The test-time rate-distortion objective of learned codecs on a dataset, from real files.

For each model, every image of ``--data`` is compressed and decompressed, and the model's
own objective ``λ·255²·MSE + bpp`` (Ballé et al. 2017's loss with CompressAI's λ
convention) is computed from the decoded pixels and the bytes written, averaged over the
images. Models of one rung (say a run and its encoder fine-tuned from it) are compared
at their common λ: lower is better::

    python bench/objective.py --models workdirs/fq3f,workdirs/fq3h --data folder:workdirs/photos-mixed --limit 7
    python bench/objective.py --models bmshj2017-factorized          # the shipped ladder, sample:photos

Prints one row per model and, for a model with the same λ as the row before it, the
relative change of the objective. ``--refine STEPS`` measures the encoders with latent
refinement (:mod:`jaxcodec.codecs.refinement`) at each model's own step size, or at ``--lr``;
``--crop S`` scores the centre S×S of each image. The shipped models' ``refine_lr`` was
chosen so, on training photos::

    python bench/objective.py --models bmshj2017-factorized --data folder:workdirs/photos-mixed \
        --limit 7 --crop 256 --refine 50 --lr 0.01       # and 0.005, 0.02
"""

from __future__ import annotations


import numpy as np


from _common import codec_members, model_data_parser, run_main
from jaxcodec import crops, data
from jaxcodec.eval import rate_distortion as evaluation
from jaxcodec.errors import ConfigError


def objective(codec, images: list[np.ndarray]) -> tuple[float, float, float]:
    """Mean ``(bpp, MSE, λ·255²·MSE + bpp)`` over ``images`` (real streams, ``[0, 1]`` MSE),
    measured by :func:`jaxcodec.eval.rate_distortion.evaluate_codec` as ``eval.py`` does."""
    results = evaluation.evaluate_codec(codec, images, [codec.qualities[-1]])["results"]
    bpp, mse = results["bpp"][0], results["mse"][0]
    return bpp, mse, codec.lmbda * 255.0**2 * mse + bpp


def main() -> None:
    parser = model_data_parser(__doc__)
    parser.add_argument("--limit", type=int, default=0, help="use this many images, spread over the dataset (0: all)")
    parser.add_argument("--crop", type=int, default=0, help="score the centre SxS of each image (0: whole images)")
    parser.add_argument("--refine", type=int, default=0, help="latent refinement steps (0: the plain encoder)")
    parser.add_argument("--lr", type=float, default=None, help="refinement step size (default: each model's own)")
    args = parser.parse_args()
    if args.limit < 0:
        raise ConfigError(f"--limit must be >= 0, got {args.limit}")
    if args.crop < 0:
        raise ConfigError(f"--crop must be >= 0, got {args.crop}")

    members = codec_members(args.models, "lmbda")
    if args.refine or args.lr is not None:
        members = [(name, codec.refined(args.refine, args.lr)) for name, codec in members]
    dataset = data.open_dataset(args.data, args.split)
    n = len(dataset)
    picks = range(n) if not args.limit or args.limit >= n else np.linspace(0, n - 1, args.limit).round().astype(int)
    images = [dataset.native(int(i)) for i in picks]
    if args.crop:
        images = [crops.center_crop(im, min(args.crop, im.shape[0]), min(args.crop, im.shape[1])) for im in images]
    refine = f", {args.refine} refinement steps at lr {args.lr or 'of each model'}" if args.refine else ""
    print(f"{len(images)} images of {args.data}{f', centre {args.crop}x{args.crop}' if args.crop else ''}{refine}")
    print(f"{'model':<36} {'lambda':>8} {'bpp':>8} {'PSNR':>7} {'objective':>10} {'change':>8}")
    previous = None
    for name, codec in members:
        bpp, mse, value = objective(codec, images)
        change = ""
        if previous is not None and previous[0] == codec.lmbda:
            change = f"{100 * (value / previous[1] - 1):+.2f}%"
        print(f"{name:<36} {codec.lmbda:>8.4g} {bpp:>8.4f} {10 * np.log10(1 / mse):>7.2f} {value:>10.4f} {change:>8}",
              flush=True)
        previous = (codec.lmbda, value)


if __name__ == "__main__":
    run_main(main)
