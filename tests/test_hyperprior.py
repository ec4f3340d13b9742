"""The mean-scale hyperprior: Gaussian conditional tables, the integer entropy-parameter
network, and its codec (round trip, continuous quality, determinism, damaged streams)."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxcodec import data
from jaxcodec.codecs import container
from jaxcodec.entropy import gaussian_conditional
from jaxcodec.entropy import integer_net
from jaxcodec.errors import BitstreamError, ConfigError, JaxcodecError, ModelError
from jaxcodec.train.tasks import hyperprior as hyperprior_task
from jaxcodec.models.hyperprior import MeanScaleHyperprior

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))



def _psnr(image: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR of 8-bit images, from the definition (peak 255)."""
    mse = np.mean((image.astype(np.float64) - decoded.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))

def small_task(**overrides):
    config = hyperprior_task.default_config()
    config.model.features, config.model.latent_channels = 16, 24
    config.learning_rate = 1e-3
    for key, value in overrides.items():
        setattr(config, key, value)
    return hyperprior_task.MeanScaleTask(config)


@pytest.fixture(scope="module")
def trained():
    """A small model trained for a few dozen steps on crops of one photo (enough for
    entropy parameters that vary), with its codec."""
    task = small_task()
    photo = data.open_dataset("sample:photos", "test").native(1).astype(np.float32) / 255.0
    rng = np.random.default_rng(0)
    state = task.init_state(jax.random.key(0), np.zeros((1, 64, 64, 3), np.float32))
    step = jax.jit(task.train_step)
    losses = []
    for i in range(40):
        ys, xs = rng.integers(0, photo.shape[0] - 64, 4), rng.integers(0, photo.shape[1] - 64, 4)
        batch = np.stack([photo[y:y + 64, x:x + 64] for y, x in zip(ys, xs)])
        state, metrics = step(state, jnp.asarray(batch), jax.random.key(i))
        losses.append(float(metrics["loss"]))
    return task, state, task.make_codec(state), losses


def _photo(h=100, w=150):
    return np.ascontiguousarray(data.open_dataset("sample:photos", "test").native(0)[:h, :w])


def test_gaussian_tables_match_scipy():
    freqs, offsets = gaussian_conditional.build_tables()
    assert freqs.shape[0] == 64 and np.all(freqs.sum(axis=1) == 1 << 24) and np.all(freqs >= 1)
    scales = gaussian_conditional.scale_table()
    np.testing.assert_allclose(scales[[0, -1]], [0.11, 256.0])
    for k in (0, 20, 63):
        values = np.arange(-5, 6)
        reference = stats.norm.cdf((values + 0.5) / scales[k]) - stats.norm.cdf((values - 0.5) / scales[k])
        got = freqs[k, values - offsets[k]] / 2.0**24
        np.testing.assert_allclose(got, reference, atol=3e-4)
        big = reference > 1e-3
        np.testing.assert_allclose(got[big], reference[big], rtol=2e-3)


def test_scale_indexes_pick_the_smallest_table_scale_not_below():
    table = gaussian_conditional.scale_table()
    rng = np.random.default_rng(1)
    scales = np.exp(rng.uniform(np.log(0.05), np.log(400.0), 5000))
    fixed = np.round(scales * 4096).astype(np.int64)
    got = gaussian_conditional.scale_indexes(fixed, 12)
    expected = np.minimum(np.searchsorted(table, fixed / 4096.0, side="left"), 63)
    near = np.min(np.abs(fixed[:, None] / 4096.0 - table[None, :]), axis=1) < 1 / 4096
    assert np.array_equal(got[~near], expected[~near])
    assert got.min() == 0 and got.max() == 63


