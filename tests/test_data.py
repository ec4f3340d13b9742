"""Tests of jaxcodec.data, jaxcodec.data_sources and jaxcodec.image against real files and a
real TFDS data dir."""

import io
import logging
import os
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import skimage.data
import skimage.transform
from PIL import Image

from jaxcodec import crops, data, data_sources
from jaxcodec import image as imageio
from jaxcodec.errors import ConfigError, DatasetError, ImageError
from tests import tfds_fixture


def _u8(images):
    """float32 images in [0, 1] → uint8, exact for images that came from uint8."""
    return np.round(np.asarray(images) * 255).astype(np.uint8)


def _indexed_npz(tmp_path, count=10, size=(4, 4)):
    """An npz whose image i is constant i (uint8), so a batch tells which examples it holds."""
    x = np.repeat(np.arange(count, dtype=np.uint8), size[0] * size[1]).reshape(count, *size)
    path = tmp_path / "indexed.npz"
    np.savez(path, images=x)
    return f"npz:{path}"


def _ids(batch):
    return [int(v) for v in _u8(batch[:, 0, 0, 0])]


# --------------------------------------------------------------------------- specs


def test_parse_spec_and_unknown_scheme():
    assert data.parse_spec("tfds:celeb_a:2.1.0") == data.Spec("tfds", "celeb_a:2.1.0")
    assert str(data.parse_spec("folder:/a:b")) == "folder:/a:b"
    with pytest.raises(DatasetError, match="tfds:NAME, folder:PATH, npz:PATH") as info:
        data.load_images("hdf5:foo")
    assert "\n" not in str(info.value)
    with pytest.raises(DatasetError, match="sample:mnist or sample:photos"):
        data.load_images("sample:kodak")


# --------------------------------------------------------------------------- tfds


def test_tfds_celeb_a_rule_gives_centre_crop(tfds_data_dir):
    for split in ("train", "test"):
        images = data.load_images("tfds:celeb_a", split, data_dir=tfds_data_dir)
        stored = tfds_fixture.faces(split)
        assert len(images) == len(stored) == tfds_fixture.NUM_FACES[split]
        for image, face in zip(images, stored):
            assert image.dtype == np.float32 and image.shape == (178, 178, 3)
            assert 0.0 <= image.min() and image.max() <= 1.0
            np.testing.assert_array_equal(image, face[20:198].astype(np.float32) / 255)
    # The rule is keyed by the dataset name, whatever the spec form.
    versioned = data.load_images("tfds:celeb_a:0.1.0", "test", limit=2, data_dir=tfds_data_dir)
    np.testing.assert_array_equal(versioned[1], tfds_fixture.faces("test")[1, 20:198] / np.float32(255))


def test_tfds_celeb_a_resized(tfds_data_dir):
    images = data.load_images("tfds:celeb_a", "test", limit=3, image_size=64, data_dir=tfds_data_dir)
    assert len(images) == 3
    for image, face in zip(images, tfds_fixture.faces("test")):
        assert image.shape == (64, 64, 3) and image.dtype == np.float32
        square = face[20:198]
        expected = np.asarray(Image.fromarray(square).resize((64, 64), Image.Resampling.LANCZOS))
        np.testing.assert_array_equal(_u8(image), expected)
        # An independent resampler (scikit-image, Gaussian antialiasing) agrees closely.
        reference = skimage.transform.resize(square / 255.0, (64, 64), anti_aliasing=True)
        assert 10 * np.log10(1 / np.mean((image - reference) ** 2)) > 30


