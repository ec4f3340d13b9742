"""Fixtures shared by the test files."""

import os
import tempfile

import pytest


def pytest_configure(config):
    """The command line's compilation cache (jaxcodec.runtime.xla_cache) goes to a temporary
    folder during the tests, not the user's ~/.cache."""
    os.environ.setdefault("JAXCODEC_CACHE_DIR", tempfile.mkdtemp(prefix="jaxcodec-xla-tests-"))


@pytest.fixture(scope="session")
def tfds_data_dir(tmp_path_factory):
    """A TFDS data dir with small real ``celeb_a`` and ``mnist`` sets (see tests/tfds_fixture.py)."""
    from tests.tfds_fixture import build_tfds_data_dir

    return build_tfds_data_dir(tmp_path_factory.mktemp("tfds_data"))
