r"""Ballé 2017 factorized prior (CompressAI's bmshj2018-factorized) at quality 1..9, named after
the colon (``configs/factorized.py:3`` or ``configs/factorized.py:quality=3``; quality 3 when
none is given). λ of each quality: 1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.013, 5: 0.025,
6: 0.0483, 7: 0.0932, 8: 0.18 (CompressAI's ladder), 9: 0.36 (twice CompressAI's top λ; one
rung above its ladder).

Train on a folder of photos (random 256×256 patches, batch 8, Adam 1e-4)::

    python train.py --config configs/factorized.py:3 --workdir workdirs/factorized_q3 \
        --config.data.train=folder:/path/to/photos

then measure real streams::

    python eval.py --data sample:photos --codecs workdirs/factorized_q3,jpeg --out workdirs/factorized_q3_report

All fields and their meaning: :func:`jaxcodec.train.tasks.factorized.default_config`.
Quick check: ``--config.num_steps=20 --config.data.train=sample:photos --config.batch_size=4``.
The whole ladder of qualities, stage by stage: ``configs/ladders/bmshj2017_factorized.py``.
"""

from jaxcodec.errors import ConfigError
from jaxcodec.train.tasks.factorized import default_config

QUALITIES = range(1, 10)
DEFAULT_QUALITY = 3


class QualityError(ConfigError, OSError):
    """A quality argument outside 1..9. Also an OSError, which absl's config flag holds back
    until the config is read, so ``train.py`` reports it in one line."""


def parse_quality(argument: str | int | None) -> int:
    """The quality named by the config-file argument: ``"3"``, ``"quality=3"`` or None (3)."""
    if argument is None or argument == "":
        return DEFAULT_QUALITY
    text = str(argument).strip()
    key, sep, value = text.partition("=")
    if sep and key.strip() != "quality":
        raise QualityError(f"unknown argument {key.strip()!r}: configs/factorized.py takes quality=1..9")
    value = value if sep else text
    try:
        quality = int(value.strip())
    except ValueError:
        quality = None
    if quality not in QUALITIES:
        raise QualityError(
            f"quality must be an integer in 1..9 (configs/factorized.py:QUALITY), got {value.strip()!r}"
        )
    return quality


def get_config(argument: str | None = None):
    return default_config(quality=parse_quality(argument))
