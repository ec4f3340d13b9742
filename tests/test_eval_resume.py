"""eval.py --resume (jaxcodec.eval.journal): an interrupted evaluation keeps what it measured, and the
same command finishes it with the figures an uninterrupted run reports, measuring only what is missing."""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import skimage.data
from PIL import Image

from jaxcodec import zoo
from jaxcodec.eval import rate_distortion as evaluation
from jaxcodec.eval.journal import JOURNAL_NAME, Journal, image_digest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture()
def folder(tmp_path):
    path = tmp_path / "photos"
    path.mkdir()
    photos = [skimage.data.coffee()[:40, :56], skimage.data.astronaut()[:32, :48], skimage.data.chelsea()[:36, :36]]
    for name, photo in zip(("a.png", "b.png", "c.png"), photos):
        Image.fromarray(photo).save(path / name)
    return path


class Counting:
    """A real codec whose encodes are counted; with ``stop_after`` the next encode is interrupted."""

    def __init__(self, codec, stop_after=None):
        self.codec, self.stop_after, self.encodes = codec, stop_after, 0
        self.name, self.description, self.qualities = codec.name, codec.description, codec.qualities

    def encode(self, image, quality):
        if self.stop_after is not None and self.encodes == self.stop_after:
            raise KeyboardInterrupt
        self.encodes += 1
        return self.codec.encode(image, quality)

    def decode(self, data):
        return self.codec.decode(data)


def _use(monkeypatch, codec):
    monkeypatch.setattr(zoo, "get_codec", lambda name, **kwargs: codec)
    return codec


def _records(out):
    return [json.loads(line) for line in (out / JOURNAL_NAME).read_text().splitlines()]


def test_an_interrupted_run_finishes_with_the_figures_of_an_uninterrupted_one(folder, tmp_path, monkeypatch):
    jpeg = zoo.get_codec("jpeg")
    fresh = evaluation.run(f"folder:{folder}", ["jpeg"], str(tmp_path / "fresh"), show_progress=False, grid=1)
    per_image = len(jpeg.qualities)
    total, done = per_image * 3, per_image + 3
    out = tmp_path / "a" / "out"
    _use(monkeypatch, Counting(jpeg, stop_after=done))
    with pytest.raises(KeyboardInterrupt):
        evaluation.run(f"folder:{folder}", ["jpeg"], str(out), show_progress=False, grid=1, resume=True)
    assert sorted(p.name for p in out.iterdir()) == [JOURNAL_NAME]  # no report, the journal kept
    records = _records(out)
    # image by image: the first image at every quality, then the second's first three
    assert [r["quality"] for r in records] == [json.dumps(q) for q in jpeg.qualities] + [
        json.dumps(q) for q in jpeg.qualities[:3]]
    assert len({r["image"] for r in records}) == 2
    # the shown image (the first) keeps its streams, the others do not
    assert ["stream" in r for r in records] == [True] * per_image + [False] * 3
    counting = _use(monkeypatch, Counting(jpeg))
    resumed = evaluation.run(f"folder:{folder}", ["jpeg"], str(out), show_progress=False, grid=1, resume=True)
    assert counting.encodes == total - done and resumed["resumed"] == done
    for key in ("results", "per_image"):
        assert resumed["codecs"]["jpeg"][key] == fresh["codecs"]["jpeg"][key]
    assert resumed["bd_rate"] == fresh["bd_rate"]
    assert [q for q, _ in resumed["codecs"]["jpeg"]["decoded"]] == list(jpeg.qualities)
    for (_, a), (_, b) in zip(resumed["codecs"]["jpeg"]["decoded"], fresh["codecs"]["jpeg"]["decoded"]):
        np.testing.assert_array_equal(a, b)  # the picture decoded again from the kept streams
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", JOURNAL_NAME, "rd.png", "results.json", "table.md"]
    assert json.loads((out / "results.json").read_text())["codecs"]["jpeg"]["results"] == fresh["codecs"]["jpeg"]["results"]
    # a third run measures nothing
    counting = _use(monkeypatch, Counting(jpeg))
    again = evaluation.run(f"folder:{folder}", ["jpeg"], str(out), show_progress=False, grid=1, resume=True)
    assert counting.encodes == 0 and again["resumed"] == total


def test_changed_pixels_a_changed_codec_and_a_torn_line_are_measured_again(folder, tmp_path, monkeypatch):
    jpeg = zoo.get_codec("jpeg")
    per_image = len(jpeg.qualities)
    out = tmp_path / "out"
    evaluation.run(f"folder:{folder}", ["jpeg"], str(out), show_progress=False, grid=0, resume=True)
    photo = np.asarray(Image.open(folder / "b.png")).copy()
    photo[0, 0, 0] ^= 1
    Image.fromarray(photo).save(folder / "b.png")
    counting = _use(monkeypatch, Counting(jpeg))
    evaluation.run(f"folder:{folder}", ["jpeg"], str(out), show_progress=False, grid=0, resume=True)
    assert counting.encodes == per_image  # the one image whose pixels changed
    # a crash in the middle of writing the last line: that measurement is made again
    journal = out / JOURNAL_NAME
    text = journal.read_text()
    journal.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 1] + text.splitlines()[-1][:30])
    counting = _use(monkeypatch, Counting(jpeg))
    evaluation.run(f"folder:{folder}", ["jpeg"], str(out), show_progress=False, grid=0, resume=True)
    assert counting.encodes == 1
    lines = journal.read_text().splitlines()
    assert sum(1 for line in lines if _parses(line)) == len(lines) - 1  # the torn fragment alone, on its own line
    counting = _use(monkeypatch, Counting(jpeg))
    evaluation.run(f"folder:{folder}", ["jpeg"], str(out), show_progress=False, grid=0, resume=True)
    assert counting.encodes == 0  # the measurement made again after the fragment was recorded whole
    # another codec under the same name (its description differs) is measured afresh
    other = Counting(jpeg)
    other.description = jpeg.description + " (other settings)"
    _use(monkeypatch, other)
    evaluation.run(f"folder:{folder}", ["jpeg"], str(out), show_progress=False, grid=0, resume=True)
    assert other.encodes == 3 * per_image


