"""Rate control with standard codecs and a ladder of models: byte budgets, rates, PSNR targets,
and the targets no quality meets."""

import numpy as np
import pytest

import jaxcodec
from jaxcodec import data, rate_control, zoo
from jaxcodec.codecs import registry
from jaxcodec.errors import ConfigError


def _photo():
    return np.ascontiguousarray(data.open_dataset("sample:photos", "test").native(0)[:160, :240])


@pytest.mark.parametrize("name", ["jpeg", "webp"])
def test_max_bytes_is_the_largest_quality_that_fits(name):
    codec, image = registry.get_codec(name), _photo()
    for budget in (1500, 4000, 9000):
        result = rate_control.fit(image, codec, max_bytes=budget)
        assert len(result.data) <= budget
        if result.quality < codec.quality_range[1]:  # one quality more no longer fits
            assert len(codec.encode(image, result.quality + 1)) > budget
        assert result.encodes <= 8


def test_bpp_picks_the_closest_rate():
    codec, image = registry.get_codec("jpeg"), _photo()
    pixels = image.shape[0] * image.shape[1]
    result = rate_control.fit(image, codec, bpp=0.8)
    sizes = {q: len(codec.encode(image, q)) for q in range(1, 101)}
    best = min(sizes.values(), key=lambda n: abs(n - 0.8 * pixels / 8))
    assert len(result.data) == best


def test_psnr_is_the_smallest_stream_that_reaches_it():
    codec, image = registry.get_codec("jpeg"), _photo()
    result = rate_control.fit(image, codec, psnr=32.0)
    assert result.psnr >= 32.0
    below = codec.decode(codec.encode(image, result.quality - 1))
    mse = np.mean((below.astype(float) - image) ** 2)
    assert 10 * np.log10(255**2 / mse) < 32.0


def test_a_ladder_of_models_is_searched_by_member():
    ladder, image = zoo.get_codec("bmshj2017-factorized"), _photo()[:64, :96]
    sizes = [len(ladder.encode(image, q)) for q in ladder.qualities]
    budget = (sizes[3] + sizes[4]) // 2
    result = rate_control.fit(image, ladder, max_bytes=budget)
    assert result.quality == 4 and len(result.data) == sizes[3]


def test_impossible_targets_name_the_nearest_achievable_value():
    codec, image = registry.get_codec("jpeg"), _photo()
    smallest = len(codec.encode(image, 1))
    with pytest.raises(rate_control.TargetError, match=f"smallest stream for this image has {smallest} bytes"):
        rate_control.fit(image, codec, max_bytes=smallest - 1)
    with pytest.raises(rate_control.TargetError, match="reaches at most"):
        rate_control.fit(image, codec, psnr=80.0)
    for bad in ({}, {"max_bytes": 10, "bpp": 1.0}, {"bpp": -1.0}, {"psnr": "x"}):
        with pytest.raises(ConfigError):
            rate_control.fit(image, codec, **bad)


def test_compress_takes_a_target_instead_of_a_quality():
    image = _photo()
    data_ = jaxcodec.compress(image, "jpeg", max_bytes=5000)
    assert len(data_) <= 5000 and jaxcodec.decompress(data_).shape == image.shape
    with pytest.raises(jaxcodec.errors.JaxcodecError, match="not both"):
        jaxcodec.compress(image, "jpeg", quality=50, max_bytes=5000)


def test_an_evaluation_at_matched_rates_reports_each_codec_at_the_targets():
    from jaxcodec.eval import rate_distortion as evaluation

    image = _photo()
    rates = [0.5, 1.0]
    report = evaluation.evaluate({name: rate_control.AtRate(registry.get_codec(name), rates)
                                  for name in ("jpeg", "webp")}, [image], "test", show_progress=False)
    for name in ("jpeg", "webp"):
        got = report["codecs"][name]["results"]
        assert got["quality"] == rates
        assert all(abs(b / r - 1) < 0.2 for b, r in zip(got["bpp"], rates))


def test_eval_run_with_matched_rates(tmp_path):
    from jaxcodec.eval import rate_distortion as evaluation

    results = evaluation.run("sample:photos", ["jpeg"], str(tmp_path / "out"), limit=1, grid=0,
                             show_progress=False, match_bpp=[0.3, 0.6])
    assert results["codecs"]["jpeg"]["results"]["quality"] == [0.3, 0.6]
    assert "at matched rates" in results["codecs"]["jpeg"]["description"]
    assert (tmp_path / "out" / "table.md").read_text().count("| jpeg | 0.3 |") == 1


@pytest.mark.parametrize("slope,curve", [(0.45, "exp"), (0.2, "exp"), (1.0, "power")])
def test_the_continuous_search_needs_few_evaluations_of_a_smooth_curve(slope, curve):
    """Against a brute-force scan of every thousandth: the quality found fits the target and
    lies within 0.2% (in size) of the largest that does, after far fewer evaluations than
    bisection's 15 (the estimate is the costly part of a continuous search)."""
    grid = np.round(np.arange(1000, 8001) / 1000, 3)

    def size(q):
        return 2000.0 * (np.exp(slope * q) if curve == "exp" else q ** (3 * slope))

    for share in (0.03, 0.3, 0.7, 0.97):
        target = size(1.0) + share * (size(8.0) - size(1.0))
        calls = []
        found = rate_control._solve(lambda q: calls.append(q) or size(q), target, 1.0, 8.0)
        best = grid[size(grid) <= target].max()
        assert size(found) <= target and size(found) >= size(best) * (1 - 2e-3), (found, best)
        assert len(calls) <= 8, calls
    assert rate_control._solve(size, size(1.0) * 0.9, 1.0, 8.0) == 1.0  # nothing fits: the lowest
    assert rate_control._solve(size, size(8.0) * 1.1, 1.0, 8.0) == 8.0  # everything fits: the highest
