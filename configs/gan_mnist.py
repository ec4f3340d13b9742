r"""DCGAN on MNIST, compressed by GAN reversal (seed 001, on digits).

Train on the embedded 5000-digit sample (the default)::

    python train.py --config configs/gan_mnist.py --workdir workdirs/gan_mnist

or on the full MNIST set::

    python train.py --config configs/gan_mnist.py --workdir workdirs/gan_mnist \
        --config.data.train=npz:/path/to/mnist.npz --config.data.eval=npz:/path/to/mnist.npz

(``tfds:mnist`` works too where TFDS has the data.) Each step is one discriminator
and one generator update (:class:`jaxcodec.train.tasks.gan.GANTask`). The codec recovers
the 32 latents of a digit by 500 Adam steps with stochastic clipping and codes them
at ``bit_depths`` bits each. Expected result: see ``bench/inversion_recovery.py`` and
the GAN-reversal table in the README (full MNIST, 2 CPU cores). Quick check:
``--config.num_steps=50``.
"""

import ml_collections

from jaxcodec.train.tasks.gan import default_config


def get_config() -> ml_collections.ConfigDict:
    return default_config()
