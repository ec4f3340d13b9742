"""jaxcodec.train.photo_archive and tools/training_archive.py: the training archive that travels to a lease."""

from __future__ import annotations

import importlib.util
import json
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from jaxcodec import data
from jaxcodec.train import photo_archive
from jaxcodec.errors import DatasetError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool():
    spec = importlib.util.spec_from_file_location("training_archive", os.path.join(ROOT, "tools", "training_archive.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random colour image (photo-like: JPEG codes it well), uint8."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (h // 8 + 2, w // 8 + 2, 3))
    return np.clip(np.kron(coarse, np.ones((8, 8, 1)))[:h, :w], 0, 255).astype(np.uint8)


def _folder(tmp_path, shapes):
    folder = tmp_path / "photos"
    folder.mkdir()
    originals = {}
    for i, (h, w) in enumerate(shapes):
        image = _photo(h, w, i)
        Image.fromarray(image).save(folder / f"p{i}.png")
        originals[f"p{i}"] = image
    return folder, originals


def test_archive_round_trip_shrinks_and_keeps_quality(tmp_path):
    folder, originals = _folder(tmp_path, [(120, 200), (90, 60), (40, 50)])
    out = tmp_path / "a.tar"
    manifest = photo_archive.build(sorted(folder.iterdir()), out, max_side=100, quality=95)
    assert manifest["available"] == 3 and len(manifest["photos"]) == 3
    assert photo_archive.verify(out) == photo_archive.sha256_file(out) == manifest["sha256"]
    assert (tmp_path / "a.tar.sha256").read_text().split() == [manifest["sha256"], "a.tar"]
    dest = photo_archive.extract(out, tmp_path / "x")
    images = {os.path.splitext(n)[0]: np.asarray(Image.open(os.path.join(dest, "train", n)))
              for n in os.listdir(os.path.join(dest, "train"))}
    assert sorted(images) == ["p0", "p1", "p2"]
    for name, image in images.items():
        expected = photo_archive.shrink(originals[name], 100)
        assert image.shape == expected.shape and max(image.shape[:2]) <= 100
        assert max(expected.shape[:2]) == min(100, max(originals[name].shape[:2]))
        psnr = 10 * np.log10(255.0**2 / np.mean((image.astype(float) - expected) ** 2))
        recorded = next(p["psnr"] for p in manifest["photos"] if p["source"] == f"{name}.png")
        assert psnr > 38 and abs(psnr - recorded) < 0.01
    # the extracted folder is an ordinary folder: dataset
    assert len(data.open_dataset(f"folder:{dest}", "train")) == 3


def test_same_photos_same_bytes(tmp_path):
    folder, _ = _folder(tmp_path, [(64, 64), (70, 80)])
    a = photo_archive.build(sorted(folder.iterdir()), tmp_path / "a.tar")
    b = photo_archive.build(sorted(folder.iterdir()), tmp_path / "b.tar")
    assert a["sha256"] == b["sha256"]


def test_budget_takes_a_seeded_subset(tmp_path):
    folder, _ = _folder(tmp_path, [(96, 96)] * 8)
    full = photo_archive.build(sorted(folder.iterdir()), tmp_path / "full.tar")
    one = full["photos"][0]["bytes"] + 512
    budget = 10240 + 512 + 3 * one + 256 * 4 + 4096 + 600
    part = photo_archive.build(sorted(folder.iterdir()), tmp_path / "part.tar", budget=budget)
    assert 1 <= len(part["photos"]) < 8 and part["available"] == 8
    assert os.path.getsize(tmp_path / "part.tar") <= budget
    other = photo_archive.build(sorted(folder.iterdir()), tmp_path / "other.tar", budget=budget, seed=1)
    assert [p["source"] for p in other["photos"]] != [p["source"] for p in part["photos"]]
    with pytest.raises(DatasetError, match="holds no photo"):
        photo_archive.build(sorted(folder.iterdir()), tmp_path / "none.tar", budget=1000)


def test_verify_refuses_missing_damaged_and_unhashed_archives(tmp_path):
    folder, _ = _folder(tmp_path, [(64, 64)])
    out = tmp_path / "a.tar"
    digest = photo_archive.build(sorted(folder.iterdir()), out)["sha256"]
    with pytest.raises(DatasetError, match="does not exist"):
        photo_archive.verify(tmp_path / "missing.tar")
    with pytest.raises(DatasetError, match="expected"):
        photo_archive.verify(out, "0" * 64)
    assert photo_archive.verify(out, digest.upper()) == digest
    raw = bytearray(out.read_bytes())
    raw[3000] ^= 1
    out.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="damaged or another version"):
        photo_archive.verify(out)
    os.remove(photo_archive.sidecar(out))
    with pytest.raises(DatasetError, match="has no a.tar.sha256"):
        photo_archive.verify(out)


def test_extract_refuses_foreign_tars(tmp_path):
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        tar.add(__file__, arcname="x.py")
    with pytest.raises(DatasetError, match="not a training archive"):
        photo_archive.extract(bad, tmp_path / "x")
    evil = tmp_path / "evil.tar"
    manifest = {"format": photo_archive.FORMAT, "photos": [{"file": "../escape.jpg"}]}
    with tarfile.open(evil, "w") as tar:
        tar.addfile(*photo_archive._member(photo_archive.MANIFEST, json.dumps(manifest).encode()))
        tar.addfile(*photo_archive._member("../escape.jpg", b"x"))
    with pytest.raises(DatasetError, match="unexpected member"):
        photo_archive.extract(evil, tmp_path / "y")
    assert not (tmp_path / "escape.jpg").exists()


def test_tool_writes_the_archive_and_reports_the_room(tmp_path, capsys):
    folder, _ = _folder(tmp_path, [(80, 120), (100, 100)])
    out = tmp_path / "lease" / "photos.tar"
    assert _tool().main([str(out), "--photos", str(folder), "--max-side", "64"]) == 0
    text = capsys.readouterr().out
    assert "2 of 2 photos" in text and "left under 64 MiB" in text and "JPEG q95 4:4:4" in text
    assert photo_archive.verify(out)
    assert _tool().main([str(out), "--photos", str(tmp_path / "nope")]) == 1
    assert "is not a folder" in capsys.readouterr().err
    assert _tool().main([str(out), "--photos", str(folder), "--budget", "0.001"]) == 1
    assert "holds no photo" in capsys.readouterr().err


def test_tree_bytes_counts_tracked_files():
    tool = _tool()
    assert tool.tree_bytes() > os.path.getsize(os.path.join(ROOT, "README.md"))
