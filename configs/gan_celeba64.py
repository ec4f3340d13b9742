r"""DCGAN on CelebA faces at 64x64, compressed by GAN reversal (seed 001).

Needs CelebA prepared for TFDS (``tfds build celeb_a`` with the manual files), then::

    python train.py --config configs/gan_celeba64.py --workdir workdirs/gan_celeba64

Images are resized to ``data.image_size`` (64) by :mod:`jaxcodec.data`. Each step is
one discriminator and one generator update (:class:`jaxcodec.train.tasks.gan.GANTask`),
with a 100-dimensional uniform latent as in DCGAN. The run has not been made on
this project's 2-core CPU (too slow without an accelerator); expect on the order of
50k steps for recognisable faces. Quick check of the pipeline:
``--config.num_steps=20 --config.batch_size=8``.
"""

import ml_collections

from jaxcodec.train.tasks.gan import default_config


def get_config() -> ml_collections.ConfigDict:
    config = default_config()
    config.model.image_shape = (64, 64, 3)
    config.model.latent_dim = 100  # d: z ~ U[-1, 1]^d (DCGAN)
    config.model.g_width = 32  # generator channels at 64x64, doubled per halving
    config.model.d_width = 32  # discriminator channels at 64x64, doubled per halving
    config.model.max_width = 256
    config.model.bit_depths = (4, 5, 6, 8)
    config.model.inversion.steps = 1000

    config.data.train = "tfds:celeb_a"
    config.data.eval = "tfds:celeb_a"
    config.data.image_size = 64  # images resized to 64x64

    config.batch_size = 64
    config.num_steps = 50000
    config.eval_every = 5000
    config.checkpoint_every = 2000
    return config
