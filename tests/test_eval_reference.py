"""eval.py's stored curves (--reference, jaxcodec.eval.reference) and BD-rate anchors (--anchors):
curves measured in one run and joined to another give the figures of one run measuring them all."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from jaxcodec.eval import bdrate, reference
from jaxcodec.eval import rate_distortion as evaluation
from jaxcodec.errors import JaxcodecError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _folder(path, crops):
    path.mkdir()
    for i, (photo, rows, cols) in enumerate(crops):
        Image.fromarray(photo[rows, cols]).save(path / f"{i}.png")
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    base = tmp_path_factory.mktemp("reference")
    coffee, astronaut = skimage.data.coffee(), skimage.data.astronaut()
    same = _folder(base / "same", [(coffee, slice(0, 64), slice(0, 96)), (astronaut, slice(0, 48), slice(0, 80))])
    other = _folder(base / "other", [(coffee, slice(64, 128), slice(0, 96)), (astronaut, slice(0, 48), slice(0, 80))])
    jpeg = evaluation.run(f"folder:{same}", ["jpeg"], str(base / "jpeg"), show_progress=False, grid=0)
    return base, same, other, jpeg


def test_a_stored_curve_gives_the_bd_rates_of_one_run_measuring_both(photos, tmp_path):
    base, same, _, jpeg = photos
    joined = evaluation.run(f"folder:{same}", ["webp"], str(tmp_path / "webp"), show_progress=False, grid=2,
                            references=[str(base / "jpeg" / "results.json")])
    both = evaluation.run(f"folder:{same}", ["jpeg", "webp"], str(tmp_path / "both"), show_progress=False, grid=0)
    assert list(joined["codecs"]) == ["webp", "jpeg"]
    assert joined["codecs"]["jpeg"]["results"]["bpp"] == jpeg["codecs"]["jpeg"]["results"]["bpp"]
    for key in ("bd_rate", "bd_rate_ms_ssim"):
        assert joined[key]["jpeg"]["webp"] == pytest.approx(both[key]["jpeg"]["webp"], abs=1e-9)
    # independently, from the two curves
    a, b = jpeg["codecs"]["jpeg"]["results"], joined["codecs"]["webp"]["results"]
    assert joined["bd_rate_vs_jpeg"]["webp"] == pytest.approx(bdrate.bd_rate(a["bpp"], a["psnr-rgb"], b["bpp"], b["psnr-rgb"]))
    saved = json.loads((tmp_path / "webp" / "results.json").read_text())
    assert saved["codecs"]["jpeg"]["stored"].endswith("results.json")
    assert saved["unverified_references"] == []
    assert f"- from {base / 'jpeg' / 'results.json'}: jpeg\n" in (tmp_path / "webp" / "table.md").read_text()
    assert (tmp_path / "webp" / "grid.png").exists()  # the stored curve has no pictures, the measured one does


def test_a_reference_of_other_images_is_refused_before_any_work(photos, tmp_path, monkeypatch):
    base, _, other, _ = photos
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: pytest.fail("evaluated before checking the reference"))
    with pytest.raises(JaxcodecError, match=r"was measured on other images: 1 of its 2 are not among the 2"):
        evaluation.run(f"folder:{other}", ["webp"], str(tmp_path / "out"), show_progress=False,
                       references=[str(base / "jpeg" / "results.json")])
    with pytest.raises(JaxcodecError, match=r"was measured on 2 images, not the 1"):
        stored = json.loads((base / "jpeg" / "results.json").read_text())
        del stored["image_digests"]
        (tmp_path / "old.json").write_text(json.dumps(stored))
        evaluation.run(f"folder:{other}", ["webp"], str(tmp_path / "out"), show_progress=False, limit=1,
                       references=[str(tmp_path / "old.json")])
    assert not (tmp_path / "out").exists()


def test_named_anchors_and_a_clash_of_names(photos, tmp_path):
    base, same, _, jpeg = photos
    got = evaluation.run(f"folder:{same}", ["jpeg", "webp"], str(tmp_path / "out"), show_progress=False, grid=0,
                         references=[str(base / "jpeg" / "results.json")], anchors=["webp"])
    assert list(got["bd_rate"]) == ["webp"]
    assert set(got["bd_rate"]["webp"]) == {"jpeg", "jpeg (results.json)"}
    # the stored JPEG curve is the one measured again: the same bytes, the same BD-rate
    assert got["bd_rate"]["webp"]["jpeg (results.json)"] == pytest.approx(got["bd_rate"]["webp"]["jpeg"], abs=1e-9)
    assert got["bd_rate_vs_jpeg"] == {}
    with pytest.raises(JaxcodecError, match=r"^--anchors avif: neither evaluated \(--codecs\) nor stored"):
        evaluation.run(f"folder:{same}", ["webp"], str(tmp_path / "out2"), show_progress=False, anchors=["avif"])
    assert not (tmp_path / "out2").exists()


def test_a_results_table_is_read_as_its_rows_say():
    path = os.path.join(ROOT, "results", "val_photos_half.json")
    table = json.load(open(path))
    stored = reference.load(path)
    assert stored.num_images == table["num_images"] == 20
    assert stored.digests == table["image_digests"] and len(set(stored.digests)) == 20
    with pytest.raises(JaxcodecError, match=r"was measured on other images: 1 of its 20 are not among the 20"):
        reference.check_images(stored, stored.digests[:19] + ["0" * 32])
    assert reference.check_images(stored, stored.digests[::-1]) is True  # the same photos, in any order
    undigested = reference.Reference(path, stored.codecs, None, 20)
    with pytest.raises(JaxcodecError, match=r"was measured on 20 images, not the 19 evaluated here"):
        reference.check_images(undigested, [f"{i}" for i in range(19)])
    assert reference.check_images(undigested, [f"{i}" for i in range(20)]) is False  # not verified, not refused
    assert set(stored.codecs) == {k for k, v in table.items() if k not in ("columns", "image_digests") and isinstance(v, list)}
    rows = np.array(table["mbt2018-mean"], dtype=float)
    curve = stored.codecs["mbt2018-mean"]["results"]
    assert curve["bpp"] == list(rows[:, 1]) and curve["psnr-rgb"] == list(rows[:, 2])
    jpeg = stored.codecs["jpeg"]["results"]
    got = bdrate.bd_rate(jpeg["bpp"], jpeg["psnr-rgb"], curve["bpp"], curve["psnr-rgb"])
    assert got == pytest.approx(table["bd_rate_percent_vs_jpeg_psnr"]["mbt2018-mean"], abs=0.05)


def test_a_table_without_digests_joins_unverified_and_says_so(photos, tmp_path):
    base, same, _, jpeg = photos
    curve = jpeg["codecs"]["jpeg"]["results"]
    table = {"columns": ["quality", "bpp", "psnr_rgb", "ms_ssim_rgb"],
             "jpeg": [list(row) for row in zip(curve["quality"], curve["bpp"], curve["psnr-rgb"], curve["ms-ssim-rgb"])]}
    (tmp_path / "table.json").write_text(json.dumps(table))
    got = evaluation.run(f"folder:{same}", ["webp"], str(tmp_path / "out"), show_progress=False, grid=0,
                         references=[str(tmp_path / "table.json")])
    assert got["unverified_references"] == [str(tmp_path / "table.json")]
    assert "not checked against these images" in (tmp_path / "out" / "table.md").read_text()


def test_a_table_with_digests_is_checked_against_the_images(photos, tmp_path):
    base, same, other, jpeg = photos
    curve = jpeg["codecs"]["jpeg"]["results"]
    table = {"columns": ["quality", "bpp", "psnr_rgb"], "num_images": 2, "image_digests": jpeg["image_digests"],
             "jpeg": [list(row) for row in zip(curve["quality"], curve["bpp"], curve["psnr-rgb"])]}
    (tmp_path / "table.json").write_text(json.dumps(table))
    got = evaluation.run(f"folder:{same}", ["webp"], str(tmp_path / "out"), show_progress=False, grid=0,
                         references=[str(tmp_path / "table.json")])
    assert got["unverified_references"] == [] and "image_digests" not in got["codecs"]
    with pytest.raises(JaxcodecError, match=r"was measured on other images: 1 of its 2"):
        evaluation.run(f"folder:{other}", ["webp"], str(tmp_path / "out2"), show_progress=False,
                       references=[str(tmp_path / "table.json")])
    assert not (tmp_path / "out2").exists()
    table["num_images"] = 3
    (tmp_path / "table.json").write_text(json.dumps(table))
    with pytest.raises(JaxcodecError, match=r"^--reference .*: image_digests lists 2 images, num_images says 3$"):
        reference.load(tmp_path / "table.json")


def test_a_compressai_result_file_is_one_curve(photos, tmp_path):
    """The form of CompressAI's published curves (``results/image/kodak/*.json``): here the JPEG
    curve measured above, written that way, gives the BD-rate the results.json gives."""
    base, same, _, jpeg = photos
    curve = jpeg["codecs"]["jpeg"]["results"]
    (tmp_path / "jpeg.json").write_text(json.dumps({"name": "jpeg", "description": "Inference (ans)", "results": {
        "psnr": curve["psnr-rgb"], "ms-ssim": curve["ms-ssim-rgb"], "bpp": curve["bpp"], "encoding_time": [0.1] * len(curve["bpp"])}}))
    stored = reference.load(tmp_path / "jpeg.json")
    assert stored.codecs["jpeg"]["results"]["quality"] == list(range(1, len(curve["bpp"]) + 1))
    got = evaluation.run(f"folder:{same}", ["webp"], str(tmp_path / "a"), show_progress=False, grid=0,
                         references=[str(tmp_path / "jpeg.json")])
    want = evaluation.run(f"folder:{same}", ["webp"], str(tmp_path / "b"), show_progress=False, grid=0,
                          references=[str(base / "jpeg" / "results.json")])
    assert got["bd_rate"]["jpeg"]["webp"] == pytest.approx(want["bd_rate"]["jpeg"]["webp"], abs=1e-9)
    assert got["bd_rate_ms_ssim"]["jpeg"]["webp"] == pytest.approx(want["bd_rate_ms_ssim"]["jpeg"]["webp"], abs=1e-9)


@pytest.mark.parametrize("content, message", [
    ("not json", "not a JSON file"),
    ("[1, 2]", "not a results document"),
    ('{"columns": ["quality", "bpp"], "x": [[1, 0.5]]}', "curve 'x' has no psnr-rgb"),
    ('{"codecs": {}}', "holds no curve"),
    ('{"name": "x", "results": {"psnr": [30, 31]}}', "results has no bpp list"),
    ('{"codecs": {"x": {"results": {"quality": [1], "bpp": ["a"], "psnr-rgb": [30]}}}}', "'a' is not a number"),
])
def test_a_bad_reference_is_one_line_and_eval_py_exits_non_zero(photos, tmp_path, content, message):
    _, same, _, _ = photos
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(JaxcodecError, match=message):
        reference.load(bad)
    if content == "not json":  # the command line, once
        run = subprocess.run([sys.executable, os.path.join(ROOT, "eval.py"), f"--data=folder:{same}", "--codecs=webp",
                              f"--reference={bad}", f"--out={tmp_path / 'out'}", "--noprogress"],
                             capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert run.returncode == 1
        assert run.stderr.strip().splitlines()[-1] == f"error: --reference {bad}: not a JSON file"
        assert not (tmp_path / "out").exists()


def test_stored_curves_alone_are_compared_without_reading_an_image(photos, tmp_path, monkeypatch):
    base, same, _, _ = photos
    webp = evaluation.run(f"folder:{same}", ["webp"], str(tmp_path / "webp"), show_progress=False, grid=0)
    both = evaluation.run(f"folder:{same}", ["jpeg", "webp"], str(tmp_path / "both"), show_progress=False, grid=0)
    monkeypatch.setattr(evaluation, "load_images", lambda *a, **k: pytest.fail("read images to compare stored curves"))
    got = evaluation.run("unused", [], str(tmp_path / "cmp"), show_progress=False,
                         references=[str(base / "jpeg" / "results.json"), str(tmp_path / "webp" / "results.json")])
    assert list(got["codecs"]) == ["jpeg", "webp"] and got["unverified_references"] == []
    assert got["num_images"] == 2 and got["image_digests"] == webp["image_digests"]
    assert got["bd_rate"]["jpeg"]["webp"] == pytest.approx(both["bd_rate"]["jpeg"]["webp"], abs=1e-9)
    assert sorted(os.listdir(tmp_path / "cmp")) == ["rd.png", "results.json", "table.md"]
    assert "Dataset: `folder:" in (tmp_path / "cmp" / "table.md").read_text()


def test_stored_curves_of_different_images_are_not_compared(photos, tmp_path):
    base, _, other, _ = photos
    evaluation.run(f"folder:{other}", ["webp"], str(tmp_path / "webp"), show_progress=False, grid=0)
    with pytest.raises(JaxcodecError, match=r"was measured on other images: 1 of its 2"):
        evaluation.run("unused", [], str(tmp_path / "cmp"), show_progress=False,
                       references=[str(base / "jpeg" / "results.json"), str(tmp_path / "webp" / "results.json")])
    table = tmp_path / "table.json"
    table.write_text(json.dumps({"columns": ["quality", "bpp", "psnr_rgb"], "num_images": 5, "x": [[1, 0.5, 30.0]]}))
    with pytest.raises(JaxcodecError, match=r"was measured on 5 images, not the 2"):
        evaluation.run("unused", [], str(tmp_path / "cmp"), show_progress=False,
                       references=[str(base / "jpeg" / "results.json"), str(table)])
    with pytest.raises(JaxcodecError, match=r"^--anchors avif: not among the stored curves"):
        evaluation.run("unused", [], str(tmp_path / "cmp"), show_progress=False, anchors=["avif"],
                       references=[str(base / "jpeg" / "results.json")])
    assert not (tmp_path / "cmp").exists()