def test_gaussian_likelihood_against_scipy():
    y = jnp.array([0.0, 1.3, -2.2, 40.0])
    mean = jnp.array([0.1, 1.0, 0.5, 0.0])
    scale = jnp.array([0.5, 2.0, 0.05, 3.0])
    got = np.asarray(gaussian_conditional.likelihood(y, mean, scale))
    s = np.maximum(np.asarray(scale), 0.11)
    v = np.abs(np.asarray(y) - np.asarray(mean))
    reference = np.maximum(stats.norm.cdf((0.5 - v) / s) - stats.norm.cdf((-0.5 - v) / s), 1e-9)
    np.testing.assert_allclose(got, reference, rtol=1e-4)


def test_training_lowers_the_loss(trained):
    _, _, _, losses = trained
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:4])


def test_integer_network_follows_the_float_network(trained):
    task, state, codec, _ = trained
    params = state["params"]
    rng = np.random.default_rng(2)
    z = rng.integers(-6, 7, (5, 7, 16)).astype(np.int32)
    mean_f, scale_f = task.model.apply(params, jnp.asarray(z[None], jnp.float32),
                                       method=MeanScaleHyperprior.entropy_parameters)
    out = integer_net.run(codec.layers, z).astype(np.float64) / 2**integer_net.OUTPUT_BITS
    m = task.model.latent_channels
    np.testing.assert_allclose(out[..., :m], np.asarray(mean_f)[0], atol=2e-3 * (1 + np.abs(np.asarray(mean_f)).max()))
    np.testing.assert_allclose(out[..., m:], np.asarray(scale_f)[0], atol=2e-3 * (1 + np.abs(np.asarray(scale_f)).max()))


def test_integer_network_is_exact_whatever_the_summation_order(trained, monkeypatch):
    """The layers' products and sums are integers below 2**53: any order gives the same
    result, and so does a layer computed a row at a time (as large images are)."""
    _, _, codec, _ = trained
    rng = np.random.default_rng(3)
    z = rng.integers(-4096, 4097, (3, 4, 16)).astype(np.float64)
    layer = codec.layers[0]
    k = layer.kernel.shape[0]
    padded = np.pad(z, ((1, 1), (1, 1), (0, 0)))
    exact = np.zeros((3, 4, layer.kernel.shape[-1]), dtype=object)
    for i in range(3):
        for j in range(4):
            window = padded[i:i + k, j:j + k].astype(np.int64).astype(object)
            exact[i, j] = np.tensordot(window, layer.kernel.astype(np.int64).astype(object), axes=3)
    exact = exact + layer.bias.astype(np.int64).astype(object)
    shift = layer.shift.astype(np.int64)
    rounded = np.array([[[(int(exact[i, j, o]) + ((1 << int(shift[o])) >> 1)) >> int(shift[o])
                          for o in range(exact.shape[2])] for j in range(4)] for i in range(3)], np.float64)
    expected = np.clip(np.maximum(rounded, 0), -integer_net.ACTIVATION_LIMIT, integer_net.ACTIVATION_LIMIT)
    from jaxcodec.layers import depth_to_space

    np.testing.assert_array_equal(integer_net.conv3x3(z, layer), np.asarray(depth_to_space(expected[None]))[0])
    monkeypatch.setattr(integer_net, "PATCH_BYTES", 1)  # one row per block
    np.testing.assert_array_equal(integer_net.conv3x3(z, layer), np.asarray(depth_to_space(expected[None]))[0])


def test_round_trip_and_continuous_quality(trained):
    _, _, codec, _ = trained
    image = _photo()
    sizes = []
    for q in (1, 2.5, 2.501, 8):
        stream = codec.encode(image, q)
        header = container.unpack(stream)[0]
        assert header.quality == round(q * 1000)
        z_hat, symbols, _ = codec.latents(image, q)
        np.testing.assert_array_equal(codec.decode_symbols(stream), np.concatenate([z_hat.ravel(), symbols.ravel()]))
        decoded = codec.decode(stream)
        assert decoded.shape == image.shape and decoded.dtype == np.uint8
        sizes.append(len(stream))
    assert sizes[0] < sizes[1] < sizes[3]
    grey = image[..., :1]
    assert codec.decode(codec.encode(grey, 4)).shape == grey.shape
    for bad in (0.5, 8.5, "x", None):
        with pytest.raises(ConfigError):
            codec.encode(image, bad)
    from jaxcodec.errors import ImageError

    for bad_image in (image.astype(np.float32), np.zeros((8, 8, 4), np.uint8), np.zeros((0, 5, 3), np.uint8)):
        with pytest.raises(ImageError):
            codec.encode(bad_image, 3)
    assert codec.decode(codec.encode(image[..., 0], 3)).shape == image.shape[:2] + (1,)


