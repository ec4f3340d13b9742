"""Tests of the paper baselines (jaxcodec.codecs.baselines): bicubic, k-means and PCA."""

import io
import os

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.transform import downscale_local_mean

import jaxcodec
from jaxcodec.codecs import baselines
from jaxcodec.codecs import registry
from jaxcodec.codecs.protocol import Codec
from jaxcodec.errors import BitstreamError, ConfigError, ImageError, ModelError

SAMPLE = os.path.join(os.path.dirname(jaxcodec.__file__), "samples", "mnist_sample.npz")


def psnr(x, y):
    mse = np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


@pytest.fixture(scope="module")
def photo():
    """Astronaut, 64x96 RGB."""
    return np.asarray(Image.fromarray(data.astronaut()[:256, 64:448]).reduce(4))


@pytest.fixture(scope="module")
def mnist():
    with np.load(SAMPLE) as sample:
        return sample["x_train"][..., None], sample["x_test"][..., None]


# ---------------------------------------------------------------------------- bicubic


def keys_resample(small: np.ndarray, factor: int) -> np.ndarray:
    """Independent bicubic up-sampling: Keys' kernel (a = -0.5), Pillow's pixel-centre
    convention and edge renormalisation, rows then columns with 8-bit rounding between."""

    def kernel(x):
        x = np.abs(x)
        a = -0.5
        return np.where(
            x < 1, (a + 2) * x**3 - (a + 3) * x**2 + 1,
            np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0),
        )

    def matrix(n_in):
        out = np.zeros((n_in * factor, n_in))
        for i in range(n_in * factor):
            centre = (i + 0.5) / factor
            lo, hi = max(int(centre - 2 + 0.5), 0), min(int(centre + 2 + 0.5), n_in)
            taps = np.arange(lo, hi)
            weights = kernel(taps - centre + 0.5)
            out[i, taps] = weights / weights.sum()
        return out

    x = small.astype(np.float64)
    rows = np.clip(np.floor(np.einsum("oj,ijc->ioc", matrix(small.shape[1]), x) + 0.5), 0, 255)
    return np.clip(np.floor(np.einsum("oi,ijc->ojc", matrix(small.shape[0]), rows) + 0.5), 0, 255)


def _split_bicubic_stream(stream):
    assert stream[:1] == b"B"
    factor, flags, height, width = stream[1], stream[2], stream[3], stream[4]  # sizes < 128
    return factor, flags & 0x7F, height, width, stream[5:]


@pytest.mark.parametrize("shape", [(64, 96, 3), (61, 93, 3), (28, 28, 1), (5, 3, 1)])
def test_area_downsample_matches_skimage(shape, photo):
    image = photo[: shape[0], : shape[1], : shape[2]]
    for factor in (2, 4, 8):
        pad = ((0, -shape[0] % factor), (0, -shape[1] % factor), (0, 0))
        padded = np.pad(image, pad, mode="edge").astype(np.float64)
        expected = downscale_local_mean(padded, (factor, factor, 1))
        np.testing.assert_array_equal(baselines.area_downsample(image, factor), np.floor(expected + 0.5))


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_bicubic_matches_independent_keys_kernel(factor, photo):
    small = baselines.area_downsample(photo, factor)
    ours = baselines.bicubic_upsample(small, factor, *photo.shape[:2]).astype(np.int64)
    reference = keys_resample(small, factor)[: photo.shape[0], : photo.shape[1]]
    assert np.abs(ours - reference).max() <= 1
    assert np.mean(ours != reference) < 0.02


