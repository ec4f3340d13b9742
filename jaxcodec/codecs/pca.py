"""Karhunen-Loeve transform coding as a real codec: the PCA baseline that Patel et al.
("Deep convolutional autoencoder-based lossy image compression") compare their MNIST
autoencoder with. Principal axes are fitted on a training set; an image's coefficients are
quantised with one uniform step and coded with per-coefficient histograms fitted on the
training set.

Streams start with the byte ``0xA0 | quality index``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from jaxcodec.codecs.protocol import check_image
from jaxcodec.entropy.histogram import HistogramModel
from jaxcodec.errors import BitstreamError, ConfigError, ImageError, ModelError

_PCA_TAG = 0xA0
MAX_PCA_DIM = 12288  # 64 x 64 x 3; the D x D scatter matrix must fit in memory
ACTIVE_FRACTION = 1e-3  # with k=None, code the components this share of images needs


class PCACodec:
    """Karhunen-Loeve (PCA) transform coding with a fitted basis and fitted histograms.

    The basis is the principal axes of training images (Pearson 1901; Hotelling 1933),
    from the eigendecomposition of the scatter matrix of the mean-removed pixels (the right
    singular vectors of the data matrix; a direct SVD when there are fewer images than
    pixels). An image's first ``k`` coefficients are quantised with one uniform step for all
    of them: the widest coefficient range seen in training split into ``2**bits`` levels. A
    shared step gives every coded coefficient the same error, the allocation reverse
    water-filling prescribes for Gaussian components (Cover & Thomas, *Elements of Information
    Theory*, Thm. 10.3.3); components much weaker than the step round to 0 and cost almost
    nothing. Each coefficient has its own integer histogram
    (:class:`jaxcodec.entropy.histogram.HistogramModel`) fitted on the training coefficients.

    ``k`` or ``bits`` (not both) may be a sequence; that sequence is the quality axis. The
    default, every component and ``bits`` = 2..8, traces the best curve on MNIST (a ``k``
    sweep at fixed ``bits`` is up to 1 dB worse at the same rate and saturates once the
    dropped components dominate the error). ``k=None`` codes, at each bit depth, the leading
    components up to the last one that quantises to a nonzero value on at least 0.1% of the
    training images (on MNIST 28 of 784 at 2 bits, 660 at 8 bits; the rate-distortion
    curve is unchanged to 0.01 dB and coding is faster, by far the most at low bit depths).

    Stream: one byte ``0xA0 | quality index``, then the ANS words. Everything else (image
    size, basis, step, tables) lives in the fitted model, saved with :meth:`to_arrays`.

    Args:
      k: components kept, or a sequence of them; ``None`` to choose per bit depth (above).
      bits: quantiser bit depth(s), 1..12; by default 2..8, or 6 when ``k`` is a sequence.
      max_fit_images: :meth:`fit` uses a seeded random subset of at most this many images.
      seed: seed of that subset.
    """

    def __init__(
        self,
        k: int | Sequence[int] | None = None,
        bits: int | Sequence[int] | None = None,
        *,
        max_fit_images: int | None = 20000,
        seed: int = 0,
        name: str = "pca",
    ):
        k_axis = k is not None and not np.isscalar(k)
        if bits is None:
            bits = 6 if k_axis else (2, 3, 4, 5, 6, 7, 8)
        bits_axis = not np.isscalar(bits)
        if k_axis and bits_axis:
            raise ConfigError("pca takes a sequence for k or for bits, not both")
        ks = [None if k is None else int(v) for v in (k if k_axis else [k])]
        depths = [int(b) for b in (bits if bits_axis else [bits])]
        if any(v is not None and v < 1 for v in ks) or any(not 1 <= b <= 12 for b in depths):
            raise ConfigError(f"pca needs k >= 1 and bits in [1, 12], got k={k!r} bits={bits!r}")
        axis = ks if k_axis else depths
        if len(axis) > 16 or len(set(axis)) != len(axis):
            raise ConfigError("pca takes at most 16 distinct qualities")
        order = np.argsort(axis, kind="stable")
        self.qualities = [axis[i] for i in order]
        self._ks = [ks[i] if k_axis else ks[0] for i in order]
        self._bits = [depths[0] if k_axis else depths[i] for i in order]
        self.name, self.max_fit_images, self.seed = name, max_fit_images, int(seed)
        self._k_axis = k_axis
        self.description = (
            "PCA transform coding (fitted basis, uniform step, fitted histograms), "
            + ("k=" if k_axis else "bits=") + "/".join(map(str, self.qualities))
        )
        self.mean: np.ndarray | None = None

    # -- fitting and saving

    def fit(self, train_images: np.ndarray) -> "PCACodec":
        """Fits basis, steps and histograms on ``uint8`` ``(N, H, W, C)`` images; returns self."""
        train = np.asarray(train_images)
        if train.dtype != np.uint8 or train.ndim != 4 or train.shape[3] not in (1, 3) or len(train) < 2:
            raise ImageError(
                f"pca fits on uint8 (N, H, W, C) images with N >= 2, got {train.dtype} {train.shape}"
            )
        shape = train.shape[1:]
        dim = int(np.prod(shape))
        if dim > MAX_PCA_DIM:
            raise ImageError(
                f"pca is for small images (at most {MAX_PCA_DIM} values), got {shape}; resize first"
            )
        if self.max_fit_images is not None and len(train) > self.max_fit_images:
            rng = np.random.default_rng(self.seed)
            train = train[np.sort(rng.choice(len(train), self.max_fit_images, replace=False))]
        x = train.reshape(len(train), dim).astype(np.float64)
        mean = x.mean(axis=0)
        x -= mean
        if len(x) >= dim:
            eigvals, eigvecs = np.linalg.eigh(x.T @ x)
            components = eigvecs[:, ::-1].T
        else:
            components = np.linalg.svd(x, full_matrices=False)[2]
        rank = min(len(x), dim)
        if any(k is not None and k > rank for k in self._ks):
            largest = max(k for k in self._ks if k)
            raise ConfigError(f"pca k={largest} exceeds the {rank} components of the fit")
        kmax = max(rank if k is None else k for k in self._ks)
        coefficients = x @ components[:kmax].T
        widest = float((coefficients.max(axis=0) - coefficients.min(axis=0)).max())
        steps = [max(widest, 1e-6) / (2**b - 1) for b in self._bits]
        ks = [k or self._active_components(coefficients, step) for k, step in zip(self._ks, steps)]
        components = np.ascontiguousarray(components[: max(ks)])
        tables = [
            HistogramModel.fit(self._quantise(coefficients[:, :k], step))
            for k, step in zip(ks, steps)
        ]
        self._set_model(mean, components, shape, ks, steps, tables)
        return self

    def _set_model(self, mean, components, shape, ks, steps, tables) -> None:
        self.mean, self.components, self.shape = mean, components, tuple(int(s) for s in shape)
        self._ks, self.steps, self.tables = [int(k) for k in ks], [float(s) for s in steps], tables

    @classmethod
    def _active_components(cls, coefficients: np.ndarray, step: float) -> int:
        """Leading components up to the last one nonzero after quantisation on >= 0.1% of images.

        The rest round to 0 on nearly every image: coding them costs time and a little rate
        and changes the reconstruction by a fraction of the quantisation error.
        """
        active = np.flatnonzero((cls._quantise(coefficients, step) != 0).mean(axis=0) >= ACTIVE_FRACTION)
        return int(active[-1]) + 1 if active.size else 1

    @staticmethod
    def _quantise(coefficients: np.ndarray, step: float) -> np.ndarray:
        return np.floor(coefficients / step + 0.5).astype(np.int64)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted model as plain arrays (for ``np.savez``); see :meth:`from_arrays`."""
        self._require_fit()
        arrays = {
            "mean": self.mean, "components": self.components, "shape": np.asarray(self.shape),
            "qualities": np.asarray(self.qualities), "ks": np.asarray(self._ks),
            "bits": np.asarray(self._bits), "steps": np.asarray(self.steps),
            "k_axis": np.asarray(self._k_axis),
        }
        for i, table in enumerate(self.tables):
            arrays[f"freqs_{i}"] = table.freqs
            arrays[f"offsets_{i}"] = table.offsets
        return {key: np.array(value) for key, value in arrays.items()}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], name: str = "pca") -> "PCACodec":
        """Rebuilds a fitted codec from :meth:`to_arrays` output (e.g. a loaded ``.npz``)."""
        try:
            qualities = [int(q) for q in arrays["qualities"]]
            ks, bits = [int(k) for k in arrays["ks"]], [int(b) for b in arrays["bits"]]
            if bool(arrays["k_axis"]):
                codec = cls(k=qualities, bits=bits[0], name=name)
            else:
                codec = cls(k=ks[0], bits=qualities, name=name)
            tables = [
                HistogramModel.from_arrays(
                    {"freqs": arrays[f"freqs_{i}"], "offsets": arrays[f"offsets_{i}"]}
                )
                for i in range(len(qualities))
            ]
            codec._set_model(
                np.asarray(arrays["mean"], np.float64), np.asarray(arrays["components"], np.float64),
                arrays["shape"], ks, np.asarray(arrays["steps"], np.float64), tables,
            )
        except (KeyError, ValueError) as e:
            raise ModelError(f"not a fitted pca model: {e}") from None
        return codec

    def _require_fit(self) -> None:
        if self.mean is None:
            raise ModelError("pca codec is not fitted; call fit(train_images) or from_arrays(...)")

    # -- coding

    def project(self, image: np.ndarray, k: int) -> np.ndarray:
        """The unquantised reconstruction from the first ``k`` components, float64 ``(H, W, C)``."""
        self._require_fit()
        x = self._vector(image)
        basis = self.components[:k]
        return (self.mean + ((x - self.mean) @ basis.T) @ basis).reshape(self.shape)

    def _vector(self, image: np.ndarray) -> np.ndarray:
        image = check_image(image)
        if image.shape != self.shape:
            raise ImageError(f"pca model was fitted on {self.shape} images, got {image.shape}")
        return image.reshape(-1).astype(np.float64)

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        """Quantises the first ``k`` coefficients and codes them with the fitted histograms."""
        self._require_fit()
        if quality not in self.qualities:
            raise ConfigError(f"pca quality must be one of {self.qualities}, got {quality!r}")
        index = self.qualities.index(quality)
        k = self._ks[index]
        coefficients = (self._vector(image) - self.mean) @ self.components[:k].T
        symbols = self._quantise(coefficients, self.steps[index])
        return bytes([_PCA_TAG | index]) + self.tables[index].encode(symbols)

    def decode(self, data: bytes) -> np.ndarray:
        """Decodes the coefficients and rebuilds the image; :class:`BitstreamError` on bad data."""
        self._require_fit()
        data = bytes(data)
        if not data or data[0] & 0xF0 != _PCA_TAG or data[0] & 0x0F >= len(self.qualities):
            raise BitstreamError("not a pca stream for this model (bad tag)")
        index = data[0] & 0x0F
        k = self._ks[index]
        symbols = self.tables[index].decode(data[1:])
        x = self.mean + (symbols * self.steps[index]) @ self.components[:k]
        return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8).reshape(self.shape)
