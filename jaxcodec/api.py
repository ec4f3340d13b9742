"""The user-facing functions: compress an image into bytes and back.

  >>> import jaxcodec
  >>> data = jaxcodec.compress(image, "bmshj2017-factorized", quality=3)
  >>> decoded = jaxcodec.decompress(data)

Images are ``uint8`` arrays of shape ``(H, W, C)`` or ``(H, W)`` (C = 1 or 3), or
``uint16`` or float arrays in [0, 1] (rounded to 8 bits). Streams from learned models are ``.jxc`` containers
(:mod:`jaxcodec.codecs.container`) that name the model that made them, so
:func:`decompress` needs no model argument for shipped models.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from jaxcodec.codecs.protocol import Codec
from jaxcodec.errors import ImageError, JaxcodecError

DEFAULT_MODEL = "mbt2018-mean"  # the best photo model on the validation split (docs/training.md)


def as_uint8_image(image: Any) -> np.ndarray:
    """Checks and converts an image to ``uint8`` ``(H, W, C)`` with C in {1, 3}: floats in
    [0, 1] (clipped) and ``uint16`` (:func:`jaxcodec.image.to_uint8`) are rounded to 8 bits."""
    from jaxcodec import image as imageio

    x = np.asarray(image)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.shape[-1] not in (1, 3) or x.shape[0] < 1 or x.shape[1] < 1:
        raise ImageError(f"expected an image of shape (H, W), (H, W, 1) or (H, W, 3), got {x.shape}")
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        if not np.all(np.isfinite(x)):
            raise ImageError("image has NaN or infinite values")
        return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
    if x.dtype == np.uint16:
        return imageio.to_uint8(x)
    raise ImageError(f"expected uint8, uint16 or float pixels, got {x.dtype}")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file into ``uint8`` ``(H, W, C)`` with the conversions of
    :mod:`jaxcodec.image` (grey stays grey, alpha is dropped, palette and CMYK become
    RGB, 16-bit and float images are rounded to 8 bits)."""
    from jaxcodec import image as imageio

    if not os.path.exists(path):
        raise ImageError(f"{os.fspath(path)}: no such file")
    try:
        return as_uint8_image(imageio.read_image_raw(path))
    except ImageError as error:
        reason, prefix = str(error), f"cannot read image {os.fspath(path)}: "
        reason = reason[len(prefix):] if reason.startswith(prefix) else reason
        raise ImageError(f"{os.fspath(path)}: not a readable image ({reason})") from None


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of a ``uint8`` image."""
    from PIL import Image

    image = as_uint8_image(image)
    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buf, format="PNG")
    return buf.getvalue()


def get_model(model: str | os.PathLike | Codec | None) -> Codec:
    """A codec object from a shipped model name, a workdir path (``str`` or ``Path``) or a
    codec object; ``None`` is the default model (:data:`DEFAULT_MODEL`)."""
    from jaxcodec.errors import ModelError
    from jaxcodec.zoo import get_codec

    if model is None:
        model = DEFAULT_MODEL
    if isinstance(model, (str, os.PathLike)):
        return get_codec(os.fspath(model))
    if not (callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None))):
        raise ModelError(f"model must be a model name, a workdir path or a codec, got {type(model).__name__}")
    return model


def compress(image: Any, model: str | os.PathLike | Codec | None = DEFAULT_MODEL, quality: Any = None,
             refine: int = 0, *, max_bytes: int | None = None, bpp: float | None = None,
             psnr: float | None = None) -> bytes:
    """Compresses an image with a learned (or classical) codec; returns the stream bytes.

    ``quality`` defaults to the middle of the codec's qualities. ``refine > 0`` lets a
    learned codec's encoder optimise the image's latent for that many steps
    (:mod:`jaxcodec.codecs.refinement`; a hyperprior searches its hyper-latent first,
    :mod:`jaxcodec.codecs.hyper_refinement`): slower encoding, fewer bits for the same quality, and a
    stream that decodes like any other. Instead of a quality, one target picks it
    (:mod:`jaxcodec.rate_control`): ``max_bytes`` (the largest quality whose stream fits),
    ``bpp`` (the closest rate) or ``psnr`` (the smallest stream that reaches it).
    """
    codec = get_model(model)
    label = model if isinstance(model, str) else codec.name  # the name the caller knows the model by
    image = as_uint8_image(image)
    if refine:
        from jaxcodec.zoo import refined

        codec = refined(codec, refine)
    if max_bytes is not None or bpp is not None or psnr is not None:
        from jaxcodec import rate_control

        if quality is not None:
            raise JaxcodecError("give a quality or a target (max_bytes, bpp, psnr), not both")
        return rate_control.fit(image, codec, max_bytes=max_bytes, bpp=bpp, psnr=psnr).data
    span = getattr(codec, "quality_range", None)  # a codec of continuous rate takes any real quality in it
    if quality is None:
        quality = codec.qualities[len(codec.qualities) // 2]
    elif span is not None:
        try:
            quality = float(quality)
        except (TypeError, ValueError):
            quality = None
        if quality is None or not span[0] <= quality <= span[1]:
            raise JaxcodecError(f"{label} takes a quality between {span[0]:g} and {span[1]:g}")
        if quality.is_integer() and isinstance(codec.qualities[0], (int, np.integer)):
            quality = int(quality)
    elif quality not in codec.qualities:
        try:
            quality = type(codec.qualities[0])(quality)
        except (TypeError, ValueError):
            pass
        if quality not in codec.qualities:
            raise JaxcodecError(f"{label} has no quality {quality!r}; available: {list(codec.qualities)}")
    return codec.encode(image, quality)


def decompress(data: bytes, model: str | os.PathLike | Codec | None = None) -> np.ndarray:
    """Decodes a stream into a ``uint8`` ``(H, W, C)`` image.

    Without ``model``, the shipped model that made the stream decodes it: the one named
    in the header or, since a trained model's streams carry its family's name (e.g.
    ``"factorized"`` for every ``bmshj2017-factorized-qN``), the shipped model of that
    family whose tables match the stream's.
    """
    if model is not None:
        return get_model(model).decode(data)
    from jaxcodec import zoo

    return zoo.decode_stream(data)


def check_stream(data: bytes) -> tuple[str, Any] | None:
    """What decoding checks before it allocates, for :func:`info`: the declared size against
    the pixel limit (:mod:`jaxcodec.limits`) and, for a shipped model's stream, the payload
    against the fewest bytes its symbols can take (the codec's ``check_stream``); a forged
    header is a :class:`~jaxcodec.errors.BitstreamError`. Returns ``(name, codec)`` of the
    shipped model that made the stream, or None (a standard codec's file, a workdir's model)."""
    from jaxcodec import artefact, limits, zoo
    from jaxcodec.codecs import standard as classical
    from jaxcodec.codecs import container
    from jaxcodec.errors import BitstreamError

    if classical.identify(data) is not None:
        return None
    header = container.unpack(data)[0]
    limits.check_pixels(header.height, header.width, "the stream", BitstreamError)
    for name, entry in zoo.shipped_models().items():
        if name == header.model or (entry["model_name"] == header.model and
                                    header.tables_match(bytes.fromhex(artefact.read_spec(entry["path"]).get("table_hash") or ""))):
            codec = zoo.load_codec(entry["path"])
            if hasattr(codec, "check_stream"):
                codec.check_stream(data)
            return name, codec
    return None


def info(data: bytes) -> dict[str, Any]:
    """The header fields of a ``.jxc`` stream, as a dict, with the shipped model that made it
    (``shipped_model``, when one did) and its quality as the model states it (``--quality
    3.5`` reads 3.5); for a standard codec's stream (:func:`jaxcodec.codecs.standard.identify`),
    its codec, size and image shape."""
    from jaxcodec.codecs import container, registry
    from jaxcodec.codecs import standard as classical

    standard = classical.identify(data)
    if standard is not None:
        h, w, c = registry.get_codec(standard).decode(data).shape
        return {"codec": standard, "height": h, "width": w, "channels": c, "total_bytes": len(data),
                "bpp": len(data) * 8 / (h * w)}
    shipped = check_stream(data)
    header, payload = container.unpack(data)
    quality: Any = header.quality
    if shipped is not None and hasattr(shipped[1], "stream_quality"):
        quality = shipped[1].stream_quality(header)  # e.g. a continuous-rate model's 3.5, stored as 3500
    return {
        "model": header.model,
        **({"shipped_model": shipped[0]} if shipped is not None else {}),
        "format_version": header.layout,
        "table_hash": header.table_hash.hex(),
        "height": header.height,
        "width": header.width,
        "channels": header.channels,
        "latent_shape": list(header.latent_shape),
        "quality": quality,
        "payload_bytes": len(payload),
        "total_bytes": len(data),
        "bpp": len(data) * 8 / (header.height * header.width),
    }
