r"""How closely the factorized models' rate estimate predicts the bytes they write.

For each image of ``--data`` and each model, compares the entropy model's estimate
``Σ −log2 p(round(y))`` (the test-time rate term of the training loss, under the
continuous density) with the real ANS payload and the whole ``.jxc`` file::

    python bench/rate_accuracy.py                       # the shipped bmshj2017-factorized ladder
    python bench/rate_accuracy.py --models workdirs/fq3 --data folder:/photos

Prints one row per model (sums over the images) and ends with ``max payload error: X%``,
the largest ``|payload − estimate| / estimate`` over models.
"""

from __future__ import annotations



from _common import codec_members, model_data_parser, run_main
from jaxcodec import data
from jaxcodec.codecs import container


def main() -> None:
    parser = model_data_parser(__doc__)
    args = parser.parse_args()

    members = codec_members(args.models, "estimate_bits")
    dataset = data.open_dataset(args.data, args.split)
    images = [dataset.native(i) for i in range(len(dataset))]  # uint8, as a user's files
    pixels = sum(im.shape[0] * im.shape[1] for im in images)
    print(f"{len(images)} images of {args.data} ({pixels} pixels)")
    print(f"{'model':<28} {'estimate bpp':>12} {'payload bpp':>12} {'file bpp':>9} {'payload/est':>12} {'worst image':>12}")
    worst_model = 0.0
    for name, codec in members:
        est = pay = tot = 0.0
        worst_image = 0.0
        for image in images:
            e = codec.estimate_bits(image)
            stream = codec.encode(image, codec.qualities[-1])
            p = 8 * len(container.unpack(stream)[1])
            est, pay, tot = est + e, pay + p, tot + 8 * len(stream)
            worst_image = max(worst_image, abs(p - e) / e)
        worst_model = max(worst_model, abs(pay - est) / est)
        print(f"{name:<28} {est / pixels:>12.4f} {pay / pixels:>12.4f} {tot / pixels:>9.4f} "
              f"{pay / est:>12.5f} {100 * worst_image:>11.2f}%", flush=True)
    print(f"max payload error: {100 * worst_model:.2f}%")


if __name__ == "__main__":
    run_main(main)