@pytest.mark.parametrize("shape", [(64, 96, 3), (61, 93, 3), (28, 28, 1)])
def test_bicubic_round_trip_and_lossless_payload(shape, photo, mnist):
    image = mnist[1][0] if shape[2] == 1 else photo[: shape[0], : shape[1]]
    codec = registry.get_codec("bicubic")
    assert isinstance(codec, Codec) and codec.qualities == [8, 4, 2]
    sizes, quality = [], []
    for factor in codec.qualities:
        stream = codec.encode(image, factor)
        decoded = codec.decode(stream)
        assert decoded.shape == image.shape and decoded.dtype == np.uint8
        small = baselines.area_downsample(image, factor)
        got_factor, fmt, height, width, payload = _split_bicubic_stream(stream)
        assert (got_factor, height, width) == (factor, shape[0], shape[1])
        if fmt == 0:
            stored = np.frombuffer(payload, np.uint8).reshape(small.shape)
        else:
            stored = np.asarray(Image.open(io.BytesIO(payload)))
            stored = stored.reshape(stored.shape[:2] + (-1,))[..., : shape[2]]
        np.testing.assert_array_equal(stored, small)
        png = io.BytesIO()
        Image.fromarray(small[..., 0] if shape[2] == 1 else small).save(png, format="PNG", optimize=True)
        assert len(payload) <= min(len(png.getvalue()), small.size)
        np.testing.assert_array_equal(decoded, baselines.bicubic_upsample(small, factor, *shape[:2]))
        sizes.append(len(stream))
        quality.append(psnr(image, decoded))
    assert sizes == sorted(sizes) and quality == sorted(quality)


def test_fixed_factor_bicubic_codecs(photo):
    for factor in (2, 4, 8):
        codec = registry.get_codec(f"bicubic{factor}x")
        assert codec.qualities == [factor]
        assert codec.encode(photo, factor) == registry.get_codec("bicubic").encode(photo, factor)


# ---------------------------------------------------------------------------- k-means


def test_kmeans_uses_k_nearest_palette_colours(photo, mnist):
    codec = registry.get_codec("kmeans")
    for image in (photo, mnist[1][1]):
        for k in codec.qualities:
            decoded = codec.decode(codec.encode(image, k))
            assert decoded.shape == image.shape and decoded.dtype == np.uint8
            palette = np.unique(decoded.reshape(-1, image.shape[2]), axis=0).astype(np.int64)
            assert len(palette) <= k
            pixels = image.reshape(-1, image.shape[2]).astype(np.int64)
            distances = ((pixels[:, None, :] - palette[None]) ** 2).sum(axis=2)
            chosen = ((pixels - decoded.reshape(-1, image.shape[2])) ** 2).sum(axis=1)
            np.testing.assert_array_equal(chosen, distances.min(axis=1))


def test_kmeans_rate_distortion_and_size(photo):
    codec = registry.get_codec("kmeans")
    sizes = [len(codec.encode(photo, k)) for k in codec.qualities]
    quality = [psnr(photo, codec.decode(codec.encode(photo, k))) for k in codec.qualities]
    assert sizes == sorted(sizes) and quality == sorted(quality)
    pixels = photo.shape[0] * photo.shape[1]
    assert len(codec.encode(photo, 4)) * 8 < 2 * pixels  # below raw 2-bit indices


def test_lloyd_reduces_distortion_from_kmeanspp_seeding(photo):
    colours, counts = np.unique(photo.reshape(-1, 3), axis=0, return_counts=True)

    def distortion(centres):
        d = ((colours[:, None, :].astype(np.float64) - centres[None]) ** 2).sum(axis=2).min(axis=1)
        return np.sum(counts * d) / counts.sum()

    for k in (2, 4, 8):
        seeded = baselines.kmeans(colours, counts, k, seed=3, iterations=0)
        fitted = baselines.kmeans(colours, counts, k, seed=3, iterations=30)
        assert seeded.shape == fitted.shape == (k, 3)
        assert any((seeded == colour).all(axis=1).any() for colour in colours)  # seeds are data points
        assert distortion(fitted) < 0.9 * distortion(seeded)


def test_kmeans_is_deterministic_given_the_seed(photo):
    first = baselines.KMeansCodec(seed=7).encode(photo, 8)
    assert baselines.KMeansCodec(seed=7).encode(photo, 8) == first
    fixed = registry.get_codec("kmeans4")
    assert fixed.encode(photo, 4) == registry.get_codec("kmeans").encode(photo, 4)


