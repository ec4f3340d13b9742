"""Rate-distortion evaluation of codecs on real images, counted from real bytes.

Every codec (classical or learned, see :mod:`jaxcodec.codecs.protocol`) encodes each 8-bit
image at each of its qualities; the bytes are decoded again and compared with the
original. Rate is ``len(bytes) * 8 / (H * W)``; distortion is measured on the 8-bit
images scaled to [0, 1]. Per-quality figures are means over images, as CompressAI
reports them, under CompressAI-compatible keys (``bpp``, ``psnr-rgb``,
``ms-ssim-rgb``) plus ``ssim`` and ``mse`` (on the [0, 1] scale; multiply by
255² for the 8-bit scale).

An image that cannot be read, or that is smaller than the metrics' 11 × 11 window, is
skipped and reported (one ``skipped ...`` line on stderr per image, and the report's
``skipped`` list and count) while the rest are evaluated; with ``skip_bad=False`` the
first such image stops the run. A run that fails leaves no ``--out`` folder it created,
unless it keeps a journal of what it measured (``resume``, :mod:`jaxcodec.eval.journal`),
which the same command, run again, finishes from. The files a run writes into ``--out``
(``results.json``, ``table.md``, ``rd.png``, ``grid.png``) are :mod:`jaxcodec.eval.report`'s.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from jaxcodec.runtime import compiled_code
from jaxcodec.eval import metrics
from jaxcodec.eval.bdrate import bd_rate
from jaxcodec.eval import reference
from jaxcodec.eval.journal import JOURNAL_NAME, Journal, image_digest
from jaxcodec.eval.report import markdown_table, write_report  # noqa: F401 (markdown_table: its earlier home)
from jaxcodec.codecs.protocol import Codec
from jaxcodec.errors import ConfigError, DatasetError, ImageError
from jaxcodec.image import to_uint8

METRIC_KEYS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "ssim", "mse")
MIN_SIDE = metrics.SSIM_WINDOW  # the smallest height and width SSIM and MS-SSIM measure
BD_ANCHORS = ("jpeg", "webp", "avif")


@jax.jit
def _distortion(x: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
    return {
        "psnr-rgb": metrics.psnr(x, y, 1.0),
        "ms-ssim-rgb": metrics.ms_ssim(x, y, 1.0),
        "ssim": metrics.ssim(x, y, 1.0),
        "mse": metrics.mse(x, y),
    }


def distortion(original: np.ndarray, decoded: np.ndarray) -> dict[str, float]:
    """PSNR, MS-SSIM, SSIM and MSE between two ``uint8`` ``(H, W, C)`` images."""
    if original.shape != decoded.shape:
        raise ImageError(f"decoded image has shape {decoded.shape}, expected {original.shape}")
    x = np.asarray(original, np.float32)[None] / 255.0
    y = np.asarray(decoded, np.float32)[None] / 255.0
    return {k: float(v[0]) for k, v in _distortion(x, y).items()}


def evaluate_codec(
    codec: Codec,
    images: Sequence[np.ndarray],
    qualities: Sequence[Any] | None = None,
    progress: Any = None,
    keep: int = 0,
    journal: Journal | None = None,
    label: str = "",
    digests: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Measures one codec at each quality on every image.

    Args:
      codec: the codec to measure.
      images: ``uint8`` ``(H, W, C)`` images.
      qualities: the operating points; defaults to ``codec.qualities``.
      progress: an object with ``update(n)`` (e.g. a tqdm bar), advanced per image and quality.
      keep: keep the decoded first ``keep`` images of each quality (under
        ``"decoded"``, not serialised) for a picture of the reconstructions.
      journal: measurements already made are taken from it, new ones recorded in it
        (:mod:`jaxcodec.eval.journal`).
      label: the name the codec was asked for by (``eval.py --codecs``), part of what its
        journal records are found by.
      digests: the images' :func:`jaxcodec.eval.journal.image_digest`, if already computed
        (the journal finds records by them).

    Returns:
      ``{"name", "description", "results": {"quality": [...], METRIC: [...]}}``
      with one mean per quality, plus ``"per_image"`` (the figures before averaging)
      and ``"seconds"`` (encode and decode time per quality, summed over images).
    """
    qualities = list(codec.qualities if qualities is None else qualities)
    per_image: list[list[dict[str, float]]] = [[] for _ in qualities]
    seconds = {"encode": [0.0] * len(qualities), "decode": [0.0] * len(qualities)}
    kept = []
    # image by image, every quality of one before the next: an interrupted run with a journal
    # leaves whole images measured, and each image's programs serve all its qualities
    for i, image in enumerate(images):
        shown = i < keep
        digest = "" if journal is None else digests[i] if digests is not None else image_digest(image)
        for j, q in enumerate(qualities):
            record = journal.find(codec, q, digest, stream=shown, label=label) if journal is not None else None
            if record is not None:
                row, t_enc, t_dec = dict(record["row"]), record["encode_s"], record["decode_s"]
                decoded = codec.decode(Journal.stream(record)) if shown else None
            else:
                compiled_code.release_if_crowded()  # many image sizes: programs for each (module doc)
                t0 = time.perf_counter()
                data = codec.encode(image, q)
                t1 = time.perf_counter()
                decoded = codec.decode(data)
                t_enc, t_dec = t1 - t0, time.perf_counter() - t1
                row = distortion(image, np.asarray(decoded))
                row["bpp"] = metrics.bpp(len(data), image.shape[0], image.shape[1])
                if journal is not None:
                    journal.add(codec, q, digest, row, t_enc, t_dec, data if shown else None, label=label)
            per_image[j].append(row)
            seconds["encode"][j] += t_enc
            seconds["decode"][j] += t_dec
            if shown:
                kept.append((q, np.asarray(decoded)))
            if progress is not None:
                progress.update(1)
    results: dict[str, list] = {"quality": qualities}
    for k in METRIC_KEYS:
        results[k] = [float(np.mean([r[k] for r in rows])) for rows in per_image]
    return {
        "name": codec.name,
        "description": codec.description,
        "results": results,
        "per_image": per_image,
        "seconds": seconds,
        "decoded": kept,
    }


