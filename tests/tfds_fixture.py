"""A small, real TFDS data directory for tests: ``celeb_a`` and ``mnist`` prepared locally.

No network is needed: two ``tfds.core.GeneratorBasedBuilder`` classes write real
image datasets with TFDS's own writer (array_record files, PNG-encoded ``image``
feature), and jaxcodec reads them through the same ``tfds:`` code path as the real
CelebA and MNIST.

Usage in a test module (the session-scoped ``tfds_data_dir`` fixture lives in
``tests/conftest.py``; it is built once per test process, in a few seconds)::

    from jaxcodec import data
    from tests import tfds_fixture

    def test_something(tfds_data_dir):
        images = data.load_images("tfds:celeb_a", "test", data_dir=tfds_data_dir)
        stored = tfds_fixture.faces("test")          # the exact uint8 images written
        batch = next(data.batches("tfds:mnist", batch_size=8, data_dir=tfds_data_dir))

What the directory holds (every image deterministic):

* ``celeb_a`` 0.1.0 -- feature ``image`` (218, 178, 3) uint8 like CelebA's aligned faces:
  ``train`` = 16 crops of scikit-image's astronaut photo, ``test`` = 8 crops of its coffee
  photo. Because the name is ``celeb_a``, jaxcodec applies CelebA's centre-crop rule.
* ``mnist`` 0.1.0 -- feature ``image`` (28, 28, 1) uint8 and ``label``: ``train`` = the first
  64 and ``test`` = the first 16 digits of jaxcodec's embedded ``sample:mnist``.

The builders carry the real datasets' names but are declared with
``skip_registration=True``: TFDS refuses a second class under a registered name
(``ValueError: Dataset with name celeb_a already registered`` once its own CelebA code is
loaded), and these never enter its registry. jaxcodec restores a prepared dataset from its
files (``features.json``), not from the registered code, so ``tfds:celeb_a`` with
``data_dir=tfds_data_dir`` reads these files.

``build_tfds_data_dir(path, file_format="tfrecord", names=("mnist",))`` writes the same sets
as tfrecord (needs TensorFlow, slower) to exercise the non-random-access path. From a shell,
``python -m tests.tfds_fixture DIR`` builds a directory for trying the CLIs by hand.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

FACES_SHAPE = (218, 178, 3)
DIGITS_SHAPE = (28, 28, 1)
NUM_FACES = {"train": 16, "test": 8}
NUM_DIGITS = {"train": 64, "test": 16}


@functools.cache
def faces(split: str) -> np.ndarray:
    """The uint8 ``(N, 218, 178, 3)`` images stored in the ``celeb_a`` fixture's ``split``."""
    import skimage.data

    photo = skimage.data.astronaut() if split == "train" else skimage.data.coffee()
    h, w = FACES_SHAPE[:2]
    count = NUM_FACES[split]
    tops = np.linspace(0, photo.shape[0] - h, count).astype(int)
    lefts = np.linspace(photo.shape[1] - w, 0, count).astype(int)
    images = np.stack([photo[t : t + h, left : left + w] for t, left in zip(tops, lefts)])
    images.setflags(write=False)
    return images


@functools.cache
def digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 ``(N, 28, 28, 1)`` images and labels stored in the ``mnist`` fixture's ``split``."""
    sample = Path(__file__).resolve().parent.parent / "jaxcodec" / "samples" / "mnist_sample.npz"
    with np.load(sample) as arrays:
        count = NUM_DIGITS[split]
        images = arrays[f"x_{split}"][:count, :, :, None].copy()
        labels = arrays[f"y_{split}"][:count].astype(np.int64)
    images.setflags(write=False)
    return images, labels


@functools.cache
def _builder_classes():
    """Defined lazily so that importing this module does not import TFDS."""
    import tensorflow_datasets as tfds
    from PIL import Image

    class CelebAFixture(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """218 x 178 RGB crops of real photos standing in for CelebA's aligned faces."""

        name = "celeb_a"
        VERSION = tfds.core.Version("0.1.0")
        code_path = None  # no checksums file to find (TFDS's lookup needs importlib_resources)

        def _info(self):
            features = tfds.features.FeaturesDict({"image": tfds.features.Image(shape=FACES_SHAPE)})
            # Unshuffled: stored example i is the i-th generated one.
            return tfds.core.DatasetInfo(builder=self, features=features, description="test fixture",
                                         disable_shuffling=True)

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in NUM_FACES}

        def _generate_examples(self, split):
            # PIL images are PNG-encoded by Pillow, so no TensorFlow is needed to write them.
            for index, image in enumerate(faces(split)):
                yield index, {"image": Image.fromarray(image)}

    class MnistFixture(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """Real MNIST digits (the package's sample) in TFDS's MNIST layout."""

        name = "mnist"
        VERSION = tfds.core.Version("0.1.0")
        code_path = None  # no checksums file to find (TFDS's lookup needs importlib_resources)

        def _info(self):
            features = tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=DIGITS_SHAPE),
                "label": tfds.features.ClassLabel(num_classes=10),
            })
            # Unshuffled: stored example i is the i-th generated one.
            return tfds.core.DatasetInfo(builder=self, features=features, description="test fixture",
                                         disable_shuffling=True)

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in NUM_DIGITS}

        def _generate_examples(self, split):
            images, labels = digits(split)
            for index, (image, label) in enumerate(zip(images, labels)):
                yield index, {"image": Image.fromarray(image[:, :, 0]), "label": int(label)}

    return CelebAFixture, MnistFixture


def build_tfds_data_dir(path: str | Path, file_format: str = "array_record",
                        names: tuple[str, ...] = ("celeb_a", "mnist")) -> Path:
    """Prepares the fixture datasets named in ``names`` under ``path`` and returns ``path``."""
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    path = Path(path)
    for cls in _builder_classes():
        if cls.name in names:
            cls(data_dir=str(path), file_format=file_format).download_and_prepare()
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tests.tfds_fixture DATA_DIR")
    print(build_tfds_data_dir(sys.argv[1]))
