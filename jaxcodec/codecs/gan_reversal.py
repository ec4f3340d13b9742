"""The GAN-reversal codec (Tolunay & Ghalayini, *Generative Neural Network Based Image
Compression*, CS 229 poster): an image is coded as the generator latent recovered by
gradient descent (:mod:`jaxcodec.codecs.inversion`), uniformly quantised and
histogram-coded (:mod:`jaxcodec.codecs.latent`); decoding runs the generator
(:mod:`jaxcodec.models.gan`, trained by :mod:`jaxcodec.train.tasks.gan`).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxcodec.codecs import latent as latent_codec
from jaxcodec.models.gan import MODEL_NAME


class GANReversalCodec(latent_codec.LatentCodec):
    """:class:`jaxcodec.codecs.latent.LatentCodec` whose encoder is the latent recovery.

    The only difference from the generic codec: :meth:`latent` calls
    :meth:`jaxcodec.train.tasks.gan.GANTask.invert` directly instead of one jitted encoder function, so on CPU
    the descent runs as one jitted call per step (see
    :func:`jaxcodec.codecs.inversion.default_loop`).
    """

    task: Any  # the jaxcodec.train.tasks.gan.GANTask whose generator decodes
    g_params: Any

    @classmethod
    def build(cls, task: Any, g_params: Any, tables: dict[str, np.ndarray]) -> "GANReversalCodec":
        """The codec of generator parameters ``g_params`` with entropy ``tables``."""
        inv = task.config.model.inversion
        codec = cls.from_tables(
            MODEL_NAME,
            encode_fn=lambda x: task.invert(g_params, x, loop="scan")[0],
            decode_fn=lambda z: task.generator.apply(g_params, z),
            tables=tables,
            image_shape=task.image_shape,
            description=(
                f"GAN reversal: {task.latent_dim} uniform latents recovered by {inv.steps} Adam "
                f"steps ({inv.loss} loss, {inv.get('clip', 'stochastic')} clipping), "
                "uniformly quantised + histogram coding"
            ),
        )
        codec.task, codec.g_params = task, g_params
        return codec

    def latent(self, image: np.ndarray) -> np.ndarray:
        """The recovered (unquantised) latent ``(d,)`` of one ``uint8`` image."""
        x = self._check_image(image).astype(np.float32)[None] / 255.0
        z, _ = self.task.invert(self.g_params, jnp.asarray(x))
        return np.asarray(z, np.float32).reshape(-1)
