"""tools/transform_ceiling.py: a mean-scale hyperprior's reconstruction with and without rounding."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcodec import data, zoo
from jaxcodec.train.tasks import hyperprior as hyperprior_task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "transform_ceiling.py")


def _load_tool():
    spec = importlib.util.spec_from_file_location("transform_ceiling", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hyperprior_task(latent_channels: int) -> hyperprior_task.MeanScaleTask:
    config = hyperprior_task.default_config()
    config.model.features, config.model.latent_channels = 8, latent_channels
    return hyperprior_task.MeanScaleTask(config)


@pytest.fixture(scope="module")
def codec_and_image():
    image = np.ascontiguousarray(data.open_dataset("sample:photos", "test").native(0)[:128, :192])
    return zoo.get_codec("mbt2018-mean"), image


def test_rounded_figures_follow_the_real_stream(codec_and_image):
    """The rounded reconstruction is the codec's (its real bytes decoded, integer-network means:
    within 0.1 dB), its latent bits a little under the real file's (which adds the hyper-latent
    and the header), and the unquantised latent reconstructs better than the rounded one."""
    codec, image = codec_and_image
    tool = _load_tool()
    busy = []
    for quality in (1, 8):
        got = tool.measure(codec, image, quality)
        stream = codec.encode(image, quality)
        decoded = codec.decode(stream).astype(np.float64)
        real_psnr = 10 * np.log10(255.0**2 / np.mean((decoded - image) ** 2))
        real_bpp = len(stream) * 8 / (image.shape[0] * image.shape[1])
        assert abs(got["rounded"] - real_psnr) < 0.1, quality
        assert 0.75 * real_bpp < got["bpp"] < real_bpp, quality
        assert got["unquantised"] > got["rounded"] + 0.2, quality
        busy.append(got["busy"])
    assert busy[0] < busy[1] == codec.latent_channels  # few channels at the lowest rate, all at the top


def test_channels_from_tells_live_channels_from_dead_ones(codec_and_image):
    """Channels that carry the image: replacing the shipped model's upper half by its predicted
    means costs decibels, and their symbols are not all zero. Channels that carry nothing: a
    model widened from M=12 to M=20 (new channels rounding to zero about a zero mean) loses
    nothing without them, and none of their symbols is nonzero."""
    codec, image = codec_and_image
    tool = _load_tool()
    got = tool.measure(codec, image, 8, channels_from=64)
    assert got["without"] < got["unquantised"] - 3.0
    assert got["nonzero"] > 0.05
    assert tool.measure(codec, image, 8)["unquantised"] == got["unquantised"]  # the old figures unchanged
    x = jnp.asarray(image[None, :64, :64] / 255.0, jnp.float32)
    narrow, wide = (_hyperprior_task(m) for m in (12, 20))
    source = jax.device_get(narrow.init_state(jax.random.key(0), x)["params"])
    widened = wide.complete_start(source, jax.device_get(wide.init_state(jax.random.key(1), x)["params"]))
    got = tool.measure(wide.make_codec({"params": widened}), image[:64, :96], 8, channels_from=12)
    assert got["nonzero"] == 0.0
    assert abs(got["without"] - got["unquantised"]) < 0.05


def test_bad_arguments_exit_with_one_line():
    for args in (["--model", "jpeg"], ["--model", "nosuch"], ["--qualities", "0.5"], ["--channels-from", "128"]):
        run = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, cwd=ROOT)
        assert run.returncode != 0
        assert run.stderr.strip().splitlines()[-1].startswith("error: "), run.stderr
