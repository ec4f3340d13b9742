"""Where a dataset's images come from: one reader per scheme of a dataset spec.

:mod:`jaxcodec.data` parses a spec (``tfds:``, ``folder:``, ``npz:``, ``sample:``; its
docstring describes each) and preprocesses and batches the images; this module reads them.
:func:`open_source` returns a :class:`Source`: indexed access to one split's images in their
native pixel type (uint8, uint16 or float32, ``(H, W, C)``). The readers:

* a folder of image files, each decoded when first read and then kept in memory up to
  :data:`FOLDER_CACHE_BYTES`;
* NumPy arrays (an ``.npz`` or ``.npy`` file, or the MNIST sample in ``jaxcodec/samples``),
  loaded whole and checked for shape and pixel range when opened;
* scikit-image's photos (:data:`SAMPLE_PHOTOS`), loaded once per process;
* a prepared TFDS set, through ``as_data_source`` where its files allow random access
  (array_record), else read once through ``tf.data`` and held as the encoded images. The
  builder is restored from the prepared files; nothing is downloaded or built, and TFDS and
  TensorFlow are imported only when a ``tfds:`` spec is opened.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path

import numpy as np

from jaxcodec import image as imageio
from jaxcodec.errors import DatasetError, ImageError, one_line

SAMPLE_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "motorcycle",
)
_SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


def _as_image(array: np.ndarray, where: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise DatasetError(f"{where}: image of shape {array.shape} is not (H, W) or (H, W, C), C in 1, 3")
    return array


class Source:
    """Random access to the images of one split in their native pixel type (HWC)."""

    description: str

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def subset(self, start: int, stop: int) -> Source:
        return _Slice(self, start, stop)


class _Slice(Source):
    def __init__(self, source: Source, start: int, stop: int):
        self.source, self.start, self.stop = source, start, stop
        self.description = source.description

    def __len__(self) -> int:
        return self.stop - self.start

    def read(self, index: int) -> np.ndarray:
        return self.source.read(self.start + index)


class _ArraySource(Source):
    """Images held by any indexable: an array, a tuple, a TFDS data source (``key="image"``)."""

    def __init__(self, images, description: str, key: str | None = None):
        self.images, self.description, self.key = images, description, key

    def __len__(self) -> int:
        return len(self.images)

    def read(self, index: int) -> np.ndarray:
        item = self.images[index]
        return _as_image(item if self.key is None else item[self.key], self.description)


#: Decoded images a folder keeps in memory, in bytes: a training run draws patches from the
#: same few hundred photos every epoch, and decoding a large PNG costs more than a train step.
FOLDER_CACHE_BYTES = 2 << 30


class _FolderSource(Source):
    def __init__(self, files: list[Path], description: str):
        self.files, self.description = files, description
        self._cache: dict[int, np.ndarray] = {}
        self._cached_bytes = 0

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> np.ndarray:
        if index in self._cache:
            return self._cache[index]
        try:
            image = imageio.read_image_raw(self.files[index])
        except ImageError as error:
            raise DatasetError(str(error)) from None
        if self._cached_bytes + image.nbytes <= FOLDER_CACHE_BYTES:
            image.setflags(write=False)
            self._cache[index] = image
            self._cached_bytes += image.nbytes
        return image


class _TfdsStreamSource(Source):
    """A TFDS split without random access (tfrecord), held in memory as encoded images."""

    def __init__(self, builder, split: str, description: str, start: int = 0, stop: int | None = None):
        self.builder, self.split, self.description = builder, split, description
        self.start = start
        self.stop = builder.info.splits[split].num_examples if stop is None else stop
        self._encoded: list[bytes] | None = None

    def __len__(self) -> int:
        return self.stop - self.start

    def subset(self, start: int, stop: int) -> Source:
        offset = self.start
        return _TfdsStreamSource(self.builder, self.split, self.description, offset + start, offset + stop)

    def _load(self) -> list[bytes]:
        if self._encoded is None:
            import tensorflow as tf
            import tensorflow_datasets as tfds

            try:  # keep TensorFlow off accelerators that JAX uses
                tf.config.set_visible_devices([], "GPU")
            except RuntimeError:
                pass
            plain = re.fullmatch(r"\w+", self.split) is not None
            split = f"{self.split}[{self.start}:{self.stop}]" if plain else self.split
            dataset = self.builder.as_dataset(
                split=split, shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()})
            encoded = [bytes(example["image"]) for example in tfds.as_numpy(dataset)]
            self._encoded = encoded if plain else encoded[self.start : self.stop]
        return self._encoded

    def read(self, index: int) -> np.ndarray:
        try:
            return imageio.decode_image(self._load()[index], name=f"{self.description} example {index}")
        except ImageError as error:
            raise DatasetError(str(error)) from None


def _default_tfds_dir() -> str:
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def _tensorflow_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


def _tfds_builder(name: str, data_dir: str | None):
    """The builder of a prepared dataset, from its files (or, for old layouts, its code)."""
    if not _tensorflow_installed():  # TFDS reads a prepared dataset's metadata through TensorFlow
        raise DatasetError(
            f"tfds:{name} needs TensorFlow, which is not installed: pip install 'jaxcodec[tf]' (or tensorflow)"
        )
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import read_only_builder, registered

    kwargs = {"data_dir": data_dir} if data_dir else {}
    where = data_dir or _default_tfds_dir()
    try:
        return read_only_builder.builder_from_files(name, **kwargs)
    except registered.DatasetNotFoundError:
        pass
    except Exception as error:  # noqa: BLE001 - unreadable dataset_info.json, bad name, ...
        raise DatasetError(f"cannot open dataset '{name}' in {where}: {one_line(error, 160)}") from None
    absl_log = logging.getLogger("absl")
    level = absl_log.level
    absl_log.setLevel(logging.ERROR)  # its warning that the folder has no dataset_info.json: "not found" says it
    try:  # prepared without features.json (old TFDS): only the dataset's code can read it
        builder = tfds.builder(name, **kwargs)
        if builder.is_prepared():
            return builder
    except Exception:  # noqa: BLE001 - unknown name or code that cannot load: report "not found"
        pass
    finally:
        absl_log.setLevel(level)
    base = re.split(r"[/:]", name)[0]
    raise DatasetError(
        f"dataset '{name}' not found in {where}; prepare it with `tfds build {base} --data_dir={where} "
        "--file_format=array_record` or set --data_dir / TFDS_DATA_DIR")


def _not_opencv_note(record: logging.LogRecord) -> bool:
    """False for TFDS's note that OpenCV is not installed (it decodes with Pillow then, as wanted)."""
    return "OpenCV is not installed" not in record.getMessage()


