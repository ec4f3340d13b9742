"""Backend-specific kernels: convolutions that XLA:CPU runs faster written by hand
(:mod:`~jaxcodec.ops.conv`, :mod:`~jaxcodec.ops.winograd`), the pixel shuffles they use,
and :func:`conv_impl`, the choice of convolution algorithm at trace time."""

from jaxcodec.ops.conv import conv_impl

__all__ = ["conv_impl"]
