r"""ComCNN + JPEG + RecCNN on photos (seed 002, Jiang et al. 2017).

There is no photo training set inside the package, so ``data.train`` must be given::

    python train.py --config configs/comrec_photos.py --workdir runs/comrec \
        --config.data.train=folder:/path/to/photos

Training draws random 128×128 patches; each patch's compact image is coded with real JPEG
at a quality drawn from ``model.train_qualities`` (one model for the whole ladder). A
single-quality model, as in the paper: ``--config.model.train_qualities='(20,)'``.
Evaluation (``data.eval``) uses 128×128 crops of scikit-image's seven photos at
``model.eval_quality``; ``batch_size`` stays at most 7 for that reason.

Then measure real streams against JPEG::

    python eval.py --data sample:photos --codecs runs/comrec,jpeg --out runs/comrec_report

The shipped ``comrec-photos`` was trained for 600 steps (batch 4, about 16 minutes on 2 CPU
cores) on the photo folder of ``make factorized-ladder`` with
``--config.model.com_learning_rate=2e-5``: at ComCNN's full learning rate its straight-through
gradient, which ignores JPEG's error and rate, made the compact image busier, costing more
bits and losing PSNR (see the README). Quick check: ``--config.num_steps=20``.
"""

import ml_collections
from ml_collections.config_dict import placeholder


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict()
    config.model.name = "comrec"  # jaxcodec.train.tasks registry key
    config.model.com_features = 64  # channels of ComCNN's two hidden convolutions (Jiang: 64)
    config.model.rec_depth = 10  # RecCNN convolutions (Jiang: 20)
    config.model.rec_features = 64  # RecCNN channels (Jiang: 64)
    config.model.proxy = "straight_through"  # codec stand-in for ComCNN's gradient: or "identity" (Jiang)
    config.model.subsampling = "4:2:0"  # JPEG chroma subsampling of the compact image
    config.model.train_qualities = (10, 20, 40, 70)  # JPEG qualities drawn per training image
    config.model.qualities = (10, 20, 40, 70)  # the codec's RD ladder (any quality 1..100 works)
    config.model.eval_quality = 20  # JPEG quality of the evaluation metrics
    config.model.com_learning_rate = placeholder(float)  # ComCNN's Adam learning rate (None: learning_rate)
    config.model.rec_learning_rate = placeholder(float)  # RecCNN's Adam learning rate (None: learning_rate)

    config.data = ml_collections.ConfigDict()
    config.data.train = ""  # required: folder:PATH of training photos (or tfds:NAME)
    config.data.train_split = "train"  # split of the training set
    config.data.eval = "sample:photos"  # evaluation set spec ("" to skip evaluation)
    config.data.eval_split = "test"  # split of the evaluation set
    config.data.image_size = None  # native size
    config.data.crop = 128  # random square patches (even)

    config.batch_size = 4  # patches per step (global); at most 7 with the sample:photos eval set
    config.num_steps = 3000  # optimisation steps
    config.learning_rate = 3e-4  # Adam learning rate of both networks unless set above
    config.seed = 0  # seed of parameter init, data order and JPEG qualities
    config.log_every = 50  # steps between progress lines
    config.eval_every = 500  # steps between evaluations
    config.eval_batches = 2  # evaluation batches per evaluation
    config.checkpoint_every = 500  # steps between checkpoints
    config.keep_checkpoints = 3  # checkpoints kept on disk
    return config
