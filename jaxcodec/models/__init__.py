"""Flax modules of the model families: the factorized prior, the mean-scale hyperprior,
ComCNN/RecCNN, the DCGAN pair, the MNIST autoencoders, and RBM pre-training.

Their training tasks are in :mod:`jaxcodec.train.tasks` (looked up by
``config.model.name`` with :func:`jaxcodec.train.tasks.build_task`), their codecs in
:mod:`jaxcodec.codecs`.
"""
