"""Large images in tiles (jaxcodec.tiling), the tiled ``.jxc`` stream of the factorized
codec, and what a decoder checks before it allocates (jaxcodec.limits), on the shipped
models (small images, with a memory budget small enough to force tiles)."""

import dataclasses
import io
import resource
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
import skimage.data
from PIL import Image

from jaxcodec import limits, tiling, zoo
from jaxcodec.codecs import container
from jaxcodec.entropy import coder as entropy
from jaxcodec import image as imageio
from jaxcodec.errors import BitstreamError, ConfigError, ImageError, JaxcodecError
from jaxcodec.codecs import factorized as factorized_codec
from jaxcodec.codecs import hyperprior as hyperprior_codec
from jaxcodec.entropy import gaussian_conditional, integer_net


@pytest.fixture(scope="module")
def codec():
    return zoo.get_codec("bmshj2017-factorized-q3")


@pytest.fixture(scope="module")
def comrec():
    return zoo.get_codec("comrec-photos")


def photo(height=300, width=451):
    return skimage.data.astronaut()[:height, :width]


def budget_for(codec, tile):
    """A memory budget whose windows hold ``tile`` latent positions plus the halos."""
    return int(codec.bytes_per_pixel * codec.downsampling**2 * (tile + 2 * codec.halo) ** 2)


# --------------------------------------------------------------------------- spans


@pytest.mark.parametrize("length, tile, halo", [(1, 1, 0), (7, 3, 2), (19, 6, 4), (100, 7, 3), (5, 9, 4),
                                                (64, 64, 4), (65, 64, 4), (250, 82, 4)])