def test_rate_estimate_is_the_written_size(trained):
    _, _, codec, _ = trained
    image = _photo(128, 192)
    for q in (2, 6):
        stream = codec.encode(image, q)
        payload = len(container.unpack(stream)[1]) - 4
        estimate = codec.estimate_bits(image, q) / 8
        # within 2%, plus the two ANS streams' last words (up to 8 bytes each)
        assert abs(payload - estimate) <= 0.02 * estimate + 16, (payload, estimate)


def test_damaged_streams_raise_only_project_errors(trained):
    _, _, codec, _ = trained
    stream = bytearray(codec.encode(_photo(64, 64), 5))
    header_len = len(stream) - len(container.unpack(bytes(stream))[1])
    rng = np.random.default_rng(4)
    for _ in range(60):
        damaged = bytearray(stream)
        position = int(rng.integers(header_len, len(damaged)))
        damaged[position] ^= 1 << int(rng.integers(0, 8))
        try:
            codec.decode(bytes(damaged))
        except JaxcodecError:
            pass
    with pytest.raises(BitstreamError):
        codec.decode(bytes(stream[:header_len + 2]))
    other = small_task().make_codec(small_task().init_state(jax.random.key(9), np.zeros((1, 64, 64, 3), np.float32)))
    with pytest.raises(ModelError, match="other entropy tables"):
        other.decode(bytes(stream))


def test_edited_payloads_fail_the_content_check(trained):
    """A payload byte changed and the CRC recomputed (as a tool that edits streams does): the
    content check over ẑ and the symbols turns what would be another image into an error.
    (Streams of the earlier layout, with and without the check: tests/test_tiling.py.)"""
    import struct
    import zlib

    _, _, codec, _ = trained
    stream = codec.encode(_photo(64, 64), 5)
    header, payload = container.unpack(stream)
    assert len(header.check) == container.CHECK_SIZE
    reference = codec.decode(stream)
    rng = np.random.default_rng(5)
    n, failed = container.crc_bytes(stream), 0
    for _ in range(40):
        edited = bytearray(stream)
        position = len(stream) - n - 1 - int(rng.integers(len(payload) - 4))  # inside the ANS bytes
        edited[position] ^= 1 << int(rng.integers(8))
        edited[-n:] = struct.pack("<I", zlib.crc32(bytes(edited[:-n])))[:n]
        try:
            decoded = codec.decode(bytes(edited))
        except BitstreamError as error:
            failed += "content check failed" in str(error) or "corrupt" in str(error) or "truncated" in str(error)
        else:
            assert np.array_equal(decoded, reference), "an edited payload decoded to another image"
    assert failed >= 30


