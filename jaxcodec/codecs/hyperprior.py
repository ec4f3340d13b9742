"""The ``.jxc`` codec of the mean-scale hyperprior (:mod:`jaxcodec.models.hyperprior`).

Encoding (Minnen, Ballé & Toderici 2018, Fig. 2, without the context model): pad the
image to a multiple of 64 (edge replication); ``y = g_a(x)·m(q)``; ``ẑ = round(h_a(y))``,
coded per channel with the deep factorized density's integer tables; the entropy
parameters ``(μ, σ)`` from ``ẑ`` by the **integer** hyper-synthesis
(:mod:`jaxcodec.entropy.integer_net`), so the decoder derives exactly the encoder's; symbols
``round(y − μ)``, each coded with the Gaussian table of its scale index
(:mod:`jaxcodec.entropy.gaussian_conditional`). Decoding reverses it and runs
``g_s((s + μ)·m'(q))``. The float networks run as the jitted programs of
:mod:`jaxcodec.codecs.hyperprior_programs`, shared by every codec of one architecture.

The stream codes the latent in square tiles of :data:`STREAM_TILE` = 64 latent positions
(1024 × 1024 pixels; the header's tile field holds the side), as the factorized codec's
(:mod:`jaxcodec.codecs.factorized`), so neither coder nor decoder ever holds the entropy
parameters of more than a block of tiles. Payload: the hyper-latent's bytes (``ẑ`` in C
order, each value with its channel's table, then a guard symbol) prefixed by their length
(u32, little-endian); then the latent's tiles in raster order, each coded on its own (its
symbols in C order, each with the table of its scale index, then a guard), each but the last
prefixed by its length (u32). The **guard** is the value 1 under an extra table whose every
other symbol has frequency 1, as in the factorized stream: it moves the coder's state off 0,
so a payload is never shorter than its symbols' cheapest cost (:mod:`jaxcodec.limits`). The
entropy parameters of a tile come from the hyper-latents under it and the integer network's
reach around them (:func:`jaxcodec.entropy.integer_net.run_window`: exactly the whole
network's values), computed for a block of at most :data:`PARAMETER_BLOCK` tiles of one
row at a time.

Before it allocates anything the size of the image, the decoder checks the declared size
against :func:`jaxcodec.limits.max_pixels`, the tile lengths against the payload, the
hyper-latent's bytes against the fewest its symbols can take, and every tile's bytes
against the fewest the cheapest of all tables allows; once a tile's scale indexes are
known, against the fewest *those* tables allow, before the tile is decoded. So a forged
header that claims a large image is refused for the price of its own bytes. The header's
content check (:func:`jaxcodec.codecs.container.content_digest`) covers the header, ``ẑ``
and every tile's symbols (little-endian int32, in coding order), and is verified before
``g_s`` runs, so an edited payload whose CRC was recomputed is an error, not another image.
Streams of the earlier layout (the whole latent as one payload without guards: header tile
0; the first of them without a content check either) decode as before. The header's quality
is ``round(1000·q)``: any real quality in ``[1, 8]`` to a thousandth (gain units interpolate
between the trained rungs).

Encoder-side refinement (:meth:`MeanScaleCodec.refined`, ``mbt2018-mean+refine``) searches
both latents by SGA (Yang, Bamler & Mandt 2020), one after the other. First the hyper-latent,
with ``y`` fixed, for the stream's code length ``bits(ẑ) + bits(round(y − μ) | σ_k)``
(:mod:`jaxcodec.codecs.hyper_refinement`; kept only if the real code length falls); then, with
that ``ẑ`` and so ``(μ, scale index)`` fixed, the symbols ``s``
(:mod:`jaxcodec.codecs.refinement`) to lower ``λ(q)·255²·MSE(g_s((s + μ)·m'(q)), x) + bits(s | σ_k)``,
where ``σ_k`` is the table scale each element is coded with. The stream is an ordinary one.

Large images are transformed in tiles (:mod:`jaxcodec.tiling`), as the factorized codec's:
``g_a`` (and refinement) and ``g_s`` run in windows with a halo of :attr:`MeanScaleCodec.halo`
latent positions, within the memory budget (``--max-memory``); the gains are per channel,
so they apply to the whole latent. The hyper-analysis sees the whole latent, 16² times
smaller than the image; the integer hyper-synthesis and the entropy coder see a block of
tiles at a time (above). An image that fits one window is transformed exactly as without
tiling.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec import limits, tiling
from jaxcodec.codecs import container, hyper_refinement, refinement
from jaxcodec.codecs.factorized import BYTES_PER_PIXEL_PER_FEATURE, REFINE_MEMORY_FACTOR
from jaxcodec.codecs.hyperprior_programs import programs
from jaxcodec.entropy import coder as entropy
from jaxcodec.entropy import gaussian_conditional
from jaxcodec.entropy import integer_net
from jaxcodec.codecs.protocol import check_image
from jaxcodec.errors import BitstreamError, ConfigError, ModelError
from jaxcodec.models.factorized import AnalysisTransform
from jaxcodec.models.hyperprior import lambda_for_quality

QUALITY_STEP = 1000  # header quality = round(QUALITY_STEP * q)
#: Side of the square tiles a stream codes the latent in, in latent positions (module docstring).
STREAM_TILE = 64
#: Tiles of one row whose entropy parameters the integer network computes in one pass.
PARAMETER_BLOCK = 8
GUARD_VALUE = entropy.GUARD_VALUE  # the guard symbol closing the hyper-latent and every coded tile


def check_quality(quality: Any, top: int = 8) -> float:
    """A real quality in ``[1, top]``, rounded to the stream's thousandths."""
    try:
        q = float(quality)
    except (TypeError, ValueError):
        q = math.nan
    if not 1.0 <= q <= float(top):
        raise ConfigError(f"quality must be a number in 1..{top}, got {quality!r}")
    return round(q * QUALITY_STEP) / QUALITY_STEP


