"""Tests of jaxcodec.codecs.latent with a PCA model of real MNIST digits as the encoder/decoder."""

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import jaxcodec
from jaxcodec.codecs import container
from jaxcodec.entropy.histogram import HistogramModel
from jaxcodec.codecs import latent as latent_codec
from jaxcodec.errors import BitstreamError, ImageError, ModelError
from jaxcodec.eval import metrics

SAMPLE = Path(jaxcodec.__file__).parent / "samples" / "mnist_sample.npz"
DIM = 16
BITS = (2, 4, 6, 8)


@pytest.fixture(scope="module")
def digits():
    with np.load(SAMPLE) as d:
        return d["x_train"][:2000, :, :, None], d["x_test"][:200, :, :, None]


@pytest.fixture(scope="module")
def pca(digits):
    """A PCA "autoencoder": latent = leading coefficients / (3·std), clipped to [-1, 1]."""
    train = digits[0].reshape(len(digits[0]), -1).astype(np.float64) / 255.0
    mean = train.mean(0)
    _, s, vt = np.linalg.svd(train - mean, full_matrices=False)
    basis = vt[:DIM].astype(np.float32)
    scale = (3 * s[:DIM] / np.sqrt(len(train))).astype(np.float32)
    mean = mean.astype(np.float32)

    def encode_fn(x):
        coeff = (x.reshape(x.shape[0], -1) - mean) @ basis.T
        return jnp.clip(coeff / scale, -1.0, 1.0)

    def decode_fn(z):
        return jnp.clip((z * scale) @ basis + mean, 0.0, 1.0).reshape(z.shape[0], 28, 28, 1)

    latents = np.asarray(encode_fn(jnp.asarray(train, jnp.float32)))
    return encode_fn, decode_fn, latents


@pytest.fixture(scope="module")
def tables(pca):
    return latent_codec.fit_tables(pca[2], (-1.0, 1.0), BITS)


@pytest.fixture(scope="module")
def codec(pca, tables):
    return latent_codec.LatentCodec.from_tables(
        "pca_test", encode_fn=pca[0], decode_fn=pca[1], tables=tables, image_shape=(28, 28, 1)
    )


def test_quantize_matches_numpy_reference():
    z = np.array([-1.5, -1.0, -0.34, 0.0, 0.2, 0.999, 1.0, 3.0], np.float32)
    for bits in (1, 2, 3, 8):
        levels = 2**bits - 1
        expected = np.clip(np.round((z + 1) / 2 * levels), 0, levels)
        q = np.asarray(latent_codec.quantize(z, (-1, 1), bits))
        np.testing.assert_array_equal(q, expected)
        zhat = np.asarray(latent_codec.dequantize(q, (-1, 1), bits))
        np.testing.assert_allclose(zhat, -1 + expected * 2 / levels, rtol=1e-6)
        inside = np.abs(z) <= 1
        assert np.all(np.abs(zhat - z)[inside] <= 1 / levels + 1e-6)  # half a step, Δ = 2 / levels
    np.testing.assert_array_equal(latent_codec.quantize(np.array([0.0, 0.5, 1.0]), (0, 1), 2), [0, 2, 3])


def test_round_trip_equals_decoder_of_quantized_latent(codec, pca, digits):
    """decode(encode(x)) is exactly the decoder applied to the dequantised latent, in uint8."""
    encode_fn, decode_fn, _ = pca
    for image in digits[1][:10]:
        for bits in BITS:
            z = np.asarray(encode_fn(jnp.asarray(image[None], jnp.float32) / 255.0))
            levels = 2**bits - 1
            q = np.clip(np.round((z + 1) / 2 * levels), 0, levels)
            x = np.asarray(decode_fn(jnp.asarray(-1 + q * (2 / levels), jnp.float32)))[0]
            expected = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
            decoded = codec.decode(codec.encode(image, bits))
            assert decoded.dtype == np.uint8 and decoded.shape == (28, 28, 1)
            np.testing.assert_array_equal(decoded, expected)


def test_stream_layout_and_bpp(codec, pca, digits, tables):
    """The stream is a .jxc container of the histogram-coded symbols; bpp counts its bytes."""
    image = digits[1][0]
    data = codec.encode(image, 6)
    header, payload = container.unpack(data)
    assert (header.model, header.quality, header.latent_shape) == ("pca_test", 6, (DIM,))
    assert (header.height, header.width, header.channels) == (28, 28, 1)
    hist = HistogramModel.from_arrays({"freqs": tables["bits6_freqs"], "offsets": tables["bits6_offsets"]})
    q = np.asarray(latent_codec.quantize(codec.latent(image), (-1, 1), 6))
    assert payload == hist.encode(q)
    np.testing.assert_array_equal(hist.decode(payload), q)
    # The ANS payload is within one 32-bit word (+ the final state) of the ideal code length.
    assert len(payload) * 8 <= hist.entropy_bits(q) + 64
    assert metrics.bpp(len(data), 28, 28) == pytest.approx(len(data) * 8 / 784)


