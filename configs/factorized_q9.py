r"""Ballé 2017 factorized prior (CompressAI's bmshj2018-factorized), quality 9: λ = 0.36
(twice CompressAI's top λ; one rung above its ladder).

Train on a folder of photos (random 256×256 patches, batch 8, Adam 1e-4)::

    python train.py --config configs/factorized_q9.py --workdir workdirs/factorized_q9 \
        --config.data.train=folder:/path/to/photos

then measure real streams::

    python eval.py --data sample:photos --codecs workdirs/factorized_q9,jpeg --out workdirs/factorized_q9_report

All fields and their meaning: :func:`jaxcodec.models.factorized.default_config`.
Quick check: ``--config.num_steps=20 --config.data.train=sample:photos --config.batch_size=4``.
"""

from jaxcodec.models.factorized import default_config


def get_config():
    return default_config(quality=9)