def bd_rates(codecs: Mapping[str, Mapping[str, Any]], anchor: str, metric: str = "psnr-rgb") -> dict[str, float]:
    """Bjøntegaard delta rate (percent) of every codec against ``anchor`` on ``metric``.

    A codec with fewer than the points :func:`jaxcodec.eval.bdrate.bd_rate` needs, or no
    overlap with the anchor, gets ``NaN``.
    """
    if anchor not in codecs:
        return {}
    a = codecs[anchor]["results"]
    out = {}
    for name, entry in codecs.items():
        if name == anchor:
            continue
        r = entry["results"]
        out[name] = float(bd_rate(a["bpp"], a[metric], r["bpp"], r[metric]))
    return out


def evaluate(
    codecs: Mapping[str, Codec],
    images: Sequence[np.ndarray],
    dataset: str,
    show_progress: bool = True,
    keep: int = 0,
    journal: Journal | None = None,
    digests: Sequence[str] | None = None,
    qualities: Mapping[str, Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """Evaluates several codecs on the same images; returns the results document.

    ``qualities`` maps a codec's name to the operating points it is measured at (default, and
    for a name it lacks: all of the codec's own).

    The document is what ``eval.py`` writes as ``results.json``:
    ``{"dataset", "num_images", "codecs": {NAME: {...}}, "bd_rate_vs_jpeg": {NAME: %},
    "bd_rate": {ANCHOR: {NAME: %}}, "bd_rate_ms_ssim": {ANCHOR: {NAME: %}}, "image_digests": [...]}``
    (the anchors: :data:`BD_ANCHORS`; ``image_digests``: :func:`jaxcodec.eval.journal.image_digest`
    of each image, which a later run's ``--reference`` checks; computed here unless given).
    """
    images = [to_uint8(im) for im in images]
    digests = list(digests) if digests is not None else [image_digest(image) for image in images]
    qualities = {name: list((qualities or {}).get(name, codec.qualities)) for name, codec in codecs.items()}
    total = sum(len(q) for q in qualities.values()) * len(images)
    bar = _progress_bar(total, show_progress)
    out: dict[str, Any] = {"dataset": dataset, "num_images": len(images), "codecs": {}}
    out["originals"] = images[:keep]
    try:
        for name, codec in codecs.items():
            if bar is not None:
                bar.set_description(name)
            out["codecs"][name] = evaluate_codec(codec, images, qualities[name], progress=bar, keep=keep,
                                                 journal=journal, label=name, digests=digests)
    finally:
        if bar is not None:
            bar.close()
    out["image_digests"] = digests
    add_bd_rates(out, BD_ANCHORS)
    return out


def add_bd_rates(results: dict[str, Any], anchors: Sequence[str]) -> None:
    """Sets the document's BD-rate tables (``bd_rate``, ``bd_rate_ms_ssim``: ``{ANCHOR: {NAME:
    %}}``, and ``bd_rate_vs_jpeg``) against each of ``anchors`` that is among its codecs."""
    codecs = results["codecs"]
    results["bd_rate"] = {a: bd_rates(codecs, a) for a in anchors if a in codecs}
    results["bd_rate_ms_ssim"] = {a: bd_rates(codecs, a, "ms-ssim-rgb") for a in anchors if a in codecs}
    results["bd_rate_vs_jpeg"] = results["bd_rate"].get("jpeg", {})


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="img", dynamic_ncols=True, mininterval=1.0)


def run(
    data: str,
    codec_names: Sequence[str],
    out_dir: str,
    *,
    split: str = "test",
    limit: int | None = None,
    fit_data: str | None = None,
    data_dir: str | None = None,
    show_progress: bool = True,
    grid: int = 8,
    skip_bad: bool = True,
    match_bpp: Sequence[float] | None = None,
    resume: bool = False,
    references: Sequence[str] = (),
    anchors: Sequence[str] | None = None,
    qualities: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Loads a dataset, resolves codecs by name, evaluates them and writes the report.

    ``references`` are stored results (:mod:`jaxcodec.eval.reference`): their curves join the
    report without being measured again, once checked against this run's images. With no
    ``codec_names``, the report compares the stored curves alone (:func:`compare`).
    ``anchors`` are the codecs BD-rates are computed against (default :data:`BD_ANCHORS`,
    those of them in the report); each one named must be evaluated or stored.

    With ``match_bpp`` every codec is measured at those rates instead of its own qualities:
    each image at the quality whose rate is closest (:class:`jaxcodec.rate_control.AtRate`).
    With ``qualities`` every codec is measured at those of its own qualities only
    (:func:`pick_qualities`; a quality some codec lacks is an error before any work).

    With ``resume`` every measurement is recorded in ``out_dir``'s journal as it is made,
    and one the journal already holds is not made again (:mod:`jaxcodec.eval.journal`): an
    interrupted run leaves the folder with its journal, and the same command finishes it.
    ``results["resumed"]`` counts the measurements taken from the journal.

    Codecs that must be fitted first (PCA) are fitted on ``fit_data`` (default: the
    training split of ``data``). Unreadable and too small images are skipped and
    reported (:func:`load_images`), or stop the run when ``skip_bad`` is false. If the run
    fails, the ``out_dir`` it created (and any parent it created) is removed.
    """
    from jaxcodec import data as data_lib
    from jaxcodec.fileio import first_missing, make_dirs
    from jaxcodec.zoo import get_codec

    if not codec_names and not references:
        raise ConfigError("no codecs to evaluate (--codecs is empty)")
    if qualities is not None and match_bpp:
        raise ConfigError("--qualities and --match_bpp exclude each other: one picks the qualities, the other the rates")
    stored = [reference.load(path) for path in references]
    if not codec_names:
        return compare(stored, out_dir, anchors)
    _check_anchors(anchors, reference.merge(dict.fromkeys(codec_names), stored),
                   "neither evaluated (--codecs) nor stored (--reference)")
    images, skipped = load_images(data, split, limit=limit, data_dir=data_dir, skip_bad=skip_bad)
    if not images:
        raise DatasetError(f"no images to evaluate in {data} split {split!r}" + (" (limit 0)" if limit == 0 else "")
                           + (f" ({len(skipped)} skipped)" if skipped else ""))
    digests = [image_digest(image) for image in images]
    unverified = [r.path for r in stored if not reference.check_images(r, digests)]  # before any work
    fit_images = None
    codecs = {}
    for name in codec_names:
        kwargs = {}
        if _needs_fit(name):
            if fit_images is None:
                fit_images = np.stack(
                    [to_uint8(x) for x in data_lib.load_images(fit_data or data, "train", data_dir=data_dir)]
                )
            kwargs["train_images"] = fit_images
        codecs[name] = get_codec(name, **kwargs)
        if match_bpp:
            from jaxcodec.rate_control import AtRate

            codecs[name] = AtRate(codecs[name], match_bpp)
    picked = None if qualities is None else {name: pick_qualities(codec, qualities, name) for name, codec in codecs.items()}
    created = first_missing(os.path.abspath(out_dir))
    make_dirs(out_dir)  # before the evaluation: a folder that cannot be written fails now, not after it
    journal = None
    try:
        if resume:
            journal = Journal(os.path.join(out_dir, JOURNAL_NAME))
            if len(journal):
                print(f"resuming: {len(journal)} measurements recorded in {journal.path}", file=sys.stderr, flush=True)
        results = evaluate(codecs, images, data, show_progress=show_progress, keep=grid, journal=journal,
                           digests=digests, qualities=picked)
        if stored:
            results["unverified_references"] = unverified
            results["codecs"] = reference.merge(results["codecs"], stored)
        add_bd_rates(results, anchors or BD_ANCHORS)
        results["skipped"] = skipped
        results["num_skipped"] = len(skipped)
        if journal is not None:
            results["resumed"] = journal.reused
        results["paths"] = write_report(results, out_dir)
    except BaseException:
        if created and not (journal is not None and len(journal)):
            shutil.rmtree(created, ignore_errors=True)
        raise
    finally:
        if journal is not None:
            journal.close()
    return results


def pick_qualities(codec: Codec, wanted: Sequence[float], name: str | None = None) -> list[Any]:
    """The qualities of ``codec.qualities`` equal to ``wanted``, in ``wanted``'s order and as the
    codec names them (``5.0`` picks JPEG's ``5``), for a run that measures a codec at some of its
    operating points only (CompressAI's ``eval_model -q``). A quality the codec lacks, or none at
    all, is a :class:`~jaxcodec.errors.ConfigError` naming the codec's own."""
    own = list(codec.qualities)
    label = name or codec.name
    if not wanted:
        raise ConfigError(f"no qualities to measure {label} at")
    picked = []
    for q in wanted:
        same = [o for o in own if isinstance(o, (int, float)) and not isinstance(o, bool) and float(o) == float(q)]
        if not same:
            shown = int(q) if float(q).is_integer() else q
            raise ConfigError(f"{label} has no quality {shown}; its qualities: {', '.join(str(o) for o in own)}")
        if same[0] not in picked:
            picked.append(same[0])
    return picked


def _check_anchors(anchors: Sequence[str] | None, names: Mapping[str, Any], missing: str) -> None:
    """A :class:`ConfigError` for the first of ``anchors`` not among ``names``."""
    for anchor in anchors or ():
        if anchor not in names:
            raise ConfigError(f"--anchors {anchor}: {missing}")


def compare(stored: Sequence[reference.Reference], out_dir: str, anchors: Sequence[str] | None = None) -> dict[str, Any]:
    """The report of stored curves alone (``eval.py --codecs= --reference A,B``): no image is
    read or measured; the files are checked against one another
    (:func:`jaxcodec.eval.reference.check_together`), the BD-rates computed against
    ``anchors`` (default :data:`BD_ANCHORS`) and ``results.json``, ``table.md`` and ``rd.png``
    written into ``out_dir``."""
    codecs = reference.merge({}, stored)
    _check_anchors(anchors, codecs, "not among the stored curves")
    unverified = reference.check_together(stored)
    datasets = sorted({r.dataset for r in stored if r.dataset})
    counts = sorted({r.num_images for r in stored if r.num_images is not None} |
                    {len(r.digests) for r in stored if r.digests is not None})
    results: dict[str, Any] = {
        "dataset": datasets[0] if len(datasets) == 1 else "stored curves",
        "num_images": counts[0] if len(counts) == 1 else None,
        "codecs": codecs, "unverified_references": unverified, "skipped": [], "num_skipped": 0,
    }
    if len(counts) == 1 and all(r.digests is not None for r in stored):
        results["image_digests"] = stored[0].digests
    add_bd_rates(results, anchors or BD_ANCHORS)
    results["paths"] = write_report(results, out_dir)
    return results


def load_images(data: str, split: str = "test", *, limit: int | None = None, data_dir: str | None = None,
                skip_bad: bool = True) -> tuple[list[np.ndarray], list[dict[str, str]]]:
    """The first ``limit`` images of a split as ``uint8``, and ``{"image", "reason"}`` for
    each one skipped: unreadable, or smaller than :data:`MIN_SIDE` on a side. Each skip is
    reported on stderr as it happens; with ``skip_bad`` false the first raises instead."""
    from jaxcodec import data as data_lib

    dataset = data_lib.open_dataset(data, split, data_dir=data_dir)
    count = len(dataset) if limit is None else min(int(limit), len(dataset))
    files = getattr(getattr(dataset, "_source", None), "files", None)  # a folder's files, for names
    images, skipped = [], []
    for index in range(count):
        name = str(files[index]) if files is not None and index < len(files) else f"{data} image {index}"
        try:
            image = to_uint8(dataset[index])
            if min(image.shape[:2]) < MIN_SIDE:
                raise ImageError(f"{name}: {image.shape[1]}x{image.shape[0]} pixels, smaller than the "
                                 f"{MIN_SIDE}x{MIN_SIDE} the metrics need")
        except (DatasetError, ImageError) as error:
            if not skip_bad:
                raise
            reason = str(error)
            for prefix in (f"cannot read image {name}: ", f"{name}: "):
                reason = reason[len(prefix):] if reason.startswith(prefix) else reason
            skipped.append({"image": name, "reason": reason})
            print(f"skipped {name}: {reason}", file=sys.stderr, flush=True)
            continue
        images.append(image)
    return images, skipped


def _needs_fit(name: str) -> bool:
    return name.startswith("pca")
