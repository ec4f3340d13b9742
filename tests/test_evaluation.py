"""eval.py's engine (jaxcodec.evaluation.run): rates from real bytes, the report files, and
an output folder that cannot be written failing before any work is done."""

import io
import json

import numpy as np
import pytest
import skimage.data
from PIL import Image

from jaxcodec import evaluation
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
