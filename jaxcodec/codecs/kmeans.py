"""Colour quantisation as a real codec, the baseline of seed 001 (Tolunay & Ghalayini,
"Generative neural network based image compression", CS229 poster, baseline "KNN K=4"): ``K``
colours found by k-means on the image's own pixels; the stream holds the palette and the
entropy-coded index map.

Streams start with the tag ``K``; sizes are unsigned LEB128 varints
(:mod:`jaxcodec.codecs.baseline_stream`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from jaxcodec.codecs.baseline_stream import read_size, size_header
from jaxcodec.codecs.byte_reader import ByteReader, varint
from jaxcodec.codecs.protocol import check_image
from jaxcodec.entropy import coder as entropy
from jaxcodec.errors import BitstreamError, ConfigError

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
        head = b"K" + size_header(image.shape) + varint(code) + palette.tobytes()
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
        height, width = read_size(reader)
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
