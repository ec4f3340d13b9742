"""tools/jpeg_copies.py: the training-photo copies of the factorized ladder's GPU stage."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from PIL import Image

from jaxcodec.errors import JaxcodecError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_tool():
    spec = importlib.util.spec_from_file_location("jpeg_copies", os.path.join(ROOT, "tools", "jpeg_copies.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _smooth(h: int, w: int, channels: int, seed: int) -> np.ndarray:
    """A smooth random image (a photo-like test pattern JPEG codes well), uint8."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (h // 16 + 1, w // 16 + 1, channels))
    up = np.kron(coarse, np.ones((16, 16, 1)))[:h, :w]
    return np.clip(up, 0, 255).astype(np.uint8)


def test_copies_are_rgb_jpegs_close_to_the_originals(tmp_path):
    tool = _load_tool()
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    rgb = _smooth(64, 96, 3, 0)
    grey = _smooth(48, 40, 1, 1)[..., 0]
    rgba = np.concatenate([_smooth(32, 32, 3, 2), np.full((32, 32, 1), 7, np.uint8)], axis=-1)
    Image.fromarray(rgb).save(src / "a.png")
    Image.fromarray(grey).save(src / "b.png")
    Image.fromarray(rgba).save(src / "c.png")
    (src / "notes.txt").write_text("not an image")

    assert tool.jpeg_copies(str(src), str(dst), quality=95) == 3
    assert sorted(os.listdir(dst)) == ["a.jpg", "b.jpg", "c.jpg"]
    for name, original in (("a", rgb), ("b", np.repeat(grey[..., None], 3, -1)), ("c", rgba[..., :3])):
        with Image.open(dst / f"{name}.jpg") as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            out = np.asarray(im)
        assert out.shape == original.shape
        mse = np.mean((out.astype(np.float64) - original) ** 2)
        assert 10 * np.log10(255.0**2 / max(mse, 1e-12)) > 40.0, name
    # quality 95 without chroma subsampling: identical to Pillow's own encoding of the pixels
    expected = tmp_path / "ref.jpg"
    Image.fromarray(rgb).save(expected, "JPEG", quality=95, subsampling=0)
    assert (dst / "a.jpg").read_bytes() == expected.read_bytes()


def test_a_bad_image_leaves_no_folder_behind(tmp_path):
    tool = _load_tool()
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    Image.fromarray(_smooth(32, 32, 3, 0)).save(src / "a.png")
    (src / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(JaxcodecError):
        tool.jpeg_copies(str(src), str(dst), quality=95)
    assert sorted(os.listdir(tmp_path)) == ["src"]


def test_an_empty_folder_is_an_error(tmp_path):
    tool = _load_tool()
    (tmp_path / "src").mkdir()
    with pytest.raises(JaxcodecError, match="no image files"):
        tool.jpeg_copies(str(tmp_path / "src"), str(tmp_path / "dst"), quality=95)
    with pytest.raises(JaxcodecError, match="is not a folder"):
        tool.jpeg_copies(str(tmp_path / "missing"), str(tmp_path / "dst"), quality=95)
    assert sorted(os.listdir(tmp_path)) == ["src"]
