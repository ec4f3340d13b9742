r"""Ballé 2017 factorized prior (CompressAI's bmshj2018-factorized), quality 7: λ = 0.0932.

Train on a folder of photos (random 256×256 patches, batch 8, Adam 1e-4)::

    python train.py --config configs/factorized_q7.py --workdir workdirs/factorized_q7 \
        --config.data.train=folder:/path/to/photos

then measure real streams::

    python eval.py --data sample:photos --codecs workdirs/factorized_q7,jpeg --out workdirs/factorized_q7_report

All fields and their meaning: :func:`jaxcodec.models.factorized.default_config`.
Quick check: ``--config.num_steps=20 --config.data.train=sample:photos --config.batch_size=4``.
"""

from jaxcodec.models.factorized import default_config


def get_config():
    return default_config(quality=7)