def test_tfds_mnist_values_splits_and_missing(tfds_data_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    train = np.stack(data.load_images("tfds:mnist", "train", data_dir=tfds_data_dir))
    test = np.stack(data.load_images("tfds:mnist", "test", data_dir=tfds_data_dir))
    assert train.shape == (64, 28, 28, 1) and test.shape == (16, 28, 28, 1) and train.dtype == np.float32
    np.testing.assert_array_equal(train, tfds_fixture.digits("train")[0] / np.float32(255))
    np.testing.assert_array_equal(test, tfds_fixture.digits("test")[0] / np.float32(255))
    assert not any(np.array_equal(t, u) for t in test for u in train[:16])
    assert data.image_shape("tfds:mnist", data_dir=tfds_data_dir) == (28, 28, 1)
    sliced = data.load_images("tfds:mnist", "train[10:13]", data_dir=tfds_data_dir)
    np.testing.assert_array_equal(np.stack(sliced), train[10:13])
    with pytest.raises(DatasetError, match="no split 'validation'"):
        data.load_images("tfds:mnist", "validation", data_dir=tfds_data_dir)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # TFDS's OpenCV note is kept out
    with pytest.raises(DatasetError, match=r"dataset 'celeb_a' not found in .*tfds build celeb_a") as info:
        data.batches("tfds:celeb_a", batch_size=2, data_dir=tmp_path)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # the error is the only line


def test_tfds_batches_cover_the_split(tfds_data_dir):
    stream = data.batches("tfds:celeb_a", batch_size=4, image_size=32, num_epochs=1, seed=3,
                          process_index=0, process_count=1, data_dir=tfds_data_dir)
    batches = list(stream)
    assert [b.shape for b in batches] == [(4, 32, 32, 3)] * 4
    faces = tfds_fixture.faces("train")
    expected = {crops.resize_image(face[20:198], 32).tobytes(): i for i, face in enumerate(faces)}
    seen = sorted(expected[_u8(image).tobytes()] for batch in batches for image in batch)
    assert seen == list(range(16))


def test_tfds_tfrecord_files_are_read_too(tmp_path):
    """A dataset prepared as tfrecord (no random access) reads the same, via tf.data."""
    data_dir = tfds_fixture.build_tfds_data_dir(tmp_path, file_format="tfrecord", names=("mnist",))
    assert any(p.name.endswith(".tfrecord-00000-of-00001") for p in (tmp_path / "mnist" / "0.1.0").iterdir())
    stored = tfds_fixture.digits("test")[0]
    images = data.load_images("tfds:mnist", "test", limit=5, data_dir=data_dir)
    np.testing.assert_array_equal(_u8(images), stored[:5])
    block = list(data.batches("tfds:mnist", "test", batch_size=3, shuffle=False, num_epochs=1,
                              process_index=1, process_count=2, data_dir=data_dir))
    np.testing.assert_array_equal(_u8(np.concatenate(block)), stored[8:14])


# --------------------------------------------------------------------------- folders and image files


def _write_conversion_files(folder, rng):
    rgb = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    alpha = rng.integers(0, 256, (9, 11), dtype=np.uint8)
    grey16 = rng.integers(0, 65536, (9, 11), dtype=np.uint16)
    rgb16 = rng.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    palette = np.array([[255, 0, 0], [0, 128, 255], [10, 20, 30]], dtype=np.uint8)
    indices = rng.integers(0, 3, (9, 11), dtype=np.uint8)
    smooth = (np.add.outer(np.arange(32), np.arange(32)) * 4).astype(np.uint8)
    photo = np.stack([smooth, smooth.T, 255 - smooth], axis=-1)

    Image.fromarray(rgb).save(folder / "a_rgb.png")
    Image.fromarray(grey).save(folder / "b_grey.png")
    Image.fromarray(np.dstack([rgb, alpha])).save(folder / "c_rgba.png")
    Image.fromarray(np.dstack([grey, alpha])).save(folder / "d_grey_alpha.png")
    (folder / "e_grey16.png").write_bytes(imagecodecs.png_encode(grey16))
    (folder / "f_rgb16.png").write_bytes(imagecodecs.png_encode(rgb16))
    (folder / "g_rgb16.tif").write_bytes(imagecodecs.tiff_encode(rgb16))
    pal = Image.fromarray(indices, mode="P")
    pal.putpalette(palette.ravel().tolist())
    pal.save(folder / "h_palette.png")
    Image.fromarray(rgb).save(folder / "i_lossless.webp", lossless=True)
    Image.fromarray(photo).save(folder / "j_photo.jpg", quality=95)
    Image.fromarray(rgb).save(folder / "k_rgb.tiff")
    return {
        "a": rgb / 255, "b": grey[..., None] / 255, "c": rgb / 255, "d": grey[..., None] / 255,
        "e": grey16[..., None] / 65535, "f": rgb16 / 65535, "g": rgb16 / 65535,
        "h": palette[indices] / 255, "i": rgb / 255, "j": photo / 255, "k": rgb / 255,
    }


def test_folder_reads_every_format_with_documented_conversions(tmp_path):
    expected = _write_conversion_files(tmp_path, np.random.default_rng(0))
    (tmp_path / "COPYRIGHT.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"not read")
    images = data.load_images(f"folder:{tmp_path}", "train")
    assert len(images) == len(expected)
    for image, (key, want) in zip(images, sorted(expected.items())):
        assert image.dtype == np.float32 and image.shape == want.shape, key
        if key == "j":  # JPEG is lossy: close to the source, within a few levels
            assert np.abs(image - want).max() < 12 / 255 and np.abs(image - want).mean() < 2 / 255
        else:
            np.testing.assert_allclose(image, want, rtol=0, atol=1e-6, err_msg=key)


def test_folder_recursion_order_and_split_subfolders(tmp_path):
    flat = tmp_path / "flat"
    (flat / "sub").mkdir(parents=True)
    for name, value in [("b.png", 2), ("sub/a.png", 3), ("a.png", 1)]:
        Image.fromarray(np.full((3, 3), value, np.uint8)).save(flat / name)
    values = [int(_u8(im)[0, 0, 0]) for im in data.load_images(f"folder:{flat}", "test")]
    assert values == [1, 2, 3]  # a.png, b.png, sub/a.png
    assert len(data.load_images(f"folder:{flat}", "train")) == 3  # no split folders: all files
    split = tmp_path / "split"
    for name, value in [("train", 10), ("test", 20)]:
        (split / name).mkdir(parents=True)
        Image.fromarray(np.full((3, 3), value, np.uint8)).save(split / name / "x.png")
    assert _u8(data.load_images(f"folder:{split}", "train")[0])[0, 0, 0] == 10
    assert _u8(data.load_images(f"folder:{split}", "test")[0])[0, 0, 0] == 20
    with pytest.raises(DatasetError, match="none named 'validation'"):
        data.load_images(f"folder:{split}", "validation")


def test_folder_errors_name_the_path(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=f"{empty} holds no image files"):
        data.load_images(f"folder:{empty}")
    with pytest.raises(DatasetError, match="does not exist"):
        data.load_images(f"folder:{tmp_path / 'missing'}")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage, not an image")
    with pytest.raises(DatasetError, match=f"cannot read image {bad / 'broken.png'}") as info:
        data.load_images(f"folder:{bad}")
    assert "\n" not in str(info.value)
    with pytest.raises(ImageError, match="broken.png"):
        imageio.read_image_float32(bad / "broken.png")


def test_image_round_trips(tmp_path):
    levels = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(imageio.to_uint8(imageio.to_float32(levels)), levels)
    rgb = np.random.default_rng(1).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    imageio.write_image(tmp_path / "x.png", imageio.to_float32(rgb))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "x.png")), rgb)
    deep = np.random.default_rng(2).integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    imageio.write_image(tmp_path / "deep.png", deep)
    np.testing.assert_array_equal(imagecodecs.png_decode((tmp_path / "deep.png").read_bytes()), deep)
    np.testing.assert_array_equal(imageio.read_image_raw(tmp_path / "deep.png"), deep)
    buffer = io.BytesIO()
    Image.fromarray(rgb[:, :, 0]).save(buffer, format="PNG")
    np.testing.assert_array_equal(imageio.decode_image(buffer.getvalue())[:, :, 0], rgb[:, :, 0])
    with pytest.raises(ImageError, match="16-bit images need"):
        imageio.write_image(tmp_path / "deep.jpg", deep)


