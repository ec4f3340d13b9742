"""Backend-specific kernels: convolutions that XLA:CPU runs faster written by hand
(:mod:`~jaxcodec.ops.conv`, :mod:`~jaxcodec.ops.winograd`), the pixel shuffles they use,
and :func:`conv_impl`, the choice of convolution algorithm at trace time."""

import importlib

__all__ = ["conv_impl"]


def __getattr__(name):
    """Submodules load on first use (``jaxcodec.ops.<module>``); ``conv_impl`` is
    :func:`jaxcodec.ops.conv.conv_impl`."""
    if name == "conv_impl":
        return importlib.import_module(f"{__name__}.conv").conv_impl
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"{__name__}.{name}":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        raise
