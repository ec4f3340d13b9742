"""The evaluation report (jaxcodec.eval.report): what the table and results.json say where a
figure is missing, and the files write_report leaves."""

import json
import math

import numpy as np
import pytest
from PIL import Image

from jaxcodec.eval import rate_distortion as evaluation
from jaxcodec.eval import report


def _curve(bpp, psnr):
    n = len(bpp)
    return {"quality": list(range(1, n + 1)), "bpp": list(bpp), "psnr-rgb": list(psnr),
            "ms-ssim-rgb": [0.9 + 0.01 * i for i in range(n)], "ssim": [0.8] * n, "mse": [10 ** (-p / 10) for p in psnr]}


@pytest.fixture()
def results():
    codecs = {
        "jpeg": {"name": "jpeg", "results": _curve([0.2, 0.4, 0.8, 1.6], [28.0, 31.0, 34.0, 37.0])},
        # the same PSNR at 80% of the bits: a BD-rate of -20% on the overlap
        "ours": {"name": "ours", "results": _curve([0.16, 0.32, 0.64, 1.28], [28.0, 31.0, 34.0, 37.0])},
        # PSNR entirely above the anchor's: no overlap, no BD-rate
        "apart": {"name": "apart", "results": _curve([0.2, 0.4, 0.8, 1.6], [45.0, 46.0, 47.0, 48.0])},
    }
    doc = {"dataset": "folder:x", "num_images": 2, "codecs": codecs, "skipped": [],
           "decoded": "not serialised", "resumed": 3}
    evaluation.add_bd_rates(doc, ["jpeg"])
    return doc


def test_a_bd_rate_of_curves_that_do_not_overlap_reads_n_a_and_null(results):
    assert results["bd_rate"]["jpeg"]["ours"] == pytest.approx(-20.0, abs=0.01)
    assert math.isnan(results["bd_rate"]["jpeg"]["apart"])
    table = report.markdown_table(results)
    assert "| ours | -20.00% |" in table
    assert "| apart | n/a (curves do not overlap) |" in table
    doc = json.loads(report.to_json(results), parse_constant=lambda c: pytest.fail(f"{c} in results.json"))
    assert doc["bd_rate"]["jpeg"]["apart"] is None
    assert doc["bd_rate"]["jpeg"]["ours"] == pytest.approx(-20.0, abs=0.01)
    assert "decoded" not in doc and "resumed" not in doc  # run state, not figures


def test_a_missing_figure_is_n_a_in_the_table_and_numbers_keep_their_digits(results):
    results["codecs"]["ours"]["results"]["psnr-rgb"][1] = float("nan")
    results["codecs"]["ours"]["results"]["ms-ssim-rgb"][2] = np.float32(0.987654)
    table = report.markdown_table(results)
    assert "| ours | 2 | 0.320 | n/a | 0.9100 |" in table
    assert "| ours | 3 | 0.640 | 34.00 | 0.9877 |" in table
    assert json.loads(report.to_json(results))["codecs"]["ours"]["results"]["psnr-rgb"][1] is None


def test_write_report_leaves_the_json_the_table_and_a_plot(results, tmp_path):
    paths = report.write_report(results, str(tmp_path / "out"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["rd.png", "results.json", "table.md"]
    assert json.loads(open(paths["json"]).read())["codecs"].keys() == {"jpeg", "ours", "apart"}
    assert open(paths["table"]).read() == report.markdown_table(results)
    with Image.open(paths["plot"]) as plot:
        assert plot.format == "PNG" and min(plot.size) > 100
