"""jaxcodec.train.device_data: training batches drawn on the devices, and the engine's switch to them."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from PIL import Image

from jaxcodec import crops, data
from jaxcodec.train import device_data
from jaxcodec.train import engine
from tests import engine_task


def _smooth(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (h // 8 + 2, w // 8 + 2, channels)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((w + 16, h + 16), Image.Resampling.BILINEAR))[8:8 + h, 8:8 + w]


def _find(patch: np.ndarray, image: np.ndarray) -> list[tuple[int, int]]:
    """Every ``(top, left)`` where ``patch`` equals a window of ``image``."""
    s = patch.shape[0]
    return [(t, l) for t in range(image.shape[0] - s + 1) for l in range(image.shape[1] - s + 1)
            if np.array_equal(image[t:t + s, l:l + s], patch)]


def test_stack_images_pads_like_the_host_pipeline():
    images = [_smooth(30, 50, 0), _smooth(12, 20, 1), _smooth(40, 24, 2)]
    stacked, sizes = device_data.stack_images(images, 16)
    assert stacked.shape == (3, 40, 50, 3) and stacked.dtype == np.uint8
    assert sizes.tolist() == [[30, 50], [16, 20], [40, 24]]
    np.testing.assert_array_equal(stacked[0, :30, :50], images[0])
    np.testing.assert_array_equal(stacked[2, :40, :24], images[2])
    # the 12-row image is padded to 16 rows as crops.random_crop pads it
    padded = crops.random_crop(images[1], 16, np.random.default_rng(0))
    assert _find(padded, stacked[1, :16, :20])
    # the rest is mirrored, not black
    np.testing.assert_array_equal(stacked[0, 30:40, :50], images[0][29:19:-1])
    with pytest.raises(Exception, match="different shapes"):
        device_data.stack_images(images, None)


def test_plain_crops_are_exact_windows_of_their_images():
    images = [_smooth(24, 30, i) for i in range(5)]
    stacked, sizes = device_data.stack_images(images, 16)
    d = device_data.DeviceData(stacked, sizes, batch_size=2, crop=16, seed=3)
    for step in range(4):
        batch = np.asarray(d.batch(step))
        assert batch.shape == (2, 16, 16, 3) and batch.dtype == np.float32
        index = np.asarray(d.indices(d.key, np.int32(step)))
        for patch, i in zip(batch, index):
            as_uint8 = np.round(patch * 255).astype(np.uint8)
            np.testing.assert_array_equal(as_uint8.astype(np.float32) / 255.0, patch)  # u8 / 255, as the host does
            assert _find(as_uint8, images[i]), (step, i)


def test_every_image_once_per_epoch_and_batches_fixed_by_seed_and_step():
    stacked, sizes = device_data.stack_images([_smooth(16, 16, i) for i in range(7)], 16)
    d = device_data.DeviceData(stacked, sizes, batch_size=3, crop=16, seed=0)
    order = np.concatenate([np.asarray(d.indices(d.key, np.int32(s))) for s in range(7)])  # 21 = 3 epochs
    for epoch in range(3):
        assert sorted(order[7 * epoch: 7 * epoch + 7]) == list(range(7))
    assert not np.array_equal(order[:7], order[7:14])
    again = device_data.DeviceData(stacked, sizes, batch_size=3, crop=16, seed=0)
    other = device_data.DeviceData(stacked, sizes, batch_size=3, crop=16, seed=1)
    np.testing.assert_array_equal(np.asarray(d.batch(5)), np.asarray(again.batch(5)))
    assert not np.array_equal(np.asarray(d.batch(5)), np.asarray(other.batch(5)))
    it = d.batches(start_step=4)
    np.testing.assert_array_equal(np.asarray(next(it)), np.asarray(d.batch(4)))
    np.testing.assert_array_equal(np.asarray(next(it)), np.asarray(d.batch(5)))


@pytest.mark.parametrize("side,top,left", [(37, 11, 23), (24, 0, 0), (48, 40, 52), (30, 70, 0)])
def test_scaled_patch_matches_pillows_lanczos(side, top, left):
    image = _smooth(100, 100, 7)
    expected = crops.resize_image(image[top:top + side, left:left + side], 24).astype(np.float64)
    out = np.asarray(jax.jit(device_data.scaled_patch, static_argnames=("crop", "max_scale"))(
        image, np.int32(top), np.int32(left), np.float32(side), crop=24, max_scale=2.0))
    diff = np.abs(out - expected)
    assert np.array_equal(out, np.round(out))  # 8-bit levels
    assert diff[4:-4, 4:-4].max() <= 1.0 and diff.mean() < 0.5, (diff.max(), diff.mean())


def test_downscaled_patches_come_from_squares_within_bounds():
    image = np.tile(np.arange(60, dtype=np.uint8)[None, :, None] * 4, (60, 1, 3))  # columns 0, 4, ..., 236
    stacked, sizes = device_data.stack_images([image, image[:, :40]], 16)
    d = device_data.DeviceData(stacked, sizes, batch_size=2, crop=16, downscale=3.0, seed=0)
    spans = []
    for step in range(12):
        for patch in np.asarray(d.batch(step)) * 255:
            row = patch[8, :, 0]
            spans.append((row[-2] - row[1]) / 4 / 13)  # the columns a pixel steps over, ~ side / 16
            assert row.min() >= 0 and row.max() <= 236.5
    assert min(spans) > 0.9 and max(spans) < 3.1 and max(spans) - min(spans) > 0.6


def test_flips_happen_only_when_asked():
    image = np.tile(np.arange(32, dtype=np.uint8)[None, :, None] * 8, (32, 1, 3))
    stacked, sizes = device_data.stack_images([image] * 2, 16)
    for flip, expect in ((False, {1}), (True, {1, -1})):
        d = device_data.DeviceData(stacked, sizes, batch_size=2, crop=16, flip=flip, seed=0)
        signs = {int(np.sign(np.diff(p[0, :, 0]).mean())) for s in range(8) for p in np.asarray(d.batch(s))}
        assert signs == expect


def test_fewer_images_than_a_batch_is_an_error():
    stacked, sizes = device_data.stack_images([_smooth(16, 16, 0)], 16)
    with pytest.raises(Exception, match="fewer than batch_size"):
        device_data.DeviceData(stacked, sizes, batch_size=2, crop=16)


def test_a_set_too_large_stays_on_the_host_with_a_message(capsys):
    result = device_data.from_spec("sample:mnist", "test", batch_size=8, crop=None, max_bytes=1000)
    assert isinstance(result, str) and "more than" in result
    assert device_data.device_budget(jax.local_devices()) > 0
    config = engine_task.config(**{"data.device_resident": True})
    config.model.quantize_levels = 0
    mesh = jax.sharding.Mesh(np.array(jax.local_devices()[:1]), ("data",))
    assert device_data.train_batches(config, mesh, 0, engine_task.EngineTestTask(config)) is None
    assert "device-resident data off: the model transforms its batches on the host" in capsys.readouterr().out
    config.data.device_resident = False
    assert device_data.train_batches(config, mesh, 0, None) is None


class _DeviceTask:
    """The engine test task without its hooks: no host transform, no pre-training (which
    would take a batch), no tables."""

    def __init__(self, config):
        self.inner = engine_task.EngineTestTask(config)
        self.init_state, self.train_step, self.eval_step = (
            self.inner.init_state, self.inner.train_step, self.inner.eval_step)


def _train(workdir, **overrides):
    config = engine_task.config(**{"data.device_resident": True, "data.eval": None, **overrides})
    return engine.train(_DeviceTask(config), config, str(workdir))


def test_engine_trains_on_device_batches_and_resumes_them_exactly(tmp_path, monkeypatch, capsys):
    def no_host_pipeline(*args, **kwargs):
        raise AssertionError("the host pipeline was used")

    monkeypatch.setattr(data, "batches", no_host_pipeline)
    whole = _train(tmp_path / "whole", num_steps=12, checkpoint_every=0)
    assert "training data on the devices: 5000 images" in capsys.readouterr().out
    losses = [h["loss"] for h in whole.history if "loss" in h]
    assert losses[-1] < losses[0]
    _train(tmp_path / "split", num_steps=6, checkpoint_every=0)
    resumed = _train(tmp_path / "split", num_steps=12, checkpoint_every=0)
    assert resumed.start_step == 6
    for a, b in zip(jax.tree.leaves(whole.state), jax.tree.leaves(resumed.state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
