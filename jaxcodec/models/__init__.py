"""Model families, looked up by ``config.model.name``.

Each family is a :class:`jaxcodec.train.task.Task` class whose constructor takes the whole
``ml_collections.ConfigDict``. Modules are imported lazily so that importing
:mod:`jaxcodec` stays fast.
"""

from __future__ import annotations

import importlib

from jaxcodec.errors import ModelError

_TASKS = {
    "mnist_conv_ae": "jaxcodec.models.mnist_conv_ae:ConvAETask",
    "mnist_deep_ae": "jaxcodec.models.mnist_deep_ae:DeepAETask",
    "factorized": "jaxcodec.models.factorized:FactorizedTask",
    "mbt2018_mean": "jaxcodec.models.hyperprior:MeanScaleTask",
    "gan": "jaxcodec.models.gan:GANTask",
    "comrec": "jaxcodec.models.comrec:ComRecTask",
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
