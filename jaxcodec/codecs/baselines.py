"""The simple baselines of the reimplemented papers, as real codecs.

* ``bicubic`` (Tan, "Smooth compression and reconstruction of human portrait image using
  convolutional auto-encoder", CS230 poster): the image is shrunk by a factor ``f`` (2, 4, 8)
  by area averaging and grown back with bicubic interpolation. The small image is stored
  losslessly.
* ``kmeans`` (Tolunay & Ghalayini, "Generative neural network based image compression",
  CS229 poster, baseline "KNN K=4"): colour quantisation to ``K`` colours found by k-means on
  the image's own pixels; the stream holds the palette and the entropy-coded index map.
* ``pca`` (the PCA baseline that Patel et al., "Deep convolutional autoencoder-based lossy
  image compression", compare their MNIST autoencoder with): Karhunen-Loeve transform
  coding. Principal axes are fitted on a training set; an image's coefficients are quantised
  with one uniform step and coded with per-coefficient histograms fitted on the training set.

Streams start with a one-byte tag (``B``, ``K``, or ``0xA0 | quality index`` for PCA); sizes are
unsigned LEB128 varints, so a 28x28 image costs one byte per dimension.
"""

from __future__ import annotations

import io
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from jaxcodec.entropy import coder as entropy
from jaxcodec.codecs.byte_reader import ByteReader, varint
from jaxcodec.codecs.protocol import check_image
from jaxcodec.errors import BitstreamError, ConfigError, ImageError, ModelError

# ---------------------------------------------------------------------------- stream helpers


MAX_SIDE, MAX_PIXELS = 65535, 2**26  # bounds what a decoder allocates for a forged header


def _size_header(image_shape: tuple[int, ...]) -> bytes:
    height, width = image_shape[:2]
    if height > MAX_SIDE or width > MAX_SIDE or height * width > MAX_PIXELS:
        raise ImageError(f"image of {height}x{width} is larger than the baselines take ({MAX_PIXELS} px)")
    return varint(height) + varint(width)


def _read_size(reader: ByteReader) -> tuple[int, int]:
    height, width = reader.varint(), reader.varint()
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE and height * width <= MAX_PIXELS):
        raise BitstreamError(f"{reader.codec} stream has an invalid image size {height}x{width}")
    return height, width


# ---------------------------------------------------------------------------- bicubic

_RAW, _PNG, _WEBP = 0, 1, 2
_FORMAT_NAMES = {_RAW: "raw", _PNG: "PNG", _WEBP: "lossless WebP"}


