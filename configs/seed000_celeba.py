r"""Seed 000: a ReLU convolutional autoencoder for 192×192 CelebA portraits.

Tan, "Smooth compression and reconstruction of human portrait image using convolutional
auto-encoder" (poster): Ballé 2017's autoencoder "with ReLU instead of GDN/IGDN ... and
5×5 and 3×3 filters instead of 9×9 and 5×5 filters for higher resolution images";
CelebA faces "resized to 192×192 and normalized to [0, 1]". Here that is the factorized
model with ``activation = "relu"`` and analysis kernels 5, 5, 3, 3 (stride 2 each, so a
192×192 face becomes a 12×12×192 latent; the synthesis mirrors them with sub-pixel
up-sampling), trained for rate and distortion with the deep factorized entropy model so
that it produces real bytes (the poster reports MSE only: 3.1e-4 on its test photos).

Needs CelebA prepared for TFDS (``tfds build celeb_a``; not downloadable here)::

    python train.py --config configs/seed000_celeba.py --workdir workdirs/seed000

The CelebA rule of :mod:`jaxcodec.data` keeps the central 178×178 square, then
``image_size`` resizes it to 192×192. Compare with GDN:
``--config.model.activation=gdn``. Quick check on the bundled photos:
``--config.data.train=sample:photos --config.data.eval= --config.batch_size=4
--config.num_steps=20`` (each photo's central square at 192×192).
"""

from ml_collections.config_dict import placeholder

from jaxcodec.train.tasks.factorized import default_config


def get_config():
    config = default_config(quality=3)
    config.model.activation = "relu"  # the poster's choice instead of GDN/IGDN
    config.model.kernel_sizes = (5, 5, 3, 3)  # "5×5 and 3×3 filters"
    config.model.clip_norm = 0.0  # plain Adam
    config.data.train = "tfds:celeb_a"  # 202,599 portraits (162,770 in the train split)
    config.data.eval = "tfds:celeb_a"  # its test split below
    config.data.eval_split = "test"
    config.data.image_size = 192  # central square resized to 192×192
    config.data.crop = placeholder(int)  # None: whole faces (typed, so --config.data.crop=128 works)
    config.batch_size = 16  # faces per step
    config.num_steps = 100_000  # optimisation steps
    config.eval_every = 5000  # steps between evaluations
    config.eval_batches = 10  # evaluation batches of 16 faces
    return config
