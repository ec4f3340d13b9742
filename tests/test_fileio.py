"""Atomic output files (jaxcodec.fileio): all or nothing, with the permissions open() gives."""

import os
import stat
from pathlib import Path

import pytest

from jaxcodec import fileio
from jaxcodec.errors import JaxcodecError


def test_written_file_has_the_umask_permissions_and_no_leftovers(tmp_path):
    old = os.umask(0o022)
    try:
        fileio.atomic_write_bytes(tmp_path / "out.jxc", b"abc")
        with open(tmp_path / "plain", "wb") as f:
            f.write(b"abc")
    finally:
        os.umask(old)
    assert (tmp_path / "out.jxc").read_bytes() == b"abc"
    mode = stat.S_IMODE(os.stat(tmp_path / "out.jxc").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["out.jxc", "plain"]


def test_a_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with fileio.atomic_path(target) as tmp:
            open(tmp, "wb").write(b"half")
            raise RuntimeError("encoder failed")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.png"]
    with pytest.raises(JaxcodecError, match="directory"):
        fileio.atomic_write_bytes(tmp_path, b"x")


def test_atomic_dir_replaces_a_folder_whole_or_not_at_all(tmp_path):
    from jaxcodec.fileio import atomic_dir

    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (Path(tmp) / "new.txt").write_text("half")
            raise RuntimeError("interrupted")
    assert sorted(os.listdir(tmp_path)) == ["model"] and os.listdir(target) == ["old.txt"]
    with atomic_dir(target) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and tmp != str(target)
        (Path(tmp) / "new.txt").write_text("whole")
    assert sorted(os.listdir(tmp_path)) == ["model"] and os.listdir(target) == ["new.txt"]
    with pytest.raises(JaxcodecError, match="cannot write"):
        with atomic_dir(tmp_path / "missing" / "model"):
            pass
