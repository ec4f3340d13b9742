r"""Draws rate-distortion plots from the stored tables of ``results/``: a chosen set of curves of
one table (read by :func:`jaxcodec.eval.reference.load`, so any file ``eval.py --reference``
reads), drawn by :func:`jaxcodec.eval.plots.plot_rd` as ``eval.py`` draws its own::

    python tools/plot_rd_tables.py            # redraws the README's plots, docs/rd_val_photos*.png
    python tools/plot_rd_tables.py results/val_photos.json --curve mbt2018-mean --curve jpeg --out rd.png

``eval.py --codecs= --reference FILE`` draws every curve of a file; the README's plots show the
shipped models, the classical codecs and a few earlier curves, chosen here (:data:`README_PLOTS`).
Curve names may hold commas (``mbt2018-mean (99,721 steps, shipped before)``), so each is given
by its own ``--curve``. A curve the table lacks is one error line, and nothing is written.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxcodec.errors import ConfigError  # noqa: E402
from jaxcodec.eval import plots, reference  # noqa: E402

#: The README's plots: file in docs/ -> (table in results/, title, curves in legend order, right edge of the rate axis).
README_PLOTS: dict[str, tuple[str, str, tuple[str, ...], float | None]] = {
    "rd_val_photos.png": (
        "val_photos.json", "validation split (last 20 Sun-Hays80 photos)",
        ("mbt2018-mean", "mbt2018-mean+refine=20", "mbt2018-mean (99,721 steps, shipped before)",
         "mbt2018-mean (57,000 steps, shipped before)", "bmshj2017-factorized", "jpeg", "webp", "avif"),
        2.0),
    "rd_val_photos_half.png": (
        "val_photos_half.json", "validation split shrunk 2x to PNG (longer side 512)",
        ("mbt2018-mean", "mbt2018-mean+refine=20", "mbt2018-mean (99,721 steps, shipped before)",
         "bmshj2017-factorized", "jpeg", "webp", "avif"),
        None),
}


def select(path: str, curves: Sequence[str], title: str | None = None) -> dict[str, Any]:
    """The document :func:`jaxcodec.eval.plots.plot_rd` draws: the named curves of the table at
    ``path``, in the order given, drawn as measured curves (solid) rather than as stored ones.
    A name the table lacks is a :class:`jaxcodec.errors.ConfigError` that lists what it holds."""
    try:
        table = reference.load(path)
    except ConfigError as error:  # its message names eval.py's option; here the file is an argument
        raise ConfigError(str(error).removeprefix("--reference ")) from None
    missing = [name for name in curves if name not in table.codecs]
    if missing:
        raise ConfigError(f"{path} holds no curve {missing[0]!r}; it holds: " + ", ".join(table.codecs))
    if not curves:
        raise ConfigError("no --curve given")
    codecs = {name: {k: v for k, v in table.codecs[name].items() if k != "stored"} for name in curves}
    return {"codecs": codecs, "dataset": title or table.dataset or os.path.basename(path),
            "num_images": table.num_images}


def readme_plots(results_dir: str, docs_dir: str) -> list[str]:
    """Draws every plot of :data:`README_PLOTS`; all curves are checked before the first is drawn."""
    documents = {png: (select(os.path.join(results_dir, table), curves, title), max_bpp)
                 for png, (table, title, curves, max_bpp) in README_PLOTS.items()}
    written = []
    for png, (document, max_bpp) in documents.items():
        out = os.path.join(docs_dir, png)
        plots.plot_rd(document, out, max_bpp=max_bpp)
        written.append(out)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", nargs="?", help="a results table (without it: the README's plots)")
    parser.add_argument("--curve", action="append", default=[], help="a curve to draw (repeat; legend order)")
    parser.add_argument("--out", help="the PNG to write (with a table)")
    parser.add_argument("--title", help="the plot's title (default: the table's dataset or file name)")
    parser.add_argument("--max-bpp", type=float, help="right edge of the rate axis")
    parser.add_argument("--results", default=os.path.join(ROOT, "results"), help="where the README's tables are")
    parser.add_argument("--docs", default=os.path.join(ROOT, "docs"), help="where the README's plots go")
    args = parser.parse_args(argv)
    try:
        if args.table is None:
            if args.curve or args.out:
                raise ConfigError("--curve and --out go with a table")
            written = readme_plots(args.results, args.docs)
        else:
            if not args.out:
                raise ConfigError("--out is required with a table")
            plots.plot_rd(select(args.table, args.curve, args.title), args.out, max_bpp=args.max_bpp)
            written = [args.out]
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
