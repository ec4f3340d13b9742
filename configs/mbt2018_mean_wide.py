r"""Mean-scale hyperprior (Minnen et al. 2018) with gain units (Cui et al. 2021), N=128
(CompressAI's width for its lower rates), M=128, hyper-networks at 64 channels, started from
the shipped ``mbt2018-mean`` (N=64) widened without changing what it computes.

The recipe of ``configs/mbt2018_mean_from_factorized.py`` (its data, batch and patches), with
``config.init_from`` naming the narrower model: its ``g_a``/``g_s`` are embedded in the wider
ones (:func:`jaxcodec.train.widening.widen`: old weights in place, new channels random on the
way in and silent on the way out), its hyper-networks, gains and conditional decoder copied
as they are, so step 0 codes exactly as the shipped model and training only adds. Every
part learns at the same rate (the new channels start from nothing).

The long run on 2 CPU cores, training photos laid out by ``tools/photo_splits.py``::

    python train.py --config configs/mbt2018_mean_wide.py --workdir /work/runs/mbt2018_mean128 \
        --config.data.train=folder:/work/runs/photos/train

Quick check: ``--config.num_steps=20 --config.data.train=sample:photos``.
"""

import ml_collections

from jaxcodec.train import config_files


def get_config() -> ml_collections.ConfigDict:
    config = config_files.beside(__file__, "mbt2018_mean_from_factorized.py")
    config.model.features = 128
    config.model.hyper_features = 64
    config.model.init_transforms_from = ""  # the whole model comes from config.init_from
    config.model.freeze_transforms_steps = 0
    config.model.transforms_lr_scale = 1.0
    config.model.synthesis_modulation = True
    config.model.quality_margin = 0.5
    config.model.rate_balance = 0.6
    config.init_from = "mbt2018-mean"
    config.learning_rate = 1e-4
    return config
