r"""Mean-scale hyperprior (Minnen et al. 2018) with gain units (Cui et al. 2021), N=64, M=128,
its transforms started from the shipped factorized prior's quality 5.

``g_a``/``g_s`` are copied from ``bmshj2017-factorized-q5`` (same N and M) with the gains set so
that quality 5 reproduces it exactly; they stay fixed for the first 5,000 steps while the
hyper-networks learn, then train at a tenth of the learning rate. The hyper-networks see
256×256 patches: on 128×128 ones the hyper-latent is 2×2 and they learn mostly the borders
of tiny latents (the same images cost 13% more bits coded whole than cut into 128×128 tiles).

The long run on 2 CPU cores, training photos laid out by ``tools/photo_splits.py``::

    python train.py --config configs/mbt2018_mean_from_factorized.py --workdir /work/runs/mbt2018_mean64 \
        --config.data.train=folder:/work/runs/photos/train

Quick check: ``--config.num_steps=20 --config.data.train=sample:photos``.
"""

from jaxcodec.train.tasks.hyperprior import default_config


def get_config():
    config = default_config()
    config.model.features = 64
    config.model.latent_channels = 128
    config.model.init_transforms_from = "bmshj2017-factorized-q5"
    config.model.freeze_transforms_steps = 5000
    config.model.transforms_lr_scale = 0.1
    config.learning_rate = 1e-3
    config.batch_size = 4
    config.data.crop = 256
    config.data.downscale = 2.0
    config.data.device_resident = False
    config.data.flip = False
    config.checkpoint_every = 500
    config.log_every = 200
    return config
