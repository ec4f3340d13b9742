"""Curves measured before, joined to a new evaluation without measuring them again.

``eval.py --reference FILE`` takes the curves of an earlier run (its ``results.json``) or of a
table of the project's ``results/`` folder, as CompressAI's plotting takes stored result files.
The curves join the new report. They appear in its table and plot, and they serve as BD-rate
anchors (JPEG, WebP, AVIF, or any codec named by ``--anchors``). So a new model is compared with
the classical codecs and with earlier models at the cost of measuring the new model alone.

BD-rates are only meaningful between curves of the same images. Every ``results.json`` that
``eval.py`` writes records a digest of each image it measured (``image_digests``,
:func:`jaxcodec.eval.journal.image_digest`), and a ``results/`` table may carry the same list.
A reference that has them must have measured exactly the images of the new run, in any order.
A reference without them (an older run, or a table that records none) cannot be checked that
way. If it states its number of images, that number must match; otherwise its curves are taken
as stated, and the report says which references were not verified.

The three forms read:

* an ``eval.py`` results document: ``{"codecs": {NAME: {"results": {"quality", "bpp",
  "psnr-rgb", ...}}}, "num_images", "image_digests"?}``;
* a ``results/`` table: ``{"columns": ["quality", "bpp", "psnr_rgb", "ms_ssim_rgb"], NAME:
  [[row], ...], "num_images"?, "image_digests"?, ...}``; every top-level list of rows as long
  as ``columns`` is a codec, and the column names take ``_`` for ``-``;
* a CompressAI result file (its repository's ``results/image/kodak/*.json``, or what its
  ``compressai.utils.eval_model`` writes): ``{"name", "description", "results": {"bpp",
  "psnr" or "psnr-rgb", "ms-ssim" or "ms-ssim-rgb", ...}}``, one curve, its points numbered
  1, 2, … as qualities.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Sequence

from jaxcodec.errors import ConfigError, DatasetError

#: Metrics a stored curve may carry; each curve needs ``bpp`` and ``psnr-rgb``.
METRICS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "ssim", "mse")
REQUIRED = ("quality", "bpp", "psnr-rgb")


@dataclasses.dataclass(frozen=True)
class Reference:
    """The curves of one stored file: ``codecs`` maps a name to an entry shaped as
    :func:`jaxcodec.eval.rate_distortion.evaluate_codec`'s (``name``, ``description``,
    ``results``), plus ``stored`` (the file)."""

    path: str
    codecs: dict[str, dict[str, Any]]
    digests: list[str] | None
    num_images: int | None
    dataset: str | None = None


def _number(value: Any) -> float:
    """A stored figure as a float; ``null`` (a figure not kept) is NaN."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _curve(columns: dict[str, list], name: str) -> dict[str, list]:
    """``columns`` (metric -> values, one per quality) checked and as numbers."""
    missing = [key for key in REQUIRED if key not in columns]
    if missing:
        raise ValueError(f"curve {name!r} has no {', '.join(missing)}")
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1 or not lengths.pop():
        raise ValueError(f"curve {name!r} has columns of different lengths or no points")
    curve = {"quality": list(columns["quality"])}
    for key in METRICS:  # a metric not stored is NaN at every point (``n/a`` in the table)
        curve[key] = [_number(v) for v in columns.get(key, [None] * len(curve["quality"]))]
    return curve


def _from_results(doc: dict[str, Any], path: str) -> Reference:
    codecs = {}
    for name, entry in doc["codecs"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("results"), dict):
            raise ValueError(f"codec {name!r} has no results")
        codecs[name] = {"name": entry.get("name", name), "description": entry.get("description", ""),
                        "results": _curve(entry["results"], name), "stored": path}
    dataset = doc.get("dataset")
    return Reference(path, codecs, _digests(doc), _count(doc.get("num_images")),
                     dataset if isinstance(dataset, str) else None)


def _digests(doc: dict[str, Any]) -> list[str] | None:
    """The file's ``image_digests`` (None when it records none); when it also states
    ``num_images``, the two must agree."""
    digests = doc.get("image_digests")
    if digests is None:
        return None
    if not (isinstance(digests, list) and digests and all(isinstance(d, str) for d in digests)):
        raise ValueError("image_digests is not a list of digests")
    count = doc.get("num_images")
    if count is not None and count != len(digests):
        raise ValueError(f"image_digests lists {len(digests)} images, num_images says {count!r}")
    return digests