def _quiet_opencv_note() -> None:
    """Keeps TFDS's OpenCV note out of the output of every run that reads a ``tfds:`` dataset."""
    absl_log = logging.getLogger("absl")
    if _not_opencv_note not in absl_log.filters:
        absl_log.addFilter(_not_opencv_note)


def _open_tfds(name: str, split: str, data_dir: str | None) -> Source:
    from tensorflow_datasets.core import file_adapters

    builder = _tfds_builder(name, data_dir)
    _quiet_opencv_note()
    description = f"tfds:{name}"
    features = builder.info.features
    if "image" not in features.keys():
        raise DatasetError(f"{description} has no 'image' feature (features: {', '.join(features.keys())})")
    base_split = re.match(r"\w*", split).group(0)
    if base_split not in builder.info.splits:
        raise DatasetError(f"{description} has no split {split!r} (splits: {', '.join(builder.info.splits)})")
    try:
        if builder.info.file_format in file_adapters.FileFormat.with_random_access():
            return _ArraySource(builder.as_data_source(split=split), description, key="image")
        return _TfdsStreamSource(builder, split, description)
    except Exception as error:  # noqa: BLE001 - a bad slice or unreadable files
        raise DatasetError(f"cannot read {description} split {split!r}: {one_line(error, 160)}") from None


def _open_folder(path: str, split: str) -> Source:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"folder {root} does not exist")
    split_dirs = sorted(d for d in ("train", "test", "validation") if (root / d).is_dir())
    if (root / split).is_dir():
        base = root / split
    elif split_dirs:
        raise DatasetError(
            f"folder {root} has split folders ({', '.join(split_dirs)}) but none named {split!r}")
    else:
        base = root
    files = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        files.extend(Path(dirpath) / f for f in filenames if imageio.is_image_file(f))
    files.sort(key=lambda p: p.relative_to(base).as_posix())
    if not files:
        raise DatasetError(f"folder {base} holds no image files ({' '.join(imageio.IMAGE_EXTENSIONS)})")
    return _FolderSource(files, f"folder:{path}")


def _check_array(array: np.ndarray, where: str) -> np.ndarray:
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise DatasetError(
            f"{where}: array of shape {array.shape} is not (N, H, W) or (N, H, W, C), C in 1, 3")
    if np.issubdtype(array.dtype, np.floating):
        if array.size and not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
            raise DatasetError(f"{where}: float images must lie in [0, 1]; store uint8 or scale them")
        return array.astype(np.float32, copy=False)
    if array.dtype not in (np.uint8, np.uint16, np.bool_):
        raise DatasetError(f"{where}: pixel type {array.dtype} is not uint8, uint16 or float in [0, 1]")
    return array


def _open_npz(path: str | Path, split: str, description: str) -> Source:
    try:
        loaded = np.load(Path(path).expanduser())
        if isinstance(loaded, np.ndarray):  # a bare .npy serves every split
            return _ArraySource(_check_array(loaded, description), description)
        with loaded:
            return _npz_split(loaded, split, description)
    except DatasetError:
        raise
    except Exception as error:  # noqa: BLE001 - missing file, not a NumPy file, bad zip
        raise DatasetError(f"cannot read {path}: {one_line(error, 160)}") from None


def _npz_split(loaded, split: str, description: str) -> Source:
    keys = list(loaded.files)
    for key in (f"x_{split}", "images", "x"):
        if key in keys:
            return _ArraySource(_check_array(loaded[key], f"{description} array {key}"), description)
    raise DatasetError(f"{description} has no array x_{split}, images or x (arrays: {', '.join(keys)})")


@functools.lru_cache(maxsize=1)
def _sample_photos() -> tuple[np.ndarray, ...]:
    import skimage.data

    photos = []
    for name in SAMPLE_PHOTOS:
        photo = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
        photo = np.asarray(photo, dtype=np.uint8)
        photo.setflags(write=False)
        photos.append(photo)
    return tuple(photos)


def open_source(scheme: str, target: str, split: str, data_dir: str | os.PathLike | None = None) -> Source:
    """The images of one split of the dataset ``scheme:target`` (a spec already checked by
    :func:`jaxcodec.data.parse_spec`); ``data_dir`` is for ``tfds:`` only."""
    spec = f"{scheme}:{target}"
    if scheme == "tfds":
        return _open_tfds(target, split, os.fspath(data_dir) if data_dir else None)
    if scheme == "folder":
        return _open_folder(target, split)
    if scheme == "npz":
        return _open_npz(target, split, spec)
    if target == "mnist":
        if split not in ("train", "test"):
            raise DatasetError(f"sample:mnist has splits train and test, not {split!r}")
        return _open_npz(_SAMPLES_DIR / "mnist_sample.npz", split, spec)
    return _ArraySource(_sample_photos(), spec)
