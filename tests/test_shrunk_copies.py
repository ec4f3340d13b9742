"""tools/shrunk_copies.py: the validation split shrunk and stored losslessly (a second view of it)."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from PIL import Image

from jaxcodec.errors import JaxcodecError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_tool():
    spec = importlib.util.spec_from_file_location("shrunk_copies", os.path.join(ROOT, "tools", "shrunk_copies.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _texture(h: int, w: int, channels: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


def test_copies_are_lanczos_shrunk_pngs(tmp_path):
    tool = _load_tool()
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    big = _texture(90, 120, 3, 0)
    small = _texture(30, 20, 3, 1)
    grey = _texture(100, 60, 1, 2)[..., 0]
    Image.fromarray(big).save(src / "a.jpg", quality=95, subsampling=0)
    Image.fromarray(small).save(src / "b.png")
    Image.fromarray(grey).save(src / "c.png")
    (src / "notes.txt").write_text("not an image")

    sizes = tool.shrunk_copies(str(src), str(dst), max_side=60)

    assert sorted(os.listdir(dst)) == ["a.png", "b.png", "c.png"]
    assert sizes == [(45, 60), (30, 20), (60, 36)]
    with Image.open(src / "a.jpg") as im:  # the reference: Pillow's own Lanczos of the decoded source
        expected_a = np.asarray(im.convert("RGB").resize((60, 45), Image.Resampling.LANCZOS))
    expected_c = np.asarray(Image.fromarray(grey).convert("RGB").resize((36, 60), Image.Resampling.LANCZOS))
    for name, expected in (("a", expected_a), ("b", small), ("c", expected_c)):
        with Image.open(dst / f"{name}.png") as im:
            assert im.format == "PNG" and im.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(im), expected, err_msg=name)


def test_bad_input_is_one_error_and_leaves_nothing(tmp_path):
    tool = _load_tool()
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    with pytest.raises(JaxcodecError, match="no image files"):
        tool.shrunk_copies(str(src), str(dst), max_side=64)
    with pytest.raises(JaxcodecError, match="is not a folder"):
        tool.shrunk_copies(str(tmp_path / "missing"), str(dst), max_side=64)
    Image.fromarray(_texture(80, 80, 3, 0)).save(src / "a.png")
    with pytest.raises(JaxcodecError, match="at least 1 pixel"):
        tool.shrunk_copies(str(src), str(dst), max_side=0)
    (src / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(JaxcodecError):
        tool.shrunk_copies(str(src), str(dst), max_side=64)
    assert sorted(os.listdir(tmp_path)) == ["src"]
