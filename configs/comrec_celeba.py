r"""ComCNN + JPEG + RecCNN on CelebA faces (seed 002, Jiang et al. 2017).

CelebA must be prepared for TFDS first (``tfds build celeb_a``, or files placed in
``TFDS_DATA_DIR``); then::

    python train.py --config configs/comrec_celeba.py --workdir runs/comrec_celeba
    python eval.py --data tfds:celeb_a --codecs runs/comrec_celeba,jpeg --limit 200 --out runs/comrec_celeba_report

Faces are the central 178×178 square resized to 128×128 (``data.image_size``); each compact
image (64×64) is coded with real JPEG at a quality drawn from ``model.train_qualities``.
Expected result: not measured here (no CelebA copy on the development machines); on photos
the same model gains most at low rates (see :mod:`jaxcodec.models.comrec`). Quick check:
``--config.num_steps=20``.
"""

import ml_collections

from jaxcodec.train import config_files


def get_config() -> ml_collections.ConfigDict:
    config = config_files.beside(__file__, "comrec_photos.py")
    config.data.train = "tfds:celeb_a"  # TFDS name; prepared in TFDS_DATA_DIR, never downloaded here
    config.data.train_split = "train"
    config.data.eval = "tfds:celeb_a"
    config.data.eval_split = "test"
    config.data.image_size = 128  # central square resized to 128×128 (even, as the compact image needs)
    config.data.crop = None  # whole faces
    config.batch_size = 16  # faces per step (global)
    config.num_steps = 20000
    config.eval_every = 2000
    config.eval_batches = 10
    config.checkpoint_every = 2000
    return config