def _from_table(doc: dict[str, Any], path: str) -> Reference:
    columns = [str(c).replace("_", "-") for c in doc["columns"]]
    description = str(doc.get("description", ""))
    codecs = {}
    for name, rows in doc.items():
        if name == "columns" or not isinstance(rows, list) or not rows:
            continue
        if not all(isinstance(row, list) and len(row) == len(columns) for row in rows):
            continue  # another list in the file, not a curve
        by_column = {c: [row[i] for row in rows] for i, c in enumerate(columns)}
        codecs[name] = {"name": name, "description": description, "results": _curve(by_column, name), "stored": path}
    return Reference(path, codecs, _digests(doc), _count(doc.get("num_images")))


def _count(value: Any) -> int | None:
    """A stored image count (None when the file states none)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"num_images is {value!r}")
    return value


_COMPRESSAI_KEYS = {"psnr": "psnr-rgb", "ms-ssim": "ms-ssim-rgb"}


def _from_compressai(doc: dict[str, Any], path: str) -> Reference:
    columns = {_COMPRESSAI_KEYS.get(k, k): v for k, v in doc["results"].items() if _COMPRESSAI_KEYS.get(k, k) in METRICS}
    if not isinstance(columns.get("bpp"), list):
        raise ValueError("results has no bpp list")
    columns["quality"] = list(range(1, len(columns["bpp"]) + 1))
    name = str(doc.get("name") or os.path.splitext(os.path.basename(path))[0])
    entry = {"name": name, "description": str(doc.get("description", "")), "results": _curve(columns, name),
             "stored": path}
    return Reference(path, {name: entry}, None, None)


def load(path: str | os.PathLike) -> Reference:
    """The curves stored in ``path`` (module docstring); a file of none of the three forms,
    or one that holds no curve, is a :class:`jaxcodec.errors.ConfigError` of one line."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as error:
        raise ConfigError(f"--reference {path}: cannot read it ({error.strerror or error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"--reference {path}: not a JSON file") from None
    try:
        if not isinstance(doc, dict):
            raise ValueError("not a results document")
        if isinstance(doc.get("codecs"), dict):
            reference = _from_results(doc, path)
        elif isinstance(doc.get("columns"), list):
            reference = _from_table(doc, path)
        elif isinstance(doc.get("results"), dict):
            reference = _from_compressai(doc, path)
        else:
            raise ValueError("neither an eval.py results.json (codecs), a results/ table (columns) "
                             "nor a CompressAI result file (results)")
    except (ValueError, TypeError) as error:
        raise ConfigError(f"--reference {path}: {error}") from None
    if not reference.codecs:
        raise ConfigError(f"--reference {path}: holds no curve")
    return reference


def check_images(reference: Reference, digests: Sequence[str]) -> bool:
    """Whether ``reference`` was measured on the images whose digests are given: True when its
    digests match them, False when it records none (and no count that differs). A
    :class:`jaxcodec.errors.DatasetError` when they differ."""
    if reference.digests is not None:
        if sorted(reference.digests) != sorted(digests):
            others = len(set(reference.digests) - set(digests))
            raise DatasetError(f"--reference {reference.path} was measured on other images: {others} of its "
                               f"{len(reference.digests)} are not among the {len(digests)} evaluated here")
        return True
    if reference.num_images is not None and reference.num_images != len(digests):
        raise DatasetError(f"--reference {reference.path} was measured on {reference.num_images} images, "
                           f"not the {len(digests)} evaluated here")
    return False


def check_together(references: Sequence[Reference]) -> list[str]:
    """For stored curves compared among themselves (no image measured): the files that
    record image digests must record the same images, and the stated image counts must
    agree; a :class:`jaxcodec.errors.DatasetError` otherwise. Returns the paths of the files
    that could not be checked (no digests, where another file has them; all, where none has)."""
    with_digests = [r for r in references if r.digests is not None]
    if not with_digests:
        counts = {r.num_images for r in references if r.num_images is not None}
        if len(counts) > 1:
            raise DatasetError("the stored curves were measured on different numbers of images: "
                               + ", ".join(f"{r.path}: {r.num_images}" for r in references if r.num_images is not None))
        return [r.path for r in references]
    first = with_digests[0]
    unverified = []
    for r in references:
        if r is not first and not check_images(r, first.digests):
            unverified.append(r.path)
    return unverified


def merge(codecs: dict[str, Any], references: Sequence[Reference]) -> dict[str, Any]:
    """``codecs`` followed by every reference's curves; a stored curve whose name is taken is
    named ``NAME (FILE)``, FILE the reference's file name."""
    merged = dict(codecs)
    for reference in references:
        for name, entry in reference.codecs.items():
            key = name if name not in merged else f"{name} ({os.path.basename(reference.path)})"
            if key in merged:
                raise ConfigError(f"--reference {reference.path}: a curve named {key!r} is already in the report")
            merged[key] = entry
    return merged
