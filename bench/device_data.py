"""Training with device-resident data against the host pipeline: steps/s and time outside the step.

Trains the same model twice through the engine (``jaxcodec.train.engine.train``) for ``--steps``
steps, once with the host pipeline (``jaxcodec.data.batches``: crops and Lanczos shrinking
on the host, a copy to the device per step) and once with ``config.data.device_resident``
(``jaxcodec.train.device_data``: the images on the device, patches drawn inside a jitted
function), and prints for each the engine's whole-run figures, compilation excluded:
steps/s and the share of wall time spent outside the jitted step. The last line is
``ratio: X`` with X = device-resident steps/s / host-pipeline steps/s.

    .venv/bin/python bench/device_data.py                          # mbt2018_mean N=64 M=96, 128² patches
    .venv/bin/python bench/device_data.py --data folder:PHOTOS --features 128 --latent 192 --crop 256 --batch 16

The default data are scikit-image's sample photos (``sample:photos``); ``--archive`` takes a
training archive (``tools/training_archive.py``) instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile


from jaxcodec.runtime import allocator

allocator.configure()  # before JAX starts its threads, as train.py does

from jaxcodec.train import engine
from jaxcodec.train import photo_archive
from jaxcodec.train.tasks import build_task


def _config(args, device_resident: bool):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs"))
    import mbt2018_mean

    config = mbt2018_mean.get_config()
    config.model.features, config.model.latent_channels = args.features, args.latent
    config.data.train, config.data.train_split = args.data, "train"
    config.data.crop, config.data.downscale = args.crop, args.downscale
    config.data.device_resident = device_resident
    config.batch_size, config.num_steps = args.batch, args.steps
    config.log_every = max(1, args.steps // 4)
    config.checkpoint_every, config.keep_checkpoints = 0, 1
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="sample:photos", help="dataset spec of the training photos")
    parser.add_argument("--archive", help="a training archive to train on instead of --data")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--latent", type=int, default=96)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--downscale", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=40, help="steps per run, the first (compilation) untimed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-device-data-") as tmp:
        if args.archive:
            photo_archive.verify(args.archive)
            args.data = "folder:" + photo_archive.extract(args.archive, os.path.join(tmp, "photos"))
        results = {}
        for name, device_resident in (("host pipeline", False), ("device-resident", True)):
            config = _config(args, device_resident)
            result = engine.train(build_task(config), config, os.path.join(tmp, name.replace(" ", "-")))
            results[name] = result
            print(f"{name}: {result.steps_per_sec:.3g} steps/s, {100 * result.host_fraction:.1f}% of the time "
                  f"outside the jitted step ({args.steps} steps, batch {args.batch}, {args.crop}² patches, "
                  f"downscale {args.downscale:g}, N={args.features} M={args.latent})", flush=True)
    ratio = results["device-resident"].steps_per_sec / results["host pipeline"].steps_per_sec
    print(f"ratio: {ratio:.3f}")


if __name__ == "__main__":
    main()
