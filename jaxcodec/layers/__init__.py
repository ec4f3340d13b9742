"""Flax layers of the learned transforms and their small math: GDN/IGDN
(:mod:`~jaxcodec.layers.gdn`), strided, sub-pixel and transposed convolutions
(:mod:`~jaxcodec.layers.conv`), bounds and the non-negative re-parameterisation
(:mod:`~jaxcodec.layers.bounds`), and the pixel shuffles they use
(:mod:`jaxcodec.ops.pixel_shuffle`). The convolutions' kernels are in
:mod:`jaxcodec.ops.conv`.
"""

from jaxcodec.layers.bounds import PEDESTAL, REPARAM_OFFSET, lower_bound, nonnegative, nonnegative_init
from jaxcodec.layers.conv import DownConv, SubPixelConv, TransposedConv, icnr
from jaxcodec.layers.gdn import GDN, activation_layer, gdn
from jaxcodec.ops.pixel_shuffle import depth_to_space, space_to_depth

__all__ = [
    "GDN",
    "PEDESTAL",
    "REPARAM_OFFSET",
    "DownConv",
    "SubPixelConv",
    "TransposedConv",
    "activation_layer",
    "depth_to_space",
    "gdn",
    "icnr",
    "lower_bound",
    "nonnegative",
    "nonnegative_init",
    "space_to_depth",
]
