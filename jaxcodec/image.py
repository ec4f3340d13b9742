"""Reading and writing image files as NumPy arrays.

Images are ``(H, W, C)`` arrays with C = 1 (grey) or 3 (RGB). Files are read with Pillow,
and with imagecodecs for the 16-bit colour PNG and TIFF files that Pillow would silently
reduce to 8 bits. The conversions are fixed so that every reader of the project sees the
same pixels:

* grey (``L``, 1-bit) stays one channel; grey + alpha drops the alpha (one channel);
* RGBA and RGBX drop the alpha (as Pillow's ``convert("RGB")`` and CompressAI's evaluation
  do; the colour values are kept, not composited on a background);
* palette, CMYK, YCbCr, LAB and HSV images become RGB;
* 16-bit images (grey or colour) keep 16 bits: :func:`read_image_raw` returns ``uint16``
  and :func:`to_float32` divides by 65535;
* 32-bit float images (TIFF ``F``) must already lie in [0, 1];
* a multi-frame file (GIF, TIFF pages) gives its first frame. EXIF orientation is not
  applied: the stored pixels are what a codec compresses.

Before any pixel is decoded, the size the file's header declares is checked against
:func:`jaxcodec.limits.max_pixels` (a 518 KB PNG can declare 169 megapixels).
Every failure to read raises :class:`jaxcodec.errors.ImageError` with a one-line message
naming the file.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from jaxcodec import limits
from jaxcodec.errors import ImageError, one_line
from jaxcodec.fileio import atomic_path, atomic_write_bytes

#: File name endings (lower case) treated as images when a folder is scanned.
IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".ppm", ".pgm", ".pnm",
)

_DROP_ALPHA = {"LA": "L", "La": "L", "PA": "RGB", "RGBA": "RGB", "RGBa": "RGB", "RGBX": "RGB"}
_TO_RGB = {"P", "CMYK", "YCbCr", "LAB", "HSV"}


def is_image_file(path: str | os.PathLike) -> bool:
    """True for a file name with one of :data:`IMAGE_EXTENSIONS`, not hidden (no leading dot)."""
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _channels_last(array: np.ndarray) -> np.ndarray:
    """(H, W) → (H, W, 1); (H, W, 2) grey+alpha → (H, W, 1); (H, W, 4) RGBA → (H, W, 3)."""
    if array.ndim == 2:
        return array[:, :, None]
    if array.ndim == 3 and array.shape[-1] in (2, 4):
        return array[:, :, : array.shape[-1] - 1]
    return array


def _png_is_deep_colour(data: bytes) -> bool:
    """True for a 16-bit PNG of colour type RGB, grey+alpha or RGBA (IHDR bytes 24, 25)."""
    return len(data) > 25 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[24] == 16 and data[25] in (2, 4, 6)


def _tiff_is_deep(image: Image.Image) -> bool:
    """True for a TIFF with more than 8 bits per sample that Pillow gives as 8-bit RGB(A)/LA."""
    bits = image.tag_v2.get(258, (8,))  # BitsPerSample
    bits = bits if isinstance(bits, tuple) else (bits,)
    return max(bits) > 8 and image.mode in ("RGB", "RGBA", "RGBX", "LA", "CMYK")


def _decode_with_imagecodecs(data: bytes, fmt: str) -> np.ndarray:
    import imagecodecs

    array = imagecodecs.png_decode(data) if fmt == "PNG" else imagecodecs.tiff_decode(data)
    return _channels_last(np.asarray(array))


def _from_pil(image: Image.Image) -> np.ndarray:
    """Pixels of an opened Pillow image as uint8, uint16 or float32 (H, W, C), C in {1, 3}."""
    mode = image.mode
    if mode == "1":
        image, mode = image.convert("L"), "L"
    if mode in _DROP_ALPHA:
        image = image.convert(_DROP_ALPHA[mode])
        mode = image.mode
    if mode in _TO_RGB:
        image, mode = image.convert("RGB"), "RGB"
    if mode in ("L", "RGB"):
        return _channels_last(np.asarray(image, dtype=np.uint8))
    if mode.startswith("I"):  # "I;16", "I;16B", "I;16L", "I;16N" and 32-bit "I"
        array = np.asarray(image)
        if array.min() < 0 or array.max() > 65535:
            raise ValueError(f"integer pixel values outside 0..65535 (mode {mode})")
        return _channels_last(array.astype(np.uint16))
    if mode == "F":
        array = np.asarray(image, dtype=np.float32)
        if not (np.isfinite(array).all() and array.min() >= 0.0 and array.max() <= 1.0):
            raise ValueError("floating-point pixel values outside [0, 1]")
        return _channels_last(array)
    raise ValueError(f"unsupported image mode {mode}")


def decode_image(data: bytes, *, name: str = "<bytes>") -> np.ndarray:
    """Decodes encoded image bytes (PNG, JPEG, WebP, TIFF, ...) with the module's conversions.

    Returns the native pixel type: ``uint8``, ``uint16`` (16-bit files) or ``float32``
    (float TIFF), shape ``(H, W, C)`` with C = 1 or 3. ``name`` is used in error messages.
    A header that declares more than :func:`jaxcodec.limits.max_pixels` pixels is refused
    before the pixels are decoded.
    """
    try:
        with warnings.catch_warnings():  # Pillow's bomb warning: the limit below is the one applied
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        with image:
            try:
                limits.check_pixels(image.height, image.width, "the file")
            except ImageError as error:
                raise ImageError(f"cannot read image {name}: {error}") from None
            image.load()
            fmt = image.format
            if (fmt == "PNG" and _png_is_deep_colour(data)) or (fmt == "TIFF" and _tiff_is_deep(image)):
                array = _decode_with_imagecodecs(data, fmt)
            else:
                array = _from_pil(image)
    except ImageError:
        raise
    except UnidentifiedImageError:  # its message names the in-memory file object, not the file
        raise ImageError(f"cannot read image {name}: not an image file, or a format Pillow does not read") from None
    except Image.DecompressionBombError as error:
        raise ImageError(f"cannot read image {name}: {one_line(error)}") from None
    except Exception as error:  # Pillow raises many types: OSError, SyntaxError, ...
        raise ImageError(f"cannot read image {name}: {one_line(error)}") from None
    if array.dtype not in (np.uint8, np.uint16, np.float32) or array.shape[-1] not in (1, 3):
        raise ImageError(f"cannot read image {name}: unsupported pixel layout {array.dtype} {array.shape}")
    return np.ascontiguousarray(array)


def read_image_raw(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file in its native pixel type (uint8, uint16 or float32), ``(H, W, C)``."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ImageError(f"cannot read image {os.fspath(path)}: {one_line(error)}") from None
    return decode_image(data, name=os.fspath(path))


def has_alpha(path: str | os.PathLike) -> bool:
    """Whether an image file carries transparency (an alpha channel, or a palette or
    colour marked transparent), which the conversions above drop. Reads the header only;
    False for anything Pillow cannot open."""
    try:
        with Image.open(path) as image:
            return image.mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in image.info
    except Exception:  # Pillow raises many types; reading the pixels reports the problem
        return False


def read_image_float32(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as float32 ``(H, W, C)`` in [0, 1] (see the module's conversions);
    :func:`jaxcodec.read_image` reads the same file as ``uint8``."""
    return to_float32(read_image_raw(path))


