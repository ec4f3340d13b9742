r"""The bmshj2017-factorized ladder (nine qualities, N=64 M=128), stage by stage, run by
``tools/ladder.py``::

    python tools/ladder.py configs/ladders/bmshj2017_factorized.py --part cpu   # make factorized-ladder
    python tools/ladder.py configs/ladders/bmshj2017_factorized.py --part gpu   # make factorized-ladder-gpu

On the CPUs (part ``cpu``): quality 3 from scratch on the wallpapers of ``photos``, then on those
plus the photos tools/debian_photos.py gathers (``mixed``), then ``long_steps`` more on ``mixed``
(fq3n); each other quality is fine-tuned from its neighbour (q3 -> q2 -> q1, q3 -> q4 -> ... ->
q7) on ``mixed``, starting with the neighbour's latent rescaled by sqrt(2) (up) or 1/sqrt(2)
(down): model.init_latent_scale, jaxcodec.train.tasks.factorized.rescale_latents. Then quality 7
trains ``top_steps`` more on patches cut from squares up to ``downscale`` times larger
(data.downscale: denser detail, as in the photos it is evaluated on; fq7d), and every other
quality is derived from it again (q7d -> q6d -> ... -> q1d), ``refresh_steps`` each, quality 7
once more from q6d (q7e: 9% lower training loss than q7d), quality 8 from q7e (q8e) and quality
9 (λ = 0.36, one rung above CompressAI's ladder) from q8e. A third pass trains q7e, q8e, q6d,
q9e, q5d, q4d and q3d ``refresh_steps`` more each (q7f, ...: 1-4% lower training loss), a
fourth q9f, q8f, q7f and q6f (q9g, ...). Last, every rung's encoder alone is fine-tuned for
``encoder_steps`` with the decoder fed round(y) (model.trainable=analysis,
model.quantizer=ste; Guo et al. 2021) from q1d, q2d, q3f-q5f and q6g-q9g (fq1h ... fq9h).

Then, on one GPU (part ``gpu``, about 20 minutes on an H200), the nine rungs train side by side,
one process each, at batch ``gpu_batch`` on quality-95 JPEG copies of ``mixed``
(tools/jpeg_copies.py, ``mixed_jpeg``): ``gpu_steps`` from fq1h, fq4h, fq5h, fq6h and fq9h
(fq*m), ``gpu_steps`` for every rung from its fq*m or else its fq*h (fq*n), and last
``gpu_encoder_steps`` of the encoder alone, as above (fq*p). fq1p ... fq9p are exported as
bmshj2017-factorized-q1 ... -q9 and ship.

The recipe is data (read by tools/ladder.py, which documents every key): ``settings`` are
the names a ``{name}`` in any text refers to (``tools/ladder.py --set NAME=VALUE`` changes
one); ``flags`` are config overrides of every stage; each phase's ``config`` adds to them and
each stage's own keys (config fields, as on train.py's command line) come last. A stage's
workdir is ``{runs}/{name}``; its ``init_from`` names an earlier stage.
"""

UP, DOWN = 1.41421356, 0.70710678  # model.init_latent_scale from the rung below / above