def test_image_files_and_rgb_uint8(tmp_path):
    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (4, 5), dtype=np.uint8)
    rgba = rng.integers(0, 256, (4, 5, 4), dtype=np.uint8)
    deep = rng.integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "b_grey.png")
    Image.fromarray(rgba).save(tmp_path / "a_rgba.png")
    imageio.write_image(tmp_path / "c_deep.png", deep)
    (tmp_path / "notes.txt").write_text("not an image")
    Image.fromarray(grey).save(tmp_path / ".hidden.png")
    (tmp_path / "sub.png").mkdir()  # a folder is not a file of the folder's images
    files = imageio.image_files(tmp_path)
    assert [os.path.basename(f) for f in files] == ["a_rgba.png", "b_grey.png", "c_deep.png"]
    np.testing.assert_array_equal(imageio.read_rgb_uint8(files[0]), rgba[..., :3])
    np.testing.assert_array_equal(imageio.read_rgb_uint8(files[1]), np.stack([grey] * 3, axis=-1))
    expected = np.floor(deep.astype(np.float64) * 255.0 / 65535.0 + 0.5).astype(np.uint8)  # round half up
    np.testing.assert_array_equal(imageio.read_rgb_uint8(files[2]), expected)
    with pytest.raises(ImageError, match="holds no image files"):
        imageio.image_files(tmp_path / "sub.png")
    with pytest.raises(ImageError, match="is not a folder"):
        imageio.image_files(tmp_path / "a_rgba.png")


