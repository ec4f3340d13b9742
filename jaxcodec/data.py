"""Image datasets for training and evaluation: specs, preprocessing, batches.

Images leave this module as float32 arrays in [0, 1], ``(H, W, C)`` one by one
(:func:`load_images`) or ``(N, H, W, C)`` in batches (:func:`batches`), C = 1 or 3. They are
read by the per-scheme readers of :mod:`jaxcodec.data_sources`.

A dataset is named by a spec string ``SCHEME:TARGET``:

``tfds:NAME[/CONFIG][:VERSION]``
    A TensorFlow Datasets set already prepared in ``data_dir`` (default: the
    ``TFDS_DATA_DIR`` environment variable, else ``~/tensorflow_datasets``); it is never
    downloaded or built here. The builder is restored from the prepared files (their
    ``features.json``), so a dataset prepared elsewhere or by another TFDS version reads the
    same way, and the latest version on disk is used unless one is named. Images come from the
    feature named ``"image"`` (as in ``celeb_a``, ``mnist`` and most image sets). array_record
    files are read with random access (``as_data_source``; no TensorFlow needed at read time).
    Any other format (tfrecord, the default of ``tfds build``) is read once through
    ``tf.data`` into memory as the stored PNG/JPEG bytes, which needs TensorFlow and RAM about
    the size of the files; prepare large sets with ``--file_format=array_record`` instead.
    Splits and slices are TFDS's own (``"train"``, ``"test"``, ``"train[:1000]"``).
``folder:PATH``
    Every image file (:data:`jaxcodec.image.IMAGE_EXTENSIONS`) under PATH, searched
    recursively (hidden files and folders skipped), in sorted order of their relative paths,
    of any size. If PATH has a subfolder named like the split (``PATH/train``, ``PATH/test``)
    that subfolder is used; a folder without split subfolders serves all its files for every
    split. Pixel conversions are those of :mod:`jaxcodec.image` (grey stays one channel,
    alpha is dropped, palette becomes RGB, 16-bit is divided by 65535).
``npz:PATH``
    A NumPy ``.npz`` with arrays ``x_train`` / ``x_test`` (MNIST layout, chosen by split as
    ``x_{split}``), or one array ``images`` or ``x`` (or a bare ``.npy``) for every split.
    ``(N, H, W)`` gains a channel axis; uint8 is divided by 255, uint16 by 65535, floats must
    lie in [0, 1].
``sample:mnist``
    5000 training and 1000 test MNIST digits (28 x 28 x 1) shipped in ``jaxcodec/samples``.
``sample:photos``
    Seven real RGB photos shipped in scikit-image's wheel
    (:data:`jaxcodec.data_sources.SAMPLE_PHOTOS`, sizes from 300 x 451 to 872 x 1000; its grey
    photos such as ``camera`` are left out). It is an evaluation set: every split returns the
    same seven photos.

Entry points: :func:`load_images` (evaluation: whole images), :func:`batches` (training:
shuffled, cropped, sharded across processes), :func:`open_dataset` (lazy random access),
:func:`image_shape`.

Preprocessing, in order: (1) a per-dataset rule keyed by the TFDS name
(:data:`DATASET_RULES`; ``celeb_a`` keeps the central 178 x 178 square of its 218 x 178
faces); (2) ``image_size``: the largest central square, resized to ``image_size`` squared
(:func:`jaxcodec.crops.resize_image`); (3) in :func:`batches` only, ``crop``: a random ``crop`` squared
patch, optionally cut from a larger square and shrunk to ``crop`` (``downscale``,
:func:`jaxcodec.crops.random_scaled_crop`); (4) conversion to float32.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from jaxcodec import data_sources
from jaxcodec import image as imageio
from jaxcodec.crops import center_square, check_downscale, random_source_square, resize_image
from jaxcodec.errors import ConfigError, DatasetError

SCHEMES = ("tfds", "folder", "npz", "sample")
_SPEC_HELP = "use tfds:NAME, folder:PATH, npz:PATH, sample:mnist or sample:photos"


# --------------------------------------------------------------------------- specs


@dataclasses.dataclass(frozen=True)
class Spec:
    """A parsed dataset spec: ``scheme`` (one of :data:`SCHEMES`) and ``target``."""

    scheme: str
    target: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}"


def parse_spec(spec: str | Spec) -> Spec:
    """Splits ``"SCHEME:TARGET"`` at the first colon; raises DatasetError for an unknown scheme."""
    if isinstance(spec, Spec):
        return spec
    scheme, sep, target = str(spec).partition(":")
    if not sep or scheme not in SCHEMES or not target:
        raise DatasetError(f"unknown dataset spec {spec!r}: {_SPEC_HELP}")
    if scheme == "sample" and target not in ("mnist", "photos"):
        raise DatasetError(f"unknown sample {target!r}: use sample:mnist or sample:photos")
    return Spec(scheme, target)


#: Preprocessing applied to every image of a TFDS dataset, keyed by its name (the part of
#: ``NAME[/CONFIG][:VERSION]`` before any ``/`` or ``:``), before ``image_size``. CelebA's
#: aligned faces are 218 x 178 (Liu et al., "Deep Learning Face Attributes in the Wild",
#: ICCV 2015); the usual square crop keeps the central 178 x 178. Add entries for other sets.
DATASET_RULES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"celeb_a": center_square}


# --------------------------------------------------------------------------- datasets


def _check_int(name: str, value, *, allow_none: bool = True, minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


class Dataset:
    """One split of a dataset: ``len(ds)`` images, ``ds[i]`` float32 ``(H, W, C)`` in [0, 1].

    Created by :func:`open_dataset`. Images are read lazily, one per access, and preprocessed
    (dataset rule, then ``image_size``) as described in the module docstring.
    """

    def __init__(self, source: data_sources.Source, spec: Spec, rule: Callable | None, image_size: int | None):
        self._source, self.spec, self._rule, self.image_size = source, spec, rule, image_size

    def __len__(self) -> int:
        return len(self._source)

    def native(self, index: int) -> np.ndarray:
        """Image ``index`` preprocessed but in its native pixel type (uint8, uint16 or float32)."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        image = self._source.read(index % len(self))
        if self._rule is not None:
            image = self._rule(image)
        if self.image_size is not None:
            image = resize_image(image, self.image_size)
        return image

    def __getitem__(self, index: int) -> np.ndarray:
        return imageio.to_float32(self.native(index))

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    def subset(self, start: int, stop: int) -> Dataset:
        """Images ``start..stop-1`` (only those are read, also from a tfrecord dataset)."""
        return Dataset(self._source.subset(start, stop), self.spec, self._rule, self.image_size)


