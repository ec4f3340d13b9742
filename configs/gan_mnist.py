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


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict()
    config.model.name = "gan"  # jaxcodec.train.tasks registry key
    config.model.image_shape = (28, 28, 1)  # generated / coded image shape (square, C = 1 or 3)
    config.model.latent_dim = 32  # d: z ~ U[-1, 1]^d
    config.model.g_width = 16  # generator channels at full resolution, doubled per halving
    config.model.d_width = 16  # discriminator channels at full resolution, doubled per halving
    config.model.max_width = 256  # cap on channels at the coarse resolutions
    config.model.convs_per_stage = 1  # 3x3 convolutions after each generator up-sampling
    config.model.r1_gamma = 1.0  # R1 penalty weight on real data (Mescheder et al. 2018); 0 = off
    config.model.adam_b1 = 0.5  # Adam beta1 for both networks (DCGAN)
    config.model.adam_b2 = 0.999  # Adam beta2 for both networks
    config.model.d_learning_rate = None  # None = config.learning_rate
    config.model.bit_depths = (3, 4, 5, 6, 8)  # codec qualities: bits per latent value
    config.model.finalize_batches = 0  # 0 = uniform-prior entropy tables; N = fit on N inverted batches

    config.model.inversion = ml_collections.ConfigDict()
    config.model.inversion.steps = 500  # Adam steps per image
    config.model.inversion.lr = 0.05  # peak learning rate (cosine-decayed to 1%)
    config.model.inversion.schedule = "cosine"  # "cosine" or None (constant)
    config.model.inversion.loss = "l2"  # "l1", "l2", "ssim", "ms_ssim" or a dict of weights
    config.model.inversion.restarts = 4  # random starts per image, best final loss kept
    config.model.inversion.clip = "stochastic"  # "stochastic" (Lipton & Tripathi 2017), "project" or None
    config.model.inversion.refine = 0  # Levenberg-Marquardt iterations after Adam ("l2" loss only); 0 = Adam only
    config.model.inversion.seed = 0  # key of the starts and the clipping noise (encoding is deterministic)

    config.data = ml_collections.ConfigDict()
    config.data.train = "sample:mnist"  # training set spec (npz:PATH or tfds:mnist for all 60000 digits)
    config.data.train_split = "train"  # split of the training set
    config.data.eval = "sample:mnist"  # evaluation set spec ("" to skip evaluation)
    config.data.eval_split = "test"  # split of the evaluation set
    config.data.image_size = None  # native 28x28
    config.data.crop = None  # no random crops

    config.batch_size = 32  # images per step (global, over all devices)
    config.num_steps = 5000  # steps (one D and one G update each)
    config.learning_rate = 2e-4  # Adam learning rate (DCGAN)
    config.seed = 0  # seed of parameter init, data order and latents
    config.log_every = 100  # steps between progress lines
    config.eval_every = 1000  # steps between evaluations
    config.eval_batches = 10  # evaluation batches per evaluation
    config.checkpoint_every = 1000  # steps between checkpoints
    config.keep_checkpoints = 3  # checkpoints kept on disk
    return config
