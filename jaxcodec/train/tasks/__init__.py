"""Training tasks of the model families, looked up by ``config.model.name``.

Each family is a :class:`jaxcodec.train.task.Task` class whose constructor takes the whole
``ml_collections.ConfigDict``; its Flax modules are in :mod:`jaxcodec.models` and its codec
in :mod:`jaxcodec.codecs`. Modules are imported lazily so that importing :mod:`jaxcodec`
stays fast.
"""

from __future__ import annotations

import importlib

from jaxcodec.errors import ModelError

_TASKS = {
    "mnist_conv_ae": "jaxcodec.train.tasks.mnist_conv_ae:ConvAETask",
    "mnist_deep_ae": "jaxcodec.train.tasks.mnist_deep_ae:DeepAETask",
    "factorized": "jaxcodec.train.tasks.factorized:FactorizedTask",
    "mbt2018_mean": "jaxcodec.train.tasks.hyperprior:MeanScaleTask",
    "gan": "jaxcodec.train.tasks.gan:GANTask",
    "comrec": "jaxcodec.train.tasks.comrec:ComRecTask",
}


def task_names() -> list[str]:
    """Names accepted as ``config.model.name``."""
    return sorted(_TASKS)


def build_task(config):
    """Builds the :class:`~jaxcodec.train.task.Task` named by ``config.model.name``."""
    name = config.model.name
    if name not in _TASKS:
        raise ModelError(f"unknown model family {name!r}; known: {', '.join(task_names())}")
    module_name, cls_name = _TASKS[name].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(config)
