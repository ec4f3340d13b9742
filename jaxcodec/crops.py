"""Crops and resizes of dataset images: central crops and squares, Lanczos resizing, and the
random (optionally down-scaled) training patches of :func:`jaxcodec.data.batches`. Images are
``(H, W, C)`` arrays, uint8 or float32 in [0, 1]."""

from __future__ import annotations

import numpy as np
from PIL import Image

from jaxcodec import image as imageio
from jaxcodec.errors import ConfigError

def center_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The central ``height x width`` window (the extra row/column, if odd, is cut at the end)."""
    h, w = image.shape[:2]
    top, left = (h - height) // 2, (w - width) // 2
    return image[top : top + height, left : left + width]


def center_square(image: np.ndarray) -> np.ndarray:
    """The largest central square: CelebA's 218 x 178 faces give rows 20..197, all columns."""
    side = min(image.shape[:2])
    return center_crop(image, side, side)


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """The largest central square of ``image`` resized to ``size x size`` (Pillow, Lanczos).

    Pillow's Lanczos filter widens with the scale factor, so shrinking is antialiased. A
    uint8 image stays uint8 (rounded by Pillow), so resized images remain exactly
    representable in 8 bits, as the codecs need; other pixel types are resized as float32
    per channel and clipped to [0, 1]. An image already ``size x size`` is returned unchanged.
    """
    image = center_square(image)
    if image.shape[0] == size:
        return image
    if image.dtype == np.uint8:
        if image.shape[-1] == 3:
            return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS))
        planes = [Image.fromarray(image[:, :, c]).resize((size, size), Image.Resampling.LANCZOS)
                  for c in range(image.shape[-1])]
        return np.stack([np.asarray(p) for p in planes], axis=-1)
    image = imageio.to_float32(image)
    planes = [Image.fromarray(np.ascontiguousarray(image[:, :, c])) for c in range(image.shape[-1])]
    planes = [plane.resize((size, size), Image.Resampling.LANCZOS) for plane in planes]
    return np.clip(np.stack([np.asarray(p, dtype=np.float32) for p in planes], axis=-1), 0.0, 1.0)


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly placed ``size x size`` patch; a smaller image is first reflect-padded.

    Padding is centred (mirror without repeating the edge pixel; an axis of length 1 repeats
    it), so small images still yield patches instead of failing mid-training.
    """
    h, w = image.shape[:2]
    if h < size or w < size:
        ph, pw = max(size - h, 0), max(size - w, 0)
        pads = [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)]
        mode = "reflect" if min(h, w) > 1 else "edge"
        image = np.pad(image, pads, mode=mode)
        h, w = image.shape[:2]
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    return image[top : top + size, left : left + size]


def check_downscale(downscale, crop: int | None) -> float:
    """``downscale`` as a float, or ConfigError: a number >= 1, and above 1 only with ``crop``."""
    try:
        value = float(downscale)
    except (TypeError, ValueError):
        raise ConfigError(f"downscale must be a number >= 1, got {downscale!r}") from None
    if not value >= 1.0:  # also rejects NaN
        raise ConfigError(f"downscale must be a number >= 1, got {downscale!r}")
    if value > 1.0 and crop is None:
        raise ConfigError("downscale needs crop: it sets how much larger a crop's source square may be")
    return value


def random_scaled_crop(image: np.ndarray, size: int, max_scale: float, rng: np.random.Generator) -> np.ndarray:
    """A ``size x size`` patch showing a random square of ``s·size`` pixels shrunk by ``s``.

    ``s`` is log-uniform in ``[1, max_scale]``, capped by the image's shorter side; the
    square is placed uniformly and resized with Lanczos (:func:`resize_image`). Shrinking
    packs more detail into each patch, as learned codecs get from down-sampled training
    photos (Ballé et al. 2017 trained on down-sampled ImageNet images; CompressAI's
    Vimeo-90k frames are 448 x 256 video). ``max_scale = 1`` is :func:`random_crop`,
    drawing the same random numbers (:func:`jaxcodec.data.batches` checks ``max_scale`` once,
    :func:`check_downscale`).
    """
    return resize_image(random_source_square(image, size, max_scale, rng), size)  # size x size: as cropped


def random_source_square(image: np.ndarray, size: int, max_scale: float, rng: np.random.Generator) -> np.ndarray:
    """The square that :func:`random_scaled_crop` shrinks to ``size x size``, drawing the
    same random numbers: the cheap, sequential half of it (the resize can then run on
    another thread without changing the stream)."""
    if max_scale <= 1.0:
        return random_crop(image, size, rng)
    scale = float(np.exp(rng.uniform(0.0, np.log(max_scale))))
    side = max(size, min(int(round(size * scale)), *image.shape[:2]))
    return random_crop(image, side, rng)

