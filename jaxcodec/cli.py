"""``python -m jaxcodec``: compress, decompress, inspect streams, list models.

  python -m jaxcodec compress photo.png photo.jxc --model bmshj2017-factorized --quality 3
  python -m jaxcodec compress photo.png photo.jxc --quality 3 --refine 50
  python -m jaxcodec decompress photo.jxc decoded.png
  python -m jaxcodec info photo.jxc
  python -m jaxcodec models
  python -m jaxcodec export WORKDIR NAME --description TEXT
  python -m jaxcodec serve --port 8000

Every user error prints one line ``error: ...`` on stderr and exits with status 1;
output files are written atomically, so a failed command leaves nothing behind, and an
output that is the input itself (the same file, also through a link) is refused.
``--max-pixels`` bounds the image an input file or a stream may declare
(:mod:`jaxcodec.limits`; ``info`` applies the same checks as ``decompress``), and
``--max-memory`` the working memory of a learned codec's transforms, which code a
larger image in tiles (:mod:`jaxcodec.tiling`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from jaxcodec.errors import JaxcodecError


def _add_limits(parser: argparse.ArgumentParser, memory: bool = True) -> None:
    from jaxcodec import limits, tiling

    parser.add_argument("--max-pixels", type=int, default=limits.DEFAULT_MAX_PIXELS, metavar="N",
                        help="largest image (width x height) an input may declare "
                             f"(default {limits.DEFAULT_MAX_PIXELS})")
    if memory:
        parser.add_argument("--max-memory", default=None, metavar="SIZE",
                            help="working memory of a learned codec's transforms, e.g. 512M or 2G; larger "
                                 f"images are coded in tiles (default {tiling.DEFAULT_MAX_MEMORY >> 20}M)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jaxcodec", description="Learned image compression in JAX.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compress", help="image file -> .jxc stream")
    c.add_argument("input")
    c.add_argument("output")
    _add_limits(c)
    c.add_argument("--model", default=None, help="shipped model or family name, or a training workdir")
    c.add_argument("--quality", default=None, help="operating point of the model (see `models`)")
    c.add_argument("--refine", default="0", metavar="STEPS",
                   help="optimise the latent for STEPS steps before coding (learned models; slower, fewer bits; "
                        "a hyperprior searches its hyper-latent first)")
    target = c.add_mutually_exclusive_group()
    target.add_argument("--max-bytes", type=int, default=None, metavar="N",
                        help="instead of --quality: the largest quality whose file has at most N bytes")
    target.add_argument("--bpp", type=float, default=None, help="instead of --quality: the rate closest to BPP")
    target.add_argument("--psnr", type=float, default=None, metavar="DB",
                        help="instead of --quality: the smallest file whose decoded image reaches DB")
    d = sub.add_parser("decompress", help=".jxc stream -> lossless image (PNG, or TIFF, BMP, PPM, WebP by OUT's ending)")
    d.add_argument("input")
    d.add_argument("output")
    d.add_argument("--model", default=None, help="workdir of a model that is not shipped")
    _add_limits(d)
    i = sub.add_parser("info", help="print a stream's header")
    i.add_argument("input")
    _add_limits(i, memory=False)
    sub.add_parser("models", help="list the shipped models")
    e = sub.add_parser("export", help="ship a training workdir's latest checkpoint as a named model")
    e.add_argument("workdir")
    e.add_argument("name")
    e.add_argument("--description", default="")
    e.add_argument("--dest", default=None, help="folder of shipped models (default: the package's)")
    e.add_argument("--half", action="store_true", help="store the convolution kernels as float16 (half the size)")
    s = sub.add_parser("serve", help="HTTP API and page over the shipped models (jaxcodec.serve)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--models", default=None, metavar="NAME,...", help="models to offer (default: every shipped "
                   "family and model, and jpeg, webp, avif, jpegxl)")
    s.add_argument("--max-upload-mb", default="25", help="largest request body, in MB (413 beyond)")
    s.add_argument("--max-pixels", type=int, default=40_000_000, help="largest image or stream size, in pixels (413 beyond)")
    s.add_argument("--workers", type=int, default=1, help="threads that run the codecs")
    s.add_argument("--queue", type=int, default=16, help="requests that may wait for a worker (503 beyond)")
    s.add_argument("--body-timeout", type=float, default=30.0, help="seconds a client may pause while sending (408)")
    s.add_argument("--max-requests", type=int, default=64, help="requests handled at once, uploads included (503 beyond)")
    s.add_argument("--max-shape-classes", type=int, default=64, help="compiled image-size classes kept in memory")
    s.add_argument("--no-warmup", action="store_true", help="answer /healthz before compiling the common sizes")
    return p


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise JaxcodecError(f"cannot read {path}: {e.strerror or e}") from None


def _check_not_input(args: argparse.Namespace) -> None:
    """An error when the output is the input itself (the same file, also through a link):
    writing the stream would destroy the only copy of the image."""
    try:
        same = os.path.exists(args.output) and os.path.samefile(args.input, args.output)
    except OSError:
        same = False
    if same:
        raise JaxcodecError(f"{args.output} is the input file itself; choose another output")


def _limits(args: argparse.Namespace) -> contextlib.ExitStack:
    """The pixel limit and memory budget of ``args``, in force until the stack closes."""
    from PIL import Image

    from jaxcodec import limits, tiling

    if args.max_pixels < 1:
        raise JaxcodecError(f"--max-pixels must be at least 1, got {args.max_pixels}")
    budget = getattr(args, "max_memory", None)
    budget = None if budget is None else tiling.parse_bytes(budget)
    stack = contextlib.ExitStack()
    stack.enter_context(limits.pixel_limit(args.max_pixels))
    if budget is not None:
        stack.enter_context(tiling.memory_budget(budget))
    if Image.MAX_IMAGE_PIXELS is not None and 2 * Image.MAX_IMAGE_PIXELS < args.max_pixels:
        Image.MAX_IMAGE_PIXELS = args.max_pixels  # Pillow's own guard would refuse first
    return stack


def _steps(text: str) -> int:
    """``--refine``'s value as an int (a ConfigError, one line, for anything else)."""
    from jaxcodec.errors import ConfigError

    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"refinement steps must be a whole number >= 0, got {text!r}") from None


