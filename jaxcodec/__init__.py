"""jaxcodec: learned lossy image compression in JAX/Flax.

Everything a notebook needs is importable from here::

  import jaxcodec
  data = jaxcodec.compress(image, "bmshj2017-factorized", quality=3)   # bytes
  image2 = jaxcodec.decompress(data)
  state = jaxcodec.train_and_evaluate(config, "/tmp/run")              # training
  config, state, tables = jaxcodec.load_checkpoint("/tmp/run")
  codec = jaxcodec.get_codec("jpeg")                                   # any codec by name

Heavy modules (the engine, the models) are imported on first use.
"""

import importlib
import pkgutil

from jaxcodec.api import compress, decompress, info, read_image
from jaxcodec.errors import (
    BitstreamError,
    ConfigError,
    DatasetError,
    ImageError,
    JaxcodecError,
    ModelError,
)

__version__ = "0.1.0"

_LAZY = {
    "train_and_evaluate": "jaxcodec.train.engine",
    "load_checkpoint": "jaxcodec.train.run_files",
    "get_codec": "jaxcodec.zoo",
    "shipped_models": "jaxcodec.zoo",
    "evaluate": "jaxcodec.eval.rate_distortion",
    "build_task": "jaxcodec.train.tasks",
    "load_images": "jaxcodec.data",
    "batches": "jaxcodec.data",
    "invert": "jaxcodec.codecs.inversion",
}
# Every module of the package (jaxcodec.codecs.refinement, jaxcodec.image, ...), imported on first use.
_SUBMODULES = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"jaxcodec.{name}")
    raise AttributeError(f"module 'jaxcodec' has no attribute {name!r}")


__all__ = [
    "BitstreamError", "ConfigError", "DatasetError", "ImageError", "JaxcodecError", "ModelError",
    "compress", "decompress", "info", "read_image", *sorted(_LAZY),
]
