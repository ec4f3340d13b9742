"""jaxcodec.api: read_image (the image files `python -m jaxcodec compress` reads), the model argument, info."""

import numpy as np
import pytest
from PIL import Image

from jaxcodec import api
from jaxcodec.errors import ImageError
from tests.test_data import _write_conversion_files


def test_read_image_follows_the_documented_conversions_rounded_to_8_bits(tmp_path):
    expected = _write_conversion_files(tmp_path, np.random.default_rng(1))
    for path in sorted(tmp_path.iterdir()):
        want = expected[path.name[0]]
        image = api.read_image(path)
        assert image.dtype == np.uint8 and image.shape == want.shape, path.name
        if path.name.endswith(".jpg"):  # lossy: within a few levels of the source
            assert np.abs(image / 255 - want).max() < 12 / 255, path.name
        else:
            np.testing.assert_array_equal(image, np.round(want * 255), err_msg=path.name)


def test_dark_16_bit_and_float_images_keep_their_scale(tmp_path):
    # A 16-bit grey image whose samples all lie below 256 is nearly black, not an 8-bit image.
    dark = np.arange(0, 200, 2, dtype=np.uint16).reshape(10, 10)
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    with Image.open(tmp_path / "dark16.png") as im:
        assert im.mode.startswith("I")  # Pillow keeps 16 bits for grey PNG
    np.testing.assert_array_equal(api.read_image(tmp_path / "dark16.png")[..., 0], np.round(dark * 255 / 65535))
    # A float TIFF holds [0, 1] values.
    ramp = np.linspace(0, 1, 35, dtype=np.float32).reshape(5, 7)
    Image.fromarray(ramp, mode="F").save(tmp_path / "ramp.tif")
    np.testing.assert_array_equal(api.read_image(tmp_path / "ramp.tif")[..., 0], np.round(ramp * 255))


def test_read_image_errors_name_the_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        api.read_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageError, match=r"notes\.png: not a readable image"):
        api.read_image(tmp_path / "notes.png")
    Image.fromarray(np.full((4, 4), 2.0, np.float32), mode="F").save(tmp_path / "bright.tif")
    with pytest.raises(ImageError, match=r"bright\.tif: not a readable image .*outside \[0, 1\]"):
        api.read_image(tmp_path / "bright.tif")


def test_as_uint8_image_rounds_16_bit_arrays():
    deep = np.array([[0, 257, 65535, 32896]], np.uint16)
    np.testing.assert_array_equal(api.as_uint8_image(deep)[..., 0], np.round(deep / 257))


def test_has_alpha_sees_alpha_channels_and_transparent_palettes(tmp_path):
    from jaxcodec import image as imageio

    rgb = np.random.default_rng(2).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.dstack([rgb, rgb[..., 0]])).save(tmp_path / "rgba.png")
    Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 1]])).save(tmp_path / "la.png")
    pal = Image.fromarray(rgb[..., 0] % 4, mode="P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    pal.save(tmp_path / "pal.png")
    pal.save(tmp_path / "pal_transparent.png", transparency=0)
    (tmp_path / "notes.png").write_text("not an image")
    found = {p.name: imageio.has_alpha(p) for p in tmp_path.iterdir()}
    assert found == {"rgb.png": False, "rgba.png": True, "la.png": True, "pal.png": False,
                     "pal_transparent.png": True, "notes.png": False}


def test_model_argument_takes_names_paths_codecs_and_none(monkeypatch):
    import pathlib

    from jaxcodec import zoo
    from jaxcodec.codecs import standard as classical
    from jaxcodec.errors import ModelError

    digit = np.random.default_rng(3).integers(0, 256, (28, 28), dtype=np.uint8)
    by_name = api.compress(digit, "mnist-conv-ae", quality=6)
    assert api.compress(digit, pathlib.Path(zoo.WEIGHTS_DIR) / "mnist-conv-ae", quality=6) == by_name
    assert np.array_equal(api.decompress(by_name, pathlib.Path(zoo.WEIGHTS_DIR) / "mnist-conv-ae"),
                          api.decompress(by_name))
    monkeypatch.setattr(api, "DEFAULT_MODEL", "jpeg")
    assert api.compress(digit, None, quality=50) == api.compress(digit, classical.jpeg(), quality=50)
    with pytest.raises(ModelError, match="model must be a model name, a workdir path or a codec, got int"):
        api.compress(digit, 42)


def test_a_quality_out_of_range_is_refused_in_the_name_the_caller_used():
    """Streams carry a family name (``mbt2018_mean``, ``mnist_conv_ae``); a refusal names the
    model as the caller gave it."""
    from jaxcodec.errors import JaxcodecError

    photo = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(JaxcodecError, match=r"^mbt2018-mean takes a quality between 1 and 8$"):
        api.compress(photo, "mbt2018-mean", quality=9)
    digit = np.zeros((28, 28), np.uint8)
    with pytest.raises(JaxcodecError, match=r"^mnist-conv-ae has no quality 99; available: "):
        api.compress(digit, "mnist-conv-ae", quality=99)


def test_info_names_the_shipped_model_and_its_quality_as_given():
    import skimage.data

    from jaxcodec.codecs import container

    photo = skimage.data.astronaut()[:64, :64]
    data = api.compress(photo, "mbt2018-mean", quality=3.5)
    assert container.unpack(data)[0].quality == 3500  # the header stores thousandths
    got = api.info(data)
    assert (got["model"], got["shipped_model"], got["quality"]) == ("mbt2018_mean", "mbt2018-mean", 3.5)
    rung = api.info(api.compress(photo, "bmshj2017-factorized", quality=2))
    assert (rung["shipped_model"], rung["quality"]) == ("bmshj2017-factorized-q2", 2)
