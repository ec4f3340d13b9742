"""The interface every codec implements, classical or learned.

A codec turns an 8-bit image (``uint8`` array of shape ``(H, W, C)``, C = 1 or 3)
into real bytes and back. Rate is always counted from those bytes:
``bpp = len(data) * 8 / (H * W)`` (see :func:`jaxcodec.eval.metrics.bpp`).

``qualities`` lists the operating points a rate-distortion sweep visits, from the
lowest rate to the highest; what a quality means is the codec's own business
(a JPEG quality, a bit depth, the index of a model in a lambda ladder, ...).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from jaxcodec.errors import ImageError


@runtime_checkable
class Codec(Protocol):
    """A lossy image codec measured by its real bytes."""

    name: str
    description: str
    qualities: Sequence[Any]

    def encode(self, image: np.ndarray, quality: Any) -> bytes:
        """Compresses a ``uint8`` ``(H, W, C)`` image at ``quality`` into bytes."""
        ...

    def decode(self, data: bytes) -> np.ndarray:
        """Decompresses bytes from :meth:`encode` into a ``uint8`` ``(H, W, C)`` image."""
        ...


def check_image(image: np.ndarray, shape: tuple[int, int, int] | None = None, name: str | None = None) -> np.ndarray:
    """Returns ``image`` as a C-contiguous ``uint8`` ``(H, W, C)`` array, C = 1 or 3.

    Raises :class:`ImageError` for any other dtype or shape, so that no codec silently
    rescales floats or drops an alpha channel. A codec of one fixed ``shape`` (the MNIST
    models) names itself (``name``) and also takes a 2-D image when ``shape`` is grey.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        who = f"{name} expects a uint8 image" if name else "codecs take uint8 images"
        raise ImageError(f"{who}, got dtype {image.dtype}")
    if shape is not None:
        if image.ndim == 2 and shape[2] == 1:
            image = image[:, :, None]
        if image.shape != tuple(shape):
            raise ImageError(f"{name or 'this codec'} codes {tuple(shape)} images only, got shape {image.shape}")
    if image.ndim != 3 or image.shape[2] not in (1, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError(f"codecs take (H, W, 1) or (H, W, 3) images, got shape {image.shape}")
    return np.ascontiguousarray(image)