def test_symbols_identical_when_decoded_on_older_vector_units(trained, tmp_path):
    """Encode here; decode the symbols in fresh processes whose XLA code is limited to AVX2
    and SSE4.2 and whose matrix products run OpenBLAS's Haswell (AVX2, FMA) and Prescott (SSE3)
    kernels, whose float64 sums of random reals differ in their last bits: the entropy
    parameters come from the integer network, exact in any summation order, so every symbol
    agrees."""
    from jaxcodec import zoo

    task, state, codec, _ = trained
    model = zoo.export_state(task, state, "tiny-msh", dest=str(tmp_path))
    streams = []
    for i, q in enumerate((1.5, 4, 7.25)):
        stream = codec.encode(_photo(96 + 17 * i, 130), q)
        (tmp_path / f"{i}.jxc").write_bytes(stream)
        streams.append(codec.decode_symbols(stream))
    code = ("import sys, numpy as np; from jaxcodec import zoo\n"
            "codec = zoo.load_codec(sys.argv[1])\n"
            "for i in range(3):\n"
            "    np.save(f'{sys.argv[2]}/{i}.npy', codec.decode_symbols(open(f'{sys.argv[2]}/{i}.jxc', 'rb').read()))\n")
    for isa, blas in (("AVX2", "Haswell"), ("SSE4_2", "Prescott")):
        env = dict(os.environ, XLA_FLAGS=f"--xla_cpu_max_isa={isa}", OPENBLAS_CORETYPE=blas)
        run = subprocess.run([sys.executable, "-c", code, model, str(tmp_path)], cwd=ROOT, capture_output=True,
                             text=True, timeout=300, env=env)
        assert run.returncode == 0, run.stderr[-2000:]
        for i, expected in enumerate(streams):
            np.testing.assert_array_equal(np.load(tmp_path / f"{i}.npy"), expected)


def test_api_takes_any_real_quality_in_range(trained):
    import jaxcodec

    _, _, codec, _ = trained
    image = _photo(64, 80)
    stream = jaxcodec.compress(image, codec, quality="2.75")
    assert container.unpack(stream)[0].quality == 2750
    assert jaxcodec.decompress(stream, codec).shape == image.shape
    for bad in ("9", "high", 0.99):
        with pytest.raises(JaxcodecError, match="between 1 and 8"):
            jaxcodec.compress(image, codec, quality=bad)


def test_rate_control_of_the_continuous_model(trained):
    from jaxcodec import rate_control

    _, _, codec, _ = trained
    image = _photo(320, 480)
    pixels = image.shape[0] * image.shape[1]
    low, high = len(codec.encode(image, 1)), len(codec.encode(image, 8))
    for share in (0.3, 0.7):
        budget = int(low + share * (high - low))
        result = rate_control.fit(image, codec, max_bytes=budget)
        assert 0.97 * budget <= len(result.data) <= budget and result.encodes <= rate_control.MAX_ENCODES
        target = budget * 8 / pixels
        result = rate_control.fit(image, codec, bpp=target)
        assert abs(len(result.data) * 8 / pixels / target - 1) <= 0.03 and result.encodes <= rate_control.MAX_ENCODES
    psnrs = [_psnr(image, codec.decode(codec.encode(image, q))) for q in (1, 8)]
    goal = 0.5 * sum(psnrs)
    reached = rate_control.fit(image, codec, psnr=goal)
    assert reached.psnr >= goal
    assert _psnr(image, codec.decode(codec.encode(image, reached.quality - 0.02))) < goal
    with pytest.raises(rate_control.TargetError, match=f"has {low} bytes"):
        rate_control.fit(image, codec, max_bytes=low - 1)


def test_refined_symbols_cost_less_by_real_bytes_and_pixels_and_decode_with_the_plain_codec(trained):
    """Encoder-side refinement given ẑ: the objective, measured from the written bytes and the
    decoded pixels, falls; the stream is an ordinary one (the plain codec decodes it to the
    model's reconstruction of the refined symbols); the same call gives the same bytes."""
    _, _, codec, _ = trained
    image = _photo(64, 96)
    refined = codec.refined(30, lr=0.05, hyper_steps=0)
    assert codec.refine_steps == 0 and refined.refine_steps == 30 and refined.hyper_steps == 0

    def measured(stream, q):
        decoded = codec.decode(stream).astype(np.float64) / 255.0
        mse = np.mean((decoded - image.astype(np.float64) / 255.0) ** 2)
        lmbda = float(hyperprior_task.lambda_for_quality(q))
        return lmbda * 255.0**2 * mse + 8 * len(container.unpack(stream)[1]) / (image.shape[0] * image.shape[1])

    for q in (2, 6.5):
        plain, stream = codec.encode(image, q), refined.encode(image, q)
        assert stream == refined.encode(image, q)
        assert stream != plain
        assert measured(stream, q) < 0.98 * measured(plain, q), q
        z_plain, _, _ = codec.latents(image, q)
        z_hat, symbols, _ = refined.latents(image, q)
        np.testing.assert_array_equal(z_hat, z_plain)  # ẑ, so every μ and scale, is the plain encoder's
        np.testing.assert_array_equal(codec.decode_symbols(stream), np.concatenate([z_hat.ravel(), symbols.ravel()]))
    with pytest.raises(ConfigError):
        codec.refined(-1)
    from jaxcodec import zoo

    assert zoo.refined(codec, 2).refine_steps == 2


