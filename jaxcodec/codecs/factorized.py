"""The ``.jxc`` codec of the factorized-prior model (Ballé, Laparra & Simoncelli,
"End-to-end optimized image compression", ICLR 2017; the Flax modules are
:mod:`jaxcodec.models.factorized`, training :mod:`jaxcodec.train.tasks.factorized`).

The codec (:class:`FactorizedCodec`) pads the image to a multiple of 16 (edge
replication), rounds ``g_a(x)``, codes every latent with its channel's integer table
(:func:`jaxcodec.entropy.deep_factorized.build_tables`, float64, built once by
:meth:`jaxcodec.train.tasks.factorized.FactorizedTask.finalize`) and stores a ``.jxc`` container. A grey image is coded
as RGB with three equal channels and decoded back to one channel (mean of the three).

Large images are transformed in tiles (:mod:`jaxcodec.tiling`): ``g_a`` and ``g_s``
are convolutional, so each tile is analysed or synthesised inside a window with a halo of
:attr:`FactorizedCodec.halo` latent positions (4 for the shipped models: the analysis
reads 30 pixels beyond a latent's 16, the synthesis under 2 latents beyond a pixel's), and
gives the whole image's latent and pixels up to float rounding, with memory for one
window (:func:`jaxcodec.tiling.budget`; ``--max-memory``).

The stream (``.jxc`` version 2, :mod:`jaxcodec.codecs.container`) codes the latent in square
tiles of :data:`STREAM_TILE` = 64 latent positions (1024 × 1024 pixels) from the top
left, in raster order, the last row and column of tiles cut short; the header's tile
field holds that side. Each tile is coded on its own (:func:`jaxcodec.entropy.coder.encode_symbols`
over its ``(h, w, M)`` symbols in C order, each with its channel's table, then one guard
symbol), so a decoder holds one tile's coder at a time. The payload is the tiles' bytes
in order, each but the last preceded by its length (u32, little-endian); the last runs
to the end. The **guard** is the value 1 under an extra table whose every other symbol
has frequency 1: it costs nothing, moves the coder's state off 0 before any symbol, so
a payload is never shorter than its symbols' cheapest cost (:mod:`jaxcodec.limits`), and
the decoder checks it comes out last. The header's **content check**
(:func:`jaxcodec.codecs.container.content_digest`) covers the header and every tile's symbols
in coding order, as little-endian int32.

Before it allocates anything the size of the image, the decoder checks the declared
size against :func:`jaxcodec.limits.max_pixels` and every tile's payload against the
fewest bytes its symbols can take (:func:`jaxcodec.limits.check_payload`); after
entropy decoding it checks the guards and the content check, before ``g_s`` runs.
Version-1 streams (one untiled payload, no guard, no check; every stream written
before tiling, such as ``tests/vectors``) decode as they always did, with the same
size checks.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxcodec import limits, tiling
from jaxcodec.codecs import container, refinement
from jaxcodec.entropy import coder as entropy
from jaxcodec.errors import BitstreamError, ConfigError, ImageError, ModelError
from jaxcodec.models.factorized import MODEL_NAME, FactorizedPriorModel, total_bits
from jaxcodec.ops.conv import conv_impl, full_precision_jit

#: Side of the square tiles a stream codes the latent in, in latent positions (module docstring).
STREAM_TILE = 64
GUARD_VALUE = entropy.GUARD_VALUE  # the guard symbol closing every coded tile (module docstring)
#: Working memory of ``g_a`` or ``g_s`` per window pixel, in bytes per hidden channel
#: (about 500 bytes per pixel at N = 64, measured with ``bench/memory.py``), and how many
#: times more latent refinement takes (its gradient keeps every activation).
BYTES_PER_PIXEL_PER_FEATURE = 8
REFINE_MEMORY_FACTOR = 4


class Programs:
    """The jitted pieces of one architecture's codec. Every model of a ladder has the same
    architecture and differs only in parameters, λ and tables, so its codecs share these
    (:func:`programs`): one compiled program per image size serves all qualities, instead
    of one per quality (each program is machine code mapped into the process; a long
    evaluation of many qualities, sizes and refined encoders otherwise ran out of the
    process's memory mappings)."""

    def __init__(self, model: FactorizedPriorModel):
        analysis = functools.partial(model.apply, method=FactorizedPriorModel.analysis)
        synthesis = functools.partial(model.apply, method=FactorizedPriorModel.synthesis)
        likelihood = functools.partial(model.apply, method=FactorizedPriorModel.likelihood)

        def direct_synthesis(p, y):
            # Latent refinement's decoder, XLA's own convolutions (FactorizedTask.direct_synthesis
            # says why), chosen while the refinement step is traced.
            with conv_impl("direct"):
                return synthesis(p, y)

        self.direct_synthesis = direct_synthesis
        self.rate = lambda p, y: total_bits(likelihood(p, y))  # Σ −log2 p(y)
        self.continuous = full_precision_jit(analysis)
        self.analysis = full_precision_jit(lambda p, x: jnp.round(analysis(p, x)).astype(jnp.int32))
        self.synthesis = full_precision_jit(
            lambda p, y: jnp.round(jnp.clip(synthesis(p, y.astype(jnp.float32)), 0.0, 1.0) * 255.0).astype(jnp.uint8)
        )
        self.bits = full_precision_jit(lambda p, y: self.rate(p, y.astype(jnp.float32)))


@functools.lru_cache(maxsize=16)
def programs(model: FactorizedPriorModel) -> Programs:
    """The codec programs of ``model``'s architecture, shared by every codec built on an
    equal model (flax modules compare and hash by their fields)."""
    return Programs(model)


class FactorizedCodec:
    """Real bytes from a trained :class:`~jaxcodec.train.tasks.factorized.FactorizedTask` model (one quality).

    Encoding: pad to a multiple of 16 (edge replication) → ``g_a`` → round → ANS
    coding with the channel's integer table, tile by tile → ``.jxc`` (module docstring).
    Decoding checks the model name, the table hash, the declared size and the payload's
    length, decodes the integers, checks the content check, runs ``g_s``, crops, clips and
    rounds to 8 bits. Both transforms run in windows of one size per image (tiles with
    halos, :mod:`jaxcodec.tiling`), jitted once per window shape and architecture (the
    qualities of a ladder share them: :func:`programs`).
    """

    def __init__(self, task: Any, params: Any, tables: dict[str, np.ndarray]):
        try:
            self.freqs = np.asarray(tables["freqs"], np.int32)
            self.offsets = np.asarray(tables["offsets"], np.int32)
        except (KeyError, TypeError):
            raise ModelError(f"{MODEL_NAME}: codec tables need 'freqs' and 'offsets'; was the model finalized?") from None
        self.latent_channels = task.model.latent_channels
        if self.freqs.ndim != 2 or self.freqs.shape[0] != self.latent_channels or self.offsets.shape != (
            self.latent_channels,
        ):
            raise ModelError(
                f"{MODEL_NAME}: tables of shape {self.freqs.shape}/{self.offsets.shape} do not fit "
                f"{self.latent_channels} latent channels"
            )
        self.name = task.name
        self.quality = task.quality
        self.lmbda = task.lmbda  # the rate-distortion trade-off it was trained for
        self.qualities = [task.quality]
        m = task.config.model
        self.description = (
            f"Ballé 2017 factorized prior ({m.activation}, N={m.features}, M={m.latent_channels}, "
            f"λ={task.lmbda:g})"
        )
        self.table_hash = entropy.table_hash(self.freqs, self.offsets)
        self.downsampling = task.downsampling
        if self.freqs.shape[1] < 3:
            raise ModelError(f"{MODEL_NAME}: tables of {self.freqs.shape[1]} symbols leave no room for the guard")
        self.guarded_tables = entropy.guarded_tables(self.freqs, self.offsets)
        self._costs = limits.symbol_costs(self.freqs)  # bits of each channel's cheapest symbol
        self.halo = tiling.halo(task.config.model.kernel_sizes, self.downsampling)  # module docstring
        self.bytes_per_pixel = BYTES_PER_PIXEL_PER_FEATURE * int(task.model.features)
        self.params = params  # the trained parameters
        self.task = task  # the task that built them: λ, configuration, transforms
        self.programs = programs(task.model)  # the jitted pieces, shared by equal architectures
        self.refine_steps = 0
        self.refine_lr = task.refine_lr  # the model's own step size (config.model.refine_lr)

    def refined(self, steps: int = refinement.DEFAULT_STEPS, lr: float | None = None) -> "FactorizedCodec":
        """The same codec whose encoder refines each image's latent with ``steps`` SGA steps
        of size ``lr`` (default: the model's ``refine_lr``; :mod:`jaxcodec.codecs.refinement`); its
        streams decode with any copy of the model."""
        return refinement.refined_copy(self, steps, lr, self.task.refine_lr)

    # -- pieces, public for tests and analysis ------------------------------------------
    def _check_image(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ImageError(f"{self.name} expects a uint8 image, got dtype {image.dtype}")
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] not in (1, 3) or image.shape[0] < 1 or image.shape[1] < 1:
            raise ImageError(f"{self.name} expects an (H, W, 1) or (H, W, 3) image, got shape {image.shape}")
        return image

    def padded(self, image: np.ndarray) -> np.ndarray:
        """The float32 ``(1, H', W', 3)`` network input: RGB (grey replicated), edge-padded
        to multiples of 16."""
        image = self._check_image(image)
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        h, w = image.shape[:2]
        d = self.downsampling
        pad = ((0, -h % d), (0, -w % d), (0, 0))
        return (np.pad(image, pad, mode="edge").astype(np.float32) / 255.0)[None]

    def latents(self, image: np.ndarray) -> np.ndarray:
        """The symbols the encoder codes, int32 ``(h, w, M)``: ``round(g_a(x))`` of the
        padded image, or with :attr:`refine_steps` the refined latent
        (:func:`jaxcodec.codecs.refinement.refine_latents`). An image larger than one window is
        analysed (and refined) window by window (:meth:`windows`)."""
        image = self._check_image(image)
        height, width = image.shape[:2]
        d = self.downsampling
        rows, cols = self.windows(-(-height // d), -(-width // d), refine=bool(self.refine_steps))
        if len(rows) == len(cols) == 1:  # the whole image at once
            return self._window_latents(self.padded(image), height, width)
        return tiling.analyse(
            lambda ys, xs: self._window_latents(tiling.window_pixels(image, ys, xs, d), height - ys.window_start * d,
                                                width - xs.window_start * d),
            rows, cols)

    def windows(self, h: int, w: int, refine: bool = False) -> tuple[list[tiling.Span], list[tiling.Span]]:
        """The tiles and windows, in latent positions, that the transforms of an ``(h, w)``
        latent run over (:func:`jaxcodec.tiling.windows`): tiles as large as the memory budget
        allows (:func:`jaxcodec.tiling.budget`), with :attr:`halo` positions around them."""
        per_pixel = self.bytes_per_pixel * (REFINE_MEMORY_FACTOR if refine else 1)
        return tiling.windows(h, w, per_pixel * self.downsampling**2, self.halo)

    def _window_latents(self, x: np.ndarray, height: int, width: int) -> np.ndarray:
        """The symbols ``(h', w', M)`` of one window ``x``, whose first ``height`` × ``width``
        pixels are the image's (the rest is padding, not scored by refinement)."""
        if not self.refine_steps:
            return np.asarray(self.programs.analysis(self.params, x))[0]
        target = x[:, :height, :width]
        symbols, _ = refinement.refine_latents(
            self.programs.direct_synthesis, self.programs.rate, self.task.lmbda, self.params,
            self.programs.continuous(self.params, x), jnp.asarray(target),
            steps=self.refine_steps, lr=self.refine_lr,
        )
        return np.asarray(symbols)[0]

    def reconstruct(self, symbols: np.ndarray, height: int, width: int) -> np.ndarray:
        """``g_s`` of integer latents ``(h, w, M)``, cropped, as uint8 ``(height, width, 3)``;
        window by window for a latent larger than one window (:meth:`windows`)."""
        symbols = np.asarray(symbols, np.int32)
        rows, cols = self.windows(symbols.shape[0], symbols.shape[1])
        if len(rows) == len(cols) == 1:
            x = np.asarray(self.programs.synthesis(self.params, symbols[None]))[0]
            return x[:height, :width]
        return tiling.synthesise(
            lambda r, c: self.programs.synthesis(self.params, symbols[None, r, c])[0], rows, cols, self.downsampling,
            height, width)

    def estimate_bits(self, image: np.ndarray) -> float:
        """Model estimate of the payload: ``Σ −log2 p(round(y))`` under the continuous density."""
        return float(self.programs.bits(self.params, self.latents(image)[None]))

    def _table_ids(self, h: int, w: int) -> np.ndarray:
        return np.tile(np.arange(self.latent_channels, dtype=np.int32), h * w)

    def tile_table_ids(self, count: int) -> np.ndarray:
        """Table ids of a coded tile of ``count`` latent positions: the channels', then the
        guard's (table ``M`` of :attr:`guarded_tables`: the channels' tables, then the guard's)."""
        return np.append(self._table_ids(count, 1), np.int32(self.latent_channels))

    @staticmethod
    def stream_tiles(h: int, w: int, tile: int) -> list[tuple[slice, slice]]:
        """The coded tiles of an ``(h, w)`` latent (:func:`jaxcodec.tiling.stream_tiles`)."""
        return tiling.stream_tiles(h, w, tile)

    # -- Codec protocol -----------------------------------------------------------------
    def encode(self, image: np.ndarray, quality: Any) -> bytes:
        """Compresses a uint8 ``(H, W, C)`` image (C = 1 or 3) into a ``.jxc`` stream."""
        if quality not in self.qualities:
            raise ConfigError(f"{self.name}: this model codes quality {self.quality} only, got {quality!r}")
        image = self._check_image(image)
        symbols = self.latents(image)
        h, w, m = symbols.shape
        header = container.Header(
            model=self.name,
            table_hash=self.table_hash,
            height=image.shape[0],
            width=image.shape[1],
            channels=image.shape[2],
            latent_shape=(h, w, m),
            quality=self.quality,
            tile=STREAM_TILE,
            check=b"\0" * container.CHECK_SIZE,
        )
        digest = container.content_digest(header)
        chunks = []
        for rows, cols in self.stream_tiles(h, w, STREAM_TILE):
            tile = symbols[rows, cols]
            container.feed_symbols(digest, tile)
            values = np.append(tile.reshape(-1), np.int32(GUARD_VALUE))
            chunks.append(entropy.encode_symbols(values, self.tile_table_ids(tile.shape[0] * tile.shape[1]),
                                                 *self.guarded_tables))
        return container.pack(dataclasses.replace(header, check=digest.digest()), container.join_parts(chunks))

    def decode_symbols(self, data: bytes) -> np.ndarray:
        """The integer latents ``(h, w, M)`` of a stream from :meth:`encode`: what the
        entropy decoder recovers, identical on every machine (integer tables)."""
        return self._symbols(data)[1]

    def check_stream(self, data: bytes) -> container.Header:
        """Everything the decoder checks before it allocates (model, tables, the declared
        size against :func:`jaxcodec.limits.max_pixels`, the latent shape, every tile's
        payload against the fewest bytes its symbols can take), without decoding; returns
        the header. Raises as :meth:`decode` would."""
        header, payload = container.unpack(data)
        self._check_header(header)
        for _ in self._tile_payloads(header, payload):
            pass
        return header

    def _check_header(self, header: container.Header) -> None:
        if header.model != self.name:
            raise ModelError(f"stream was made by model {header.model!r}, this codec is {self.name!r}")
        if not header.tables_match(self.table_hash):
            raise ModelError(f"{self.name}: stream was coded with other entropy tables (another model or quality)")
        d = self.downsampling
        expected = (-(-header.height // d), -(-header.width // d), self.latent_channels)
        if tuple(header.latent_shape) != expected or header.channels not in (1, 3):
            raise BitstreamError(
                f"{self.name}: header latent shape {header.latent_shape} does not fit a "
                f"{header.height}x{header.width}x{header.channels} image"
            )
        limits.check_pixels(header.height, header.width, "the stream", BitstreamError)

    def _tile_payloads(self, header: container.Header, payload: bytes):
        """``(rows, cols, bytes)`` of each coded tile, each checked against the fewest bytes
        its symbols can take before it is yielded (the whole payload first)."""
        h, w, m = header.latent_shape
        costs = self._costs
        limits.check_payload(len(payload), costs, np.full(m, h * w), f"{self.name}: the payload")
        if not header.check:  # version 1: one payload for the whole latent, no guard
            yield slice(0, h), slice(0, w), payload
            return
        tiles = self.stream_tiles(h, w, header.tile)
        for i, ((rows, cols), chunk) in enumerate(zip(tiles, container.split_parts(payload, len(tiles), self.name))):
            count = (rows.stop - rows.start) * (cols.stop - cols.start)
            limits.check_payload(len(chunk), costs, np.full(m, count),
                                 f"{self.name}: tile {i + 1} of {len(tiles)}")
            yield rows, cols, chunk

    def _symbols(self, data: bytes) -> tuple[container.Header, np.ndarray]:
        header, payload = container.unpack(data)
        self._check_header(header)
        h, w, m = header.latent_shape
        tiles = list(self._tile_payloads(header, payload))  # every size check before any allocation
        if not header.check:
            symbols = entropy.decode_symbols(payload, self._table_ids(h, w), self.freqs, self.offsets)
            return header, symbols.reshape(h, w, m)
        symbols = np.empty((h, w, m), np.int32)
        digest = container.content_digest(header)
        for i, (rows, cols, chunk) in enumerate(tiles):
            shape = (rows.stop - rows.start, cols.stop - cols.start, m)
            values = entropy.decode_symbols(chunk, self.tile_table_ids(shape[0] * shape[1]), *self.guarded_tables)
            if values[-1] != GUARD_VALUE:
                raise BitstreamError(f"{self.name}: corrupt entropy-coded data (tile {i + 1} of {len(tiles)} "
                                     "does not end with its guard)")
            tile = values[:-1].reshape(shape)
            container.feed_symbols(digest, tile)
            symbols[rows, cols] = tile
        if digest.digest() != header.check:
            raise BitstreamError(f"{self.name}: content check failed: the payload does not decode to the "
                                 "symbols that were coded (a damaged or edited stream)")
        return header, symbols

    def decode(self, data: bytes) -> np.ndarray:
        """Decompresses a stream from :meth:`encode` into a uint8 ``(H, W, C)`` image.

        Raises:
          BitstreamError: corrupt or truncated stream, a declared size beyond
            :func:`jaxcodec.limits.max_pixels` or beyond what the payload can hold.
          ModelError: the stream was made by another model or with other tables.
        """
        header, symbols = self._symbols(data)
        image = self.reconstruct(symbols, header.height, header.width)
        if header.channels == 1:  # the mean of the three channels, a band of rows at a time
            grey = np.empty(image.shape[:2] + (1,), np.uint8)
            for r in range(0, image.shape[0], 256):
                band = image[r : r + 256].astype(np.float32)
                grey[r : r + 256] = np.round(band.mean(axis=2, keepdims=True)).astype(np.uint8)
            image = grey
        return image