class MeanScaleCodec:
    """Real bytes from a trained mean-scale hyperprior, at any quality in ``[1, 8]``."""

    def __init__(self, task: Any, params: Any, tables: dict[str, np.ndarray]):
        try:
            self.z_freqs = np.asarray(tables["z_freqs"], np.int32)
            self.z_offsets = np.asarray(tables["z_offsets"], np.int32)
            self.y_freqs = np.asarray(tables["y_freqs"], np.int32)
            self.y_offsets = np.asarray(tables["y_offsets"], np.int32)
        except (KeyError, TypeError):
            raise ModelError(f"{task.name}: codec tables need z_freqs, z_offsets, y_freqs and y_offsets") from None
        self.name = task.name
        self.task = task  # the task that built it: its forward pass is the float model's rate term
        self.model = task.model
        self.features = task.model.features
        self.hyper_channels = task.model.hyper_channels
        self.latent_channels = task.model.latent_channels
        if self.z_freqs.shape[0] != self.hyper_channels or self.y_freqs.shape[0] != gaussian_conditional.NUM_SCALES:
            raise ModelError(f"{self.name}: tables do not fit {self.hyper_channels} hyper-latent channels and "
                             f"{gaussian_conditional.NUM_SCALES} scales")
        self.params = jax.device_get(params)
        self.layers = integer_net.quantize_hyper_synthesis(self.params["params"]["h_s"])
        self.upsampling = integer_net.upsampling(self.layers)  # latent positions per hyper-latent position
        self.rungs = len(task.model.lambdas)  # the trained rungs; any real quality between them
        self.qualities = list(range(1, self.rungs + 1))
        self.quality_range = (1.0, float(self.rungs))
        self.downsampling = task.downsampling
        self.latent_step = 16  # pixels per latent position (g_a's four stride-2 convolutions)
        self.halo = tiling.halo(AnalysisTransform.kernel_sizes, self.latent_step)
        self.bytes_per_pixel = BYTES_PER_PIXEL_PER_FEATURE * int(self.features)
        hyper = "" if self.hyper_channels == self.features else f", hyper-latent {self.hyper_channels}"
        self.description = (f"Minnen 2018 mean-scale hyperprior, continuous rate (N={self.features}, "
                            f"M={self.latent_channels}{hyper}, qualities 1-{self.rungs})")
        if min(self.z_freqs.shape[1], self.y_freqs.shape[1]) < 3:
            raise ModelError(f"{self.name}: tables of fewer than 3 symbols leave no room for the guard")
        self.guarded_z_tables = entropy.guarded_tables(self.z_freqs, self.z_offsets)
        self.guarded_y_tables = entropy.guarded_tables(self.y_freqs, self.y_offsets)
        self._z_costs = limits.symbol_costs(self.z_freqs)  # bits of each table's cheapest symbol
        self._y_costs = limits.symbol_costs(self.y_freqs)
        integer_arrays = [a for layer in self.layers for a in (layer.kernel, layer.bias, layer.shift)]
        self.table_hash = entropy.table_hash(self.z_freqs, self.z_offsets, self.y_freqs, self.y_offsets,
                                             *integer_arrays)
        self.programs = programs(task.model)
        self.refine_steps = 0
        self.refine_lr = refinement.check_lr(task.config.model.get("refine_lr", refinement.DEFAULT_LR))
        self.hyper_steps = 0

    def refined(self, steps: int = refinement.DEFAULT_STEPS, lr: float | None = None,
                hyper_steps: int | None = None) -> "MeanScaleCodec":
        """The same codec whose encoder searches each image's hyper-latent with ``hyper_steps``
        SGA steps (default :data:`jaxcodec.codecs.hyper_refinement.DEFAULT_STEPS` when
        ``steps`` > 0, else 0), then refines its symbols with ``steps`` SGA steps of size ``lr``
        (module docstring); its streams decode with any copy of the model."""
        other = refinement.refined_copy(self, steps, lr, self.refine_lr)
        if hyper_steps is None:
            hyper_steps = hyper_refinement.DEFAULT_STEPS if other.refine_steps else 0
        other.hyper_steps = refinement.check_steps(hyper_steps)
        return other

    # -- pieces ---------------------------------------------------------------------------
    def _check_image(self, image: np.ndarray) -> np.ndarray:
        """``uint8 (H, W, C)``, C = 1 or 3 (a 2-D image is grey): :func:`jaxcodec.codecs.protocol.check_image`."""
        image = np.asarray(image)
        return check_image(image[:, :, None] if image.ndim == 2 else image)

    def padded(self, image: np.ndarray) -> np.ndarray:
        """Float32 ``(1, H', W', 3)`` in ``[0, 1]``: RGB (grey replicated), edge-padded to multiples of 64."""
        image = self._check_image(image)
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        h, w = image.shape[:2]
        d = self.downsampling
        return (np.pad(image, ((0, -h % d), (0, -w % d), (0, 0)), mode="edge").astype(np.float32) / 255.0)[None]

    def entropy_parameters(self, z_hat: np.ndarray, rows: slice = slice(None),
                           cols: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """``(μ as float64, scale index as int32)`` of the latent elements at ``rows × cols``
        (latent positions; the whole latent by default), from integer hyper-latents
        ``(h, w, N)`` by the integer network: the same on every machine, and the same for a
        window as for the whole latent (:func:`jaxcodec.entropy.integer_net.run_window`)."""
        out = integer_net.run_window(self.layers, z_hat, rows, cols)
        m = self.latent_channels
        mean = out[..., :m].astype(np.float64) / (1 << integer_net.OUTPUT_BITS)
        return mean, gaussian_conditional.scale_indexes(out[..., m:], integer_net.OUTPUT_BITS)

    def _tile_parameters(self, z_hat: np.ndarray, tile: int):
        """``(rows, cols, μ, scale indexes)`` of each coded tile of side ``tile`` (0: one
        tile) of the latent under ``z_hat``, in coding order; computed for a block of at most
        :data:`PARAMETER_BLOCK` tiles of one row at a time."""
        f = self.upsampling
        h, w = f * z_hat.shape[0], f * z_hat.shape[1]
        tiles = tiling.stream_tiles(h, w, tile)
        per_row = -(-w // (tile or max(h, w)))
        for first in range(0, len(tiles), per_row):
            row = tiles[first : first + per_row]
            for b in range(0, len(row), PARAMETER_BLOCK):
                block = row[b : b + PARAMETER_BLOCK]
                cols = slice(block[0][1].start, block[-1][1].stop)
                mean, indexes = self.entropy_parameters(z_hat, block[0][0], cols)
                for rows_t, cols_t in block:
                    part = slice(cols_t.start - cols.start, cols_t.stop - cols.start)
                    yield rows_t, cols_t, mean[:, part], indexes[:, part]

    def _z_ids(self, count: int) -> np.ndarray:
        return np.tile(np.arange(self.hyper_channels, dtype=np.int32), count)

    def windows(self, h: int, w: int, refine: bool = False) -> tuple[list[tiling.Span], list[tiling.Span]]:
        """The tiles and windows of an ``(h, w)`` latent (:func:`jaxcodec.tiling.windows`)."""
        per_pixel = self.bytes_per_pixel * (REFINE_MEMORY_FACTOR if refine else 1)
        return tiling.windows(h, w, per_pixel * self.latent_step**2, self.halo)

    def _latent_size(self, height: int, width: int) -> tuple[int, int]:
        d = self.downsampling
        return -(-height // d) * d // self.latent_step, -(-width // d) * d // self.latent_step

    def _transform(self, image: np.ndarray) -> jax.Array:
        """``g_a`` of the padded image, ``(1, h, w, M)`` before the gain, window by window
        when the image is larger than one."""
        rows, cols = self.windows(*self._latent_size(*image.shape[:2]))
        if len(rows) == len(cols) == 1:
            return self.programs.transform(self.params, self.padded(image))
        step = self.latent_step
        return jnp.asarray(tiling.analyse(
            lambda ys, xs: self.programs.transform(self.params, tiling.window_pixels(image, ys, xs, step))[0],
            rows, cols))[None]

    def _gained(self, image: np.ndarray, quality: float) -> jax.Array:
        """``y = g_a(x)·m(q)``, ``(1, h, w, M)``."""
        q = jnp.full((1,), quality, jnp.float32)
        return self.programs.apply_gain(self.params, self._transform(image), q)

    def _symbol_tiles(self, y: np.ndarray, z_hat: np.ndarray):
        """``(rows, cols, symbols, scale indexes)`` of each coded tile of the gained latent
        ``y (h, w, M)`` given its ``ẑ``: ``round(y − μ)``."""
        for rows, cols, mean, indexes in self._tile_parameters(z_hat, STREAM_TILE):
            yield rows, cols, np.round(y[rows, cols].astype(np.float64) - mean).astype(np.int32), indexes

    def _coded_tiles(self, image: np.ndarray, quality: float):
        """``(ẑ (h, w, N), tiles)``: what the encoder codes, ``tiles`` yielding ``(rows, cols,
        symbols, scale indexes)`` of each coded tile in coding order (refined when the codec
        refines)."""
        y = self._gained(image, quality)
        z_hat = np.asarray(self.programs.hyper_analysis(self.params, y))[0]
        if self.hyper_steps:
            z_hat = self._search_hyper_latent(y, z_hat)
        y = np.asarray(y)[0]
        if not self.refine_steps:
            return z_hat, self._symbol_tiles(y, z_hat)
        # each window against its own pixels (not the padding), the halo's symbols dropped
        rows, cols = self.windows(*y.shape[:2], refine=True)
        step, (height, width) = self.latent_step, image.shape[:2]

        def refined(ys, xs):
            target = tiling.window_pixels(image, ys, xs, step)[:, : height - ys.window_start * step,
                                                                  : width - xs.window_start * step]
            mean, indexes = self.entropy_parameters(z_hat, ys.window, xs.window)
            return self._refine(target, quality, y[ys.window, xs.window].astype(np.float64), mean, indexes)

        symbols = tiling.analyse(refined, rows, cols)
        return z_hat, ((r, c, symbols[r, c], i) for r, c, _, i in self._tile_parameters(z_hat, STREAM_TILE))

    def latents(self, image: np.ndarray, quality: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ẑ (h, w, N), symbols (4h, 4w, M), scale indexes)`` the encoder codes."""
        z_hat, tiles = self._coded_tiles(self._check_image(image), quality)
        f = self.upsampling
        shape = (f * z_hat.shape[0], f * z_hat.shape[1], self.latent_channels)
        symbols, indexes = np.empty(shape, np.int32), np.empty(shape, np.int32)
        for rows, cols, tile_symbols, tile_indexes in tiles:
            symbols[rows, cols], indexes[rows, cols] = tile_symbols, tile_indexes
        return z_hat, symbols, indexes

    def _search_hyper_latent(self, y: jax.Array, z_hat: np.ndarray) -> np.ndarray:
        """The hyper-latent of the gained latent ``y (1, h, w, M)`` that codes it in the fewest
        bits: :func:`jaxcodec.codecs.hyper_refinement.search_windows` from ``h_a(y)`` (window by
        window of the hyper-latent when it is larger than the memory budget allows), kept only
        if the real code length is below that of ``z_hat = round(h_a(y))``."""
        z0 = self.programs.hyper_latent(self.params, y)
        found = hyper_refinement.search_windows(self.programs.hyper_parameters, self.params, z0, y, self.upsampling,
                                                steps=self.hyper_steps)
        latent = np.asarray(y)[0]
        if self._bits(found, self._symbol_tiles(latent, found)) < self._bits(z_hat, self._symbol_tiles(latent, z_hat)):
            return found
        return z_hat

    def _refine(self, target: np.ndarray, quality: float, y: np.ndarray, mean: np.ndarray,
                indexes: np.ndarray) -> np.ndarray:
        """Refined symbols of one image ``target`` (``(1, H, W, 3)`` in ``[0, 1]``) given its
        ``ẑ`` (module docstring)."""
        fixed = {
            "params": self.params,
            "mean": jnp.asarray(mean[None], jnp.float32),
            "scale": jnp.asarray(gaussian_conditional.scale_table()[indexes][None], jnp.float32),
            "quality": jnp.full((1,), quality, jnp.float32),
        }
        symbols, _ = refinement.refine_latents(
            self.programs.refine_synthesis, self.programs.refine_bits, float(lambda_for_quality(quality)), fixed,
            jnp.asarray((y - mean)[None], jnp.float32), jnp.asarray(target), steps=self.refine_steps, lr=self.refine_lr,
        )
        return np.asarray(symbols)[0]

    def _bits(self, z_hat: np.ndarray, tiles) -> float:
        """Ideal code length of ``ẑ`` and of the tiles of :meth:`_coded_tiles`."""
        bits = entropy.entropy_bits(z_hat.reshape(-1), self._z_ids(z_hat.shape[0] * z_hat.shape[1]),
                                    self.z_freqs, self.z_offsets)
        for _, _, symbols, indexes in tiles:
            bits += entropy.entropy_bits(symbols.reshape(-1), indexes.reshape(-1), self.y_freqs, self.y_offsets)
        return bits

    def rate_function(self, image: np.ndarray) -> Callable[[Any], float]:
        """``quality -> estimated payload bits`` of one image: the analysis transform runs
        once, each call only gains, rounds and measures (for rate control,
        :mod:`jaxcodec.rate_control`)."""
        y0 = self._transform(self._check_image(image))

        def bits(quality: Any) -> float:
            q = jnp.full((1,), check_quality(quality, self.rungs), jnp.float32)
            y = self.programs.apply_gain(self.params, y0, q)
            z_hat = np.asarray(self.programs.hyper_analysis(self.params, y))[0]
            return self._bits(z_hat, self._symbol_tiles(np.asarray(y)[0], z_hat))

        return bits

    # -- Codec protocol -------------------------------------------------------------------
    def encode(self, image: np.ndarray, quality: Any) -> bytes:
        """Compresses a uint8 ``(H, W, C)`` image (C = 1 or 3) at a quality in ``[1, 8]``."""
        q = check_quality(quality, self.rungs)
        image = self._check_image(image)
        z_hat, tiles = self._coded_tiles(image, q)
        f = self.upsampling
        header = container.Header(
            model=self.name, table_hash=self.table_hash, height=image.shape[0], width=image.shape[1],
            channels=image.shape[2], latent_shape=(f * z_hat.shape[0], f * z_hat.shape[1], self.latent_channels),
            quality=round(q * QUALITY_STEP), tile=STREAM_TILE, check=b"\0" * container.CHECK_SIZE,
        )
        digest = container.content_digest(header)
        container.feed_symbols(digest, z_hat)
        z_bytes = entropy.encode_symbols(np.append(z_hat.reshape(-1), np.int32(GUARD_VALUE)),
                                         np.append(self._z_ids(z_hat.shape[0] * z_hat.shape[1]), np.int32(self.hyper_channels)),
                                         *self.guarded_z_tables)
        chunks = []
        for _, _, symbols, indexes in tiles:
            container.feed_symbols(digest, symbols)
            chunks.append(entropy.encode_symbols(np.append(symbols.reshape(-1), np.int32(GUARD_VALUE)),
                                                 np.append(indexes.reshape(-1), np.int32(gaussian_conditional.NUM_SCALES)),
                                                 *self.guarded_y_tables))
        payload = struct.pack("<I", len(z_bytes)) + z_bytes + container.join_parts(chunks)
        return container.pack(dataclasses.replace(header, check=digest.digest()), payload)

    def _check_header(self, header: container.Header) -> float:
        """The stream's quality, once its model, tables, shapes, quality and declared size
        (:func:`jaxcodec.limits.check_pixels`) are checked."""
        if header.model != self.name:
            raise ModelError(f"stream was made by model {header.model!r}, this codec is {self.name!r}")
        if not header.tables_match(self.table_hash):
            raise ModelError(f"{self.name}: stream was coded with other entropy tables (another model)")
        d = self.downsampling
        f = self.upsampling
        expected = (f * -(-header.height // d), f * -(-header.width // d), self.latent_channels)
        if tuple(header.latent_shape) != expected or header.channels not in (1, 3):
            raise BitstreamError(f"{self.name}: header latent shape {header.latent_shape} does not fit a "
                                 f"{header.height}x{header.width}x{header.channels} image")
        limits.check_pixels(header.height, header.width, "the stream", BitstreamError)
        try:
            return check_quality(self.stream_quality(header), self.rungs)
        except ConfigError:
            raise BitstreamError(f"{self.name}: header quality {self.stream_quality(header):g} is outside 1..{self.rungs}") from None

    @staticmethod
    def stream_quality(header: container.Header) -> float:
        """The quality a stream was coded at: its header holds ``round(1000·q)``."""
        return header.quality / QUALITY_STEP

    def _payload_chunks(self, header: container.Header, payload: bytes) -> tuple[bytes, list[tuple[slice, slice, bytes]]]:
        """``(ẑ bytes, [(rows, cols, bytes) of each coded tile])``, every length checked
        against the payload and every part against the fewest bytes its symbols can take
        (the tiles' against the cheapest of all tables) before anything is decoded."""
        h, w, m = header.latent_shape
        f = self.upsampling
        cheapest = np.array([self._y_costs.min()])
        if len(payload) < 4 or struct.unpack("<I", payload[:4])[0] > len(payload) - 4:
            raise BitstreamError(f"{self.name}: truncated payload")
        split = 4 + struct.unpack("<I", payload[:4])[0]
        z_bytes, rest = payload[4:split], payload[split:]
        limits.check_payload(len(z_bytes), self._z_costs, np.full(self.hyper_channels, (h // f) * (w // f)),
                             f"{self.name}: the hyper-latent")
        limits.check_payload(len(rest), cheapest, np.array([h * w * m]), f"{self.name}: the payload")
        if not header.tile:  # the earlier layout: the whole latent in one part
            return z_bytes, [(slice(0, h), slice(0, w), rest)]
        tiles = tiling.stream_tiles(h, w, header.tile)
        parts = []
        for i, ((rows, cols), chunk) in enumerate(zip(tiles, container.split_parts(rest, len(tiles), self.name))):
            count = (rows.stop - rows.start) * (cols.stop - cols.start) * m
            limits.check_payload(len(chunk), cheapest, np.array([count]), f"{self.name}: tile {i + 1} of {len(tiles)}")
            parts.append((rows, cols, chunk))
        return z_bytes, parts

    def check_stream(self, data: bytes) -> container.Header:
        """Everything the decoder checks before it decodes (model, tables, shapes, quality,
        the declared size against :func:`jaxcodec.limits.max_pixels`, every part of the
        payload against the fewest bytes its symbols can take); returns the header. Raises
        as :meth:`decode` would."""
        header, payload = container.unpack(data)
        self._check_header(header)
        self._payload_chunks(header, payload)
        return header

    def _decode_latent(self, data: bytes, dequantise: bool) -> tuple[container.Header, float, np.ndarray, np.ndarray]:
        """``(header, quality, ẑ, latent)``: the latent as int32 symbols, or with
        ``dequantise`` as float32 ``symbols + μ``, tile by tile (module docstring)."""
        header, payload = container.unpack(data)
        quality = self._check_header(header)
        z_bytes, parts = self._payload_chunks(header, payload)  # every size check before any allocation
        h, w, m = header.latent_shape
        f = self.upsampling
        zh, zw, n = h // f, w // f, self.hyper_channels
        legacy = not header.tile
        if legacy:
            z_values = entropy.decode_symbols(z_bytes, self._z_ids(zh * zw), self.z_freqs, self.z_offsets)
        else:
            z_values = entropy.decode_symbols(z_bytes, np.append(self._z_ids(zh * zw), np.int32(n)), *self.guarded_z_tables)
            if z_values[-1] != GUARD_VALUE:
                raise BitstreamError(f"{self.name}: corrupt entropy-coded data (the hyper-latent does not end with its guard)")
            z_values = z_values[:-1]
        z_hat = z_values.reshape(zh, zw, n)
        digest = container.content_digest(header)
        container.feed_symbols(digest, z_hat)
        out = np.empty((h, w, m), np.float32 if dequantise else np.int32)
        if legacy:
            mean, indexes = np.empty((h, w, m)), np.empty((h, w, m), np.int32)
            for rows, cols, tile_mean, tile_indexes in self._tile_parameters(z_hat, STREAM_TILE):
                mean[rows, cols], indexes[rows, cols] = tile_mean, tile_indexes
            limits.check_payload(len(parts[0][2]), self._y_costs, np.bincount(indexes.reshape(-1), minlength=len(self._y_costs)),
                                 f"{self.name}: the payload")
            symbols = entropy.decode_symbols(parts[0][2], indexes.reshape(-1), self.y_freqs, self.y_offsets).reshape(h, w, m)
            container.feed_symbols(digest, symbols)
            out[...] = (symbols.astype(np.float64) + mean) if dequantise else symbols
        else:
            for i, ((rows, cols, chunk), (_, _, mean, indexes)) in enumerate(
                    zip(parts, self._tile_parameters(z_hat, header.tile))):
                what = f"{self.name}: tile {i + 1} of {len(parts)}"
                limits.check_payload(len(chunk), self._y_costs,
                                     np.bincount(indexes.reshape(-1), minlength=len(self._y_costs)), what)
                values = entropy.decode_symbols(chunk, np.append(indexes.reshape(-1), np.int32(gaussian_conditional.NUM_SCALES)),
                                                *self.guarded_y_tables)
                if values[-1] != GUARD_VALUE:
                    raise BitstreamError(f"{self.name}: corrupt entropy-coded data (tile {i + 1} of {len(parts)} "
                                         "does not end with its guard)")
                symbols = values[:-1].reshape(mean.shape)
                container.feed_symbols(digest, symbols)
                out[rows, cols] = (symbols.astype(np.float64) + mean) if dequantise else symbols
        if header.check and digest.digest() != header.check:
            raise BitstreamError(f"{self.name}: content check failed: the payload does not decode to the "
                                 "symbols that were coded (a damaged or edited stream)")
        return header, quality, z_hat, out

    def decode_symbols(self, data: bytes) -> np.ndarray:
        """The integers the entropy decoder recovers: ``ẑ`` then the latent symbols, flattened."""
        _, _, z_hat, symbols = self._decode_latent(data, dequantise=False)
        return np.concatenate([z_hat.reshape(-1), symbols.reshape(-1)])

    def decode(self, data: bytes) -> np.ndarray:
        """Decompresses a stream of :meth:`encode` into a uint8 ``(H, W, C)`` image.

        Raises:
          BitstreamError: corrupt or truncated stream, a declared size beyond
            :func:`jaxcodec.limits.max_pixels` or beyond what the payload can hold.
          ModelError: the stream was made by another model.
        """
        header, quality, _, y_hat = self._decode_latent(data, dequantise=True)
        image = self.reconstruct(y_hat, quality, header.height, header.width)
        if header.channels == 1:
            image = np.round(image.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)
        return image

    def reconstruct(self, y_hat: np.ndarray, quality: float, height: int, width: int) -> np.ndarray:
        """``g_s`` of the dequantised latent ``(h, w, M)`` at ``quality``, cropped, as uint8
        ``(height, width, 3)``; window by window for a latent larger than one window."""
        q = jnp.full((1,), quality, jnp.float32)
        rows, cols = self.windows(*y_hat.shape[:2])
        if len(rows) == len(cols) == 1:
            return np.asarray(self.programs.synthesis(self.params, y_hat[None], q))[0][:height, :width]
        return tiling.synthesise(lambda r, c: self.programs.synthesis(self.params, y_hat[None, r, c], q)[0],
                                 rows, cols, self.latent_step, height, width)

    def estimate_bits(self, image: np.ndarray, quality: Any) -> float:
        """The coded size the tables predict (ideal code lengths of the integer tables)."""
        return self._bits(*self._coded_tiles(self._check_image(image), check_quality(quality, self.rungs)))

