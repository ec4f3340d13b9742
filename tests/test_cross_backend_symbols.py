"""bench/cross_backend_symbols.py: the file one machine writes and another checks."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench():
    path = os.path.join(ROOT, "bench", "cross_backend_symbols.py")
    spec = importlib.util.spec_from_file_location("cross_backend_symbols", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("cross") / "here.npz")
    bench = _bench()
    assert bench.main(["encode", "--images", "3", "--out", path]) == 0
    return bench, path


def _rewrite(path, out, **changes):
    saved = dict(np.load(path))
    saved.update(changes)
    np.savez(out, **saved)


def test_streams_decoded_where_they_were_made_agree(streams, capsys):
    bench, path = streams
    assert bench.main(["check", path]) == 0
    line = capsys.readouterr().out
    assert "0 of 3 streams' symbols differ, 0 failed to decode" in line and "max |difference| 0 levels" in line
    saved = np.load(path)
    assert len(saved["stream_offsets"]) == 4 and str(saved["where"]).startswith("cpu")
    # the recorded symbols are the decoder's: ẑ then the latent, as many as the shapes say
    assert saved["symbols"].dtype == np.int32 and saved["symbols"].size > 0


def test_a_changed_symbol_or_a_damaged_stream_is_counted(streams, tmp_path, capsys):
    bench, path = streams
    saved = np.load(path)
    symbols = saved["symbols"].copy()
    symbols[saved["symbol_offsets"][1] + 5] += 1  # the second stream's record no longer matches
    _rewrite(path, tmp_path / "symbol.npz", symbols=symbols)
    assert bench.main(["check", str(tmp_path / "symbol.npz")]) == 1
    assert "1 of 3 streams' symbols differ, 0 failed" in capsys.readouterr().out
    data = saved["streams"].copy()
    data[saved["stream_offsets"][1] - 3] ^= 0xFF  # the end of the first stream's payload
    _rewrite(path, tmp_path / "stream.npz", streams=data)
    assert bench.main(["check", str(tmp_path / "stream.npz")]) == 1
    assert "0 failed" not in capsys.readouterr().out