def open_dataset(spec: str | Spec, split: str = "test", *, image_size: int | None = None,
                 data_dir: str | os.PathLike | None = None) -> Dataset:
    """Opens one split of a dataset spec for random access (``data_dir`` is for ``tfds:`` only)."""
    spec = parse_spec(spec)
    _check_int("image_size", image_size)
    rule = DATASET_RULES.get(re.split(r"[/:]", spec.target)[0]) if spec.scheme == "tfds" else None
    return Dataset(data_sources.open_source(spec.scheme, spec.target, split, data_dir), spec, rule, image_size)


def load_images(spec: str | Spec, split: str = "test", *, limit: int | None = None,
                image_size: int | None = None, data_dir: str | os.PathLike | None = None) -> list[np.ndarray]:
    """The first ``limit`` (default: all) images of a split, float32 ``(H, W, C)`` in [0, 1].

    Sizes may differ between images (an evaluation set of photos). Mind the memory: all
    images are decoded at once, so set ``limit`` for large sets.
    """
    _check_int("limit", limit, minimum=0)
    dataset = open_dataset(spec, split, image_size=image_size, data_dir=data_dir)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    return list(dataset.subset(0, count))


def image_shape(spec: str | Spec, split: str = "train", *, image_size: int | None = None,
                crop: int | None = None, data_dir: str | os.PathLike | None = None) -> tuple[int, int, int]:
    """``(H, W, C)`` of the images :func:`batches` yields, from the split's first image."""
    _check_int("crop", crop)
    dataset = open_dataset(spec, split, image_size=image_size, data_dir=data_dir)
    if len(dataset) == 0:
        raise DatasetError(f"{dataset.spec} split {split!r} is empty")
    height, width, channels = dataset.native(0).shape
    return (crop, crop, channels) if crop else (height, width, channels)


def process_bounds(num_examples: int, process_index: int, process_count: int) -> tuple[int, int]:
    """The contiguous ``[start, stop)`` block of examples that process ``process_index`` reads.

    Blocks are disjoint, cover every example, and differ in size by at most one, as with
    ``tfds.split_for_jax_process``.
    """
    start = num_examples * process_index // process_count
    return start, num_examples * (process_index + 1) // process_count