@contextlib.contextmanager
def _refinement_bar():
    """A progress bar of the encoder's searches on a terminal's stderr (cleared when done): one
    bar a search (the hyper-latent's, then the latent's in each window)."""
    if not sys.stderr.isatty():
        yield
        return
    from tqdm import tqdm

    from jaxcodec.codecs import refinement

    bar = None

    def report(done: int, steps: int) -> None:
        nonlocal bar
        if bar is None or bar.total != steps or done <= bar.n:  # another search began
            if bar is not None:
                bar.close()
            bar = tqdm(total=steps, desc="refining the encoding", unit="step", leave=False, dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        with refinement.reporting(report):
            yield
    finally:
        if bar is not None:
            bar.close()


def run(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    from jaxcodec import api
    from jaxcodec.runtime import allocator
    from jaxcodec import image as imageio
    from jaxcodec.runtime import xla_cache
    from jaxcodec.fileio import atomic_write_bytes

    try:
        allocator.configure()  # before JAX starts its threads (see jaxcodec.runtime.allocator)
        xla_cache.enable()  # one image per process: reuse compiled transforms across calls
        if args.command == "compress":
            _check_not_input(args)
            with _limits(args):
                image = api.read_image(args.input)
                with _refinement_bar():
                    data = api.compress(image, args.model or api.DEFAULT_MODEL, args.quality,
                                        refine=_steps(args.refine), max_bytes=args.max_bytes, bpp=args.bpp,
                                        psnr=args.psnr)
            atomic_write_bytes(args.output, data)
            if imageio.has_alpha(args.input):  # after the write: an error stays the only line on stderr
                print(f"note: {args.input} has transparency; only its colour is coded", file=sys.stderr)
            h, w = image.shape[:2]
            print(f"{args.input} -> {args.output}: {len(data)} bytes, {len(data) * 8 / (h * w):.4f} bpp")
        elif args.command == "decompress":
            imageio.lossless_format(os.path.splitext(args.output)[1])  # a lossy ending fails before decoding
            _check_not_input(args)
            with _limits(args):
                image = api.decompress(_read(args.input), args.model)
            imageio.write_lossless(args.output, image)
            print(f"{args.input} -> {args.output}: {image.shape[1]}x{image.shape[0]}x{image.shape[2]}")
        elif args.command == "info":
            data = _read(args.input)
            with _limits(args):
                print(json.dumps(api.info(data), indent=1))
        elif args.command == "models":
            from jaxcodec.zoo import describe

            lines = describe()
            print("\n".join(lines) if lines else "no shipped models")
        elif args.command == "export":
            from jaxcodec import zoo

            dest = args.dest or zoo.WEIGHTS_DIR
            path = zoo.export_workdir(args.workdir, args.name, dest=dest, description=args.description,
                                      half=args.half)
            print(f"{args.workdir} -> {path}")
        elif args.command == "serve":
            from jaxcodec.serve import config, server

            server.serve(config.ServeConfig(
                host=args.host, port=args.port, models=config.parse_models(args.models),
                max_upload_bytes=config.upload_bytes(args.max_upload_mb), max_pixels=args.max_pixels,
                workers=args.workers, queue=args.queue, body_timeout=args.body_timeout, max_requests=args.max_requests,
                max_shape_classes=args.max_shape_classes, warmup=not args.no_warmup,
            ))
    except JaxcodecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # the machine's memory, not the input: one line that says what to lower
        if not (isinstance(e, MemoryError) or "RESOURCE_EXHAUSTED" in str(e)):
            raise
        print(f"error: out of memory while coding {getattr(args, 'input', '')}; lower --max-memory (tiles) "
              "or --max-pixels", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    """The ``jaxcodec`` command (``python -m jaxcodec``)."""
    sys.exit(run())
