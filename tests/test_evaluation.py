"""eval.py's engine (jaxcodec.eval.rate_distortion.run): rates from real bytes, the report files, and
an output folder that cannot be written failing before any work is done."""

import io
import json

import numpy as np
import pytest
import skimage.data
from PIL import Image

from jaxcodec.eval import rate_distortion as evaluation
from jaxcodec.errors import JaxcodecError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos")
    photos = [skimage.data.coffee()[:64, :96], skimage.data.astronaut()[:48, :80]]
    for name, photo in zip(("a.png", "b.png"), photos):
        Image.fromarray(photo).save(path / name)
    return path, photos


def test_jpeg_rates_are_the_bytes_libjpeg_writes_and_the_report_is_written(folder, tmp_path):
    path, photos = folder
    out = tmp_path / "report"
    results = evaluation.run(f"folder:{path}", ["jpeg"], str(out), show_progress=False, grid=2)
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "rd.png", "results.json", "table.md"]
    saved = json.loads((out / "results.json").read_text())
    curve = saved["codecs"]["jpeg"]["results"]
    assert curve["bpp"] == results["codecs"]["jpeg"]["results"]["bpp"]
    # Independently: Pillow's JPEG at quality 10 with 4:2:0 and optimised Huffman tables.
    q = curve["quality"].index(10)
    bits = []
    for photo in photos:
        buf = io.BytesIO()
        Image.fromarray(photo).save(buf, format="JPEG", quality=10, subsampling=2, optimize=True)
        bits.append(len(buf.getvalue()) * 8 / (photo.shape[0] * photo.shape[1]))
    assert curve["bpp"][q] == pytest.approx(np.mean(bits), rel=0.02)


def test_an_output_folder_that_cannot_be_made_fails_before_evaluating(folder, tmp_path, monkeypatch):
    path, _ = folder
    (tmp_path / "file").write_text("in the way")
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: pytest.fail("evaluated before checking --out"))
    with pytest.raises(JaxcodecError, match=r"^cannot create folder .*file/out"):
        evaluation.run(f"folder:{path}", ["jpeg"], str(tmp_path / "file" / "out"), show_progress=False)


@pytest.mark.parametrize("codecs, limit, message", [
    ([], None, r"no codecs to evaluate \(--codecs is empty\)"),
    (["jpeg"], 0, r"no images to evaluate in folder:.* split 'test' \(limit 0\)"),
])
def test_nothing_to_evaluate_is_an_error_and_writes_nothing(folder, tmp_path, codecs, limit, message):
    path, _ = folder
    with pytest.raises(JaxcodecError, match=message):
        evaluation.run(f"folder:{path}", codecs, str(tmp_path / "out"), limit=limit, show_progress=False)
    assert not (tmp_path / "out").exists()


@pytest.fixture()
def mixed(folder, tmp_path):
    """The two photos, a PNG cut short, a text file named .png and a 1x1 image."""
    path, photos = folder
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("a.png", "b.png"):
        (mixed / name).write_bytes((path / name).read_bytes())
    (mixed / "c-cut.png").write_bytes((path / "a.png").read_bytes()[:200])
    (mixed / "d-text.png").write_text("not an image\n")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(mixed / "e-tiny.png")
    return mixed, photos


def test_unreadable_and_tiny_images_are_skipped_reported_and_counted(mixed, tmp_path, capsys):
    path, photos = mixed
    out = tmp_path / "report"
    results = evaluation.run(f"folder:{path}", ["jpeg"], str(out), show_progress=False, grid=0)
    err = capsys.readouterr().err.strip().splitlines()
    names = [str(path / n) for n in ("c-cut.png", "d-text.png", "e-tiny.png")]
    assert [line.split(": ")[0] for line in err] == [f"skipped {n}" for n in names]
    assert err[1] == f"skipped {names[1]}: not an image file, or a format Pillow does not read"
    assert err[2] == f"skipped {names[2]}: 1x1 pixels, smaller than the 11x11 the metrics need"
    saved = json.loads((out / "results.json").read_text())
    assert saved["num_images"] == 2 and saved["num_skipped"] == 3
    assert [s["image"] for s in saved["skipped"]] == names
    # the two photos alone give the same figures
    alone = evaluation.run(f"folder:{mixed[0]}", ["jpeg"], str(tmp_path / "alone"), show_progress=False, grid=0,
                           limit=2)
    assert alone["codecs"]["jpeg"]["results"] == results["codecs"]["jpeg"]["results"]
    table = (out / "table.md").read_text()
    assert "(2 images; 3 skipped, listed below)" in table
    assert f"- {names[2]}: 1x1 pixels, smaller than the 11x11 the metrics need" in table


def test_without_skip_bad_the_first_bad_image_stops_the_run_and_leaves_no_folder(mixed, tmp_path):
    path, _ = mixed
    out = tmp_path / "new" / "report"
    with pytest.raises(JaxcodecError, match="c-cut.png"):
        evaluation.run(f"folder:{path}", ["jpeg"], str(out), show_progress=False, skip_bad=False)
    assert not (tmp_path / "new").exists()
    only_bad = tmp_path / "only-bad"
    only_bad.mkdir()
    (only_bad / "x.png").write_text("no")
    with pytest.raises(JaxcodecError, match=r"no images to evaluate in folder:.* \(1 skipped\)"):
        evaluation.run(f"folder:{only_bad}", ["jpeg"], str(out), show_progress=False)
    assert not (tmp_path / "new").exists()


def test_a_run_that_fails_while_evaluating_removes_the_folder_it_made(folder, tmp_path, monkeypatch):
    path, _ = folder

    def fail(*args, **kwargs):
        raise JaxcodecError("the codec broke")

    monkeypatch.setattr(evaluation, "evaluate", fail)
    with pytest.raises(JaxcodecError, match="the codec broke"):
        evaluation.run(f"folder:{path}", ["jpeg"], str(tmp_path / "a" / "b" / "out"), show_progress=False)
    assert not (tmp_path / "a").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(JaxcodecError):
        evaluation.run(f"folder:{path}", ["jpeg"], str(tmp_path / "kept"), show_progress=False)
    assert (tmp_path / "kept").is_dir()  # a folder that was there before stays


def test_eval_py_skips_and_counts_bad_images_and_fails_cleanly_without_skip_bad(mixed, tmp_path):
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path, _ = mixed
    base = [sys.executable, os.path.join(root, "eval.py"), f"--data=folder:{path}", "--codecs=jpeg",
            "--noprogress", "--grid=0"]
    run = subprocess.run(base + [f"--out={tmp_path / 'out'}"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    skipped = [line for line in run.stderr.splitlines() if line.startswith("skipped ")]
    assert [line.split(": ")[0] for line in skipped] == [
        f"skipped {path / n}" for n in ("c-cut.png", "d-text.png", "e-tiny.png")]
    assert "skipped 3 of 5 images (listed above and in the report)" in run.stdout
    run = subprocess.run(base + [f"--out={tmp_path / 'out2'}", "--noskip_bad"], capture_output=True, text=True,
                         timeout=300)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1, run.stderr
    assert lines[0].startswith(f"error: cannot read image {path / 'c-cut.png'}: ")
    assert not (tmp_path / "out2").exists()
