r"""Machine code the factorized codecs keep mapped: memory mappings per image size.

Every program XLA:CPU compiles is machine code mapped into the process, a few mappings
each, and a Linux process may hold at most ``vm.max_map_count`` of them (65,530 by
default; past it LLVM fails with "Cannot allocate memory"). Programs are compiled per image
size, so a long run over photos of many sizes (``eval.py`` with latent refinement) grows
as sizes × programs. For each of ``--sizes`` this fits one photo to that size, encodes and
decodes it with every model of ``--models`` (plain, and with ``--refine`` steps of latent
refinement), and counts the lines of ``/proc/self/maps`` before and after::

    .venv/bin/python bench/program_memory.py
    .venv/bin/python bench/program_memory.py --conv-algorithm winograd   # strided forward by Winograd too

Ends with ``mappings per image size: X`` (the mean over the sizes) and how many image
sizes fit under the process's limit at that rate (``eval.py`` drops all compiled programs
once half the limit is used: :mod:`jaxcodec.runtime.compiled_code`).
"""

from __future__ import annotations

import sys
import time


from _common import codec_members, fit_image, load_photos, run_main
from jaxcodec.runtime.compiled_code import MAPS, map_limit, mappings
from jaxcodec.errors import ConfigError
from jaxcodec.ops import conv_impl
from jaxcodec.ops.conv import ALGORITHMS


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        try:
            h, w = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--sizes takes HxW[,HxW...], got {item!r}") from None
        if h < 1 or w < 1:
            raise ConfigError(f"--sizes takes positive sizes, got {item!r}")
        sizes.append((h, w))
    return sizes


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="bmshj2017-factorized",
                        help="comma-separated shipped models, families or workdirs")
    parser.add_argument("--sizes", default="256x384,300x451,384x512", help="image sizes HxW, comma-separated")
    parser.add_argument("--refine", type=int, default=2,
                        help="refinement steps of the refined encode (0: plain only; the step count "
                             "does not change the compiled code)")
    parser.add_argument("--conv-algorithm", choices=ALGORITHMS, default="auto",
                        help="the convolution algorithm the programs are compiled with (jaxcodec.ops.conv_impl)")
    args = parser.parse_args()
    if mappings() is None:
        sys.exit(f"error: {MAPS} is missing; this benchmark needs Linux")

    sizes = parse_sizes(args.sizes)
    members = codec_members(args.models, "refined")
    photo = load_photos(None)[1]  # coffee
    encoders = [(n, c) for n, c in members]
    if args.refine:
        encoders += [(f"{n}+refine={args.refine}", c.refined(args.refine)) for n, c in members]
    print(f"{len(members)} models of {args.models}, {args.conv_algorithm} conv, "
          f"{len(encoders)} encoders (plain{' and refined' if args.refine else ''}), sizes {args.sizes}")
    print(f"{'size':>10} {'mappings':>9} {'new':>7} {'seconds':>8}")
    start = mappings()
    print(f"{'(start)':>10} {start:>9}", flush=True)
    grown = []
    with conv_impl(args.conv_algorithm):  # read while each size's programs are traced
        for h, w in sizes:
            image = fit_image(photo, h, w)
            before, t = mappings(), time.perf_counter()
            for _, codec in encoders:
                data = codec.encode(image, codec.qualities[-1])
                codec.decode(data)
            after = mappings()
            grown.append(after - before)
            print(f"{f'{h}x{w}':>10} {after:>9} {after - before:>7} {time.perf_counter() - t:>8.1f}", flush=True)
    per_size = sum(grown) / len(grown)
    limit = map_limit()
    print(f"mappings per image size: {per_size:.0f}"
          + (f" (limit {limit}: about {int((limit - start) / max(per_size, 1))} image sizes in one process)"
             if limit else ""))


if __name__ == "__main__":
    run_main(main)
