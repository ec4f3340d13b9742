"""Device-resident training data: the images live on the accelerator, batches are drawn there.

The host pipeline (:func:`jaxcodec.data.batches`) decodes, crops and shrinks every patch on
the CPU and copies each batch to the devices; on a GPU that took 88-93% of the wall time of
a photo model's run. Here the training images are decoded once, stored as one uint8 array
``(N, H, W, C)`` replicated on every device (each image padded to the largest height and
width by mirroring, its true size kept beside it), and a jitted function draws a batch from
a ``jax.random`` key and the step number:

* **order**: epochs of a permutation of the N images drawn from ``(key, epoch)``; example
  ``b`` of step ``s`` is position ``s·B + b`` of that sequence, so every image is seen
  once per epoch and a resumed run draws exactly the batches an uninterrupted one would;
* **crop**: a uniformly placed ``crop × crop`` patch, as :func:`jaxcodec.crops.random_crop`
  (images smaller than the crop are first mirror-padded, centred, on the host);
* **down-scaling** (``downscale > 1``): the patch shows a square of ``side = round(s·crop)``
  pixels, ``s`` log-uniform in ``[1, downscale]`` and capped by the image's shorter side,
  shrunk to ``crop`` with the same antialiased Lanczos-3 filter Pillow uses in
  :func:`jaxcodec.crops.random_scaled_crop` (``jax.image.scale_and_translate``; values
  rounded to 8 bits as Pillow's are; within ±1 of Pillow inside the patch, the edges see
  the square's true neighbours where Pillow renormalises its filter);
* **flip** (``flip``): a horizontal flip with probability ½ (the host pipeline has none).

The batch comes out float32 in [0, 1], sharded over the ``"data"`` mesh axis like a host
batch, so a training step needs no host work and no transfer. The same code runs on CPU.

:func:`train_batches` is the engine's switch (``config.data.device_resident``): it returns
None, after a one-line message, whenever the host pipeline must be used instead (several
processes, a task with a ``host_transform`` hook, a set that does not fit in device memory).
"""

from __future__ import annotations

import math
import os
from typing import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxcodec import data as data_lib
from jaxcodec import image as imageio
from jaxcodec.train import sharding
from jaxcodec.errors import DatasetError

#: Share of a device's free memory the images may take (the rest is the model's).
DEVICE_FRACTION = 0.5
#: Stream constant folded into the seed's key: the data's randomness, apart from the model's.
_DATA_STREAM = 0x6461
_LEVELS = np.arange(256, dtype=np.float32) / np.float32(255.0)


def _centre_pad(image: np.ndarray, size: int) -> np.ndarray:
    """:func:`jaxcodec.crops.random_crop`'s padding of an image smaller than ``size``."""
    h, w = image.shape[:2]
    ph, pw = max(size - h, 0), max(size - w, 0)
    if not ph and not pw:
        return image
    mode = "reflect" if min(h, w) > 1 else "edge"
    return np.pad(image, [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)], mode=mode)


