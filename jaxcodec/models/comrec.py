"""ComCNN + JPEG + RecCNN: a learned pre- and post-processor around a real JPEG codec.

Reimplements Jiang, Tao, Liu, Zhao & Ji, "An End-to-End Compression Framework Based on
Convolutional Neural Networks" (IEEE TCSVT 28(10), 2018; arXiv:1708.00838), also the
"double network" of the CS 230 poster "Honey, I Shrunk the Image". The pipeline:

1. **ComCNN** maps the RGB image ``x`` in ``[0, 1]`` to a *compact image* ``c`` of half
   the height and width with 3 channels (Jiang Sec. III-A).
2. ``c`` is rounded to 8 bits and coded by a standard codec, here libjpeg through
   Pillow at quality ``q`` (JPEG, ITU-T T.81), then decoded to ``ĉ``.
3. ``ĉ`` is up-sampled to full size with bicubic interpolation (``jax.image.resize``,
   Keys' cubic kernel with ``a = -0.5``, in the codec and in training alike).
4. **RecCNN** predicts the residual ``r`` and ``x̂ = up(ĉ) + r`` (Jiang Sec. III-B).

The stream is a :mod:`jaxcodec.codecs.container` ``.jxc`` whose payload is a plain JPEG file of
the compact image (any JPEG decoder opens it); bpp counts every byte of the container.

Choices the paper leaves open, or that differ from it, made here:

* **Architecture.** ComCNN: ``conv 3×3, 64 – ReLU – conv 3×3 stride 2, 64 – ReLU –
  conv 3×3, 3`` as in Jiang, but its output is *added to a 2×2 box down-sampling* of the
  input, and its last convolution starts at zero, so training starts from the classical
  "down-sample → JPEG → bicubic up-sample" codec instead of from a blank compact image.
  RecCNN: ``conv – ReLU – (depth-2)×(conv – ReLU) – conv`` with 3×3 kernels; Jiang uses
  20 layers of 64 channels, the default here is 10 (``config.model.rec_depth``) so that it
  trains on a laptop CPU; its last convolution also starts at zero (``x̂ = up(ĉ)`` at
  step 0). **No batch normalisation**: Jiang puts BN after the middle convolutions; with
  Adam, residual learning and zero-initialised output layers the plain stack trains
  stably, and the state stays ``{params, opt}`` without running statistics.
* **Training: both networks in one jitted step.** The codec is not differentiable, so
  Jiang alternates: RecCNN learns on the real decoded compact image with loss
  ``‖r − (x − up(ĉ))‖²`` (Eq. 2), ComCNN through a stand-in for the codec with loss
  ``‖x − x̂‖²`` (Eq. 3). Here the real JPEG round trip runs on the host
  (:meth:`ComRecTask.host_transform`, between the data and the jitted step), and
  :meth:`ComRecTask.train_step` updates both networks, each with its own Adam, from
  gradients taken at the same point (a simultaneous instead of a sequential
  alternation, so one step costs one forward and one backward pass).
* **Codec stand-in for ComCNN** (``config.model.proxy``):
  ``"straight_through"`` (default) uses ``c + stop_gradient(ĉ − c)``: the forward pass
  sees exactly the JPEG-decoded compact image the deployed decoder sees (JPEG error,
  8-bit rounding and clipping included), the backward pass treats the codec as the
  identity (Bengio, Léonard & Courville 2013, arXiv:1308.3432). Then Jiang's two losses
  are the same number, ``‖x − up(ĉ) − r‖²``, and one gradient gives both updates.
  ``"identity"`` is Jiang's own assumption: ComCNN's loss uses ``c`` itself, never
  seeing the JPEG error, with RecCNN held fixed.
* **Quality.** One model serves every JPEG quality: each training image gets a quality
  drawn uniformly from ``config.model.train_qualities`` (one entry trains a
  single-quality model, as in Jiang). The codec accepts any libjpeg quality 1..100;
  ``config.model.qualities`` is the ladder an RD sweep visits.
* **Grey images** are replicated to RGB, coded, and averaged back to one channel
  (header ``channels = 1``). Odd sizes are padded to even by edge replication and the
  output is cropped.
* ``table_hash`` is :func:`jaxcodec.entropy.coder.table_hash` of every parameter array, so a
  stream from other weights is refused with :class:`~jaxcodec.errors.ModelError`.
* **Large images** are transformed in tiles with exact halos (:mod:`jaxcodec.tiling`):
  ComCNN reads 3 pixels beyond a compact pixel's own two, the bicubic up-sampling two
  compact pixels and RecCNN ``rec_depth`` full-resolution pixels, so windows of the
  compact image with :attr:`ComRecCodec.halo` compact pixels around each tile give the
  whole image's result up to float rounding, in memory for one window. The stream is the
  same (one JPEG of the whole compact image, a quarter of the pixels), and its declared
  size is checked against :func:`jaxcodec.limits.max_pixels` before the JPEG is decoded.
"""