def _parses(line):
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


def test_a_resumable_run_that_measured_nothing_leaves_nothing(folder, tmp_path, monkeypatch):
    _use(monkeypatch, Counting(zoo.get_codec("jpeg"), stop_after=0))
    with pytest.raises(KeyboardInterrupt):
        evaluation.run(f"folder:{folder}", ["jpeg"], str(tmp_path / "a" / "out"), show_progress=False, resume=True)
    assert not (tmp_path / "a").exists()
    (tmp_path / "kept").mkdir()
    with pytest.raises(KeyboardInterrupt):
        evaluation.run(f"folder:{folder}", ["jpeg"], str(tmp_path / "kept"), show_progress=False, resume=True)
    assert list((tmp_path / "kept").iterdir()) == []


def test_journal_records_are_found_by_codec_quality_and_pixels(tmp_path):
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    codec = types.SimpleNamespace(name="c", description="d")
    journal = Journal(str(tmp_path / JOURNAL_NAME))
    journal.add(codec, np.float32(2.5), image_digest(image), {"bpp": 1.0}, 0.1, 0.2, stream=b"\x00\xffjxc")
    journal.close()
    again = Journal(str(tmp_path / JOURNAL_NAME))
    record = again.find(codec, 2.5, image_digest(image), stream=True)
    assert record["row"] == {"bpp": 1.0} and Journal.stream(record) == b"\x00\xffjxc"
    assert again.find(codec, 2.0, image_digest(image)) is None
    assert again.find(codec, 2.5, image_digest(image.T.copy())) is None  # same pixels, another shape
    assert again.find(types.SimpleNamespace(name="c", description="e"), 2.5, image_digest(image)) is None
    refining = types.SimpleNamespace(name="c", description="d", refine_steps=5, refine_lr=0.02, hyper_steps=0)
    assert again.find(refining, 2.5, image_digest(image)) is None  # same model, another encoder
    assert again.reused == 1


def test_a_refining_encoder_is_measured_apart_from_its_plain_model(folder, tmp_path):
    """A model and its refining encoder share a name and a description; in one resumable run each
    is measured (the journal holds both), reports what a run without a journal does, and a
    second run takes every figure from the journal."""
    codecs = ["bmshj2017-factorized-q1", "bmshj2017-factorized-q1+refine=3", "bmshj2017-factorized+refine=2"]
    out = tmp_path / "out"
    resumed = evaluation.run(f"folder:{folder}", codecs, str(out), show_progress=False, grid=0, resume=True)
    plain = evaluation.run(f"folder:{folder}", codecs, str(tmp_path / "plain"), show_progress=False, grid=0)
    records = _records(out)
    assert len(records) == 3 * (1 + 1 + 9)
    own_lr = zoo.get_codec(codecs[1]).refine_lr  # the rung's own step size
    assert {r["encoder"] for r in records} == {"plain", f"refine_steps=3 refine_lr={own_lr!r}",
                                               "refine_steps=2 refine_lr=None"}
    for name in codecs:
        assert resumed["codecs"][name]["results"] == plain["codecs"][name]["results"], name
    assert resumed["codecs"][codecs[1]]["results"] != resumed["codecs"][codecs[0]]["results"]
    again = evaluation.run(f"folder:{folder}", codecs, str(out), show_progress=False, grid=0, resume=True)
    assert again["resumed"] == len(records) and len(_records(out)) == len(records)


def test_eval_py_resume_reports_what_it_reused(folder, tmp_path):
    out = tmp_path / "out"
    evaluation.run(f"folder:{folder}", ["jpeg"], str(out), show_progress=False, grid=0, resume=True)
    measured = len(_records(out))
    run = subprocess.run([sys.executable, os.path.join(ROOT, "eval.py"), f"--data=folder:{folder}", "--codecs=jpeg",
                          "--noprogress", "--grid=0", f"--out={out}", "--resume"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"resuming: {measured} measurements recorded in {out / JOURNAL_NAME}" in run.stderr
    assert f"{measured} measurements taken from the journal in {out}" in run.stdout


def test_codecs_sharing_a_name_and_description_are_told_apart_by_the_name_asked_for(folder, tmp_path, monkeypatch):
    """Two workdirs at the same step share a model's name and description: in one resumable run
    each is measured under the name it was asked for, and a second run reuses both."""
    twins = {}
    for label, inner in (("first", zoo.get_codec("jpeg")), ("second", zoo.get_codec("webp"))):
        twin = Counting(inner)
        twin.name, twin.description, twin.qualities = "twin", "one model at one step", [50, 90]
        twins[label] = twin
    monkeypatch.setattr(zoo, "get_codec", lambda name, **kwargs: twins[name])
    out = tmp_path / "out"
    result = evaluation.run(f"folder:{folder}", ["first", "second"], str(out), show_progress=False, grid=0, resume=True)
    assert twins["first"].encodes == twins["second"].encodes == 3 * 2
    assert result["codecs"]["first"]["results"] != result["codecs"]["second"]["results"]
    again = evaluation.run(f"folder:{folder}", ["first", "second"], str(out), show_progress=False, grid=0, resume=True)
    assert again["resumed"] == 12
    assert twins["first"].encodes == twins["second"].encodes == 3 * 2
