r"""Mean-scale hyperprior (Minnen et al. 2018) with gain units (Cui et al. 2021): one model
for qualities 1..8 (CompressAI's λ ladder), N=128, M=192.

The long run on 2 CPU cores (128×128 patches, batch 8), training photos laid out by
``tools/photo_splits.py``::

    python train.py --config configs/mbt2018_mean.py --workdir /work/runs/mbt2018_mean \
        --config.data.train=folder:/work/runs/photos/train --config.data.crop=128

All fields and their meaning: :func:`jaxcodec.train.tasks.hyperprior.default_config`.
Quick check: ``--config.num_steps=20 --config.data.train=sample:photos --config.data.crop=128``.
"""

from jaxcodec.train.tasks.hyperprior import default_config


def get_config():
    config = default_config()
    # Images decoded once onto the devices, patches drawn there (jaxcodec.train.device_data): no
    # host work per step; the host pipeline is used, with a message, when they do not fit.
    config.data.device_resident = False
    config.data.flip = False  # random horizontal flips (device-resident data only)
    return config
