"""Backend-specific kernels: convolutions that XLA:CPU runs faster written by hand
(:mod:`~jaxcodec.ops.conv`, :mod:`~jaxcodec.ops.winograd`), the pixel shuffles they use,
:func:`conv_impl`, the choice of convolution algorithm at trace time, :func:`conv_dtype`,
the convolutions' precision (mixed-precision training), and :func:`full_precision_jit`, a
codec's programs at full float32 precision on every backend."""

from jaxcodec.ops.conv import conv_dtype, conv_impl, full_precision_jit

__all__ = ["conv_dtype", "conv_impl", "full_precision_jit"]
