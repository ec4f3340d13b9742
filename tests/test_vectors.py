"""Committed streams of the shipped models decode to their recorded images, bit for bit.

The streams and hashes are written by ``tests/vectors/make_vectors.py``.
"""

import json
import os

import pytest

import jaxcodec
from jaxcodec import container, pretrained
from tests.vectors.make_vectors import INDEX, decoded_hash

VECTORS = json.load(open(INDEX)) if os.path.isfile(INDEX) else {}


def test_every_shipped_model_has_vectors():
    assert set(pretrained.shipped_models()) <= {v["model"] for v in VECTORS.values()}


@pytest.mark.parametrize("file", sorted(VECTORS))
def test_vector_decodes_to_its_recorded_image(file):
    entry = VECTORS[file]
    with open(os.path.join(os.path.dirname(INDEX), file), "rb") as f:
        stream = f.read()
    decoded = jaxcodec.decompress(stream)
    assert list(decoded.shape) == entry["shape"]
    assert decoded_hash(decoded) == entry["sha256"]
    header = container.unpack(stream)[0]
    assert (header.height, header.width) == tuple(entry["shape"][:2])