def batches(spec: str | Spec, split: str = "train", *, batch_size: int, image_size: int | None = None,
            crop: int | None = None, downscale: float = 1.0, shuffle: bool = True, seed: int = 0,
            num_epochs: int | None = None, drop_remainder: bool = True, process_index: int | None = None,
            process_count: int | None = None, data_dir: str | os.PathLike | None = None,
            workers: int | None = None) -> Iterator[np.ndarray]:
    """Batches of float32 ``(batch_size, H, W, C)`` images in [0, 1] for this process.

    Each process reads its own block of the split (:func:`process_bounds`;
    ``process_index``/``process_count`` default to JAX's). Every epoch visits each example of
    the block once, in the order of a permutation drawn from ``(seed, epoch, process_index)``
    (in file order when ``shuffle`` is false); ``crop`` patches are drawn from the same
    generator, so a seed fixes the whole stream; with ``downscale > 1`` each patch is a
    random square up to ``downscale`` times larger shrunk to ``crop``
    (:func:`jaxcodec.crops.random_scaled_crop`). ``num_epochs=None`` repeats forever. With
    ``drop_remainder`` the last short batch of an epoch is dropped, else it is yielded. Images
    of different shapes can only be batched with ``crop`` or ``image_size`` (DatasetError
    otherwise). Errors in the spec raise here, not at the first ``next``. With ``downscale > 1``
    the patches are shrunk on ``workers`` threads (default: the cores, at most 8); the
    stream is the same for any number of workers.
    """
    spec = parse_spec(spec)
    _check_int("batch_size", batch_size, allow_none=False)
    _check_int("crop", crop)
    _check_int("num_epochs", num_epochs)
    downscale = check_downscale(downscale, crop)
    if process_index is None or process_count is None:
        import jax

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    _check_int("process_count", process_count, allow_none=False)
    _check_int("process_index", process_index, allow_none=False, minimum=0)
    if process_index >= process_count:
        raise ConfigError(f"process_index {process_index} is not below process_count {process_count}")
    dataset = open_dataset(spec, split, image_size=image_size, data_dir=data_dir)
    block = dataset.subset(*process_bounds(len(dataset), process_index, process_count))
    if len(block) == 0 or (drop_remainder and len(block) < batch_size):
        raise DatasetError(
            f"{spec} split {split!r} gives {len(block)} images to process {process_index} of "
            f"{process_count}, fewer than batch_size {batch_size}; "
            "lower batch_size or set drop_remainder=False")
    if workers is None:
        workers = min(8, os.cpu_count() or 1)
    _check_int("workers", workers, allow_none=False)
    return _batch_stream(block, batch_size=batch_size, crop=crop, downscale=downscale, shuffle=shuffle,
                         seed=seed, num_epochs=num_epochs, drop_remainder=drop_remainder,
                         process_index=process_index, workers=workers)


def _batch_stream(block: Dataset, *, batch_size: int, crop: int | None, downscale: float, shuffle: bool,
                  seed: int, num_epochs: int | None, drop_remainder: bool,
                  process_index: int, workers: int) -> Iterator[np.ndarray]:
    threaded = crop is not None and downscale > 1.0 and workers > 1  # Pillow's resize releases the GIL
    with ThreadPoolExecutor(workers, thread_name_prefix="jaxcodec-resize") if threaded else contextlib.nullcontext() as pool:
        count = len(block)
        epoch = 0
        while num_epochs is None or epoch < num_epochs:
            rng = np.random.default_rng([int(seed) % 2**64, epoch, process_index])
            order = rng.permutation(count) if shuffle else np.arange(count)
            for begin in range(0, count, batch_size):
                indices = order[begin : begin + batch_size]
                if drop_remainder and len(indices) < batch_size:
                    break
                images = [block.native(int(index)) for index in indices]
                if crop is not None:  # random draws in order here; the resizing in parallel
                    squares = [random_source_square(image, crop, downscale, rng) for image in images]
                    shrink = functools.partial(resize_image, size=crop)
                    images = list(pool.map(shrink, squares)) if pool is not None else [shrink(q) for q in squares]
                yield _stack([imageio.to_float32(image) for image in images], block.spec)
            epoch += 1


def _stack(images: list[np.ndarray], spec: Spec) -> np.ndarray:
    first = images[0].shape
    for image in images[1:]:
        if image.shape != first:
            raise DatasetError(
                f"{spec} has images of different shapes ({first} and {image.shape}) that cannot be batched; "
                "set crop or image_size")
    return np.stack(images)