from __future__ import annotations

import functools
import io
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxcodec import limits, tiling
from jaxcodec.codecs import container
from jaxcodec.entropy import coder as entropy
from jaxcodec.errors import BitstreamError, ConfigError, ImageError, ModelError
from jaxcodec.ops.conv import conv2d

MODEL_NAME = "comrec"
PROXIES = ("straight_through", "identity")
_HE = nn.initializers.he_normal()  # He et al. 2015 (ICCV), Sec. 2.2: keeps ReLU activations' scale
_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


# ----------------------------------------------------------------------------- networks


def box_downsample(x: jax.Array) -> jax.Array:
    """``(N, 2h, 2w, C) → (N, h, w, C)``: mean of each 2×2 block."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def upsample(c: jax.Array) -> jax.Array:
    """Bicubic 2× up-sampling ``(N, h, w, C) → (N, 2h, 2w, C)`` (Jiang Sec. III, step 3).

    ``jax.image.resize`` with Keys' cubic kernel (``a = -0.5``) and half-pixel centres;
    the codec and the training step use this same function, so they agree exactly.
    """
    n, h, w, ch = c.shape
    return jax.image.resize(c, (n, 2 * h, 2 * w, ch), "bicubic")


class Conv3x3(nn.Module):
    """``nn.Conv(features, (3, 3))`` (same parameters and initialisers) built on
    :func:`jaxcodec.ops.conv.conv2d`, whose kernel gradient is nine matrix products instead of
    XLA's weight-gradient convolution (on a CPU that halves a full-resolution step)."""

    features: int
    kernel_init: Any = nn.linear.default_kernel_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (3, 3, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return conv2d(x, kernel) + bias


class ComCNN(nn.Module):
    """Compact representation CNN (Jiang Sec. III-A), output added to a 2×2 box down-sampling.

    ``(N, H, W, 3) → (N, H/2, W/2, 3)`` for even H and W.
    """

    features: int = 64

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = nn.relu(Conv3x3(self.features, kernel_init=_HE, name="conv1")(x - 0.5))
        h = nn.relu(nn.Conv(self.features, (3, 3), strides=2, kernel_init=_HE, name="conv2")(h))
        out = Conv3x3(3, kernel_init=nn.initializers.zeros, name="conv3")(h)
        return box_downsample(x) + out


class RecCNN(nn.Module):
    """Reconstruction CNN (Jiang Sec. III-B): the residual between ``x`` and ``up(ĉ)``."""

    depth: int = 10
    features: int = 64

    @nn.compact
    def __call__(self, u: jax.Array) -> jax.Array:
        h = u - 0.5
        for i in range(self.depth - 1):
            h = nn.relu(Conv3x3(self.features, kernel_init=_HE, name=f"conv{i + 1}")(h))
        return Conv3x3(3, kernel_init=nn.initializers.zeros, name=f"conv{self.depth}")(h)


def to_uint8(x: jax.Array) -> jax.Array:
    """``[0, 1]`` floats → 8-bit values: ``round(clip(x) · 255)``."""
    return jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.uint8)


# ----------------------------------------------------------------------------- JPEG on the host


