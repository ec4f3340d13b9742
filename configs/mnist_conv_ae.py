r"""Convolutional autoencoder: a 28×28 MNIST digit as 28 numbers (seed 004).

Train on the embedded 5000-digit sample (the default)::

    python train.py --config configs/mnist_conv_ae.py --workdir workdirs/mnist_conv_ae

or on the full MNIST set::

    python train.py --config configs/mnist_conv_ae.py --workdir workdirs/mnist_conv_ae \
        --config.data.train=npz:/path/to/mnist.npz --config.data.eval=npz:/path/to/mnist.npz

Expected result (full MNIST, 6000 steps, about 15 minutes on 2 CPU cores): test PSNR
24.6 dB unquantised; through the codec 24.1 dB at 6 bits per latent (0.73 bpp, the
``.jxc`` header included) and 24.6 dB at 8 bits (0.79 bpp); PCA with 28 components
reaches 17.9 dB. Quick check: ``--config.num_steps=50``.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict()
    config.model.name = "mnist_conv_ae"  # jaxcodec.train.tasks registry key
    config.model.image_shape = (28, 28, 1)  # the only image shape the model codes
    config.model.features = (16, 32, 32)  # channels of the three encoder convolutions (mirrored in the decoder)
    config.model.hidden = 128  # width of the first encoder / second-to-last decoder dense layer
    config.model.latent_dim = 28  # size of the code (the poster's 28×1 vector)
    config.model.output_bias = -2.0  # initial output logit: σ(-2) ≈ 0.12, about MNIST's mean intensity
    config.model.loss = "mse"  # reconstruction loss: "mse" (what PSNR measures) or "bce"
    config.model.latent_l2 = 1e-3  # regulariser: weight of mean(z²) on the tanh latent
    config.model.weight_decay = 0.0  # regulariser: decoupled weight decay of AdamW
    config.model.noise_bits = 0  # >0: train with uniform noise one quantisation step wide at that bit depth
    config.model.bit_depths = (2, 3, 4, 5, 6, 8)  # codec qualities: bits per latent value
    config.model.eval_bits = 6  # bit depth of the quantised-latent PSNR reported during evaluation
    config.model.finalize_batches = 100  # training batches whose latents fit the entropy histograms

    config.data = ml_collections.ConfigDict()
    config.data.train = "sample:mnist"  # training set spec (npz:PATH or tfds:mnist for all 60000 digits)
    config.data.train_split = "train"  # split of the training set
    config.data.eval = "sample:mnist"  # evaluation set spec ("" to skip evaluation)
    config.data.eval_split = "test"  # split of the evaluation set
    config.data.image_size = None  # native 28×28
    config.data.crop = None  # no random crops

    config.batch_size = 128  # images per step (global, over all devices)
    config.num_steps = 6000  # optimisation steps
    config.learning_rate = 1e-3  # Adam(W) learning rate
    config.seed = 0  # seed of parameter init, data order and noise
    config.log_every = 100  # steps between progress lines
    config.eval_every = 1000  # steps between evaluations
    config.eval_batches = 10  # evaluation batches per evaluation
    config.checkpoint_every = 1000  # steps between checkpoints
    config.keep_checkpoints = 3  # checkpoints kept on disk
    return config