def test_kmeans_keeps_images_with_few_colours_exactly():
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (3, 3), dtype=np.uint8)
    image = palette[rng.integers(0, 3, (20, 30))]
    codec = registry.get_codec("kmeans")
    np.testing.assert_array_equal(codec.decode(codec.encode(image, 4)), image)
    flat = np.full((9, 7, 1), 42, np.uint8)
    stream = codec.encode(flat, 2)
    np.testing.assert_array_equal(codec.decode(stream), flat)
    assert len(stream) == 5  # tag, two sizes, palette size, one grey level


@pytest.mark.parametrize("shape,k", [((1, 1), 1), ((1, 9), 3), ((9, 1), 3), ((6, 7), 5), ((12, 10), 16)])
def test_neighbour_ranks_invert(shape, k):
    rng = np.random.default_rng(k)
    blocky = np.kron(rng.integers(0, k, (shape[0], shape[1])), np.ones((1, 1), int))
    for indices in (blocky, np.zeros(shape, int) + k - 1):
        ranks = baselines.neighbour_ranks(indices, k)
        assert ranks.min() >= 0 and ranks.max() < k
        np.testing.assert_array_equal(baselines.indices_from_ranks(ranks, *shape, k), indices)
    constant = baselines.neighbour_ranks(np.zeros((5, 5), int) + 1, 3)
    assert constant[0] == 1 and not constant[1:].any()


# ---------------------------------------------------------------------------- PCA


@pytest.fixture(scope="module")
def patches():
    """Non-overlapping 8x8 patches of the cameraman: 3000 to fit, 100 to test."""
    camera = data.camera()
    p = camera.reshape(64, 8, 64, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8, 1)
    p = p[np.random.default_rng(0).permutation(len(p))]
    return p[:3000], p[3000:3100]


def _svd_basis(train):
    flat = train.reshape(len(train), -1).astype(np.float64)
    mean = flat.mean(axis=0)
    return mean, np.linalg.svd(flat - mean, full_matrices=False)[2]


@pytest.mark.parametrize("num_train", [3000, 40])  # scatter-matrix route and SVD route (N < D)
def test_pca_projection_matches_numpy_svd(patches, num_train):
    train, test = patches[0][:num_train], patches[1][:10]
    mean, vt = _svd_basis(train)
    codec = baselines.PCACodec(k=[4, 12, 32], bits=12).fit(train)
    for x in test:
        for k in (4, 12, 32):
            expected = mean + ((x.reshape(-1) - mean) @ vt[:k].T) @ vt[:k]
            np.testing.assert_allclose(codec.project(x, k), expected.reshape(x.shape), atol=1e-6)
            decoded = codec.decode(codec.encode(x, k)).astype(np.float64)
            assert np.abs(decoded - np.clip(expected.reshape(x.shape), 0, 255)).max() <= 1.5


def test_pca_full_rank_high_bit_depth_is_near_lossless(patches):
    train, test = patches
    codec = baselines.PCACodec(k=64, bits=12).fit(train)
    for x in test[:20]:
        assert np.abs(codec.decode(codec.encode(x, 12)).astype(int) - x).max() <= 1


def test_pca_rate_distortion_over_bit_depth(mnist):
    train, test = mnist
    codec = registry.get_codec("pca", train_images=train[:2000], bits=[2, 4, 6, 8])
    rows = []
    for bits in codec.qualities:
        streams = [codec.encode(x, bits) for x in test[:40]]
        decoded = [codec.decode(s) for s in streams]
        assert all(d.shape == (28, 28, 1) and d.dtype == np.uint8 for d in decoded)
        rate = np.mean([len(s) for s in streams]) * 8 / 784
        rows.append((rate, np.mean([psnr(x, d) for x, d in zip(test, decoded)])))
    bpp, quality = zip(*rows)
    assert list(bpp) == sorted(bpp) and list(quality) == sorted(quality)
    assert bpp[0] < 0.15 and quality[-1] > 30