def test_hyper_latent_search_writes_fewer_bytes_that_decode_with_the_plain_codec(trained):
    """The hyper-latent search (y fixed) changes ẑ, writes fewer bytes than the plain encoder
    and keeps the stream an ordinary one: the plain codec decodes it, its symbols are
    ``round(y − μ(ẑ))`` under the searched ẑ, and the same call gives the same bytes. Under a
    memory budget that splits the search into windows it is still never worse than plain."""
    from jaxcodec import tiling

    _, _, codec, _ = trained
    image = _photo(192, 256)
    searched = codec.refined(0, hyper_steps=60)
    assert codec.refined(5).hyper_steps > 0 and codec.refined(0).hyper_steps == 0
    saved = []
    for q in (1.5, 7):
        plain, stream = codec.encode(image, q), searched.encode(image, q)
        assert stream == searched.encode(image, q)
        assert len(stream) <= len(plain)
        saved.append(len(plain) - len(stream))
        z_plain, _, _ = codec.latents(image, q)
        z_hat, symbols, _ = searched.latents(image, q)
        y = np.asarray(codec._gained(image, q))[0]
        mean, _ = codec.entropy_parameters(z_hat)
        np.testing.assert_array_equal(symbols, np.round(y.astype(np.float64) - mean).astype(np.int32))
        np.testing.assert_array_equal(codec.decode_symbols(stream), np.concatenate([z_hat.ravel(), symbols.ravel()]))
        assert codec.decode(stream).shape == image.shape
    assert max(saved) > 0.01 * len(plain)  # the search changed ẑ and paid for it at some quality
    with tiling.memory_budget(64 << 10):
        rows, cols = tiling.windows(3, 4, 48 * codec.latent_channels * 16, 3)
        assert len(rows) * len(cols) > 1
        assert len(searched.encode(image, 1.5)) <= len(codec.encode(image, 1.5))


def test_encoder_only_fine_tuning_keeps_the_decoder_and_lowers_the_coded_objective(trained):
    """``model.trainable="analysis"`` (Guo et al. 2021's second stage): g_a, the gains and h_a
    learn; the synthesis, h_s and the densities keep their exact values, so the coding tables
    are the same and the original codec decodes the new encoder's streams; on the crops it
    was fine-tuned on, the objective measured from the written bytes and the decoded pixels
    falls at every quality."""
    task, state, codec, _ = trained
    config = small_task().config
    config.model.trainable, config.learning_rate = "analysis", 3e-4
    tuned_task = hyperprior_task.MeanScaleTask(config)
    params = jax.device_get(state["params"])
    tuned = {"step": jnp.zeros((), jnp.int32), "params": params, "opt": tuned_task.tx.init(params)}
    photo = data.open_dataset("sample:photos", "test").native(1).astype(np.float32) / 255.0
    crops = np.stack([photo[y:y + 64, x:x + 64] for y, x in ((0, 0), (64, 128), (128, 64), (100, 200))])
    step = jax.jit(tuned_task.train_step)
    for i in range(20):
        tuned, _ = step(tuned, jnp.asarray(crops), jax.random.key(100 + i))
    new = jax.device_get(tuned["params"])["params"]
    for name, value in params["params"].items():
        same = [np.array_equal(a, b) for a, b in zip(jax.tree.leaves(value), jax.tree.leaves(new[name]))]
        assert all(same) == (name not in hyperprior_task.ENCODER_PARTS), name
    tables = tuned_task.finalize(tuned)
    for name, table in task.finalize(state).items():
        np.testing.assert_array_equal(tables[name], table)
    tuned_codec = tuned_task.make_codec(tuned, tables)
    images = [np.ascontiguousarray((crop * 255.0).round().astype(np.uint8)) for crop in crops]

    def measured(encoder, q):
        """Σ over the crops of λ·255²·MSE + bpp, the stream decoded by the original codec."""
        total = 0.0
        for image in images:
            stream = encoder.encode(image, q)
            decoded = codec.decode(stream).astype(np.float64) / 255.0
            mse = np.mean((decoded - image.astype(np.float64) / 255.0) ** 2)
            bpp = 8 * len(container.unpack(stream)[1]) / (image.shape[0] * image.shape[1])
            total += float(hyperprior_task.lambda_for_quality(q)) * 255.0**2 * mse + bpp
        return total

    for q in (2, 5, 8):
        before, after = measured(codec, q), measured(tuned_codec, q)
        assert after < 0.97 * before, (q, before, after)
    with pytest.raises(ConfigError, match="model.trainable must be one of all, analysis"):
        config.model.trainable = "decoder"
        hyperprior_task.MeanScaleTask(config)


