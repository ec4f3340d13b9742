"""Backend-specific kernels: convolutions that XLA:CPU runs faster written by hand
(:mod:`~jaxcodec.ops.conv`, :mod:`~jaxcodec.ops.winograd`), the pixel shuffles they use,
:func:`conv_impl`, the choice of convolution algorithm at trace time, and :func:`conv_dtype`,
the convolutions' precision (mixed-precision training)."""

from jaxcodec.ops.conv import conv_dtype, conv_impl

__all__ = ["conv_dtype", "conv_impl"]
