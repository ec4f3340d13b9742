"""tools/plot_rd_tables.py draws chosen curves of a results table, the README's plots among
them, and refuses a curve the table lacks before writing anything."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "plot_rd_tables.py"


def _tool():
    spec = importlib.util.spec_from_file_location("plot_rd_tables", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_chosen_curves_are_the_tables_rows_in_the_order_given():
    tool = _tool()
    path = ROOT / "results" / "val_photos.json"
    table = json.loads(path.read_text())
    names = ["jpeg", "mbt2018-mean (99,721 steps, shipped before)", "mbt2018-mean"]
    document = tool.select(str(path), names, "title")
    assert list(document["codecs"]) == names and document["num_images"] == 20 and document["dataset"] == "title"
    for name in names:
        curve = document["codecs"][name]["results"]
        rows = table[name]
        assert curve["quality"] == [row[0] for row in rows]
        assert curve["bpp"] == [row[1] for row in rows] and curve["psnr-rgb"] == [row[2] for row in rows]
        assert "stored" not in document["codecs"][name]  # drawn solid, as measured curves


def test_the_readme_plots_name_curves_their_tables_hold_and_are_drawn(tmp_path):
    tool = _tool()
    for png, (table, _, curves, _) in tool.README_PLOTS.items():
        held = json.loads((ROOT / "results" / table).read_text())
        assert curves[0] == "mbt2018-mean" and set(curves) <= set(held), png
        assert {"jpeg", "webp", "avif"} <= set(curves)
    written = tool.readme_plots(str(ROOT / "results"), str(tmp_path))
    assert sorted(pathlib.Path(p).name for p in written) == sorted(tool.README_PLOTS)
    for path in written:
        image = np.asarray(Image.open(path).convert("RGB"))
        assert image.shape == (528, 1320, 3)
        # as many coloured lines as curves: tab10's first colours each cover some pixels
        colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
                   (227, 119, 194)]
        name = pathlib.Path(path).name
        drawn = [np.sum(np.all(image == c, axis=-1)) > 50 for c in colours]
        assert drawn == [True] * min(len(colours), len(tool.README_PLOTS[name][2])), (name, drawn)


def test_a_missing_curve_is_one_line_and_nothing_is_written(tmp_path):
    out = tmp_path / "rd.png"
    run = subprocess.run([sys.executable, str(TOOL), str(ROOT / "results" / "val_photos_half.json"),
                          "--curve", "jpeg", "--curve", "mbt2018-mean (1 step)", "--out", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 2 and not out.exists()
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "'mbt2018-mean (1 step)'" in lines[0]
    assert "it holds: mbt2018-mean," in lines[0]
    run = subprocess.run([sys.executable, str(TOOL), str(ROOT / "results" / "val_photos_half.json"),
                          "--curve", "jpeg", "--curve", "webp", "--out", str(out), "--max-bpp", "1.5"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert Image.open(out).size == (1320, 528)


@pytest.mark.parametrize("argv, message", [
    (["--curve", "jpeg"], "--curve and --out go with a table"),
    (["results/val_photos.json", "--curve", "jpeg"], "--out is required with a table"),
    (["no/such/table.json", "--curve", "jpeg", "--out", "x.png"], "no/such/table.json: cannot read it"),
])
def test_misused_options_are_one_error_line(argv, message):
    run = subprocess.run([sys.executable, str(TOOL), *argv], capture_output=True, text=True, cwd=ROOT)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {message}")