# --------------------------------------------------------------------------- npz and samples


def test_npz_layouts(tmp_path):
    rng = np.random.default_rng(3)
    x_train = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=np.arange(6), x_test=x_test)
    train = data.load_images(f"npz:{tmp_path / 'mnist.npz'}", "train")
    test = data.load_images(f"npz:{tmp_path / 'mnist.npz'}", "test")
    np.testing.assert_array_equal(np.stack(train), x_train[..., None] / np.float32(255))
    np.testing.assert_array_equal(np.stack(test), x_test[..., None] / np.float32(255))
    with pytest.raises(DatasetError, match="no array x_validation, images or x .*x_train"):
        data.load_images(f"npz:{tmp_path / 'mnist.npz'}", "validation")
    floats = rng.random((3, 5, 7, 3)).astype(np.float32)
    np.savez(tmp_path / "floats.npz", images=floats)
    np.save(tmp_path / "bare.npy", floats)
    for spec in (f"npz:{tmp_path / 'floats.npz'}", f"npz:{tmp_path / 'bare.npy'}"):
        for split in ("train", "test"):
            np.testing.assert_array_equal(np.stack(data.load_images(spec, split)), floats)
    np.savez(tmp_path / "wide.npz", x=floats * 2)
    with pytest.raises(DatasetError, match=r"must lie in \[0, 1\]"):
        data.load_images(f"npz:{tmp_path / 'wide.npz'}")
    with pytest.raises(DatasetError, match="cannot read"):
        data.load_images(f"npz:{tmp_path / 'missing.npz'}")


def test_sample_mnist_is_the_shipped_subset():
    path = Path(data.__file__).parent / "samples" / "mnist_sample.npz"
    assert path.stat().st_size < 2_000_000
    with np.load(path) as saved:
        assert saved["x_train"].shape == (5000, 28, 28) and saved["x_test"].shape == (1000, 28, 28)
        assert saved["x_train"].dtype == np.uint8 and saved["y_test"].shape == (1000,)
        first, last = saved["x_train"][0], saved["x_test"][-1]
    train = data.load_images("sample:mnist", "train")
    test = data.load_images("sample:mnist", "test", limit=None)
    assert len(train) == 5000 and len(test) == 1000 and train[0].shape == (28, 28, 1)
    np.testing.assert_array_equal(train[0][..., 0], first / np.float32(255))
    np.testing.assert_array_equal(test[-1][..., 0], last / np.float32(255))
    assert 0.0 == min(t.min() for t in test[:50]) and max(t.max() for t in test[:50]) == 1.0
    assert len(data.load_images("sample:mnist", "train", limit=7)) == 7
    with pytest.raises(DatasetError, match="splits train and test"):
        data.load_images("sample:mnist", "validation")


def test_sample_photos():
    photos = data.load_images("sample:photos", "test")
    assert len(photos) == len(data_sources.SAMPLE_PHOTOS) == 7
    assert all(p.ndim == 3 and p.shape[-1] == 3 and p.dtype == np.float32 for p in photos)
    np.testing.assert_array_equal(photos[0], skimage.data.astronaut() / np.float32(255))
    np.testing.assert_array_equal(photos[-1], skimage.data.stereo_motorcycle()[0] / np.float32(255))
    train = data.load_images("sample:photos", "train", image_size=48)
    assert [p.shape for p in train] == [(48, 48, 3)] * 7


