"""eval.py --qualities (jaxcodec.eval.rate_distortion.pick_qualities): a run measures each codec at
the chosen ones of its own qualities, with the figures a full run reports at them; a quality a codec
lacks is one error line before any work, with nothing written."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from jaxcodec import zoo
from jaxcodec.errors import ConfigError
from jaxcodec.eval import rate_distortion as evaluation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture()
def folder(tmp_path):
    path = tmp_path / "photos"
    path.mkdir()
    for name, photo in (("a.png", skimage.data.coffee()[:40, :56]), ("b.png", skimage.data.astronaut()[:32, :48])):
        Image.fromarray(photo).save(path / name)
    return path


def test_the_chosen_qualities_give_the_full_runs_figures_at_them(folder, tmp_path):
    full = evaluation.run(f"folder:{folder}", ["jpeg", "webp"], str(tmp_path / "full"), show_progress=False, grid=0)
    some = evaluation.run(f"folder:{folder}", ["jpeg", "webp"], str(tmp_path / "some"), show_progress=False, grid=0,
                          qualities=[90.0, 10.0])
    for name in ("jpeg", "webp"):
        got, want = some["codecs"][name]["results"], full["codecs"][name]["results"]
        assert got["quality"] == [90, 10]
        assert all(isinstance(q, int) for q in got["quality"])  # as the codec names them
        for key in ("bpp", "psnr-rgb"):
            assert got[key] == [want[key][want["quality"].index(q)] for q in (90, 10)]
    # and independently of the evaluation code: the bytes JPEG writes at quality 10
    jpeg = zoo.get_codec("jpeg")
    images = [np.asarray(Image.open(folder / n).convert("RGB")) for n in ("a.png", "b.png")]
    bpp = np.mean([len(jpeg.encode(im, 10)) * 8 / (im.shape[0] * im.shape[1]) for im in images])
    assert some["codecs"]["jpeg"]["results"]["bpp"][1] == pytest.approx(bpp, rel=1e-9)
    written = json.loads((tmp_path / "some" / "results.json").read_text())
    assert written["codecs"]["webp"]["results"]["quality"] == [90, 10]


def test_pick_qualities_keeps_the_codecs_own_and_names_them_on_error():
    jpeg = zoo.get_codec("jpeg")
    assert evaluation.pick_qualities(jpeg, [5.0, 95, 5]) == [5, 95]
    with pytest.raises(ConfigError, match=r"jpeg has no quality 7; its qualities: 1, 5, 10"):
        evaluation.pick_qualities(jpeg, [5, 7])
    with pytest.raises(ConfigError, match="no qualities"):
        evaluation.pick_qualities(jpeg, [])


def test_a_quality_one_codec_lacks_stops_the_run_before_any_work(folder, tmp_path):
    out = tmp_path / "deep" / "out"
    with pytest.raises(ConfigError, match="webp has no quality 1"):
        evaluation.run(f"folder:{folder}", ["jpeg", "webp"], str(out), show_progress=False, qualities=[1])
    assert not (tmp_path / "deep").exists()
    with pytest.raises(ConfigError, match="exclude each other"):
        evaluation.run(f"folder:{folder}", ["jpeg"], str(out), show_progress=False, qualities=[50], match_bpp=[0.5])
    assert not (tmp_path / "deep").exists()


@pytest.mark.parametrize("flag, message", [("--qualities=50,x", "--qualities takes numbers"),
                                           ("--qualities=3", "has no quality 3")])
def test_eval_py_reports_a_bad_quality_in_one_line(folder, tmp_path, flag, message):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "eval.py", f"--data=folder:{folder}", "--codecs=jpeg", f"--out={out}",
                           "--noprogress", flag], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