def test_sga_quantizer_anneals_to_the_rounded_latents(trained):
    """``model.quantizer="sga"``: the temperature runs linearly from the first value of
    ``model.sga_temperature`` at step 0 to the second at the last step and stays there; at a
    temperature near 0 the training forward pass codes the rounded latents (its bits and MSE
    are the test-time ones), at the start it does not; an unknown quantiser is refused."""
    _, state, _, _ = trained
    config = small_task().config
    config.model.quantizer, config.model.sga_temperature, config.num_steps = "sga", (0.5, 1e-4), 101
    task = hyperprior_task.MeanScaleTask(config)
    np.testing.assert_allclose([float(task.temperature(t)) for t in (0, 50, 100, 500)],
                               [0.5, 0.25005, 1e-4, 1e-4], rtol=1e-5, atol=1e-7)
    x = jnp.asarray(_photo(64, 128).astype(np.float32) / 255.0)[None]
    quality = jnp.full((1,), 5.0)
    _, bits, mse = task.forward(state["params"], x, quality, None)
    _, cold_bits, cold_mse = task.forward(state["params"], x, quality, jax.random.key(3), 100)
    _, hot_bits, hot_mse = task.forward(state["params"], x, quality, jax.random.key(3), 0)
    np.testing.assert_allclose(float(cold_bits[0]), float(bits[0]), rtol=1e-3)
    np.testing.assert_allclose(float(cold_mse[0]), float(mse[0]), rtol=1e-3)
    assert abs(float(hot_bits[0]) - float(bits[0])) > 0.01 * float(bits[0])
    config.model.quantizer = "round"
    with pytest.raises(ConfigError, match="model.quantizer must be one of mixed, sga"):
        hyperprior_task.MeanScaleTask(config)


def test_quality_range_trains_one_rung_or_a_part_of_the_ladder():
    """``model.quality_range`` bounds the qualities training draws: with one value the loss
    is that rung's λ·255²·MSE + bpp, computed here from the forward pass directly."""
    task = small_task()
    task.config.model.quality_range = (3.0, 3.0)
    task = hyperprior_task.MeanScaleTask(task.config)
    x = jnp.asarray(_photo(64, 128).astype(np.float32) / 255.0)[None].repeat(2, axis=0)
    state = task.init_state(jax.random.key(0), x)
    loss, _ = task.loss_fn(state["params"], x, jax.random.key(5))
    _, noise_rng = jax.random.split(jax.random.key(5))
    _, bits, mse = task.forward(state["params"], x, jnp.full((2,), 3.0), noise_rng)
    expected = np.mean(0.0067 * 255.0**2 * np.asarray(mse) + np.asarray(bits) / (64 * 128))
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    for bad in ((0.5, 3.0), (4.0, 3.0), (1.0, 9.0)):
        task.config.model.quality_range = bad
        with pytest.raises(ConfigError, match="quality_range"):
            hyperprior_task.MeanScaleTask(task.config)