def test_spans_cover_the_axis_with_balanced_tiles_and_windows_of_one_size(length, tile, halo):
    spans = tiling.spans(length, tile, halo)
    assert [s.start for s in spans] == [0] + [s.stop for s in spans[:-1]] and spans[-1].stop == length
    sizes = [s.stop - s.start for s in spans]
    assert max(sizes) <= tile and max(sizes) - min(sizes) <= 1 and len(spans) == -(-length // tile)
    assert len({s.window_stop - s.window_start for s in spans}) == 1
    for s in spans:
        assert 0 <= s.window_start and s.window_stop <= length
        # the window holds the tile and `halo` units on each side, where the axis goes on
        assert s.window_start <= max(s.start - halo, 0) and s.window_stop >= min(s.stop + halo, length)
        assert s.inner.stop - s.inner.start == s.stop - s.start


def test_tile_for_fits_the_budget_and_parse_bytes_reads_sizes():
    assert tiling.tile_for(100, 4, nbytes=100 * 48**2) == 40
    assert tiling.tile_for(100, 4, nbytes=10) == 1
    with tiling.memory_budget(100 * 30**2):
        assert tiling.tile_for(100, 5) == 20 and tiling.budget() == 90000
    assert tiling.budget() == tiling.DEFAULT_MAX_MEMORY
    assert tiling.parse_bytes("512M") == 512 << 20 and tiling.parse_bytes("1.5G") == 3 << 29
    assert tiling.parse_bytes("2GB") == tiling.parse_bytes("2GiB") == 2 << 30 and tiling.parse_bytes("4096") == 4096
    for bad in ("", "12X", "-1G", "0", "G"):
        with pytest.raises(ConfigError):
            tiling.parse_bytes(bad)


# --------------------------------------------------------------------------- tiled transforms


def test_tiled_transforms_give_the_whole_images_latent_and_pixels(codec):
    image = photo()
    whole = codec.latents(image)
    reference = codec.reconstruct(whole, 300, 451)
    with tiling.memory_budget(budget_for(codec, 6)):
        rows, cols = codec.windows(*whole.shape[:2])
        assert (len(rows), len(cols)) == (4, 5)
        tiled = codec.latents(image)
        pixels = codec.reconstruct(whole, 300, 451)
    assert np.count_nonzero(tiled != whole) <= 2, "symbols differ only by float rounding at a .5 boundary"
    diff = np.abs(pixels.astype(int) - reference)
    assert diff.max() <= 1 and np.count_nonzero(diff) / diff.size < 1e-3


def test_without_the_halo_the_tiles_show_seams(codec, monkeypatch):
    """The check above can fail: with no halo the tiles differ from the whole image."""
    image = photo()
    whole = codec.latents(image)
    reference = codec.reconstruct(whole, 300, 451).astype(int)
    monkeypatch.setattr(codec, "halo", 0)
    with tiling.memory_budget(budget_for(codec, 6)):
        assert np.count_nonzero(codec.latents(image) != whole) > 100
        assert np.abs(codec.reconstruct(whole, 300, 451) - reference).max() > 10


def test_grey_and_odd_sized_images_in_tiles_round_trip(codec):
    grey = photo(157, 203).mean(axis=2).round().astype(np.uint8)
    with tiling.memory_budget(budget_for(codec, 3)):
        data = codec.encode(grey, 3)
        decoded = codec.decode(data)
    assert decoded.shape == (157, 203, 1)
    untiled = codec.decode(codec.encode(grey, 3))
    assert np.abs(decoded.astype(int) - untiled).max() <= 1


def test_refinement_runs_window_by_window_and_its_stream_decodes(codec):
    """Latent refinement in windows (each window's latent refined against its own pixels,
    with a budget that leaves room for the gradient): the stream codes the refined symbols
    and decodes like any other."""
    image = photo(150, 200)
    refined = codec.refined(2)
    with tiling.memory_budget(budget_for(codec, 5) * factorized_codec.REFINE_MEMORY_FACTOR):
        assert [len(s) for s in refined.windows(10, 13, refine=True)] == [2, 3]
        data = refined.encode(image, 3)
        symbols = refined.latents(image)
    assert symbols.shape == (10, 13, codec.latent_channels)
    np.testing.assert_array_equal(codec.decode_symbols(data), symbols)
    assert codec.decode(data).shape == (150, 200, 3)


def test_comrec_tiles_give_the_whole_images_compact_image_and_pixels(comrec):
    image = photo(301, 451)
    whole = comrec.compact(image)
    reference = comrec.reconstruct(whole, 301, 451).astype(int)
    with tiling.memory_budget(4 * comrec.bytes_per_pixel * (40 + 2 * comrec.halo) ** 2):
        assert [len(s) for s in comrec.windows(*whole.shape[:2])] == [4, 6]
        np.testing.assert_array_equal(comrec.compact(image), whole)
        diff = np.abs(comrec.reconstruct(whole, 301, 451) - reference)
    assert diff.max() <= 1 and np.count_nonzero(diff) / diff.size < 1e-3
    comrec_halo = comrec.halo
    try:
        comrec.halo = 0
        with tiling.memory_budget(4 * comrec.bytes_per_pixel * 40**2):
            assert np.abs(comrec.reconstruct(whole, 301, 451) - reference).max() > 10
    finally:
        comrec.halo = comrec_halo


def _hyperprior_budget(codec, tile, refine=False):
    factor = factorized_codec.REFINE_MEMORY_FACTOR if refine else 1
    return int(factor * codec.bytes_per_pixel * codec.latent_step**2 * (tile + 2 * codec.halo) ** 2)


@pytest.fixture(scope="module")
def hyperprior():
    return zoo.get_codec("mbt2018-mean")


def test_hyperprior_tiles_give_the_whole_images_latent_and_pixels(hyperprior):
    """The mean-scale hyperprior's ``g_a`` and ``g_s`` in windows: the same ẑ and symbols as
    the whole image (up to a rare .5 boundary), pixels within ±1; without the halo, seams."""
    image = photo(300, 451)
    z_whole, symbols_whole, indexes_whole = hyperprior.latents(image, 3.5)
    y_hat = (symbols_whole + hyperprior.entropy_parameters(z_whole)[0]).astype(np.float32)
    reference = hyperprior.reconstruct(y_hat, 3.5, 300, 451).astype(int)
    with tiling.memory_budget(_hyperprior_budget(hyperprior, 6)):
        assert [len(s) for s in hyperprior.windows(*symbols_whole.shape[:2])] == [4, 6]  # a 20x32 latent
        z_tiled, symbols_tiled, _ = hyperprior.latents(image, 3.5)
        pixels = hyperprior.reconstruct(y_hat, 3.5, 300, 451)
    assert np.count_nonzero(z_tiled != z_whole) <= 2 and np.count_nonzero(symbols_tiled != symbols_whole) <= 4
    diff = np.abs(pixels.astype(int) - reference)
    assert diff.max() <= 1 and np.count_nonzero(diff) / diff.size < 1e-3
    halo = hyperprior.halo
    try:
        hyperprior.halo = 0
        with tiling.memory_budget(_hyperprior_budget(hyperprior, 6)):
            assert np.count_nonzero(hyperprior.latents(image, 3.5)[1] != symbols_whole) > 100
            assert np.abs(hyperprior.reconstruct(y_hat, 3.5, 300, 451) - reference).max() > 10
    finally:
        hyperprior.halo = halo


def test_hyperprior_streams_coded_in_tiles_decode_whole_and_refine_by_window(hyperprior):
    """A grey, odd-sized image coded and decoded in windows decodes like the untiled one
    (±1); refinement in windows writes an ordinary stream the plain codec decodes."""
    grey = photo(157, 203).mean(axis=2).round().astype(np.uint8)
    untiled = hyperprior.decode(hyperprior.encode(grey, 2))
    with tiling.memory_budget(_hyperprior_budget(hyperprior, 3)):
        data = hyperprior.encode(grey, 2)
        decoded = hyperprior.decode(data)
    assert decoded.shape == (157, 203, 1) and np.abs(decoded.astype(int) - untiled).max() <= 1
    image = photo(150, 200)
    refined = hyperprior.refined(2)
    with tiling.memory_budget(_hyperprior_budget(hyperprior, 5, refine=True)):
        assert [len(s) for s in refined.windows(12, 16, refine=True)] == [3, 4]  # a 12x16 latent
        data = refined.encode(image, 4)
        z_hat, symbols, _ = refined.latents(image, 4)  # ẑ searched first (the whole hyper-latent fits)
    _, plain, _ = hyperprior.latents(image, 4)
    assert symbols.shape == plain.shape == (12, 16, hyperprior.latent_channels)
    assert np.count_nonzero(symbols != plain) > 0  # refinement moved some symbols
    np.testing.assert_array_equal(hyperprior.decode_symbols(data), np.concatenate([z_hat.reshape(-1), symbols.reshape(-1)]))
    assert hyperprior.decode(data).shape == (150, 200, 3)


def read_parts(payload: bytes, pos: int, count: int) -> list[bytes]:
    """The ``count`` parts of a tiled payload from ``pos`` on, read back by hand: each but the
    last after its u32 length, the last to the end."""
    parts = []
    for i in range(count):
        if i < count - 1:
            (size,) = struct.unpack_from("<I", payload, pos)
            pos += 4
        else:
            size = len(payload) - pos
        parts.append(payload[pos : pos + size])
        pos += size
    assert pos == len(payload)
    return parts


def test_entropy_parameters_of_a_window_are_the_whole_networks(hyperprior, monkeypatch):
    """The integer hyper-synthesis on the hyper-latents under a window and its reach gives
    exactly the whole latent's values there, for windows anywhere (borders included);
    with one position less of reach, windows inside the latent differ."""
    z_hat = hyperprior.latents(photo(300, 451), 3.5)[0]
    mean, indexes = hyperprior.entropy_parameters(z_hat)
    assert mean.shape == (20, 32, hyperprior.latent_channels)
    assert integer_net.reach(hyperprior.layers) == 2 and integer_net.upsampling(hyperprior.layers) == 4
    rng = np.random.default_rng(0)
    windows = [(slice(0, 20), slice(0, 32)), (slice(3, 5), slice(30, 32)), (slice(8, 16), slice(0, 9))]
    for _ in range(12):
        r0, c0 = int(rng.integers(0, 19)), int(rng.integers(0, 31))
        windows.append((slice(r0, int(rng.integers(r0 + 1, 21))), slice(c0, int(rng.integers(c0 + 1, 33)))))
    for rows, cols in windows:
        window_mean, window_indexes = hyperprior.entropy_parameters(z_hat, rows, cols)
        np.testing.assert_array_equal(window_mean, mean[rows, cols])
        np.testing.assert_array_equal(window_indexes, indexes[rows, cols])
    monkeypatch.setattr(integer_net, "reach", lambda layers: 1)
    assert not np.array_equal(hyperprior.entropy_parameters(z_hat, slice(8, 12), slice(12, 20))[0], mean[8:12, 12:20])


def test_hyperprior_stream_codes_tiles_with_lengths_guards_and_a_content_check(hyperprior, monkeypatch):
    """Tiles of 8 latent positions (instead of 64) on a 300x451 photo: the payload layout of
    the module docstring, read back with entropy parameters of the whole latent; the same
    symbols and pixels as one tile."""
    image = photo()
    whole = hyperprior.encode(image, 3.5)
    monkeypatch.setattr(hyperprior_codec, "STREAM_TILE", 8)
    monkeypatch.setattr(hyperprior_codec, "PARAMETER_BLOCK", 3)  # blocks of 3 and 1 tiles per row of 4
    data = hyperprior.encode(image, 3.5)
    header, payload = container.unpack(data)
    assert header.tile == 8 and header.latent_shape == (20, 32, hyperprior.latent_channels)
    assert container.unpack(whole)[0].tile == 64
    z_hat, symbols, _ = hyperprior.latents(image, 3.5)
    out = integer_net.run(hyperprior.layers, z_hat)  # the whole latent's parameters
    indexes = gaussian_conditional.scale_indexes(out[..., hyperprior.latent_channels:], integer_net.OUTPUT_BITS)
    digest = container.content_digest(header)
    (size,) = struct.unpack_from("<I", payload, 0)
    n = hyperprior.hyper_channels
    ids = np.append(np.tile(np.arange(n), z_hat.shape[0] * z_hat.shape[1]), n)
    values = entropy.decode_symbols(payload[4 : 4 + size], ids, *hyperprior.guarded_z_tables)
    np.testing.assert_array_equal(values, np.append(z_hat.reshape(-1), entropy.GUARD_VALUE))
    digest.update(z_hat.astype("<i4").tobytes())
    tiles = [(y, x) for y in range(0, 20, 8) for x in range(0, 32, 8)]
    for (y, x), chunk in zip(tiles, read_parts(payload, 4 + size, len(tiles))):
        tile, tile_indexes = symbols[y : y + 8, x : x + 8], indexes[y : y + 8, x : x + 8]
        ids = np.append(tile_indexes.reshape(-1), gaussian_conditional.NUM_SCALES)
        values = entropy.decode_symbols(chunk, ids, *hyperprior.guarded_y_tables)
        np.testing.assert_array_equal(values, np.append(tile.reshape(-1), entropy.GUARD_VALUE))
        digest.update(tile.astype("<i4").tobytes())
    assert digest.digest() == header.check  # every byte read: read_parts
    np.testing.assert_array_equal(hyperprior.decode_symbols(data), hyperprior.decode_symbols(whole))
    np.testing.assert_array_equal(hyperprior.decode(data), hyperprior.decode(whole))
    assert hyperprior.check_stream(data) == header


def test_hyperprior_streams_of_the_earlier_layout_decode_as_before(hyperprior):
    """The whole latent in one payload without guards (header tile 0), with and without the
    content check: what the encoder wrote before tiled streams (as tests/vectors holds)."""
    image = photo(75, 118)
    z_hat, symbols, indexes = hyperprior.latents(image, 2)
    header, _ = container.unpack(hyperprior.encode(image, 2))
    n = hyperprior.hyper_channels
    z_bytes = entropy.encode_symbols(z_hat.reshape(-1), np.tile(np.arange(n), z_hat.shape[0] * z_hat.shape[1]),
                                     hyperprior.z_freqs, hyperprior.z_offsets)
    y_bytes = entropy.encode_symbols(symbols.reshape(-1), indexes.reshape(-1), hyperprior.y_freqs, hyperprior.y_offsets)
    payload = struct.pack("<I", len(z_bytes)) + z_bytes + y_bytes
    earlier = dataclasses.replace(header, tile=0)
    expected = hyperprior.decode(hyperprior.encode(image, 2))
    for check in (container.content_check(earlier, z_hat, symbols), b""):
        data = container.pack(dataclasses.replace(earlier, check=check), payload)
        np.testing.assert_array_equal(hyperprior.decode_symbols(data), np.concatenate([z_hat.ravel(), symbols.ravel()]))
        np.testing.assert_array_equal(hyperprior.decode(data), expected)
    edited = container.pack(dataclasses.replace(earlier, check=container.content_check(earlier, z_hat, symbols + 1)),
                            payload)
    with pytest.raises(BitstreamError, match="content check failed"):
        hyperprior.decode(edited)


def hyperprior_forged(codec, height, width, tile, payload=bytes(range(136))):
    """A mean-scale hyperprior stream whose CRC is right but whose header claims ``height`` x ``width``."""
    d = codec.downsampling
    header = container.Header(model=codec.name, table_hash=codec.table_hash, height=height, width=width, channels=3,
                              latent_shape=(4 * -(-height // d), 4 * -(-width // d), codec.latent_channels),
                              quality=3000, tile=tile, check=b"abcd")
    return container.pack(header, payload)


@pytest.mark.parametrize("tile", [0, 64])
@pytest.mark.parametrize("height, width, z_part, message", [
    (23168, 23168, "short", "more than the limit"),
    (16000, 8000, "short", "the hyper-latent: the header declares 2000000"),  # too short for its ẑ
    (16000, 8000, "enough", "the payload: the header declares"),  # ẑ's part long enough, the latent's not
])
def test_hyperprior_forged_headers_are_refused_before_anything_is_allocated(hyperprior, tile, height, width, z_part,
                                                                            message):
    """A few hundred bytes claiming a large image: refused from the header and the payload's
    length, in well under a second and without memory the size of the image (before tiled
    streams such a stream took 90 s and 3.7 GB to be refused)."""
    from jaxcodec import api

    z_count = -(-height // hyperprior.downsampling) * -(-width // hyperprior.downsampling)
    z_need = limits.min_payload_bits(limits.symbol_costs(hyperprior.z_freqs), np.full(hyperprior.hyper_channels, z_count)) / 8
    z_bytes = 100 if z_part == "short" else int(z_need) + 1000
    payload = struct.pack("<I", z_bytes) + bytes(z_bytes) + bytes(range(136))
    data = hyperprior_forged(hyperprior, height, width, tile, payload)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    for call in (hyperprior.decode, hyperprior.decode_symbols, hyperprior.check_stream, zoo.decode_stream, api.info):
        with pytest.raises(BitstreamError, match=message):
            call(data)
    assert time.perf_counter() - started < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KB


def test_hyperprior_tile_lengths_and_sizes_are_checked_before_decoding(hyperprior, monkeypatch):
    """Lengths that overrun the payload, too few bytes for the tiles' lengths, and a tile
    too short for the symbols its scale indexes call for (known once ẑ is decoded: checked
    before the tile is)."""
    monkeypatch.setattr(hyperprior_codec, "STREAM_TILE", 8)
    data = hyperprior.encode(photo(), 3.5)
    header, payload = container.unpack(data)
    (z_size,) = struct.unpack_from("<I", payload, 0)
    head, tiles = payload[: 4 + z_size], payload[4 + z_size :]
    (first,) = struct.unpack_from("<I", tiles, 0)
    overrun = head + struct.pack("<I", len(tiles)) + tiles[4:]
    with pytest.raises(BitstreamError, match="truncated payload: tile 1 of 12"):
        hyperprior.decode(container.pack(header, overrun))
    with pytest.raises(BitstreamError, match="tiles need"):
        hyperprior.decode(container.pack(dataclasses.replace(header, tile=1), head + tiles[:2000]))
    short = head + struct.pack("<I", 2) + tiles[4:6] + tiles[4 + first :]  # tile 1 keeps 2 of its bytes
    with pytest.raises(BitstreamError, match="tile 1 of 12: the header declares"):
        hyperprior.decode(container.pack(header, short))
    with pytest.raises(BitstreamError, match="truncated payload"):
        hyperprior.decode(container.pack(header, struct.pack("<I", len(payload)) + payload[4:]))


# --------------------------------------------------------------------------- the tiled stream


def test_stream_codes_tiles_with_lengths_guards_and_a_content_check(codec, monkeypatch):
    """Tiles of 4 latent positions (instead of 64) on a 300x451 photo: the payload layout
    of the module docstring, read back independently."""
    monkeypatch.setattr(factorized_codec, "STREAM_TILE", 4)
    image = photo()
    data = codec.encode(image, 3)
    header, payload = container.unpack(data)
    assert data[3] == 3 and header.tile == 4 and header.latent_shape == (19, 29, codec.latent_channels)
    symbols = codec.latents(image)
    digest = container.content_digest(header)
    tiles = [(y, x) for y in range(0, 19, 4) for x in range(0, 29, 4)]
    for (y, x), chunk in zip(tiles, read_parts(payload, 0, len(tiles))):
        tile = symbols[y : y + 4, x : x + 4]
        ids = np.append(np.tile(np.arange(codec.latent_channels), tile.shape[0] * tile.shape[1]), codec.latent_channels)
        values = entropy.decode_symbols(chunk, ids, *codec.guarded_tables)
        np.testing.assert_array_equal(values, np.append(tile.reshape(-1), factorized_codec.GUARD_VALUE))
        digest.update(tile.astype("<i4").tobytes())
    assert digest.digest() == header.check  # every byte read: read_parts
    np.testing.assert_array_equal(codec.decode_symbols(data), symbols)
    assert np.abs(codec.decode(data).astype(int) - codec.reconstruct(symbols, 300, 451)).max() == 0


def test_version_1_streams_decode_as_before(codec):
    """An untiled payload without guard or check (what the encoder wrote before tiling)."""
    image = photo(75, 118)
    symbols = codec.latents(image)
    h, w, m = symbols.shape
    header = container.Header(model="factorized", table_hash=codec.table_hash, height=75, width=118, channels=3,
                              latent_shape=(h, w, m), quality=3, layout=1)
    payload = entropy.encode_symbols(symbols.reshape(-1), np.tile(np.arange(m), h * w), codec.freqs, codec.offsets)
    old = container.pack(header, payload)
    assert old[3] == 1
    np.testing.assert_array_equal(codec.decode_symbols(old), symbols)
    np.testing.assert_array_equal(codec.decode(old), codec.reconstruct(symbols, 75, 118))


def _with_crc(data: bytes) -> bytes:
    """``data`` with its CRC-32 recomputed, as a tool that edits streams would."""
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


def test_edits_with_the_crc_recomputed_are_caught_by_the_content_check(codec, monkeypatch):
    monkeypatch.setattr(factorized_codec, "STREAM_TILE", 8)
    data = codec.encode(photo(), 3)
    header, payload = container.unpack(data)
    start = len(data) - 4 - len(payload)
    silent = 0
    for position in range(start, len(data) - 4, 7):  # payload bytes, every seventh
        edited = bytearray(data)
        edited[position] ^= 0x04
        try:
            codec.decode(_with_crc(bytes(edited)))
            silent += 1
        except BitstreamError:
            pass
    assert silent == 0
    cropped = container.pack(dataclasses.replace(header, height=header.height - 3), payload)
    with pytest.raises(BitstreamError, match="content check failed"):
        codec.decode(cropped)  # the same latent shape: only the check sees the new height
    v1 = container.pack(dataclasses.replace(header, height=header.height - 3, check=b"", tile=0), payload)
    with pytest.raises(BitstreamError):
        codec.decode(v1)


# --------------------------------------------------------------------------- limits


def test_symbol_costs_are_what_the_coder_spends_on_the_cheapest_symbols(codec):
    """n copies of each channel's likeliest symbol take n * Σ cost bits (to 0.1%), never
    fewer than the bound; the same with any other symbols mixed in."""
    costs = limits.symbol_costs(codec.freqs)
    assert costs.shape == (codec.latent_channels,) and np.all(costs > 0)
    best = codec.offsets + np.argmax(codec.freqs, axis=1)
    m = codec.latent_channels
    for n in (1, 30, 3000):
        bits = 8 * len(entropy.encode_symbols(np.tile(best, n), np.tile(np.arange(m), n), codec.freqs, codec.offsets))
        bound = limits.min_payload_bits(costs, np.full(m, n))
        assert bits >= bound
        if n == 3000:
            assert bits == pytest.approx(n * costs.sum(), rel=1e-3)
    rng = np.random.default_rng(0)
    symbols = codec.latents(photo()).reshape(-1)
    ids = np.tile(np.arange(m), symbols.size // m)
    mixed = np.where(rng.random(symbols.size) < 0.5, symbols, best[ids])
    assert 8 * len(entropy.encode_symbols(mixed, ids, codec.freqs, codec.offsets)) >= limits.min_payload_bits(
        costs, np.full(m, symbols.size // m))


def forged(codec, height, width, version=2, payload=bytes(range(136))):
    """A stream whose CRC is right but whose header claims a ``height`` x ``width`` image."""
    d = codec.downsampling
    header = container.Header(model="factorized", table_hash=codec.table_hash, height=height, width=width,
                              channels=3, latent_shape=(-(-height // d), -(-width // d), codec.latent_channels),
                              quality=3)
    if version == 2:
        header = dataclasses.replace(header, tile=factorized_codec.STREAM_TILE, check=b"abcd")
    return container.pack(header, payload)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("height, width, message", [(23168, 23168, "more than the limit"),
                                                    (16000, 8000, "need at least")])
def test_forged_headers_are_refused_before_anything_is_allocated(codec, version, height, width, message):
    data = forged(codec, height, width, version)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    for call in (codec.decode, codec.decode_symbols, codec.check_stream, lambda d: zoo.decode_stream(d)):
        with pytest.raises(BitstreamError, match=message):
            call(data)
    assert time.perf_counter() - started < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KB


def test_tile_lengths_are_checked_before_decoding(codec, monkeypatch):
    monkeypatch.setattr(factorized_codec, "STREAM_TILE", 4)
    data = codec.encode(photo(), 3)
    header, payload = container.unpack(data)
    long = struct.pack("<I", len(payload)) + payload[4:]
    with pytest.raises(BitstreamError, match="truncated payload: tile 1 of 40"):
        codec.decode(container.pack(header, long))
    with pytest.raises(BitstreamError, match="tiles need"):
        codec.decode(container.pack(dataclasses.replace(header, tile=1), payload[:2000]))
    short = struct.pack("<I", 0) + payload[4:]  # the first tile claims no bytes at all
    with pytest.raises(BitstreamError, match="tile 1 of 40: the header declares"):
        codec.decode(container.pack(header, short))
    assert codec.check_stream(data) == header


def test_pixel_limit_applies_to_streams_and_image_files(codec, tmp_path):
    data = codec.encode(photo(40, 50), 3)
    with limits.pixel_limit(1999):
        with pytest.raises(BitstreamError, match="declares 50x40 pixels"):
            codec.decode(data)
        with pytest.raises(ImageError, match=r"cannot read image x\.png: the file declares 50x40 pixels"):
            imageio.decode_image(_png(photo(40, 50)), name="x.png")
    with limits.pixel_limit(2000):
        assert codec.decode(data).shape == (40, 50, 3)
        assert imageio.decode_image(_png(photo(40, 50))).shape == (40, 50, 3)
    with pytest.raises(JaxcodecError):
        with limits.pixel_limit(0):
            pass


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` RGB pixels and holds none."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(
        b"IEND", b"")


def test_a_bomb_is_refused_from_its_header_and_non_images_name_the_file(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(13000, 13000))
    started = time.perf_counter()
    with pytest.raises(ImageError, match="13000x13000 pixels .169.0 megapixels., more than the limit of 134.2"):
        imageio.read_image_raw(path)
    assert time.perf_counter() - started < 1.0
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageError) as info:
        imageio.read_image_raw(tmp_path / "notes.png")
    assert str(tmp_path / "notes.png") in str(info.value) and "BytesIO" not in str(info.value)
    with pytest.raises(ImageError, match="not an image file"):
        imageio.decode_image(b"\x00" * 100, name="upload")


# --------------------------------------------------------------------------- bounded memory


def test_a_large_image_compresses_and_decompresses_in_bounded_memory(tmp_path):
    """A 2048x2048 photo through the CLI (the default model, mbt2018-mean) with --max-memory
    128M: peak resident memory stays far below the untiled run's (measured: 0.45 GB to
    compress and 0.47 GB to decompress, against 1.26 GB and 1.50 GB in one window), and the
    decoded image is the photo's reconstruction."""
    photo_file, stream, decoded = tmp_path / "big.png", tmp_path / "big.jxc", tmp_path / "big-decoded.png"
    tiles = skimage.data.astronaut()[:512, :512]
    Image.fromarray(np.tile(tiles, (4, 4, 1))).save(photo_file)
    # VmHWM: this process's own peak (ru_maxrss would include the parent's size at fork).
    script = ("import sys; from jaxcodec.cli import run; status = run(sys.argv[1:]); "
              "print([int(l.split()[1]) // 1024 for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); "
              "sys.exit(status)")
    peaks = []
    for args in (["compress", photo_file, stream], ["decompress", stream, decoded]):
        result = subprocess.run([sys.executable, "-c", script, *map(str, args), "--max-memory", "128M"],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        peaks.append(int(result.stdout.strip().splitlines()[-1]))
    assert max(peaks) < 900, peaks  # MB
    with Image.open(decoded) as image:
        out = np.asarray(image)
    assert out.shape == (2048, 2048, 3)
    assert np.mean(np.abs(out.astype(int) - np.tile(tiles, (4, 4, 1)))) < 12