def jpeg_encode(compact: np.ndarray, quality: int, subsampling: str = "4:2:0") -> bytes:
    """Baseline JPEG of a ``uint8`` ``(h, w, 3)`` image by libjpeg (Pillow), optimised Huffman."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(compact, np.uint8)).save(
        buffer, format="JPEG", quality=int(quality), subsampling=_SUBSAMPLING[subsampling], optimize=True
    )
    return buffer.getvalue()


def jpeg_decode(data: bytes, shape: Sequence[int] | None = None) -> np.ndarray:
    """Decodes a JPEG into ``uint8`` ``(h, w, 3)``; BitstreamError if broken or of another shape."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG" or image.mode != "RGB":
                raise BitstreamError(f"payload is not an RGB JPEG ({image.format} {image.mode})")
            image.load()
            decoded = np.asarray(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise BitstreamError(f"payload is not a decodable JPEG: {str(error).splitlines()[0]}") from None
    if shape is not None and decoded.shape != tuple(shape):
        raise BitstreamError(f"JPEG payload is {decoded.shape}, header says {tuple(shape)}")
    return decoded


def jpeg_round_trip(compact: np.ndarray, qualities: Sequence[int], subsampling: str = "4:2:0"):
    """Codes each ``uint8`` compact image ``(N, h, w, 3)`` at its quality; ``(decoded, nbytes)``."""
    decoded, nbytes = np.empty_like(compact), np.empty(len(compact), np.int32)
    for i, (image, q) in enumerate(zip(compact, qualities)):
        data = jpeg_encode(image, int(q), subsampling)
        decoded[i], nbytes[i] = jpeg_decode(data), len(data)
    return decoded, nbytes


def _check_quality(quality: Any) -> int:
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ConfigError(f"comrec quality must be a JPEG quality, an integer in 1..100, got {quality!r}")
    return int(quality)


# ----------------------------------------------------------------------------- task


def _mse(x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((x - y) ** 2)


def _psnr(x: jax.Array, y: jax.Array) -> jax.Array:
    """Batch mean of per-image PSNR (peak 1)."""
    mse = jnp.mean((x - y) ** 2, axis=(1, 2, 3))
    return jnp.mean(-10.0 * jnp.log10(jnp.maximum(mse, 1e-10)))


def _rgb(x: jax.Array) -> jax.Array:
    return jnp.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


class ComRecTask:
    """Training task for ComCNN + JPEG + RecCNN (seed 002); see the module docstring.

    State: ``{"step", "com_params", "rec_params", "com_opt", "rec_opt"}``. The batch the
    jitted step receives is the one :meth:`host_transform` returns: ``(N, H, W, 6)``
    holding the image in channels 0..2 and the JPEG-decoded compact image, each pixel
    repeated 2×2, in channels 3..5 (one array, so the engine shards it like any batch).
    """

    name = MODEL_NAME

    def __init__(self, config: Any):
        self.config = config
        m = config.model
        if m.proxy not in PROXIES:
            raise ConfigError(f"config.model.proxy must be one of {', '.join(PROXIES)}, got {m.proxy!r}")
        if m.subsampling not in _SUBSAMPLING:
            raise ConfigError(f"config.model.subsampling must be one of {', '.join(_SUBSAMPLING)}")
        if m.rec_depth < 2:
            raise ConfigError(f"config.model.rec_depth must be at least 2, got {m.rec_depth}")
        self.train_qualities = tuple(_check_quality(q) for q in m.train_qualities)
        self.qualities = sorted({_check_quality(q) for q in m.qualities})
        if not self.train_qualities or not self.qualities:
            raise ConfigError("config.model.train_qualities and config.model.qualities must not be empty")
        _check_quality(m.eval_quality)
        data = config.get("data")
        if data is not None and not data.get("train"):
            raise ConfigError("config.data.train is not set; pass --config.data.train=folder:/path/to/photos")
        crop = data.get("crop") if data is not None else None
        if crop is not None and crop % 2:
            raise ConfigError(f"config.data.crop must be even (the compact image has half the size), got {crop}")
        self.com = ComCNN(features=m.com_features)
        self.rec = RecCNN(depth=m.rec_depth, features=m.rec_features)
        self._compact_uint8 = jax.jit(self.compact_uint8)

    def _adam(self, own_rate: str) -> Any:
        import optax

        rate = self.config.model.get(own_rate)
        return optax.adam(self.config.learning_rate if rate is None else rate)

    @functools.cached_property
    def com_tx(self) -> Any:
        """ComCNN's Adam (built on first use: decoding needs no optimiser)."""
        return self._adam("com_learning_rate")

    @functools.cached_property
    def rec_tx(self) -> Any:
        """RecCNN's Adam."""
        return self._adam("rec_learning_rate")

    # -- pure functions of params, for Colab and the codec ----------------------------
    def compact(self, com_params: Any, x: jax.Array) -> jax.Array:
        """``(N, H, W, 3)`` in ``[0, 1]``, H and W even → compact image ``(N, H/2, W/2, 3)``."""
        return self.com.apply(com_params, x)

    def compact_uint8(self, com_params: Any, x: jax.Array) -> jax.Array:
        """The compact image as the 8-bit values JPEG codes."""
        return to_uint8(self.compact(com_params, x))

    def reconstruct(self, rec_params: Any, decoded: jax.Array) -> jax.Array:
        """Decoded compact image ``(N, h, w, 3)`` in ``[0, 1]`` → ``up(ĉ) + RecCNN(up(ĉ))``."""
        u = upsample(decoded)
        return u + self.rec.apply(rec_params, u)

    # -- Task protocol ------------------------------------------------------------------
    def init_state(self, rng: jax.Array, batch: jax.Array) -> dict[str, Any]:
        _, h, w, _ = batch.shape
        com_rng, rec_rng = jax.random.split(rng)
        com_params = self.com.init(com_rng, jnp.zeros((1, h, w, 3), jnp.float32))
        rec_params = self.rec.init(rec_rng, jnp.zeros((1, h, w, 3), jnp.float32))
        return {
            "step": jnp.zeros((), jnp.int32),
            "com_params": com_params,
            "rec_params": rec_params,
            "com_opt": self.com_tx.init(com_params),
            "rec_opt": self.rec_tx.init(rec_params),
        }

    def host_transform(self, state: dict, batch: np.ndarray, rng: jax.Array) -> np.ndarray:
        """Runs ComCNN (jitted), rounds to 8 bits and codes each compact image with real JPEG.

        Each image's quality is drawn uniformly from ``config.model.train_qualities``.
        Returns ``(N, H, W, 6)``: the RGB image, then the decoded compact image repeated 2×2.
        """
        x = np.asarray(batch, np.float32)
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        if x.shape[1] % 2 or x.shape[2] % 2:
            raise ConfigError(f"comrec trains on even-sized images, got {x.shape[1]}x{x.shape[2]}; set data.crop")
        picks = np.asarray(jax.random.randint(rng, (len(x),), 0, len(self.train_qualities)))
        compact = np.asarray(self._compact_uint8(state["com_params"], x))
        decoded, _ = jpeg_round_trip(compact, [self.train_qualities[i] for i in picks], self.config.model.subsampling)
        decoded = decoded.astype(np.float32) / np.float32(255.0)
        return np.concatenate([x, decoded.repeat(2, axis=1).repeat(2, axis=2)], axis=-1)

    def losses(self, com_params: Any, rec_params: Any, x: jax.Array, decoded: jax.Array):
        """``(objective, metrics)``; the gradient of ``objective`` is both networks' update.

        RecCNN's loss is ``mean((x − up(ĉ) − r)²)`` on the real decoded ``ĉ`` (Jiang Eq. 2).
        ComCNN's loss is ``mean((x − x̂)²)`` through the codec stand-in with RecCNN held
        fixed (Jiang Eq. 3). With the straight-through stand-in both equal the objective.
        """
        c = self.compact(com_params, x)
        if self.config.model.proxy == "straight_through":
            y = self.reconstruct(rec_params, c + jax.lax.stop_gradient(decoded - c))
            rec_loss = com_loss = objective = _mse(x, y)
        else:
            y = self.reconstruct(rec_params, decoded)
            rec_loss = _mse(x, y)
            com_loss = _mse(x, self.reconstruct(jax.lax.stop_gradient(rec_params), c))
            objective = rec_loss + com_loss
        metrics = {
            "loss": rec_loss,
            "rec_loss": rec_loss,
            "com_loss": com_loss,
            "psnr": _psnr(x, y),
            "psnr_bicubic": _psnr(x, upsample(decoded)),
            "jpeg_rmse_8bit": 255.0 * jnp.sqrt(_mse(jnp.clip(c, 0.0, 1.0), decoded)),
        }
        return objective, metrics

    def train_step(self, state: dict, batch: jax.Array, rng: jax.Array) -> tuple[dict, dict]:
        """Updates ComCNN and RecCNN from one gradient of :meth:`losses` (see module docstring)."""
        import optax

        if batch.shape[-1] != 6:
            raise ConfigError("comrec's train_step takes the (N, H, W, 6) batch of ComRecTask.host_transform")
        x, decoded = batch[..., :3], batch[:, ::2, ::2, 3:]
        grad_fn = jax.grad(self.losses, argnums=(0, 1), has_aux=True)
        (com_grads, rec_grads), metrics = grad_fn(state["com_params"], state["rec_params"], x, decoded)
        com_updates, com_opt = self.com_tx.update(com_grads, state["com_opt"], state["com_params"])
        rec_updates, rec_opt = self.rec_tx.update(rec_grads, state["rec_opt"], state["rec_params"])
        return {
            "step": state["step"] + 1,
            "com_params": optax.apply_updates(state["com_params"], com_updates),
            "rec_params": optax.apply_updates(state["rec_params"], rec_updates),
            "com_opt": com_opt,
            "rec_opt": rec_opt,
        }, metrics

    def eval_step(self, state: dict, batch: jax.Array) -> dict[str, jax.Array]:
        """Real-JPEG metrics at ``config.model.eval_quality`` (the codec runs in a host callback).

        ``psnr`` of the reconstruction, ``psnr_bicubic`` of the up-sampled decoded compact
        image alone, and ``payload_bpp``: JPEG bytes · 8 / pixels (container header excluded).
        """
        x = _rgb(batch)
        n, h, w, _ = x.shape
        compact = self.compact_uint8(state["com_params"], x)
        m = self.config.model

        def code(c):
            return jpeg_round_trip(np.asarray(c), [m.eval_quality] * len(c), m.subsampling)

        shapes = (jax.ShapeDtypeStruct(compact.shape, jnp.uint8), jax.ShapeDtypeStruct((n,), jnp.int32))
        decoded, nbytes = jax.pure_callback(code, shapes, compact)
        decoded = decoded.astype(jnp.float32) / 255.0
        y = jnp.clip(self.reconstruct(state["rec_params"], decoded), 0.0, 1.0)
        return {
            "psnr": _psnr(x, y),
            "psnr_bicubic": _psnr(x, jnp.clip(upsample(decoded), 0.0, 1.0)),
            "payload_bpp": jnp.mean(nbytes.astype(jnp.float32)) * 8.0 / (h * w),
        }

    def make_codec(self, state: dict, tables: Any = None) -> "ComRecCodec":
        """The ``.jxc`` codec of the trained networks; qualities are JPEG qualities."""
        return ComRecCodec(self, state["com_params"], state["rec_params"])


# ----------------------------------------------------------------------------- codec


class ComRecCodec:
    """A :class:`jaxcodec.codecs.protocol.Codec`: ComCNN → 8 bits → JPEG in a ``.jxc`` → RecCNN.

    ``encode`` pads to even size, runs ComCNN, and stores the compact image's JPEG as
    the payload; ``decode`` decodes it, up-samples, adds RecCNN's residual and crops.
    Qualities are libjpeg qualities (any of 1..100 is accepted; :attr:`qualities` is the
    RD ladder).
    """

    def __init__(self, task: ComRecTask, com_params: Any, rec_params: Any, name: str = MODEL_NAME):
        self.name = name
        m = task.config.model
        self.qualities = list(task.qualities)
        self.subsampling = m.subsampling
        self.description = (
            f"ComCNN + JPEG ({m.subsampling}) of a half-size compact image + bicubic + "
            f"{m.rec_depth}-layer RecCNN (Jiang et al. 2017)"
        )
        self.com_params, self.rec_params = com_params, rec_params
        leaves = jax.tree.leaves((com_params, rec_params))
        self.table_hash = entropy.table_hash(*(np.asarray(a, np.float32) for a in leaves))
        self._compact = jax.jit(task.compact_uint8)
        self._reconstruct = jax.jit(lambda p, d: to_uint8(task.reconstruct(p, d.astype(jnp.float32) / 255.0)))
        self.halo = -(-(int(m.rec_depth) + 4) // 2) + 2  # compact pixels (module docstring)
        # Working memory per full-resolution pixel: RecCNN's activations, a few alive at once.
        self.bytes_per_pixel = 16 * max(int(m.rec_features), int(m.com_features))

    def windows(self, h: int, w: int) -> tuple[list[tiling.Span], list[tiling.Span]]:
        """Tiles and windows, in compact pixels, of an ``(h, w)`` compact image
        (:func:`jaxcodec.tiling.spans`; tiles as large as :func:`jaxcodec.tiling.budget` allows)."""
        tile = tiling.tile_for(4 * self.bytes_per_pixel, self.halo)
        return tiling.spans(h, tile, self.halo), tiling.spans(w, tile, self.halo)

    def compact(self, image: np.ndarray) -> np.ndarray:
        """The ``uint8`` compact image ``(ceil(H/2), ceil(W/2), 3)`` of a ``uint8`` image."""
        image = _check_image(image, self.name)
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        h, w, _ = image.shape
        rows, cols = self.windows((h + 1) // 2, (w + 1) // 2)
        if len(rows) == len(cols) == 1:
            padded = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            x = padded.astype(np.float32)[None] / np.float32(255.0)
            return np.asarray(self._compact(self.com_params, x))[0]
        out = np.empty((rows[-1].stop, cols[-1].stop, 3), np.uint8)
        for ys in rows:
            for xs in cols:
                r0, r1, c0, c1 = 2 * ys.window_start, 2 * ys.window_stop, 2 * xs.window_start, 2 * xs.window_stop
                part = image[r0:min(r1, h), c0:min(c1, w)]
                part = np.pad(part, ((0, r1 - min(r1, h)), (0, c1 - min(c1, w)), (0, 0)), mode="edge")
                x = part.astype(np.float32)[None] / np.float32(255.0)
                out[ys.tile, xs.tile] = np.asarray(self._compact(self.com_params, x))[0][ys.inner, xs.inner]
        return out

    def reconstruct(self, decoded: np.ndarray, height: int, width: int) -> np.ndarray:
        """RGB ``uint8`` ``(height, width, 3)`` from a decoded ``uint8`` compact image;
        window by window for an image larger than one window (:meth:`windows`)."""
        decoded = np.asarray(decoded, np.uint8)
        rows, cols = self.windows(decoded.shape[0], decoded.shape[1])
        if len(rows) == len(cols) == 1:
            out = np.asarray(self._reconstruct(self.rec_params, decoded[None]))[0]
            return out[:height, :width]
        out = np.empty((height, width, 3), np.uint8)
        for ys in rows:
            for xs in cols:
                x = np.asarray(self._reconstruct(self.rec_params, decoded[None, ys.window, xs.window]))[0]
                r0, r1 = 2 * ys.start, min(2 * ys.stop, height)
                c0, c1 = 2 * xs.start, min(2 * xs.stop, width)
                dy, dx = 2 * ys.window_start, 2 * xs.window_start
                out[r0:r1, c0:c1] = x[r0 - dy : r1 - dy, c0 - dx : c1 - dx]
        return out

    def encode(self, image: np.ndarray, quality: Any) -> bytes:
        """Compresses a ``uint8`` ``(H, W, C)`` image (C = 1 or 3) at JPEG quality ``quality``."""
        quality = _check_quality(quality)
        image = _check_image(image, self.name)
        compact = self.compact(image)
        header = container.Header(
            model=self.name,
            table_hash=self.table_hash,
            height=image.shape[0],
            width=image.shape[1],
            channels=image.shape[2],
            latent_shape=compact.shape,
            quality=quality,
        )
        return container.pack(header, jpeg_encode(compact, quality, self.subsampling))

    def decode_symbols(self, data: bytes) -> np.ndarray:
        """The decoded ``uint8`` compact image of a stream of :meth:`encode`: libjpeg's
        integer decoding, identical on every machine (RecCNN's float work comes after)."""
        return self._symbols(data)[1]

    def _symbols(self, data: bytes) -> tuple[container.Header, np.ndarray]:
        header, payload = container.unpack(data)
        if header.model != self.name:
            raise ModelError(f"stream was made by model {header.model!r}, this codec is {self.name!r}")
        if header.table_hash != self.table_hash:
            raise ModelError(
                f"stream was made with other {self.name} weights (hash {header.table_hash.hex()}, "
                f"these are {self.table_hash.hex()})"
            )
        expected = ((header.height + 1) // 2, (header.width + 1) // 2, 3)
        if header.latent_shape != expected:
            raise BitstreamError(
                f"header's compact shape {header.latent_shape} does not fit a {header.height}x{header.width} image"
            )
        limits.check_pixels(header.height, header.width, "the stream", BitstreamError)
        return header, jpeg_decode(payload, expected)

    def decode(self, data: bytes) -> np.ndarray:
        """Decompresses a stream of :meth:`encode` into ``uint8`` ``(H, W, C)``.

        Raises:
          BitstreamError: corrupt container, broken JPEG payload, or inconsistent header.
          ModelError: the stream was made by another model or other weights.
        """
        header, compact = self._symbols(data)
        out = self.reconstruct(compact, header.height, header.width)
        if header.channels == 1:  # the mean of the three channels, a band of rows at a time
            grey = np.empty(out.shape[:2] + (1,), np.uint8)
            for r in range(0, out.shape[0], 256):
                grey[r : r + 256] = np.round(out[r : r + 256].astype(np.float32).mean(axis=2, keepdims=True))
            out = grey
        return out


def _check_image(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ImageError(f"{name} codes uint8 images, got dtype {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3) or min(image.shape[:2]) < 1:
        raise ImageError(f"{name} codes (H, W, 1) or (H, W, 3) images, got shape {image.shape}")
    return image
