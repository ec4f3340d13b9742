"""The simple baselines of the reimplemented papers, as real codecs, by registry name.

* ``bicubic`` (:mod:`jaxcodec.codecs.bicubic`): area down-sampling by 2, 4 or 8 and bicubic
  up-sampling, the small image stored losslessly (seed 000's comparison).
* ``kmeans`` (:mod:`jaxcodec.codecs.kmeans`): colour quantisation to ``K`` colours, the
  palette and an entropy-coded index map (seed 001's "KNN K=4").
* ``pca`` (:mod:`jaxcodec.codecs.pca`): Karhunen-Loeve transform coding with a fitted basis
  and fitted histograms (the MNIST autoencoders' comparison).

Streams start with a one-byte tag (``B``, ``K``, or ``0xA0 | quality index`` for PCA).
"""

from __future__ import annotations

from typing import Any

from jaxcodec.codecs.bicubic import BicubicCodec, area_downsample, bicubic_upsample
from jaxcodec.codecs.kmeans import (KMeansCodec, indices_from_ranks, kmeans, nearest_centre, neighbour_ranks,
                                    quantize_colours, squared_distances)
from jaxcodec.codecs.pca import PCACodec
from jaxcodec.errors import ConfigError, ModelError

__all__ = ["BicubicCodec", "KMeansCodec", "PCACodec", "area_downsample", "bicubic_upsample", "indices_from_ranks",
           "kmeans", "make_baseline", "nearest_centre", "neighbour_ranks", "quantize_colours", "squared_distances"]


def make_baseline(name: str, **kwargs: Any) -> Any:
    """Builds a baseline by registry name (see :func:`jaxcodec.codecs.registry.get_codec`).

    ``qualities`` overrides the factors (bicubic), the K values (kmeans) or the quality axis
    (pca: the bit depths, or the k values when ``k`` is not given and ``qualities_axis="k"``).
    ``pca`` also takes ``k``, ``bits``, ``max_fit_images``, ``seed`` and either
    ``train_images`` (fitted at once) or ``arrays`` (from :meth:`PCACodec.to_arrays`).
    """
    qualities = kwargs.pop("qualities", None)
    try:
        if name.startswith("bicubic"):
            fixed = {"bicubic2x": (2,), "bicubic4x": (4,), "bicubic8x": (8,)}.get(name)
            return BicubicCodec(qualities or fixed or (8, 4, 2), name=name, **kwargs)
        if name.startswith("kmeans"):
            fixed = (4,) if name == "kmeans4" else None
            return KMeansCodec(qualities or fixed or (2, 4, 8, 16), name=name, **kwargs)
        if name == "pca":
            train_images = kwargs.pop("train_images", None)
            arrays = kwargs.pop("arrays", None)
            if arrays is not None:
                return PCACodec.from_arrays(arrays)
            if qualities is not None:
                kwargs["k" if kwargs.pop("qualities_axis", "bits") == "k" else "bits"] = qualities
            codec = PCACodec(**kwargs)
            return codec.fit(train_images) if train_images is not None else codec
    except TypeError as e:
        raise ConfigError(f"bad options for codec {name!r}: {e}") from None
    raise ModelError(f"unknown baseline {name!r}")