def to_float32(image: np.ndarray) -> np.ndarray:
    """Pixels as float32 in [0, 1]: uint8 / 255, uint16 / 65535, bool → {0, 1}, floats unchanged."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255.0)
    if image.dtype == np.uint16:
        return image.astype(np.float32) / np.float32(65535.0)
    if image.dtype == np.bool_ or np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32)
    raise ImageError(f"unsupported pixel type {image.dtype}; use uint8, uint16 or floats in [0, 1]")


def image_files(folder: str | os.PathLike) -> list[str]:
    """Paths of the image files directly in ``folder`` (:func:`is_image_file`), sorted by name;
    :class:`ImageError` if ``folder`` is not a folder or holds none."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ImageError(f"{folder} is not a folder")
    paths = (os.path.join(folder, n) for n in sorted(os.listdir(folder)) if is_image_file(n))
    files = [path for path in paths if os.path.isfile(path)]
    if not files:
        raise ImageError(f"{folder} holds no image files")
    return files


def read_rgb_uint8(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 RGB ``(H, W, 3)``: deep colour rounded to 8 bits, grey repeated
    into three channels, alpha dropped."""
    image = to_uint8(read_image_raw(path))
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] → uint8 by rounding ``x * 255`` (exact inverse of ``to_float32``)."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.round(image.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
    return np.round(np.clip(image.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def write_image(path: str | os.PathLike, image: np.ndarray, **save_kwargs) -> None:
    """Writes an ``(H, W, C)`` or ``(H, W)`` image; the format follows the file name ending.

    Floats in [0, 1] are rounded to 8 bits (:func:`to_uint8`). ``uint16`` images keep 16 bits
    and must go to ``.png`` or ``.tif``/``.tiff`` (written with imagecodecs). ``save_kwargs``
    go to Pillow's ``Image.save`` (e.g. ``quality=90`` for JPEG). The file appears atomically
    (:mod:`jaxcodec.fileio`): never half-written.
    """
    path = os.fspath(path)
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
        raise ImageError(f"cannot write image {path}: shape {image.shape} is not (H, W[, C]), C in 1, 3, 4")
    suffix = os.path.splitext(path)[1].lower()
    if image.dtype == np.uint16:
        import imagecodecs

        if suffix == ".png":
            atomic_write_bytes(path, imagecodecs.png_encode(image))
        elif suffix in (".tif", ".tiff"):
            atomic_write_bytes(path, imagecodecs.tiff_encode(image))
        else:
            raise ImageError(f"cannot write image {path}: 16-bit images need .png or .tif")
        return
    try:
        with atomic_path(path) as tmp:  # the temporary file keeps the suffix Pillow reads the format from
            Image.fromarray(to_uint8(image)).save(tmp, **save_kwargs)
    except (OSError, ValueError, KeyError) as error:
        raise ImageError(f"cannot write image {path}: {one_line(error)}") from None


#: Lossless formats a decoded image is written in, by file name ending (:func:`write_lossless`).
LOSSLESS_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP", ".ppm": "PPM",
                    ".pgm": "PPM", ".pnm": "PPM", ".webp": "WEBP"}


def lossless_format(ending: str) -> str:
    """Pillow's format name for a file name ending of :data:`LOSSLESS_FORMATS` (``""``:
    PNG); an :class:`ImageError` for any other ending."""
    fmt = LOSSLESS_FORMATS.get(ending.lower() or ".png")
    if fmt is None:
        raise ImageError(
            f"cannot write a decoded image as {ending!r}: it is written losslessly, as one of "
            f"{', '.join(sorted(LOSSLESS_FORMATS))}"
        )
    return fmt


def write_lossless(path: str | os.PathLike, image: np.ndarray) -> None:
    """:func:`write_image` in the lossless format of ``path``'s ending (:func:`lossless_format`;
    no ending gives PNG, WebP is written lossless): a decoded image is not coded again with
    more loss."""
    fmt = lossless_format(os.path.splitext(os.fspath(path))[1])
    write_image(path, image, format=fmt, **({"lossless": True, "exact": True} if fmt == "WEBP" else {}))
