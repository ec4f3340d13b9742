"""The report of a rate-distortion evaluation: ``results.json``, ``table.md``, ``rd.png`` and
the optional ``grid.png`` (:func:`write_report`), from the results document that
:func:`jaxcodec.eval.rate_distortion.run` builds (one entry per codec under ``codecs``, each
with its per-quality ``results``; BD-rate tables under ``bd_rate`` and ``bd_rate_ms_ssim``).

BD-rates are given with two decimals, PSNR with two, MS-SSIM and SSIM with four; a value that
is missing or not finite is written ``n/a`` (``null`` in JSON).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import numpy as np

from jaxcodec.fileio import atomic_write_text, make_dirs

#: Entries of the results document that hold images or run state, not figures.
NOT_SERIALISED = ("decoded", "originals", "paths", "resumed")


def format_number(x: float, digits: int, kind: str = "f") -> str:
    """``x`` with ``digits`` digits (format ``kind``), or ``n/a`` for a missing or non-finite value."""
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}{kind}}"


def _bd_rate_cell(value: float) -> str:
    text = format_number(value, 2)
    return "n/a (curves do not overlap)" if text == "n/a" else text + "%"


def markdown_table(results: Mapping[str, Any]) -> str:
    """The results document as a Markdown table: one row per codec and quality."""
    skipped = results.get("skipped") or []
    lines = [
        f"Dataset: `{results['dataset']}` ({results['num_images'] or 'an unstated number of'} images"
        + (f"; {len(skipped)} skipped, listed below" if skipped else "") + "). "
        "Means over images; bpp from real bytes; MSE on the [0, 1] scale.",
        "",
        "| codec | quality | bpp | PSNR (dB) | MS-SSIM | SSIM | MSE |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in results["codecs"].items():
        r = entry["results"]
        for i, q in enumerate(r["quality"]):
            lines.append(
                f"| {name} | {q} | {format_number(r['bpp'][i], 3)} | {format_number(r['psnr-rgb'][i], 2)} | "
                f"{format_number(r['ms-ssim-rgb'][i], 4)} | {format_number(r['ssim'][i], 4)} | {format_number(r['mse'][i], 3, 'g')} |"
            )
    for key, label in (("bd_rate", "PSNR"), ("bd_rate_ms_ssim", "MS-SSIM")):
        for anchor, table in results.get(key, {}).items():
            if not table:
                continue
            lines += ["", f"BD-rate ({label}) against {anchor} (negative = fewer bits):", ""]
            lines += ["| codec | BD-rate |", "|---|---|"]
            lines += [f"| {n} | {_bd_rate_cell(v)} |" for n, v in table.items()]
    stored: dict[str, list[str]] = {}
    for name, entry in results["codecs"].items():
        if "stored" in entry:
            stored.setdefault(entry["stored"], []).append(name)
    if stored:
        unverified = set(results.get("unverified_references", ()))
        lines += ["", "Stored curves, not measured in this run:", ""]
        lines += [f"- from {path}: {', '.join(names)}" + (" (the file records no image digests: not checked against "
                                                         "these images)" if path in unverified else "")
                  for path, names in stored.items()]
    if skipped:
        lines += ["", f"Skipped {len(skipped)} image{'s' if len(skipped) > 1 else ''}:", ""]
        lines += [f"- {s['image']}: {s['reason']}" for s in skipped]
    return "\n".join(lines) + "\n"


def to_json(results: Mapping[str, Any]) -> str:
    """Serialises the results document (NaN written as null)."""

    def clean(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, np.generic):
            return clean(o.item())
        return o

    doc = {k: v for k, v in results.items() if k not in NOT_SERIALISED}
    doc["codecs"] = {
        n: {k: v for k, v in e.items() if k not in NOT_SERIALISED} for n, e in results["codecs"].items()
    }
    return json.dumps(clean(doc), indent=1)


def write_report(results: Mapping[str, Any], out_dir: str) -> dict[str, str]:
    """Writes ``results.json``, ``table.md`` and ``rd.png`` into ``out_dir`` (atomically)."""
    from jaxcodec.eval.plots import plot_rd

    make_dirs(out_dir)
    paths = {k: os.path.join(out_dir, f) for k, f in (("json", "results.json"), ("table", "table.md"), ("plot", "rd.png"))}
    atomic_write_text(paths["json"], to_json(results))
    atomic_write_text(paths["table"], markdown_table(results))
    plot_rd(results, paths["plot"])
    if results.get("originals"):
        paths["grid"] = os.path.join(out_dir, "grid.png")
        write_grid(results, paths["grid"])
    return paths


def write_grid(results: Mapping[str, Any], path: str) -> None:
    """A PNG: the kept originals, then each codec's reconstructions at its middle quality."""
    from jaxcodec.eval.plots import save_grid

    rows, labels = [list(results["originals"])], ["original"]
    for name, entry in results["codecs"].items():
        if "decoded" not in entry:  # a stored curve (--reference)
            continue
        qs = entry["results"]["quality"]
        q = qs[len(qs) // 2]
        i = qs.index(q)
        row = [im for qq, im in entry["decoded"] if qq == q]
        if row:
            rows.append(row)
            labels.append(f"{name}\n{entry['results']['bpp'][i]:.2f} bpp")
    small = max(im.shape[0] for im in rows[0]) < 100
    save_grid(rows, path, row_labels=labels, scale=3 if small else 1)