# --------------------------------------------------------------------------- batches


def test_batch_shapes_and_drop_remainder(tmp_path):
    spec = _indexed_npz(tmp_path)
    kept = list(data.batches(spec, batch_size=4, num_epochs=1, shuffle=False,
                             process_index=0, process_count=1))
    assert [b.shape for b in kept] == [(4, 4, 4, 1)] * 2 and kept[0].dtype == np.float32
    assert _ids(kept[0]) + _ids(kept[1]) == list(range(8))
    short = list(data.batches(spec, batch_size=4, num_epochs=1, shuffle=False, drop_remainder=False,
                              process_index=0, process_count=1))
    assert [len(b) for b in short] == [4, 4, 2] and _ids(short[2]) == [8, 9]
    with pytest.raises(DatasetError, match="fewer than batch_size 11"):
        data.batches(spec, batch_size=11, process_index=0, process_count=1)
    with pytest.raises(ConfigError, match="batch_size"):
        data.batches(spec, batch_size=0)


def test_shuffle_is_seeded_and_visits_every_example_once_per_epoch(tmp_path):
    spec = _indexed_npz(tmp_path)

    def epochs(seed, count=3):
        stream = data.batches(spec, batch_size=5, seed=seed, process_index=0, process_count=1)
        return [_ids(next(stream)) + _ids(next(stream)) for _ in range(count)]

    first = epochs(seed=0)
    assert all(sorted(epoch) == list(range(10)) for epoch in first)
    assert first == epochs(seed=0)
    assert first != epochs(seed=1)
    assert len({tuple(epoch) for epoch in first}) == 3  # a new permutation every epoch
    assert first[0] != list(range(10))


def test_crops_lie_inside_the_image_and_follow_the_seed(tmp_path):
    image = np.arange(12 * 20, dtype=np.uint8).reshape(1, 12, 20)  # pixel value = 20 * row + column
    np.savez(tmp_path / "ramp.npz", images=image)
    spec = f"npz:{tmp_path / 'ramp.npz'}"

    def offsets(seed):
        stream = data.batches(spec, batch_size=1, crop=5, seed=seed, process_index=0, process_count=1)
        found = []
        for _ in range(40):
            patch = _u8(next(stream))[0, :, :, 0]
            top, left = divmod(int(patch[0, 0]), 20)
            np.testing.assert_array_equal(patch, image[0, top : top + 5, left : left + 5])
            found.append((top, left))
        return found

    first = offsets(seed=5)
    assert first == offsets(seed=5) and first != offsets(seed=6)
    assert len(set(first)) > 20 and all(t <= 7 and left <= 15 for t, left in first)

    small = (np.arange(36, dtype=np.uint8) * 7).reshape(1, 6, 6)  # smaller than the crop: padded
    np.savez(tmp_path / "small.npz", images=small)
    patch = next(data.batches(f"npz:{tmp_path / 'small.npz'}", batch_size=1, crop=9,
                              process_index=0, process_count=1))
    padded = np.pad(small[0], ((1, 2), (1, 2)), mode="reflect")
    np.testing.assert_array_equal(_u8(patch)[0, :, :, 0], padded)


