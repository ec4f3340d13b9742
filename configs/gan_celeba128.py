r"""DCGAN on CelebA faces at 128x128 (the poster's size), compressed by GAN reversal (seed 001).

Needs CelebA prepared for TFDS (``tfds build celeb_a`` with the manual files), then::

    python train.py --config configs/gan_celeba128.py --workdir workdirs/gan_celeba128

Images are resized to ``data.image_size`` (128) by :mod:`jaxcodec.data`. Each step is
one discriminator and one generator update (:class:`jaxcodec.train.tasks.gan.GANTask`),
with a 100-dimensional uniform latent as in DCGAN. The run has not been made on
this project's 2-core CPU (too slow without an accelerator); expect on the order of
50k steps for recognisable faces. Quick check of the pipeline:
``--config.num_steps=20 --config.batch_size=8``.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict()
    config.model.name = "gan"  # jaxcodec.train.tasks registry key
    config.model.image_shape = (128, 128, 3)  # generated / coded image shape (square, C = 1 or 3)
    config.model.latent_dim = 100  # d: z ~ U[-1, 1]^d (DCGAN)
    config.model.g_width = 16  # generator channels at 128x128, doubled per halving
    config.model.d_width = 16  # discriminator channels at 128x128, doubled per halving
    config.model.max_width = 512  # cap on channels at the coarse resolutions
    config.model.convs_per_stage = 1  # 3x3 convolutions after each generator up-sampling
    config.model.r1_gamma = 1.0  # R1 penalty weight on real data (Mescheder et al. 2018); 0 = off
    config.model.adam_b1 = 0.5  # Adam beta1 for both networks (DCGAN)
    config.model.adam_b2 = 0.999  # Adam beta2 for both networks
    config.model.d_learning_rate = None  # None = config.learning_rate
    config.model.bit_depths = (4, 5, 6, 8)  # codec qualities: bits per latent value
    config.model.finalize_batches = 0  # 0 = uniform-prior entropy tables; N = fit on N inverted batches

    config.model.inversion = ml_collections.ConfigDict()
    config.model.inversion.steps = 1000  # Adam steps per image
    config.model.inversion.lr = 0.05  # peak learning rate (cosine-decayed to 1%)
    config.model.inversion.schedule = "cosine"  # "cosine" or None (constant)
    config.model.inversion.loss = "l2"  # "l1", "l2", "ssim", "ms_ssim" or a dict of weights
    config.model.inversion.restarts = 4  # random starts per image, best final loss kept
    config.model.inversion.clip = "stochastic"  # "stochastic" (Lipton & Tripathi 2017), "project" or None
    config.model.inversion.refine = 0  # Levenberg-Marquardt iterations after Adam ("l2" loss only); 0 = Adam only
    config.model.inversion.seed = 0  # key of the starts and the clipping noise (encoding is deterministic)

    config.data = ml_collections.ConfigDict()
    config.data.train = "tfds:celeb_a"  # training set spec
    config.data.train_split = "train"  # split of the training set
    config.data.eval = "tfds:celeb_a"  # evaluation set spec ("" to skip evaluation)
    config.data.eval_split = "test"  # split of the evaluation set
    config.data.image_size = 128  # images resized to 128x128 (the poster crops and centres to 128x128)
    config.data.crop = None  # no random crops

    config.batch_size = 32  # images per step (global, over all devices)
    config.num_steps = 50000  # steps (one D and one G update each)
    config.learning_rate = 2e-4  # Adam learning rate (DCGAN)
    config.seed = 0  # seed of parameter init, data order and latents
    config.log_every = 100  # steps between progress lines
    config.eval_every = 5000  # steps between evaluations
    config.eval_batches = 10  # evaluation batches per evaluation
    config.checkpoint_every = 2000  # steps between checkpoints
    config.keep_checkpoints = 3  # checkpoints kept on disk
    return config
