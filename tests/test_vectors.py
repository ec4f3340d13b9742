"""Committed streams of the shipped models decode as promised: symbols exactly, pixels
within the stated tolerance of the committed reference images, on this machine and
under XLA code restricted to older vector units.

The streams, symbol hashes and reference images are written by
``tests/vectors/make_vectors.py``, which also states the tolerance.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from jaxcodec import zoo
from tests.vectors import make_vectors

VECTORS = make_vectors.load_index()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_shipped_model_has_vectors():
    assert set(zoo.shipped_models()) <= {v["model"] for v in VECTORS.values()}


@pytest.mark.parametrize("file", sorted(VECTORS))
def test_vector_decodes_as_promised(file):
    assert make_vectors.check(file, VECTORS[file]) == []


@pytest.mark.parametrize("isa", ["AVX2", "SSE4_2"])
def test_vectors_decode_as_promised_on_older_vector_units(isa):
    """What a CPU without AVX-512 (or without AVX) computes: a fresh process whose XLA
    code uses only ``isa``'s instructions decodes every vector within the promise."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_cpu_max_isa={isa}")
    run = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "vectors", "make_vectors.py"), "--check"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    assert f"{len(VECTORS)} vectors: symbols exact" in run.stdout


def test_check_catches_changed_symbols_and_pixels(tmp_path, monkeypatch):
    """The check fails on a stream whose symbols changed and on a decoder that drifts."""
    file = next(f for f in sorted(VECTORS) if "factorized" in f)
    entry = dict(VECTORS[file])
    assert make_vectors.check(file, dict(entry, symbols_sha256="0" * 64)) == [
        f"{file}: symbols differ from the recorded ones"]
    reference = make_vectors.reference_image(file, entry["shape"])
    shifted = reference.astype(np.int16)
    shifted[:, :3] += 1  # three columns off by one: more than the share allowed
    monkeypatch.setattr(make_vectors, "reference_image", lambda f, s: np.clip(shifted, 0, 255).astype(np.uint8))
    problems = make_vectors.check(file, entry)
    assert len(problems) == 1 and "pixels drift by up to 1" in problems[0]


def test_pixel_drift_against_numpy():
    a = np.zeros((4, 5, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0], b[1, 1, 1] = 2, 255
    assert make_vectors.pixel_drift(a, b) == (255, 2 / 60)
    assert make_vectors.pixel_drift(a, a) == (0, 0.0)