RECIPE = {
    "config": "configs/factorized.py:{quality}",
    "workdir": "{runs}/{name}",
    "settings": {
        "photos": "../shared/data/photos-train",  # the wallpapers quality 3 starts on
        "runs": "workdirs",
        "mixed": "{runs}/photos-mixed",  # photos + tools/debian_photos.py's (make factorized-ladder)
        "mixed_jpeg": "{runs}/photos-mixed-jpeg",  # tools/jpeg_copies.py of mixed, quality 95
        "base_steps": 8000,
        "mixed_steps": 4500,
        "long_steps": 6000,
        "tune_steps": 2000,
        "top_steps": 7000,
        "refresh_steps": 2500,
        "encoder_steps": 600,
        "encoder_lr": "2e-4",
        "downscale": 3,
        "gpu_batch": 32,
        "gpu_steps": 6000,
        "gpu_encoder_steps": 1500,
    },
    "flags": {
        "data.crop": 128,
        "model.features": 64,
        "model.latent_channels": 128,
        "learning_rate": "5e-4",
        "checkpoint_every": 500,
        "log_every": 200,
    },
    "parts": {
        "cpu": [
            {
                "title": "quality 3 from scratch on the wallpapers, then on the mixed photos",
                "stages": [
                    {"name": "fq3", "quality": 3, "data.train": "folder:{photos}",
                     "num_steps": "{base_steps}", "lr_decay_at": 0.85},
                    {"name": "fq3m", "quality": 3, "data.train": "folder:{mixed}",
                     "num_steps": "{mixed_steps}", "lr_decay_at": 0.7, "init_from": "fq3"},
                    {"name": "fq3n", "quality": 3, "data.train": "folder:{mixed}",
                     "num_steps": "{long_steps}", "lr_decay_at": 0.7, "init_from": "fq3m"},
                ],
            },
            {
                "title": "every other quality up to 7 from its neighbour",
                "config": {"data.train": "folder:{mixed}", "num_steps": "{tune_steps}", "lr_decay_at": 0.6},
                "stages": [
                    {"name": "fq4", "quality": 4, "init_from": "fq3n", "model.init_latent_scale": UP},
                    {"name": "fq5", "quality": 5, "init_from": "fq4", "model.init_latent_scale": UP},
                    {"name": "fq6", "quality": 6, "init_from": "fq5", "model.init_latent_scale": UP},
                    {"name": "fq2", "quality": 2, "init_from": "fq3n", "model.init_latent_scale": DOWN},
                    {"name": "fq1", "quality": 1, "init_from": "fq2", "model.init_latent_scale": DOWN},
                    {"name": "fq7", "quality": 7, "init_from": "fq6", "model.init_latent_scale": UP},
                ],
            },
            {
                "title": "quality 7 on denser detail (patches of downscaled squares)",
                "stages": [
                    {"name": "fq7d", "quality": 7, "data.train": "folder:{mixed}", "data.downscale": "{downscale}",
                     "num_steps": "{top_steps}", "lr_decay_at": 0.7, "init_from": "fq7"},
                ],
            },
            {
                "title": "every quality derived again from fq7d, then 7, 8 and 9 upwards",
                "config": {"data.train": "folder:{mixed}", "data.downscale": "{downscale}",
                           "num_steps": "{refresh_steps}", "lr_decay_at": 0.6},
                "stages": [
                    {"name": "fq6d", "quality": 6, "init_from": "fq7d", "model.init_latent_scale": DOWN},
                    {"name": "fq5d", "quality": 5, "init_from": "fq6d", "model.init_latent_scale": DOWN},
                    {"name": "fq4d", "quality": 4, "init_from": "fq5d", "model.init_latent_scale": DOWN},
                    {"name": "fq3d", "quality": 3, "init_from": "fq4d", "model.init_latent_scale": DOWN},
                    {"name": "fq2d", "quality": 2, "init_from": "fq3d", "model.init_latent_scale": DOWN},
                    {"name": "fq1d", "quality": 1, "init_from": "fq2d", "model.init_latent_scale": DOWN},
                    {"name": "fq7e", "quality": 7, "init_from": "fq6d", "model.init_latent_scale": UP},
                    {"name": "fq8e", "quality": 8, "init_from": "fq7e", "model.init_latent_scale": UP},
                    {"name": "fq9e", "quality": 9, "init_from": "fq8e", "model.init_latent_scale": UP},
                ],
            },
            {
                "title": "a third pass",
                "config": {"data.train": "folder:{mixed}", "data.downscale": "{downscale}",
                           "num_steps": "{refresh_steps}", "lr_decay_at": 0.6},
                "stages": [
                    {"name": "fq7f", "quality": 7, "init_from": "fq7e"},
                    {"name": "fq8f", "quality": 8, "init_from": "fq8e"},
                    {"name": "fq6f", "quality": 6, "init_from": "fq6d"},
                    {"name": "fq9f", "quality": 9, "init_from": "fq9e"},
                    {"name": "fq5f", "quality": 5, "init_from": "fq5d"},
                    {"name": "fq4f", "quality": 4, "init_from": "fq4d"},
                    {"name": "fq3f", "quality": 3, "init_from": "fq3d"},
                ],
            },
            {
                "title": "a fourth pass of the top four",
                "config": {"data.train": "folder:{mixed}", "data.downscale": "{downscale}",
                           "num_steps": "{refresh_steps}", "lr_decay_at": 0.6},
                "stages": [
                    {"name": "fq9g", "quality": 9, "init_from": "fq9f"},
                    {"name": "fq8g", "quality": 8, "init_from": "fq8f"},
                    {"name": "fq7g", "quality": 7, "init_from": "fq7f"},
                    {"name": "fq6g", "quality": 6, "init_from": "fq6f"},
                ],
            },
            {
                "title": "the encoder alone, decoder fed round(y) (Guo et al. 2021)",
                "config": {"learning_rate": "{encoder_lr}", "data.train": "folder:{mixed}",
                           "data.downscale": "{downscale}", "num_steps": "{encoder_steps}", "lr_decay_at": 0.6,
                           "checkpoint_every": 300, "model.quantizer": "ste", "model.trainable": "analysis"},
                "stages": [
                    {"name": "fq1h", "quality": 1, "init_from": "fq1d"},
                    {"name": "fq2h", "quality": 2, "init_from": "fq2d"},
                    {"name": "fq3h", "quality": 3, "init_from": "fq3f"},
                    {"name": "fq4h", "quality": 4, "init_from": "fq4f"},
                    {"name": "fq5h", "quality": 5, "init_from": "fq5f"},
                    {"name": "fq6h", "quality": 6, "init_from": "fq6g"},
                    {"name": "fq7h", "quality": 7, "init_from": "fq7g"},
                    {"name": "fq8h", "quality": 8, "init_from": "fq8g"},
                    {"name": "fq9h", "quality": 9, "init_from": "fq9g"},
                ],
            },
        ],
        "gpu": [
            {
                "title": "five rungs on one GPU, side by side",
                "side_by_side": True,  # one process each, all at once; output to {runs}/{name}.log
                "env": {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.09"},
                "config": {"batch_size": "{gpu_batch}", "data.train": "folder:{mixed_jpeg}",
                           "data.downscale": "{downscale}", "lr_decay_at": 0.6, "num_steps": "{gpu_steps}"},
                "stages": [
                    {"name": "fq1m", "quality": 1, "init_from": "fq1h"},
                    {"name": "fq4m", "quality": 4, "init_from": "fq4h"},
                    {"name": "fq5m", "quality": 5, "init_from": "fq5h"},
                    {"name": "fq6m", "quality": 6, "init_from": "fq6h"},
                    {"name": "fq9m", "quality": 9, "init_from": "fq9h"},
                ],
            },
            {
                "title": "all nine rungs on one GPU, side by side",
                "side_by_side": True,
                "env": {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.09"},
                "config": {"batch_size": "{gpu_batch}", "data.train": "folder:{mixed_jpeg}",
                           "data.downscale": "{downscale}", "lr_decay_at": 0.6, "num_steps": "{gpu_steps}"},
                "stages": [
                    {"name": "fq1n", "quality": 1, "init_from": "fq1m"},
                    {"name": "fq2n", "quality": 2, "init_from": "fq2h"},
                    # The workdir of the CPU part's fq3n, as the Makefile this recipe replaces named it:
                    # that run already holds a checkpoint at long_steps = gpu_steps, so this stage
                    # trains nothing and fq3p starts from the CPU's fq3n, not from fq3h.
                    {"name": "fq3n-gpu", "workdir": "{runs}/fq3n", "quality": 3, "init_from": "fq3h"},
                    {"name": "fq4n", "quality": 4, "init_from": "fq4m"},
                    {"name": "fq5n", "quality": 5, "init_from": "fq5m"},
                    {"name": "fq6n", "quality": 6, "init_from": "fq6m"},
                    {"name": "fq7n", "quality": 7, "init_from": "fq7h"},
                    {"name": "fq8n", "quality": 8, "init_from": "fq8h"},
                    {"name": "fq9n", "quality": 9, "init_from": "fq9m"},
                ],
            },
            {
                "title": "the encoder alone on one GPU, side by side",
                "side_by_side": True,
                "env": {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.09"},
                "config": {"batch_size": "{gpu_batch}", "data.train": "folder:{mixed_jpeg}",
                           "data.downscale": "{downscale}", "lr_decay_at": 0.6, "num_steps": "{gpu_encoder_steps}",
                           "learning_rate": "{encoder_lr}", "model.quantizer": "ste", "model.trainable": "analysis"},
                "stages": [
                    {"name": "fq1p", "quality": 1, "init_from": "fq1n"},
                    {"name": "fq2p", "quality": 2, "init_from": "fq2n"},
                    {"name": "fq3p", "quality": 3, "init_from": "fq3n-gpu"},
                    {"name": "fq4p", "quality": 4, "init_from": "fq4n"},
                    {"name": "fq5p", "quality": 5, "init_from": "fq5n"},
                    {"name": "fq6p", "quality": 6, "init_from": "fq6n"},
                    {"name": "fq7p", "quality": 7, "init_from": "fq7n"},
                    {"name": "fq8p", "quality": 8, "init_from": "fq8n"},
                    {"name": "fq9p", "quality": 9, "init_from": "fq9n"},
                ],
            },
            {
                "title": "fq1p ... fq9p exported as the shipped models (python -m jaxcodec export)",
                "description": "Balle et al. 2017 factorized prior, N=64 M=128, quality {quality}",
                "exports": [
                    {"name": "bmshj2017-factorized-q1", "quality": 1, "from": "fq1p"},
                    {"name": "bmshj2017-factorized-q2", "quality": 2, "from": "fq2p"},
                    {"name": "bmshj2017-factorized-q3", "quality": 3, "from": "fq3p"},
                    {"name": "bmshj2017-factorized-q4", "quality": 4, "from": "fq4p"},
                    {"name": "bmshj2017-factorized-q5", "quality": 5, "from": "fq5p"},
                    {"name": "bmshj2017-factorized-q6", "quality": 6, "from": "fq6p"},
                    {"name": "bmshj2017-factorized-q7", "quality": 7, "from": "fq7p"},
                    {"name": "bmshj2017-factorized-q8", "quality": 8, "from": "fq8p"},
                    {"name": "bmshj2017-factorized-q9", "quality": 9, "from": "fq9p"},
                ],
            },
        ],
    },
}