def area_downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Means of ``factor x factor`` blocks, rounded half up to ``uint8``.

    Sizes that are not multiples of ``factor`` are padded by edge replication first, so the
    result has ``ceil(H / factor) x ceil(W / factor)`` pixels.
    """
    image = check_image(image)
    height, width, channels = image.shape
    small_h, small_w = -(-height // factor), -(-width // factor)
    padded = np.pad(
        image, ((0, small_h * factor - height), (0, small_w * factor - width), (0, 0)), mode="edge"
    )
    blocks = padded.reshape(small_h, factor, small_w, factor, channels).astype(np.float64)
    return np.floor(blocks.mean(axis=(1, 3)) + 0.5).astype(np.uint8)


def bicubic_upsample(small: np.ndarray, factor: int, height: int, width: int) -> np.ndarray:
    """Grows ``small`` by ``factor`` with Pillow's bicubic filter and crops to ``height x width``.

    Pillow's ``BICUBIC`` is Keys' cubic convolution with ``a = -0.5`` (Keys, "Cubic
    convolution interpolation for digital image processing", IEEE TASSP 29(6), 1981), applied
    separably with pixel centres at ``(i + 0.5) / factor``. Growing to the padded size and
    cropping keeps each small pixel centred on the block it averages.
    """
    small_h, small_w, channels = small.shape
    mode = "L" if channels == 1 else "RGB"
    grown = Image.fromarray(small[..., 0] if channels == 1 else small, mode=mode).resize(
        (small_w * factor, small_h * factor), resample=Image.Resampling.BICUBIC
    )
    out = np.asarray(grown)
    if out.ndim == 2:
        out = out[..., None]
    return np.ascontiguousarray(out[:height, :width])


def _lossless_candidates(small: np.ndarray) -> dict[int, bytes]:
    """The small image as raw bytes, optimised PNG and lossless WebP (grey replicated)."""
    channels = small.shape[2]
    pil = Image.fromarray(small[..., 0] if channels == 1 else small)
    png = io.BytesIO()
    pil.save(png, format="PNG", optimize=True)
    webp = io.BytesIO()
    rgb = pil.convert("RGB") if channels == 1 else pil
    rgb.save(webp, format="WEBP", lossless=True, quality=100, method=4)
    return {_RAW: small.tobytes(), _PNG: png.getvalue(), _WEBP: webp.getvalue()}


def _decode_lossless(fmt: int, payload: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    if fmt == _RAW:
        if len(payload) != shape[0] * shape[1] * shape[2]:
            raise BitstreamError("bicubic stream has a raw payload of the wrong length")
        return np.frombuffer(payload, dtype=np.uint8).reshape(shape).copy()
    expected = "PNG" if fmt == _PNG else "WEBP"
    try:
        with Image.open(io.BytesIO(payload)) as pil:
            if pil.format != expected:
                raise BitstreamError(f"bicubic stream payload is not {expected}")
            pil.load()
            array = np.asarray(pil)
    except BitstreamError:
        raise
    except Exception as e:
        raise BitstreamError(f"bicubic stream payload does not decode: {type(e).__name__}") from None
    if array.dtype != np.uint8:
        raise BitstreamError("bicubic stream payload is not 8-bit")
    if array.ndim == 2:
        array = array[..., None]
    if shape[2] == 1 and array.shape[2] == 3:
        array = array[..., :1]
    if array.shape != shape:
        raise BitstreamError(f"bicubic payload is {array.shape}, header says {shape}")
    return np.ascontiguousarray(array)


class BicubicCodec:
    """Area-average down-sampling by ``factor`` plus bicubic up-sampling (Tan's baseline).

    Quality = the factor; ``qualities`` run from the largest factor (lowest rate) down.
    Stream: ``b"B"``, the factor (1 byte), ``format | (C == 3) << 7`` (1 byte), varint H,
    varint W, then the small image in whichever of raw bytes, optimised PNG or lossless WebP
    is smallest (raw wins on tiny images, where PNG's and WebP's fixed headers dominate).
    """

    def __init__(self, factors: Sequence[int] = (8, 4, 2), name: str = "bicubic"):
        for factor in factors:
            self._check_factor(factor)
        self.qualities = sorted((int(f) for f in factors), reverse=True)
        self.name = name
        self.description = (
            "area down-sampling by " + "/".join(f"{f}x" for f in self.qualities)
            + ", bicubic up-sampling; small image stored losslessly"
        )

    @staticmethod
    def _check_factor(factor: Any) -> None:
        if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or not 0 < factor < 256:
            raise ConfigError(f"bicubic factor must be an integer in [1, 255], got {factor!r}")

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        """Shrinks by ``quality`` and stores the small image losslessly."""
        image = check_image(image)
        self._check_factor(quality)
        factor = int(quality)
        small = area_downsample(image, factor)
        candidates = _lossless_candidates(small)
        fmt = min(candidates, key=lambda f: (len(candidates[f]), f))
        flags = fmt | (0x80 if image.shape[2] == 3 else 0)
        return b"B" + bytes([factor, flags]) + _size_header(image.shape) + candidates[fmt]

    def decode(self, data: bytes) -> np.ndarray:
        """Reads the small image and grows it back to the stored size."""
        reader = ByteReader(data, "bicubic")
        if reader.take(1) != b"B":
            raise BitstreamError("not a bicubic stream (bad tag)")
        factor, flags = reader.take(2)
        fmt, channels = flags & 0x7F, 3 if flags & 0x80 else 1
        if factor < 1 or fmt not in _FORMAT_NAMES:
            raise BitstreamError("bicubic stream has an invalid factor or payload format")
        height, width = _read_size(reader)
        shape = (-(-height // factor), -(-width // factor), channels)
        small = _decode_lossless(fmt, reader.rest(), shape)
        return bicubic_upsample(small, factor, height, width)


# ---------------------------------------------------------------------------- k-means


def kmeans(
    points: np.ndarray,
    weights: np.ndarray,
    k: int,
    *,
    seed: int = 0,
    iterations: int = 30,
    tolerance: float = 1e-3,
) -> np.ndarray:
    """Weighted k-means: k-means++ seeding, then up to ``iterations`` Lloyd steps.

    k-means++ (Arthur & Vassilvitskii, "k-means++: the advantages of careful seeding",
    SODA 2007) draws the first centre with probability proportional to weight and each next
    one proportional to weight times the squared distance to the nearest centre so far.
    Lloyd's steps (Lloyd, "Least squares quantization in PCM", IEEE Trans. IT 28(2), 1982)
    alternate nearest-centre assignment and weighted means; a centre that loses all its
    points stays where it is. ``iterations=0`` returns the seeding itself.

    Args:
      points: ``(N, C)`` float points, here the distinct colours of an image.
      weights: ``(N,)`` positive weights, here how often each colour occurs.
      k: number of centres, ``1 <= k <= N``.
      seed: seed of the k-means++ draws.
      iterations: maximum Lloyd steps.
      tolerance: stop once a step lowers the weighted distortion by less than this fraction.

    Returns:
      ``(k, C)`` float64 centres.
    """
    points = np.asarray(points, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    rng = np.random.default_rng(seed)
    centres = np.empty((k, points.shape[1]))
    centres[0] = points[rng.choice(len(points), p=weights / weights.sum())]
    nearest = squared_distances(points, centres[:1])[:, 0]
    for i in range(1, k):
        score = weights * nearest
        total = score.sum()
        index = rng.choice(len(points), p=score / total) if total > 0 else int(rng.integers(len(points)))
        centres[i] = points[index]
        nearest = np.minimum(nearest, squared_distances(points, centres[i : i + 1])[:, 0])
    previous = np.inf
    for _ in range(iterations):
        distances = squared_distances(points, centres)
        assignment = np.argmin(distances, axis=1)
        distortion = float(np.sum(weights * distances[np.arange(len(points)), assignment]))
        if np.isfinite(previous) and previous - distortion <= tolerance * previous:
            break
        previous = distortion
        mass = np.bincount(assignment, weights=weights, minlength=k)
        for c in range(points.shape[1]):
            sums = np.bincount(assignment, weights=weights * points[:, c], minlength=k)
            centres[:, c] = np.where(mass > 0, sums / np.maximum(mass, 1e-300), centres[:, c])
    return centres


def squared_distances(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``(N, K)`` squared Euclidean distances, summed channel by channel (exact for integers)."""
    points = np.asarray(points, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    return sum(np.subtract.outer(points[:, c], centres[:, c]) ** 2 for c in range(points.shape[1]))


def nearest_centre(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre (squared Euclidean distance, ties to the lower index)."""
    return np.argmin(squared_distances(points, centres), axis=1)


def quantize_colours(
    image: np.ndarray, k: int, *, seed: int = 0, iterations: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """Fits a ``k``-colour palette to ``image`` and maps every pixel to its nearest colour.

    k-means runs on the distinct colours weighted by their counts (the same objective as on
    all pixels, much faster). Centres are rounded to ``uint8``; duplicates and colours no pixel
    maps to are dropped, and the palette is sorted (most frequent first), so it may hold fewer
    than ``k`` colours. An image with at most ``k`` colours is kept exactly.

    Returns:
      ``(palette uint8 (K', C), indices int64 (H, W))`` with ``image ~ palette[indices]``.
    """
    image = check_image(image)
    pixels = image.reshape(-1, image.shape[2])
    colours, inverse, counts = np.unique(pixels, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    if len(colours) <= k:
        palette = colours
    else:
        centres = kmeans(colours, counts, k, seed=seed, iterations=iterations)
        palette = np.unique(np.clip(np.floor(centres + 0.5), 0, 255).astype(np.uint8), axis=0)
    colour_index = nearest_centre(colours, palette)
    usage = np.bincount(colour_index, weights=counts, minlength=len(palette))
    order = [i for i in np.lexsort((np.arange(len(palette)), -usage)) if usage[i] > 0]
    remap = np.zeros(len(palette), dtype=np.int64)
    remap[order] = np.arange(len(order))
    indices = remap[colour_index][inverse].reshape(image.shape[:2])
    return palette[order], indices


def _candidates(indices: list[list[int]], row: int, col: int, width: int) -> list[int]:
    """Distinct indices of the left, upper, upper-right and upper-left neighbours."""
    out: list[int] = []
    line = indices[row]
    if col > 0:
        out.append(line[col - 1])
    if row > 0:
        above = indices[row - 1]
        for c in (col, col + 1, col - 1):
            if 0 <= c < width and above[c] not in out:
                out.append(above[c])
    return out


def neighbour_ranks(indices: np.ndarray, num_colours: int) -> np.ndarray:
    """Maps palette indices to ranks in a list led by the neighbours' indices.

    Raster order; pixel ``(i, j)`` ranks its index in the list [left, above, above-right,
    above-left] (distinct, those that exist) followed by the other palette indices in
    increasing order. Index maps are piecewise constant, so ranks are mostly 0 and a single
    static histogram codes them far below ``log2 K`` bits; this is the move-to-front idea
    (Bentley et al., CACM 29(4), 1986) with the causal neighbours as the front.
    """
    height, width = indices.shape
    rows = indices.tolist()
    ranks = np.empty(height * width, dtype=np.int64)
    position = 0
    for row in range(height):
        for col in range(width):
            value = rows[row][col]
            front = _candidates(rows, row, col, width)
            if value in front:
                ranks[position] = front.index(value)
            else:
                ranks[position] = len(front) + value - sum(1 for f in front if f < value)
            position += 1
    return ranks


def indices_from_ranks(ranks: np.ndarray, height: int, width: int, num_colours: int) -> np.ndarray:
    """Inverts :func:`neighbour_ranks`."""
    rows = [[0] * width for _ in range(height)]
    flat = ranks.tolist()
    position = 0
    for row in range(height):
        line = rows[row]
        for col in range(width):
            rank = flat[position]
            position += 1
            front = _candidates(rows, row, col, width)
            if rank < len(front):
                line[col] = front[rank]
                continue
            rank -= len(front)
            value = 0
            while True:
                if value not in front:
                    if rank == 0:
                        break
                    rank -= 1
                value += 1
            if value >= num_colours:
                raise BitstreamError("k-means stream has an index outside the palette")
            line[col] = value
    return np.asarray(rows, dtype=np.int64)


class KMeansCodec:
    """k-means colour quantisation with ``K`` colours (Tolunay & Ghalayini's "KNN" baseline).

    Quality = ``K``. The palette is fitted on the image itself (:func:`quantize_colours`),
    the index map is turned into neighbour ranks (:func:`neighbour_ranks`) and coded with
    one static table built from the ranks' histogram (:func:`jaxcodec.entropy.coder.quantize_pmf`,
    16-bit). Stream: ``b"K"``, varint H, varint W, ``K' - 1 | (C == 3) << 8`` as a varint,
    the palette (``K' x C`` bytes), the table's first ``K'`` frequencies as uint16 (the
    escape's is implied by the 2**16 total), then the ANS words. A one-colour image stops
    after the palette.
    """

    def __init__(
        self,
        ks: Sequence[int] = (2, 4, 8, 16),
        *,
        seed: int = 0,
        iterations: int = 30,
        name: str = "kmeans",
    ):
        for k in ks:
            self._check_k(k)
        self.qualities = sorted(int(k) for k in ks)
        self.seed, self.iterations, self.name = int(seed), int(iterations), name
        self.description = (
            "k-means colour quantisation, K=" + "/".join(map(str, self.qualities))
            + ", neighbour-rank index map, static entropy table"
        )

    @staticmethod
    def _check_k(k: Any) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 256:
            raise ConfigError(f"k-means K must be an integer in [1, 256], got {k!r}")

    def encode(self, image: np.ndarray, quality: int) -> bytes:
        """Quantises to ``quality`` colours and codes palette plus index map."""
        image = check_image(image)
        self._check_k(quality)
        palette, indices = quantize_colours(
            image, int(quality), seed=self.seed, iterations=self.iterations
        )
        num_colours, channels = palette.shape
        code = (num_colours - 1) | (256 if channels == 3 else 0)
        head = b"K" + _size_header(image.shape) + varint(code) + palette.tobytes()
        if num_colours == 1:
            return head
        ranks = neighbour_ranks(indices, num_colours)
        counts = np.bincount(ranks, minlength=num_colours + 1).astype(np.float64)
        freqs = entropy.quantize_pmf(counts[None, :], 16)
        ids = np.zeros(ranks.size, dtype=np.int64)
        payload = entropy.encode_symbols(ranks, ids, freqs, np.zeros(1, np.int64))
        return head + freqs[0, :-1].astype("<u2").tobytes() + payload

    def decode(self, data: bytes) -> np.ndarray:
        """Decodes palette and index map; :class:`BitstreamError` on bad data."""
        reader = ByteReader(data, "k-means")
        if reader.take(1) != b"K":
            raise BitstreamError("not a k-means stream (bad tag)")
        height, width = _read_size(reader)
        code = reader.varint()
        if code >= 512:
            raise BitstreamError("k-means stream has an invalid palette size")
        num_colours, channels = (code & 255) + 1, 3 if code & 256 else 1
        palette = np.frombuffer(reader.take(num_colours * channels), np.uint8)
        palette = palette.reshape(num_colours, channels)
        if num_colours == 1:
            if reader.rest():
                raise BitstreamError("k-means stream has data after a one-colour palette")
            return np.broadcast_to(palette[0], (height, width, channels)).copy()
        head = np.frombuffer(reader.take(2 * num_colours), "<u2").astype(np.int64)
        last = 2**16 - int(head.sum())
        if head.min() < 1 or last < 1:
            raise BitstreamError("k-means stream has an invalid entropy table")
        freqs = np.append(head, last)[None, :]
        ids = np.zeros(height * width, dtype=np.int64)
        ranks = entropy.decode_symbols(reader.rest(), ids, freqs, np.zeros(1, np.int64))
        if ranks.min() < 0 or ranks.max() >= num_colours:
            raise BitstreamError("k-means stream has a rank outside the palette")
        indices = indices_from_ranks(ranks, height, width, num_colours)
        return palette[indices]


# ---------------------------------------------------------------------------- PCA

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
    (:class:`jaxcodec.entropy.coder.HistogramModel`) fitted on the training coefficients.

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
            entropy.HistogramModel.fit(self._quantise(coefficients[:, :k], step))
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
                entropy.HistogramModel.from_arrays(
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


# ---------------------------------------------------------------------------- registry


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