def test_downscaled_crops_shrink_a_larger_square_by_a_log_uniform_factor(tmp_path):
    width = 600
    ramp = np.tile((np.arange(width) / width).astype(np.float32), (400, 1))  # value = column / width
    np.savez(tmp_path / "ramp.npz", images=ramp[None, :, :, None])
    spec = f"npz:{tmp_path / 'ramp.npz'}"

    def scales(seed, downscale, count=80):
        stream = data.batches(spec, batch_size=1, crop=64, downscale=downscale, seed=seed,
                              process_index=0, process_count=1)
        found = []
        for _ in range(count):
            patch = next(stream)[0, :, :, 0]
            assert patch.shape == (64, 64) and np.ptp(patch, axis=0).max() < 1e-5  # rows stay identical
            # A square of s·64 columns shrunk to 64 climbs s/width per pixel (away from the edges).
            found.append(float(np.median(np.diff(patch[0, 8:-8]))) * width)
        return np.array(found)

    shrunk = scales(seed=3, downscale=4.0)
    assert shrunk.min() > 0.99 and shrunk.max() < 4.01
    assert abs(np.mean(np.log(shrunk)) - np.log(4.0) / 2) < 0.15  # log-uniform on [1, 4]
    assert (shrunk < 1.5).sum() > 5 and (shrunk > 3.0).sum() > 5
    np.testing.assert_array_equal(shrunk, scales(seed=3, downscale=4.0))
    assert not np.array_equal(shrunk, scales(seed=4, downscale=4.0))
    np.testing.assert_allclose(scales(seed=3, downscale=1.0, count=10), 1.0, atol=1e-3)

    # The square never outgrows the image: a 100-pixel image caps the factor at 100/64.
    np.savez(tmp_path / "small.npz", images=ramp[None, :100, :100, None])
    small = data.batches(f"npz:{tmp_path / 'small.npz'}", batch_size=1, crop=64, downscale=8.0,
                         process_index=0, process_count=1)
    slopes = [float(np.median(np.diff(next(small)[0, 0, 8:-8, 0]))) * width for _ in range(20)]
    assert max(slopes) < 100 / 64 + 0.01 and max(slopes) > 1.3


def test_the_threaded_resize_gives_the_sequential_stream(tmp_path):
    rng = np.random.default_rng(5)
    photos = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((300, 420), (260, 260), (90, 500))]
    for i, photo in enumerate(photos):
        Image.fromarray(photo).save(tmp_path / f"p{i}.png")
    spec = f"folder:{tmp_path}"
    streams = {w: data.batches(spec, "train", batch_size=3, crop=64, downscale=3.0, seed=7, process_index=0,
                               process_count=1, workers=w) for w in (1, 4)}
    # The reference: each epoch's permutation, then random_scaled_crop image by image, one generator.
    for epoch in range(4):
        reference = np.random.default_rng([7, epoch, 0])
        order = reference.permutation(3)
        expected = np.stack([imageio.to_float32(crops.random_scaled_crop(photos[i], 64, 3.0, reference))
                             for i in order])
        for workers, stream in streams.items():
            np.testing.assert_array_equal(next(stream), expected, err_msg=f"workers={workers}")
    with pytest.raises(ConfigError, match="workers"):
        data.batches(spec, "train", batch_size=3, crop=64, downscale=3.0, process_index=0, process_count=1, workers=0)


def test_downscale_one_is_the_plain_crop_stream(tmp_path):
    image = np.arange(30 * 40, dtype=np.uint16).reshape(1, 30, 40)
    np.savez(tmp_path / "ramp.npz", images=image)
    spec = f"npz:{tmp_path / 'ramp.npz'}"
    plain = data.batches(spec, batch_size=1, crop=7, seed=2, process_index=0, process_count=1)
    same = data.batches(spec, batch_size=1, crop=7, downscale=1, seed=2, process_index=0, process_count=1)
    for _ in range(10):
        np.testing.assert_array_equal(next(plain), next(same))


@pytest.mark.parametrize("downscale, crop, message", [
    (0.5, 64, "downscale must be a number >= 1, got 0.5"),
    (float("nan"), 64, "downscale must be a number >= 1"),
    ("big", 64, "downscale must be a number >= 1, got 'big'"),
    (2.0, None, "downscale needs crop"),
])
def test_bad_downscale_is_a_config_error(downscale, crop, message):
    with pytest.raises(ConfigError, match=message):
        data.batches("sample:photos", batch_size=1, crop=crop, downscale=downscale,
                     process_index=0, process_count=1)