def test_rate_balance_weighs_each_image_by_a_power_of_its_lambda():
    """``model.rate_balance = β``: the objective is the mean of ``λ(q_i)^−β``-weighted image
    losses (weights over their batch mean), against the per-image losses computed here from
    the forward pass; the reported loss stays the plain mean, and one rung is unaffected."""
    from jaxcodec.models.hyperprior import LAMBDAS

    task = small_task()
    task.config.model.rate_balance = 0.6
    balanced = hyperprior_task.MeanScaleTask(task.config)
    x = jnp.asarray(np.stack([_photo(64, 64), _photo(64, 128)[:, 64:]]).astype(np.float32) / 255.0)
    params = balanced.init_state(jax.random.key(0), x)["params"]
    rng = jax.random.key(3)
    objective, metrics = balanced.loss_fn(params, x, rng)
    quality = np.asarray(jax.random.uniform(jax.random.split(rng)[0], (2,), jnp.float32, 1.0, 8.0))
    x_hat, bits, mse = balanced.forward(params, x, jnp.asarray(quality), jax.random.split(rng)[1])
    lam = np.exp(np.interp(quality, np.arange(1, 9), np.log(LAMBDAS)))
    per_image = lam * 255.0**2 * np.asarray(mse) + np.asarray(bits) / (64 * 64)
    weights = lam**-0.6 / np.mean(lam**-0.6)
    np.testing.assert_allclose(float(objective), np.mean(weights * per_image), rtol=1e-4)
    np.testing.assert_allclose(float(metrics["loss"]), np.mean(per_image), rtol=1e-4)
    assert abs(weights[0] - weights[1]) > 0.05  # two different qualities were drawn
    one = small_task()
    one.config.model.quality_range, one.config.model.rate_balance = (3.0, 3.0), 0.6
    rung = hyperprior_task.MeanScaleTask(one.config)
    np.testing.assert_allclose(np.asarray(rung.quality_weights(jnp.full((4,), 3.0))), 1.0, rtol=1e-6)
    with pytest.raises(ConfigError, match="rate_balance"):
        task.config.model.rate_balance = 1.5
        hyperprior_task.MeanScaleTask(task.config)


def test_quality_margin_trains_every_rung_alike():
    """Per rung, the expected interpolation weight ``1−l`` / ``l`` of the drawn qualities
    (computed here from the draws): under a plain uniform draw the two end rungs get half an
    inner rung's, with ``model.quality_margin=0.5`` all get the same; the draws stay in range."""

    def rung_weights(margin, count=200_000):
        task = small_task()
        task.config.model.quality_margin = margin
        q = np.asarray(hyperprior_task.MeanScaleTask(task.config).draw_qualities(jax.random.key(7), count), np.float64)
        assert q.min() >= 1.0 and q.max() <= 8.0
        low = np.minimum(np.floor(q - 1.0), 6).astype(int)
        frac = q - 1.0 - low
        weights = np.bincount(low, 1.0 - frac, minlength=8) + np.bincount(low + 1, frac, minlength=8)
        return weights / count

    plain, even = rung_weights(0.0), rung_weights(0.5)
    np.testing.assert_allclose(plain[1:7], 1 / 7, rtol=0.03)
    np.testing.assert_allclose(plain[[0, 7]], 0.5 / 7, rtol=0.03)
    np.testing.assert_allclose(even, 1 / 8, rtol=0.03)
    task = small_task()
    task.config.model.quality_range, task.config.model.quality_margin = (3.0, 3.0), 0.5
    single = hyperprior_task.MeanScaleTask(task.config)
    np.testing.assert_array_equal(np.asarray(single.draw_qualities(jax.random.key(1), 16)), 3.0)
    task.config.model.quality_margin = 1.5
    with pytest.raises(ConfigError, match="quality_margin"):
        hyperprior_task.MeanScaleTask(task.config)