def stack_images(images: Sequence[np.ndarray], crop: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(array (N, H, W, C) uint8, sizes (N, 2) int32)`` of images of any sizes.

    Each image is converted to 8 bits (:func:`jaxcodec.image.to_uint8`), padded to
    ``crop`` if smaller, then mirrored out to the largest height and width. Without ``crop``
    all images must have one shape (DatasetError otherwise).
    """
    if not images:
        raise DatasetError("no training images")
    images = [imageio.to_uint8(np.asarray(im)) for im in images]
    channels = {im.shape[-1] for im in images}
    if len(channels) > 1:
        raise DatasetError(f"training images mix {sorted(channels)} channels")
    if crop is None:
        if len({im.shape for im in images}) > 1:
            raise DatasetError("training images of different shapes cannot be batched; set crop or image_size")
    else:
        images = [_centre_pad(im, crop) for im in images]
    sizes = np.array([im.shape[:2] for im in images], np.int32)
    height, width = sizes.max(axis=0)
    out = np.empty((len(images), height, width, images[0].shape[-1]), np.uint8)
    for i, im in enumerate(images):
        h, w = im.shape[:2]
        out[i] = np.pad(im, [(0, height - h), (0, width - w), (0, 0)], mode="symmetric") if (h, w) != (height, width) else im
    return out, sizes


def device_budget(devices: Sequence[jax.Device]) -> int:
    """Bytes the images may take on each of ``devices``: :data:`DEVICE_FRACTION` of the
    smallest free memory (``memory_stats``), or of the host's RAM where a device reports
    none (the CPU)."""
    free = []
    for device in devices:
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        if stats and stats.get("bytes_limit"):
            free.append(int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)))
        else:
            free.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return int(DEVICE_FRACTION * min(free))


def data_key(seed: int) -> jax.Array:
    """The key of the data stream of a run with ``seed``."""
    return jax.random.fold_in(jax.random.key(int(seed)), _DATA_STREAM)


class DeviceData:
    """Training images on the devices of ``mesh`` and the jitted sampler of their batches.

    ``batch(step)`` is the float32 ``(batch_size, crop, crop, C)`` batch of ``step``, sharded
    over the mesh's ``"data"`` axis; it depends only on ``(seed, step)``.
    """

    def __init__(self, images: np.ndarray, sizes: np.ndarray, *, batch_size: int, crop: int | None,
                 downscale: float = 1.0, flip: bool = False, seed: int = 0, mesh: Mesh | None = None):
        self.count = int(images.shape[0])
        if self.count < batch_size:
            raise DatasetError(f"{self.count} training images are fewer than batch_size {batch_size}")
        self.batch_size, self.crop, self.flip = int(batch_size), crop, bool(flip)
        self.downscale = data_lib.check_downscale(downscale, crop)
        self.mesh = sharding.data_mesh() if mesh is None else mesh
        self.nbytes = int(images.nbytes)
        rep = sharding.replicated(self.mesh)
        self.images = jax.device_put(images, rep)
        self.sizes = jax.device_put(sizes.astype(np.int32), rep)
        self.key = data_key(seed)
        self._sample = jax.jit(self._draw, in_shardings=(rep, rep, rep, rep),
                               out_shardings=sharding.batch_sharding(self.mesh))

    def batch(self, step: int) -> jax.Array:
        """The batch of ``step`` (dispatched asynchronously)."""
        return self._sample(self.images, self.sizes, self.key, np.int32(step))

    def batches(self, start_step: int = 0) -> Iterator[jax.Array]:
        """The batches of steps ``start_step, start_step + 1, ...``."""
        step = int(start_step)
        while True:
            yield self.batch(step)
            step += 1

    # -- the jitted sampler ---------------------------------------------------------

    def indices(self, key: jax.Array, step: jax.Array) -> jax.Array:
        """Image indices of the batch of ``step``: epochs of permutations (see the module)."""
        n, b = self.count, self.batch_size
        pos = step.astype(jnp.uint32) * b + jnp.arange(b, dtype=jnp.uint32)
        epoch, offset = pos // n, (pos % n).astype(jnp.int32)
        first = epoch[0]
        order_key = jax.random.fold_in(key, 0)
        perm0 = jax.random.permutation(jax.random.fold_in(order_key, first), n)
        perm1 = jax.random.permutation(jax.random.fold_in(order_key, first + 1), n)
        return jnp.where(epoch == first, perm0[offset], perm1[offset])

    def _draw(self, images: jax.Array, sizes: jax.Array, key: jax.Array, step: jax.Array) -> jax.Array:
        index = self.indices(key, step)
        keys = jax.random.split(jax.random.fold_in(jax.random.fold_in(key, 1), step), self.batch_size)
        patches = jax.vmap(self._patch, in_axes=(None, 0, 0, 0))(images, index, sizes[index], keys)
        # the host's uint8 / 255 exactly (XLA would turn a division into a product)
        return jnp.asarray(_LEVELS)[patches.astype(jnp.int32)]

    def _patch(self, images: jax.Array, index: jax.Array, size: jax.Array, key: jax.Array) -> jax.Array:
        image = images[index]
        if self.crop is None:
            patch = image.astype(jnp.float32)
        else:
            patch = self._crop(image, size, key)
        if self.flip:
            patch = jnp.where(jax.random.bernoulli(jax.random.fold_in(key, 3)), patch[:, ::-1], patch)
        return patch

    def _crop(self, image: jax.Array, size: jax.Array, key: jax.Array) -> jax.Array:
        crop, channels = self.crop, image.shape[-1]
        h, w = size[0], size[1]
        k_scale, k_top, k_left = jax.random.split(key, 3)
        if self.downscale <= 1.0:
            side = jnp.int32(crop)
        else:
            scale = jnp.exp(jax.random.uniform(k_scale) * math.log(self.downscale))
            side = jnp.maximum(crop, jnp.minimum(jnp.round(crop * scale).astype(jnp.int32), jnp.minimum(h, w)))
        top = jax.random.randint(k_top, (), 0, h - side + 1)
        left = jax.random.randint(k_left, (), 0, w - side + 1)
        if self.downscale <= 1.0:
            return jax.lax.dynamic_slice(image, (top, left, 0), (crop, crop, channels)).astype(jnp.float32)
        return scaled_patch(image, top, left, side, crop=crop, max_scale=self.downscale)


def scaled_patch(image: jax.Array, top: jax.Array, left: jax.Array, side: jax.Array, *, crop: int,
                 max_scale: float) -> jax.Array:
    """The ``side × side`` square of ``image`` at ``(top, left)`` shrunk to ``crop × crop`` by
    antialiased Lanczos-3, rounded to 8-bit levels (float32); ``side`` (traced) is at most
    ``round(crop · max_scale)``. A fixed window around the square, the square's largest side
    plus the filter's reach, is cut first, so the shapes stay static."""
    height, width, channels = image.shape
    margin = 3 * math.ceil(max_scale)
    span = round(crop * max_scale) + 2 * margin
    wh, ww = min(span, height), min(span, width)
    y0 = jnp.clip(top - margin, 0, height - wh)
    x0 = jnp.clip(left - margin, 0, width - ww)
    window = jax.lax.dynamic_slice(image, (y0, x0, 0), (wh, ww, channels)).astype(jnp.float32)
    ratio = crop / jnp.asarray(side, jnp.float32)
    shift = -jnp.stack([top - y0, left - x0]).astype(jnp.float32) * ratio
    patch = jax.image.scale_and_translate(window, (crop, crop, channels), (0, 1), jnp.stack([ratio, ratio]),
                                          shift, method="lanczos3", antialias=True)
    return jnp.clip(jnp.round(patch), 0.0, 255.0)


def from_spec(spec: str, split: str = "train", *, batch_size: int, crop: int | None, downscale: float = 1.0,
              flip: bool = False, seed: int = 0, image_size: int | None = None, mesh: Mesh | None = None,
              max_bytes: int | None = None) -> DeviceData | str:
    """The images of ``spec``'s ``split`` on the devices, or the reason (a string) they stay
    on the host: more bytes than ``max_bytes`` (default :func:`device_budget`)."""
    mesh = sharding.data_mesh() if mesh is None else mesh
    dataset = data_lib.open_dataset(spec, split, image_size=image_size)
    images, sizes = stack_images([dataset.native(i) for i in range(len(dataset))], crop)
    budget = device_budget(list(mesh.local_devices)) if max_bytes is None else int(max_bytes)
    if images.nbytes > budget:
        return (f"its {len(images)} images take {images.nbytes / 2**20:.0f} MiB as uint8, more than the "
                f"{budget / 2**20:.0f} MiB allowed on each device")
    return DeviceData(images, sizes, batch_size=batch_size, crop=crop, downscale=downscale, flip=flip,
                      seed=seed, mesh=mesh)


def train_batches(config, mesh: Mesh, start_step: int, task=None) -> Iterator[jax.Array] | None:
    """The engine's training batches from device-resident images when
    ``config.data.device_resident`` is set and possible, else None (the host pipeline).

    Reads ``data.train``, ``data.train_split``, ``data.crop``, ``data.downscale``,
    ``data.image_size``, ``data.flip``, ``batch_size`` and ``seed``.
    """
    section = config.get("data") or {}
    if not section.get("device_resident", False):
        return None
    reason = None
    if jax.process_count() > 1:
        reason = "several processes each read their own part of the data"
    elif getattr(task, "host_transform", None) is not None:
        reason = "the model transforms its batches on the host"
    if reason is None:
        result = from_spec(section["train"], section.get("train_split", "train"),
                           batch_size=int(config.batch_size), crop=section.get("crop"),
                           downscale=section.get("downscale", 1.0), flip=section.get("flip", False),
                           seed=int(config.get("seed", 0)), image_size=section.get("image_size"), mesh=mesh)
        if isinstance(result, DeviceData):
            if jax.process_index() == 0:
                print(f"training data on the devices: {result.count} images, "
                      f"{result.nbytes / 2**20:.0f} MiB", flush=True)
            return result.batches(start_step)
        reason = result
    if jax.process_index() == 0:
        print(f"device-resident data off: {reason}; using the host pipeline", flush=True)
    return None