def test_process_sharding_is_disjoint_and_covering(tmp_path):
    spec = _indexed_npz(tmp_path)
    shards = []
    for index in range(3):
        stream = data.batches(spec, batch_size=1, num_epochs=2, drop_remainder=False, seed=index,
                              process_index=index, process_count=3)
        ids = [i for batch in stream for i in _ids(batch)]
        half = len(ids) // 2
        assert sorted(ids[:half]) == sorted(ids[half:])  # each epoch holds the same block
        shards.append(set(ids[:half]))
    assert [len(s) for s in shards] == [3, 3, 4]
    assert set().union(*shards) == set(range(10)) and sum(len(s) for s in shards) == 10
    assert data.process_bounds(10, 2, 3) == (6, 10)
    whole = next(data.batches(spec, batch_size=10, shuffle=False))  # JAX's defaults: process 0 of 1
    assert _ids(whole) == list(range(10))
    with pytest.raises(ConfigError, match="process_index 3"):
        data.batches(spec, batch_size=1, process_index=3, process_count=3)


def test_images_of_different_sizes_need_crop_or_image_size():
    stream = data.batches("sample:photos", batch_size=3, process_index=0, process_count=1)
    with pytest.raises(DatasetError, match="different shapes .* set crop or image_size") as info:
        next(stream)
    assert "\n" not in str(info.value)
    resized = next(data.batches("sample:photos", batch_size=3, image_size=24,
                                process_index=0, process_count=1))
    cropped = next(data.batches("sample:photos", batch_size=3, crop=40, process_index=0, process_count=1))
    assert resized.shape == (3, 24, 24, 3) and cropped.shape == (3, 40, 40, 3)
    assert data.image_shape("sample:photos", crop=40) == (40, 40, 3)


def test_resize_image_matches_an_independent_resampler():
    photo = skimage.data.chelsea()  # 300 x 451: the central 300 x 300 square is resized
    small = crops.resize_image(photo, 100)
    assert small.shape == (100, 100, 3) and small.dtype == np.uint8
    reference = skimage.transform.resize(photo[:, 75:375] / 255.0, (100, 100), anti_aliasing=True)
    assert 10 * np.log10(1 / np.mean((small / 255.0 - reference) ** 2)) > 30
    np.testing.assert_array_equal(crops.resize_image(photo[:64, :64], 64), photo[:64, :64])
    deep = (photo[:, :, :1].astype(np.uint16) * 257)
    np.testing.assert_allclose(crops.resize_image(deep, 100), small[:, :, :1] / 255.0, atol=2 / 255)


def test_folder_decodes_each_image_once_and_keeps_it_read_only(tmp_path, monkeypatch):
    for i in range(3):
        Image.fromarray(np.full((20, 24, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    calls = []
    real = imageio.read_image_raw
    monkeypatch.setattr(imageio, "read_image_raw", lambda path: calls.append(path) or real(path))
    stream = data.batches(f"folder:{tmp_path}", batch_size=3, crop=8, seed=1)
    first = [next(stream) for _ in range(4)]  # four epochs of crops
    assert len(calls) == 3
    assert not np.array_equal(first[0], first[1])  # new crops each epoch, from the cached images
    for i, image in enumerate(np.sort(np.stack(first[0]).reshape(3, -1).max(axis=1))):
        assert image == pytest.approx(40 * i / 255)
    dataset = data.open_dataset(f"folder:{tmp_path}", "train")
    with pytest.raises(ValueError):
        dataset.native(0)[0, 0, 0] = 1  # a shared cached array cannot be changed by a caller


def test_folder_cache_has_a_byte_budget(tmp_path, monkeypatch):
    for i in range(3):
        Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / f"{i}.png")
    monkeypatch.setattr(data_sources, "FOLDER_CACHE_BYTES", 2 * 300)  # room for two 10x10x3 images
    calls = []
    real = imageio.read_image_raw
    monkeypatch.setattr(imageio, "read_image_raw", lambda path: calls.append(path) or real(path))
    dataset = data.open_dataset(f"folder:{tmp_path}", "train")
    for _ in range(2):
        for i in range(3):
            dataset.native(i)
    assert len(calls) == 4  # the third image is decoded on every read


def test_tfds_without_tensorflow_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(data_sources, "_tensorflow_installed", lambda: False)
    with pytest.raises(DatasetError, match=r"^tfds:mnist needs TensorFlow, which is not installed: pip install "
                                           r"'jaxcodec\[tf\]'"):
        data.load_images("tfds:mnist", "test")
