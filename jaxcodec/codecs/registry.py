"""The classical codecs by name: the standard codecs of :mod:`jaxcodec.codecs.standard` and
the papers' baselines of :mod:`jaxcodec.codecs.baselines` (bicubic down-sampling, k-means
colour quantisation, PCA). :func:`jaxcodec.zoo.get_codec` adds the learned models."""

from __future__ import annotations

import re
from typing import Any, Callable

from jaxcodec.codecs import baselines, standard
from jaxcodec.errors import ConfigError, ModelError

_FACTORIES: dict[str, Callable[..., Any]] = {
    "jpeg": standard.jpeg,
    "webp": standard.webp,
    "jpeg2000": standard.jpeg2000,
    "avif": standard.avif,
    "jpegxl": standard.jpegxl,
}
_BASELINES = ("bicubic", "bicubic2x", "bicubic4x", "bicubic8x", "kmeans", "kmeans4", "pca")

#: Every name :func:`get_codec` accepts.
CLASSICAL_CODECS: list[str] = [*_FACTORIES, *_BASELINES]


def get_codec(name: str, **kwargs: Any) -> Any:
    """Builds the classical codec ``name``.

    ``qualities=[...]`` overrides the default operating points of any codec. Baselines take
    their own keyword arguments (see :mod:`jaxcodec.codecs.baselines`): ``kmeans`` takes ``seed``
    and ``iterations``; ``pcaK`` (e.g. ``pca28``) is ``pca`` with ``k=K``; ``pca`` takes ``k``, ``bits`` and either ``train_images`` (uint8
    ``(N, H, W, C)``, fitted at once) or ``arrays`` (a dict from
    :meth:`~jaxcodec.codecs.pca.PCACodec.to_arrays`). An evaluation fits PCA once with
    ``get_codec("pca", train_images=train)`` and reuses the codec for every test image.
    """
    if name in _FACTORIES:
        try:
            return _FACTORIES[name](**kwargs)
        except TypeError as e:
            raise ConfigError(f"bad options for codec {name!r}: {e}") from None
    if name in _BASELINES:
        return baselines.make_baseline(name, **kwargs)
    pca_k = re.fullmatch(r"pca([1-9][0-9]*)", name)
    if pca_k:  # "pca28": PCA with 28 components
        codec = baselines.make_baseline("pca", k=int(pca_k.group(1)), **kwargs)
        codec.name = name
        return codec
    raise ModelError(f"unknown classical codec {name!r}; known: {', '.join(CLASSICAL_CODECS)}, pcaK (K components)")
