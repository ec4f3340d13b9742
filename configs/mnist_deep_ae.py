r"""Deep autoencoder 784-1000-500-196 with RBM pre-training (seed 003; Hinton &
Salakhutdinov 2006).

Train on the embedded 5000-digit sample (the default)::

    python train.py --config configs/mnist_deep_ae.py --workdir workdirs/mnist_deep_ae

or on the full MNIST set, with and without pre-training::

    python train.py --config configs/mnist_deep_ae.py --workdir workdirs/mnist_deep_ae \
        --config.data.train=npz:/path/to/mnist.npz --config.data.eval=npz:/path/to/mnist.npz
    ... --config.model.pretrain=False

Expected result (full MNIST, 3×1000 RBM steps + 6000 fine-tuning steps, about 9 minutes
on 2 CPU cores): test PSNR 26.5 dB at 8 bits per code unit (2.4 bpp, the ``.jxc`` header
included), 20.5 dB with ``--config.model.pretrain=False``; with
``--config.num_steps=30000`` (8 more minutes) 27.9 dB at 8 bits and 25.8 dB at 3 bits
(1.1 bpp). PCA with 196 components reaches 28.05 dB at 1.18 bpp, JPEG at quality 1
19.1 dB for 2.0 bpp. Quick check: ``--config.num_steps=50 --config.model.rbm_steps=20``.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict()
    config.model.name = "mnist_deep_ae"  # jaxcodec.train.tasks registry key
    config.model.image_shape = (28, 28, 1)  # the only image shape the model codes
    config.model.layer_sizes = (784, 1000, 500, 196)  # encoder widths, input first; the decoder mirrors them
    config.model.bit_depths = (2, 3, 4, 5, 6, 8)  # codec qualities: bits per code unit
    config.model.eval_bits = 6  # bit depth of the quantised-code PSNR reported during evaluation
    config.model.finalize_batches = 100  # training batches whose codes fit the entropy histograms
    config.model.pretrain = True  # greedy RBM pre-training + unrolling before fine-tuning
    config.model.rbm_steps = 1000  # CD-1 mini-batches per RBM
    config.model.rbm_learning_rate = 0.1  # CD-1 learning rate (H&S rbm.m: 0.1)
    config.model.rbm_weight_cost = 2e-4  # L2 weight cost of CD-1 (H&S: 0.0002)
    config.model.rbm_initial_momentum = 0.5  # momentum for the first 10% of each RBM's steps (H&S: 0.5)
    config.model.rbm_final_momentum = 0.9  # momentum afterwards (H&S: 0.9)
    config.model.rbm_log_every = 200  # CD-1 steps between progress lines (0: silent)

    config.data = ml_collections.ConfigDict()
    config.data.train = "sample:mnist"  # training set spec (npz:PATH or tfds:mnist for all 60000 digits)
    config.data.train_split = "train"  # split of the training set
    config.data.eval = "sample:mnist"  # evaluation set spec ("" to skip evaluation)
    config.data.eval_split = "test"  # split of the evaluation set
    config.data.image_size = None  # native 28×28
    config.data.crop = None  # no random crops

    config.batch_size = 128  # images per step (global, over all devices)
    config.num_steps = 6000  # fine-tuning steps (Adam, binary cross-entropy)
    config.learning_rate = 1e-3  # Adam learning rate
    config.seed = 0  # seed of parameter init, data order and CD-1 sampling
    config.log_every = 100  # steps between progress lines
    config.eval_every = 1000  # steps between evaluations
    config.eval_batches = 10  # evaluation batches per evaluation
    config.checkpoint_every = 1000  # steps between checkpoints
    config.keep_checkpoints = 3  # checkpoints kept on disk
    return config
