"""Compiled machine code (jaxcodec.runtime.compiled_code): the mapping count the process reports,
and dropping compiled programs once it nears the system's limit, without changing any
result."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data

from jaxcodec.runtime import compiled_code
from jaxcodec.eval import rate_distortion as evaluation
from jaxcodec.zoo import get_codec

pytestmark = pytest.mark.skipif(compiled_code.mappings() is None, reason="needs /proc/self/maps (Linux)")


@pytest.fixture(scope="module")
def photo():
    return skimage.data.coffee()[100:148, 200:264]  # 48 x 64


def test_compiling_a_program_adds_mappings_and_the_limit_is_read():
    assert compiled_code.map_limit() is None or compiled_code.map_limit() > 1000
    before = compiled_code.mappings()
    fresh = jax.jit(lambda x: jnp.tanh(x) @ x.T + jnp.cos(x).sum())
    fresh(jnp.ones((37, 41))).block_until_ready()
    assert compiled_code.mappings() > before


def test_crowded_process_drops_compiled_programs_and_results_stay_the_same(monkeypatch, tmp_path, photo):
    codec = get_codec("bmshj2017-factorized-q2")
    data = codec.encode(photo, 2)
    programs = codec.programs
    assert programs.analysis._cache_size() >= 1
    limit = tmp_path / "max_map_count"
    monkeypatch.setattr(compiled_code, "MAX_MAP_COUNT", str(limit))
    limit.write_text("100000000\n")  # far away: nothing is dropped
    assert not compiled_code.release_if_crowded()
    assert programs.analysis._cache_size() >= 1
    limit.write_text(f"{compiled_code.mappings()}\n")  # more than half used
    assert compiled_code.release_if_crowded()
    assert programs.analysis._cache_size() == 0
    assert codec.encode(photo, 2) == data  # compiled again, same bytes
    np.testing.assert_array_equal(codec.decode(data), get_codec("bmshj2017-factorized-q2").decode(data))


def test_evaluation_releases_code_when_crowded_with_the_same_figures(monkeypatch, tmp_path, photo):
    codec = get_codec("bmshj2017-factorized-q1")
    plain = evaluation.evaluate_codec(codec, [photo, photo[:32, :48]])
    limit = tmp_path / "max_map_count"
    limit.write_text("10\n")  # always crowded: every image starts from dropped programs
    monkeypatch.setattr(compiled_code, "MAX_MAP_COUNT", str(limit))
    released = []
    release = compiled_code.release_if_crowded
    monkeypatch.setattr(compiled_code, "release_if_crowded", lambda *a: released.append(release(*a)) or released[-1])
    crowded = evaluation.evaluate_codec(codec, [photo, photo[:32, :48]])
    assert released == [True, True]
    assert crowded["results"] == plain["results"]