def test_bytes_are_deterministic_and_tables_survive_npz(codec, pca, tables, digits, tmp_path):
    image = digits[1][3]
    np.savez(tmp_path / "t.npz", **tables)
    with np.load(tmp_path / "t.npz") as f:
        loaded = {k: f[k] for k in f.files}
    other = latent_codec.LatentCodec.from_tables(
        "pca_test", encode_fn=pca[0], decode_fn=pca[1], tables=loaded, image_shape=(28, 28, 1)
    )
    for bits in BITS:
        data = codec.encode(image, bits)
        assert data == codec.encode(image, bits) == other.encode(image, bits)
        np.testing.assert_array_equal(other.decode(data), codec.decode(data))


def test_wrong_model_or_tables_raise_model_error(codec, pca, digits):
    data = codec.encode(digits[1][0], 4)
    renamed = latent_codec.LatentCodec.from_tables(
        "another_model", encode_fn=pca[0], decode_fn=pca[1],
        tables=latent_codec.fit_tables(pca[2], (-1, 1), BITS), image_shape=(28, 28, 1),
    )
    with pytest.raises(ModelError, match="pca_test"):
        renamed.decode(data)
    refitted = latent_codec.LatentCodec.from_tables(
        "pca_test", encode_fn=pca[0], decode_fn=pca[1],
        tables=latent_codec.fit_tables(pca[2][:500], (-1, 1), BITS), image_shape=(28, 28, 1),
    )
    with pytest.raises(ModelError, match="tables"):
        refitted.decode(data)
    fewer_bits = latent_codec.LatentCodec.from_tables(
        "pca_test", encode_fn=pca[0], decode_fn=pca[1],
        tables=latent_codec.fit_tables(pca[2], (-1, 1), (2, 6)), image_shape=(28, 28, 1),
    )
    with pytest.raises(ModelError):
        fewer_bits.decode(data)
    with pytest.raises(ModelError, match="tables"):
        latent_codec.LatentCodec.from_tables(
            "pca_test", encode_fn=pca[0], decode_fn=pca[1], tables=None, image_shape=(28, 28, 1)
        )


def test_corrupt_stream_raises_bitstream_error(codec, digits):
    data = codec.encode(digits[1][0], 8)
    flipped = bytearray(data)
    flipped[-6] ^= 0x40  # inside the payload
    with pytest.raises(BitstreamError):
        codec.decode(bytes(flipped))
    with pytest.raises(BitstreamError):
        codec.decode(data[:-3])
    with pytest.raises(BitstreamError):
        codec.decode(b"not a stream")
    # A valid container whose payload is not what the tables produced.
    header, payload = container.unpack(data)
    with pytest.raises(BitstreamError):
        codec.decode(container.pack(header, payload + b"\x07\x00\x00\x00"))


def test_higher_bit_depth_gives_higher_rate_and_psnr(codec, digits):
    images = digits[1][:100]
    rates, psnrs = [], []
    for bits in BITS:
        streams = [codec.encode(im, bits) for im in images]
        decoded = np.stack([codec.decode(s) for s in streams]).astype(np.float64)
        mse = ((decoded - images) ** 2).mean(axis=(1, 2, 3)) / 255.0**2
        rates.append(np.mean([len(s) * 8 / 784 for s in streams]))
        psnrs.append(np.mean(-10 * np.log10(mse)))
    assert np.all(np.diff(rates) > 0), rates
    assert np.all(np.diff(psnrs) > 0), psnrs
    # 16 PCA coefficients of MNIST: at 8 bits the quantisation error is negligible, so the
    # PSNR is that of a 16-component PCA (about 15-16 dB on digits).
    assert 13.0 < psnrs[-1] < 19.0


def test_bad_inputs(codec, digits):
    with pytest.raises(ImageError):
        codec.encode(digits[1][0].astype(np.float32), 4)
    with pytest.raises(ImageError):
        codec.encode(np.zeros((32, 32, 1), np.uint8), 4)
    with pytest.raises(ValueError, match="bit depth"):
        codec.encode(digits[1][0], 7)
    np.testing.assert_array_equal(codec.decode(codec.encode(digits[1][0][:, :, 0], 4)),
                                  codec.decode(codec.encode(digits[1][0], 4)))
    with pytest.raises(ValueError):
        latent_codec.fit_tables(np.zeros((4, 3)), (0, 1), (0,))
