"""bench/rate_accuracy.py on the mean-scale hyperprior: its float rate term against the bytes written."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
from PIL import Image

from jaxcodec import data
from jaxcodec.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture()
def bench(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "bench"))
    spec = importlib.util.spec_from_file_location("rate_accuracy", os.path.join(ROOT, "bench", "rate_accuracy.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mean_scale_rows_predict_the_payload(bench, tmp_path, monkeypatch, capsys):
    photo = data.open_dataset("sample:photos", "test").native(0)
    Image.fromarray(photo[:384, :512]).save(tmp_path / "crop.png")
    monkeypatch.setattr(sys, "argv", ["rate_accuracy.py", "--models", "mbt2018-mean", "--qualities", "1,8",
                                      "--data", f"folder:{tmp_path}"])
    bench.main()
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("mbt2018-mean q")]
    assert [row[1] for row in rows] == ["q1", "q8"]
    estimates = [float(row[2]) for row in rows]
    assert 0 < estimates[0] < estimates[1]
    for row in rows:  # payload / estimate and tables / estimate, within the 2%
        assert abs(float(row[6]) - 1.0) < 0.02 and abs(float(row[3]) - 1.0) < 0.02, row


def test_a_bad_quality_stops_with_one_line(bench, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["rate_accuracy.py", "--models", "mbt2018-mean", "--qualities", "1,9"])
    with pytest.raises(ConfigError, match="quality must be a number in 1..8, got '9'"):
        bench.main()
