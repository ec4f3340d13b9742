"""results/mbt2018_mean_training.json agrees with the validation results, and
tools/plot_training_progress.py reads it, refuses a malformed file and draws it."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import numpy as np
import pytest
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROGRESS = ROOT / "results" / "mbt2018_mean_training.json"
VALIDATION = ROOT / "results" / "val_photos.json"


def _tool():
    spec = importlib.util.spec_from_file_location("plot_training_progress", ROOT / "tools" / "plot_training_progress.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_last_checkpoint_is_the_shipped_model_of_the_validation_results():
    progress = json.loads(PROGRESS.read_text())
    validation = json.loads(VALIDATION.read_text())
    _, bd_psnr, bd_ms_ssim = progress["mbt2018-mean"][-1]
    assert bd_psnr == validation["bd_rate_percent_vs_jpeg_psnr"]["mbt2018-mean"]
    assert bd_ms_ssim == validation["bd_rate_percent_vs_jpeg_ms_ssim"]["mbt2018-mean"]
    for metric in ("psnr", "ms_ssim"):
        references = progress[f"references_bd_rate_percent_vs_jpeg_{metric}"]
        for name, value in references.items():
            assert value == validation[f"bd_rate_percent_vs_jpeg_{metric}"][name], name
    # every earlier shipped checkpoint the validation results keep has the same figures here
    by_steps = {int(row[0]): row for row in progress["mbt2018-mean"]}
    for key, bd in validation["bd_rate_percent_vs_jpeg_psnr"].items():
        if key.startswith("mbt2018-mean (") and "shipped before" in key:
            steps = int(key.split("(")[1].split(" steps")[0].replace(",", ""))
            assert by_steps[steps][1] == bd, key


def test_the_tool_refuses_steps_that_do_not_rise(tmp_path):
    tool = _tool()
    data = json.loads(PROGRESS.read_text())
    data["mbt2018-mean"] = [[2000, -1.0, -2.0], [1000, -3.0, -4.0]]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="rise"):
        tool.load(str(path))
    assert tool.main(["--data", str(path), "--out", str(tmp_path / "p.png")]) == 1
    assert not (tmp_path / "p.png").exists()


def test_the_tool_draws_the_curve(tmp_path):
    tool = _tool()
    out = tmp_path / "progress.png"
    assert tool.main(["--data", str(PROGRESS), "--out", str(out)]) == 0
    image = np.asarray(Image.open(out).convert("RGB"), np.int32)
    assert image.shape[0] > 300 and image.shape[1] > 800
    # matplotlib's tab:blue (31, 119, 180): the model's curve is drawn
    blue = np.all(np.abs(image - np.array([31, 119, 180])) < 12, axis=-1)
    assert blue.sum() > 200
    assert not list(tmp_path.glob("*.tmp.png"))
