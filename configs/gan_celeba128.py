r"""DCGAN on CelebA faces at 128x128 (the poster's size), compressed by GAN reversal (seed 001).

The 64x64 configuration (``configs/gan_celeba64.py``: CelebA from TFDS, a 100-dimensional
uniform latent, 1000 inversion steps) at twice the size, with narrower full-resolution layers
and a smaller batch::

    python train.py --config configs/gan_celeba128.py --workdir workdirs/gan_celeba128

Not run on this project's 2-core CPU; quick check: ``--config.num_steps=20 --config.batch_size=8``.
"""

import ml_collections

from jaxcodec.train import config_files


def get_config() -> ml_collections.ConfigDict:
    config = config_files.beside(__file__, "gan_celeba64.py")
    config.model.image_shape = (128, 128, 3)
    config.model.g_width = 16  # generator channels at 128x128, doubled per halving
    config.model.d_width = 16  # discriminator channels at 128x128, doubled per halving
    config.model.max_width = 512
    config.data.image_size = 128  # images resized to 128x128 (the poster crops and centres to 128x128)
    config.batch_size = 32
    return config
