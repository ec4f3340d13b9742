"""Training of ComCNN + JPEG + RecCNN (:mod:`jaxcodec.models.comrec`; Jiang, Tao, Liu, Zhao &
Ji, "An End-to-End Compression Framework Based on Convolutional Neural Networks", IEEE
TCSVT 28(10), 2018): both networks in one jitted step around the real JPEG round trip on
the host; the module docstring of :mod:`jaxcodec.models.comrec` gives the choices made.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.codecs.comrec import SUBSAMPLING, ComRecCodec, check_quality, jpeg_round_trip
from jaxcodec.errors import ConfigError
from jaxcodec.models.comrec import MODEL_NAME, ComCNN, RecCNN, to_uint8, upsample


PROXIES = ("straight_through", "identity")


def _mse(x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((x - y) ** 2)


def _psnr(x: jax.Array, y: jax.Array) -> jax.Array:
    """Batch mean of per-image PSNR (peak 1)."""
    mse = jnp.mean((x - y) ** 2, axis=(1, 2, 3))
    return jnp.mean(-10.0 * jnp.log10(jnp.maximum(mse, 1e-10)))


def _rgb(x: jax.Array) -> jax.Array:
    return jnp.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


class ComRecTask:
    """Training task for ComCNN + JPEG + RecCNN (seed 002); see :mod:`jaxcodec.models.comrec`.

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
        if m.subsampling not in SUBSAMPLING:
            raise ConfigError(f"config.model.subsampling must be one of {', '.join(SUBSAMPLING)}")
        if m.rec_depth < 2:
            raise ConfigError(f"config.model.rec_depth must be at least 2, got {m.rec_depth}")
        self.train_qualities = tuple(check_quality(q) for q in m.train_qualities)
        self.qualities = sorted({check_quality(q) for q in m.qualities})
        if not self.train_qualities or not self.qualities:
            raise ConfigError("config.model.train_qualities and config.model.qualities must not be empty")
        check_quality(m.eval_quality)
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
        """Updates ComCNN and RecCNN from one gradient of :meth:`losses` (see :mod:`jaxcodec.models.comrec`)."""
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
