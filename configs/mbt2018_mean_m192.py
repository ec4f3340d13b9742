r"""Mean-scale hyperprior (Minnen et al. 2018) with gain units, N=128 and **M=192** latent
channels, started from the shipped ``mbt2018-mean`` (N=128, M=128) with 64 latent channels
added without changing what it codes.

Why: at its top qualities the M=128 model sits at its transforms' ceiling. On the validation
photos shrunk 2×, ``g_s(g_a(x))`` with the latent not quantised at all reaches about 36.0 dB
where quality 8 gives 35.5 dB, and every one of the 128 channels carries bits from quality 4
up: more bits cannot buy more than that half decibel, and the rate-distortion curve flattens
(docs/training.md, "The transforms' ceiling"). More latent channels raise the ceiling, as
CompressAI's M=192/320 models do for the higher rates.

The widening (``MeanScaleTask.complete_start``, through ``config.init_from``): ``g_a`` gains
64 outputs with small fresh kernels, ``h_a`` takes them with zero weights, ``g_s`` with fresh
full-scale ones, ``h_s`` predicts them a zero mean and scales from small fresh weights (below
the smallest coding scale), the gains of the new channels start at the usual
``(λ_q/λ_mid)^{±½}``. Step 0 codes the pixels of the shipped model (exactly: the new channels'
symbols are zeros about a zero mean), its old channels' symbols, and its rate within a bit
per image; the distortion's gradient reaches the new channels from the first step::

    python train.py --config configs/mbt2018_mean_m192.py --workdir /work/runs/m192 \
        --config.data.train=folder:/work/runs/photos/train --config.data.flip=True

Quick check: ``--config.num_steps=20 --config.data.train=sample:photos``.

Trained from there with the mixed quantisation alone, the new channels stay asleep (measured
in 2,000 CPU steps: not one symbol, and the synthesis does 0.05 dB better with them replaced by
their means): their symbols are zeros, so ``g_s``'s weights from them get no gradient. So for its
first 1,000 steps the run trains them *free* (``model.free_latents_from``/``free_latents_steps``:
the synthesis sees them with the training noise, the rate leaves them out), then prices them
like the others (docs/training.md, "The transforms' ceiling"). Measured from the shipped
weights on 2 CPU cores, they wake (8.6% nonzero symbols at quality 8 at step 1,000) and fade
again once priced (0.22% at step 2,000): widened this way the model keeps its ceiling.
"""

import ml_collections

from jaxcodec.train import config_files


def get_config() -> ml_collections.ConfigDict:
    config = config_files.beside(__file__, "mbt2018_mean_wide.py")
    config.model.latent_channels = 192
    config.init_from = "mbt2018-mean"
    config.model.free_latents_from = 128  # the shipped model's latent channels; the new ones wake first
    config.model.free_latents_steps = 1000
    return config
