"""Fixtures shared by the test files."""

import pytest


@pytest.fixture(scope="session")
def tfds_data_dir(tmp_path_factory):
    """A TFDS data dir with small real ``celeb_a`` and ``mnist`` sets (see tests/tfds_fixture.py)."""
    from tests.tfds_fixture import build_tfds_data_dir

    return build_tfds_data_dir(tmp_path_factory.mktemp("tfds_data"))