def test_pca_save_load_gives_identical_streams(patches, tmp_path):
    train, test = patches
    codec = registry.get_codec("pca", train_images=train, bits=[3, 6])
    np.savez(tmp_path / "pca.npz", **codec.to_arrays())
    with np.load(tmp_path / "pca.npz") as arrays:
        loaded = registry.get_codec("pca", arrays=dict(arrays))
    assert loaded.qualities == codec.qualities == [3, 6]
    for x in test[:10]:
        for q in codec.qualities:
            stream = codec.encode(x, q)
            assert loaded.encode(x, q) == stream
            np.testing.assert_array_equal(loaded.decode(stream), codec.decode(stream))


def test_pca_rgb_and_k_axis(photo):
    tiles = photo.reshape(16, 4, 24, 4, 3).transpose(0, 2, 1, 3, 4).reshape(-1, 4, 4, 3)
    codec = registry.get_codec(
        "pca", train_images=tiles, qualities=[2, 8, 48], qualities_axis="k", bits=8
    )
    errors = np.zeros(3)
    for tile in tiles[:20]:
        for i, k in enumerate((2, 8, 48)):
            errors[i] += np.mean((codec.decode(codec.encode(tile, k)).astype(float) - tile) ** 2)
    assert errors[0] > errors[1] > errors[2]
    assert codec.decode(codec.encode(tiles[0], 48)).shape == (4, 4, 3)
    by_k = registry.get_codec("pca", train_images=tiles, k=[2, 8, 48])  # bits default to 6
    assert by_k.qualities == [2, 8, 48] and by_k.to_arrays()["bits"].tolist() == [6, 6, 6]


def test_pca_errors(patches):
    train, test = patches
    unfitted = registry.get_codec("pca")
    with pytest.raises(ModelError):
        unfitted.encode(test[0], 4)
    codec = baselines.PCACodec(bits=[4, 6]).fit(train[:500])
    with pytest.raises(ImageError):
        codec.encode(np.zeros((8, 9, 1), np.uint8), 4)
    with pytest.raises(ConfigError):
        codec.encode(test[0], 5)
    with pytest.raises(ConfigError):
        baselines.PCACodec(k=[1, 2], bits=[3, 4])
    with pytest.raises(ConfigError):
        baselines.PCACodec(k=100, bits=4).fit(train[:50])
    with pytest.raises(ImageError):
        baselines.PCACodec().fit(train[:, :, :, 0])
    with pytest.raises(ModelError):
        baselines.PCACodec.from_arrays({"mean": np.zeros(3)})
    valid = codec.encode(test[0], 6)
    for junk in [b"", b"\x00", bytes([0xA2]) + valid[1:], valid[:-4], valid + bytes(4), b"\xa0garbage"]:
        with pytest.raises(BitstreamError):
            codec.decode(junk)


# ---------------------------------------------------------------------------- all baselines


@pytest.mark.parametrize("name", ["bicubic", "kmeans"])
def test_garbage_raises_bitstream_error(name, photo):
    codec = registry.get_codec(name)
    valid = codec.encode(photo, codec.qualities[1])
    tag = valid[:1]
    junk = [b"", b"garbage", bytes(50), tag, tag + b"\x02", valid[: len(valid) // 2], valid[:8],
            tag + b"\xff\xff\xff\xff\xff\xff", np.random.default_rng(2).bytes(200)]
    for stream in junk:
        with pytest.raises(BitstreamError):
            codec.decode(stream)


def test_baseline_options_are_checked(photo):
    with pytest.raises(ConfigError):
        registry.get_codec("bicubic", qualities=[0])
    with pytest.raises(ConfigError):
        registry.get_codec("kmeans", qualities=[300])
    with pytest.raises(ConfigError):
        registry.get_codec("kmeans", colours=3)
    with pytest.raises(ImageError):
        registry.get_codec("kmeans").encode(photo.astype(np.float32), 4)


def test_pca_name_with_component_count(patches):
    train, test = patches
    named = registry.get_codec("pca12", train_images=train, bits=[6])
    explicit = registry.get_codec("pca", k=12, train_images=train, bits=[6])
    assert named.name == "pca12"
    assert named.encode(test[0], 6) == explicit.encode(test[0], 6)
    with pytest.raises(ModelError, match="pcaK"):
        registry.get_codec("pca0")
