"""Recovering a generator's latent for an image by gradient descent ("GAN reversal").

Given a generator ``G`` and an image ``x``, find ``z* = argmin_z L(G(z), x)`` over the
prior's box ``[-1, 1]^d`` (Lipton & Tripathi 2017, "Precise recovery of latent vectors
from generative adversarial networks", arXiv:1702.04782, Sec. 2). GAN-reversal
compression (Tolunay & Ghalayini, CS 229 poster) stores ``z*`` as the compressed image
and tries L1, L2 and SSIM for ``L``; :func:`latent_loss` accepts those, MS-SSIM, and any
weighted mix of them.

The per-image objective and the per-image optimiser step are written once, for one
latent, and batched with :func:`jax.vmap` over restarts and images. The descent is
either one jitted :func:`jax.lax.scan` (:func:`invert_batch`, traceable; the default
on accelerators) or, on CPU, one jitted call per step for the whole batch (see
:func:`default_loop`); either way a batch of images costs one dispatch per step (or
per batch), not one per step and image. That pays where dispatch and small kernels
dominate (accelerators); on a CPU a step of the generator is compute-bound, and
``bench/inversion_speed.py`` measures batched and looped inversion at about the same
images per second on 2 cores.

Keeping ``z`` in the box after each Adam step (Kingma & Ba 2015):

* ``clip="stochastic"``: *stochastic clipping* (Lipton & Tripathi 2017, Sec. 2.1) —
  every component that left ``[-1, 1]`` is redrawn uniformly from ``[-1, 1]``,
  independently per component, the others are left alone. It recovered DCGAN latents
  in 100% of their trials, where plain clipping gets stuck on the box's faces.
* ``clip="project"``: projection onto the box (``clip(z, -1, 1)``).
* ``clip=None``: unconstrained descent.

After the Adam steps, ``refine`` iterations of Levenberg–Marquardt (Levenberg 1944,
"A method for the solution of certain non-linear problems in least squares";
Marquardt 1963, "An algorithm for least-squares estimation of nonlinear parameters")
can polish each latent on the squared pixel error (the ``"l2"`` loss only): with the
residual ``r = G(z) − x`` and its Jacobian ``J`` (``d`` forward-mode products), the
step solves ``(JᵀJ + μ·diag(JᵀJ)) δ = Jᵀr`` and is taken (and ``μ`` divided by 3) only
when it lowers ``‖r‖²``, otherwise ``μ`` grows 10×; with clipping the new point is
projected onto the box. Adam's diagonal preconditioning converges slowly along the
generator's weak directions (the MNIST generator's ``JᵀJ`` has a median condition
number of about 5·10³, ``bench/inversion_recovery.py``), which Gauss–Newton steps
resolve in a few iterations once Adam has reached the right basin.

Each image gets ``restarts`` independent random starts drawn from the prior; the one
with the lowest final loss (after refinement) is kept. With more than one device the
image batch is split over a ``"data"`` mesh axis (:mod:`jaxcodec.train.sharding`); the
generator parameters are replicated, and since every image is optimised
independently no communication is needed.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcodec.eval import metrics
from jaxcodec.train import sharding
from jaxcodec.errors import ConfigError, ImageError

if TYPE_CHECKING:  # the annotation only: optax is imported where an encoder needs it
    import optax

__all__ = [
    "CLIP_MODES",
    "LOSS_TYPES",
    "REFINE_CHUNK",
    "clip_latent",
    "default_loop",
    "image_loss",
    "init_latents",
    "invert",
    "invert_batch",
    "latent_loss",
    "make_inversion_step",
    "make_refine_step",
    "normalize_loss",
    "stochastic_clip",
]

LOSS_TYPES = ("l1", "l2", "ssim", "ms_ssim")
CLIP_MODES = ("stochastic", "project", None)

GeneratorApply = Callable[[Any, jax.Array], jax.Array]
LossSpec = str | Mapping[str, float]


def normalize_loss(loss: LossSpec) -> tuple[tuple[str, float], ...]:
    """Turns ``"l2"`` or ``{"l1": 1.0, "ssim": 0.5}`` into sorted ``((name, weight), ...)``.

    The tuple form is hashable, so it can key a cache of compiled inversions.
    """
    if isinstance(loss, str):
        items = {loss: 1.0}
    else:
        try:
            items = {str(k): float(v) for k, v in dict(loss).items()}
        except (TypeError, ValueError):
            raise ConfigError(f"loss must be one of {LOSS_TYPES} or a dict of weights, got {loss!r}") from None
    unknown = sorted(set(items) - set(LOSS_TYPES))
    if unknown or not items:
        raise ConfigError(f"unknown inversion loss {unknown or loss!r}; use {', '.join(LOSS_TYPES)}")
    return tuple(sorted((k, w) for k, w in items.items() if w != 0.0)) or ((next(iter(items)), 0.0),)


def image_loss(x_hat: jax.Array, x: jax.Array, loss: LossSpec) -> jax.Array:
    """Reconstruction loss of one image ``(H, W, C)`` against another; a scalar.

    ``l1`` = mean |x̂ - x|, ``l2`` = mean (x̂ - x)², ``ssim`` = 1 - SSIM and
    ``ms_ssim`` = 1 - MS-SSIM (Wang et al. 2004; 2003, via :mod:`jaxcodec.eval.metrics`),
    summed with their weights. Pixels are in [0, 1].
    """
    total = jnp.zeros((), jnp.float32)
    for name, weight in normalize_loss(loss):
        if name == "l1":
            term = jnp.mean(jnp.abs(x_hat - x))
        elif name == "l2":
            term = jnp.mean(jnp.square(x_hat - x))
        elif name == "ssim":
            term = 1.0 - metrics.ssim(x_hat[None], x[None], 1.0)[0]
        else:
            term = 1.0 - metrics.ms_ssim(x_hat[None], x[None], 1.0)[0]
        total = total + weight * term
    return total


def latent_loss(
    z: jax.Array, x: jax.Array, g_params: Any, generator_apply: GeneratorApply, loss: LossSpec
) -> jax.Array:
    """The per-image inversion objective ``L(G(z), x)`` for one latent ``z (d,)`` and image ``x``."""
    x_hat = generator_apply(g_params, z[None])[0]
    return image_loss(x_hat, x, loss)


def init_latents(rng: jax.Array, shape: Sequence[int]) -> jax.Array:
    """Starting points drawn from the prior U[-1, 1]."""
    return jax.random.uniform(rng, tuple(shape), jnp.float32, -1.0, 1.0)


def stochastic_clip(z: jax.Array, rng: jax.Array) -> jax.Array:
    """Redraws each component outside [-1, 1] uniformly in [-1, 1] (Lipton & Tripathi 2017, Sec. 2.1).

    Components inside the box are returned unchanged; each out-of-range component gets
    its own independent draw.
    """
    outside = jnp.abs(z) > 1.0
    return jnp.where(outside, init_latents(rng, z.shape), z)


def clip_latent(z: jax.Array, rng: jax.Array, clip: str | None) -> jax.Array:
    """Applies the clipping mode ``"stochastic"``, ``"project"`` or ``None`` to ``z``."""
    if clip == "stochastic":
        return stochastic_clip(z, rng)
    if clip == "project":
        return jnp.clip(z, -1.0, 1.0)
    if clip is None:
        return z
    raise ConfigError(f"unknown clip mode {clip!r}; use 'stochastic', 'project' or None")


def _optimizer(lr: float, steps: int, schedule: str | None) -> optax.GradientTransformation:
    import optax  # the encoder's search; decoding a GAN-reversal stream needs no optimiser

    if schedule == "cosine":
        # Decaying the step to 1% of lr lets Adam settle to the precision of the minimum
        # instead of hovering at a distance of about lr around it.
        return optax.adam(optax.cosine_decay_schedule(lr, max(int(steps), 1), alpha=0.01))
    if schedule is None:
        return optax.adam(lr)
    raise ConfigError(f"unknown learning-rate schedule {schedule!r}; use 'cosine' or None")


def make_inversion_step(
    generator_apply: GeneratorApply,
    *,
    lr: float,
    steps: int,
    loss: LossSpec = "l2",
    clip: str | None = "stochastic",
    schedule: str | None = "cosine",
) -> tuple[Callable, Callable]:
    """The per-latent optimiser, as ``(init, step)`` pure functions of ONE latent.

    ``init(z) -> opt_state``; ``step(g_params, z, opt_state, x, key, t) -> (z, opt_state,
    loss)`` does one Adam step on :func:`latent_loss` at step index ``t`` and clips
    with ``fold_in(key, t)``. :func:`invert_batch` vmaps ``step`` over restarts and
    images; ``bench/inversion_speed.py`` jits it as is for a per-image Python loop.
    """
    loss_spec = normalize_loss(loss)
    if clip not in CLIP_MODES:
        raise ConfigError(f"unknown clip mode {clip!r}; use 'stochastic', 'project' or None")
    tx = _optimizer(lr, steps, schedule)

    def objective(z, x, g_params):
        return latent_loss(z, x, g_params, generator_apply, loss_spec)

    value_and_grad = jax.value_and_grad(objective)

    def step(g_params, z, opt_state, x, key, t):
        value, grad = value_and_grad(z, x, g_params)
        updates, opt_state = tx.update(grad, opt_state, z)
        z = clip_latent(jax.tree.map(jnp.add, z, updates), jax.random.fold_in(key, t), clip)
        return z, opt_state, value

    return tx.init, step


_DAMPING_START, _DAMPING_MIN, _DAMPING_MAX = 1e-2, 1e-9, 1e9
# Latents refined at once: each needs d generator evaluations for its Jacobian, so a
# whole batch of restarts at once can exhaust host memory (2,048 MNIST latents did).
REFINE_CHUNK = 256


def make_refine_step(generator_apply: GeneratorApply, *, clip: str | None = "stochastic") -> Callable:
    """One Levenberg–Marquardt iteration on ``‖G(z) − x‖²`` for ONE latent (see the
    module docstring): ``refine(g_params, z, damping, x) -> (z, damping)``. With a
    clip mode the candidate is projected onto ``[-1, 1]^d`` (a redraw would undo the
    step); a rejected step leaves ``z`` as it was."""
    if clip not in CLIP_MODES:
        raise ConfigError(f"unknown clip mode {clip!r}; use 'stochastic', 'project' or None")

    def residual(z, x, g_params):
        return (generator_apply(g_params, z[None])[0] - x).reshape(-1)

    def refine(g_params, z, damping, x):
        r = residual(z, x, g_params)
        jac = jax.jacfwd(residual)(z, x, g_params)  # (pixels, d)
        a = jac.T @ jac
        scale = jnp.diag(a)
        eye = jnp.eye(z.shape[0], dtype=z.dtype)
        delta = jnp.linalg.solve(a + damping * jnp.diag(scale) + 1e-12 * jnp.max(scale) * eye, jac.T @ r)
        candidate = z - delta
        if clip is not None:
            candidate = jnp.clip(candidate, -1.0, 1.0)
        r_new = residual(candidate, x, g_params)
        better = jnp.all(jnp.isfinite(candidate)) & (jnp.sum(r_new * r_new) < jnp.sum(r * r))
        damping = jnp.clip(jnp.where(better, damping / 3.0, damping * 10.0), _DAMPING_MIN, _DAMPING_MAX)
        return jnp.where(better, candidate, z), damping

    return refine


def _initial_damping(z: jax.Array) -> jax.Array:
    """The Levenberg–Marquardt damping of each latent of ``z (n, d)`` before its first
    iteration."""
    return jnp.full(z.shape[:1], _DAMPING_START, z.dtype)


class _BatchedInversion:
    """The batched descent split in pure pieces shared by both loop drivers.

    ``start(keys, images) -> carry`` draws the starts, ``step(g_params, carry, t) ->
    carry`` does one vmapped step for all ``B * restarts`` latents,
    ``batched_refine(g_params, z, damping, targets) -> (z, damping)`` one
    Levenberg–Marquardt iteration of a chunk of them, and ``finish(g_params, z,
    targets) -> (z, loss)`` keeps the best restart per image. Restarts
    are flattened into the batch: one vmap over ``B * R`` latents compiles about three
    times faster on XLA:CPU than a vmap over restarts nested in one over images.
    """

    def __init__(self, generator_apply, latent_dim, steps, lr, loss, restarts, clip, schedule, refine=0):
        self.generator_apply = generator_apply
        self.latent_dim, self.steps, self.restarts = int(latent_dim), int(steps), int(restarts)
        self.loss_spec = normalize_loss(loss)
        self.refine = int(refine)
        if self.refine < 0:
            raise ConfigError(f"refine must be >= 0 Levenberg-Marquardt iterations, got {refine}")
        if self.refine and not (len(self.loss_spec) == 1 and self.loss_spec[0][0] == "l2" and self.loss_spec[0][1] > 0):
            raise ConfigError(f"refine polishes the squared pixel error, so it needs loss 'l2', got {loss!r}")
        self.init, one_step = make_inversion_step(
            generator_apply, lr=lr, steps=steps, loss=loss, clip=clip, schedule=schedule
        )
        self.batched_step = jax.vmap(one_step, in_axes=(None, 0, 0, 0, 0, None))
        self.batched_refine = jax.vmap(make_refine_step(generator_apply, clip=clip), in_axes=(None, 0, 0, 0))

    def start(self, keys, images):
        r, d = self.restarts, self.latent_dim

        def one_image(key):
            init_key, noise_key = jax.random.split(key)
            z0 = init_latents(init_key, (r, d))
            noise = jax.vmap(lambda i: jax.random.fold_in(noise_key, i))(jnp.arange(r))
            return z0, noise

        z, noise = jax.vmap(one_image)(keys)  # (B, R, d), (B, R) keys
        n = images.shape[0] * r
        z, noise = z.reshape(n, d), noise.reshape(n, *noise.shape[2:])
        targets = jnp.repeat(images, r, axis=0)
        return z, jax.vmap(self.init)(z), targets, noise

    def step(self, g_params, carry, t):
        z, opt_state, targets, noise = carry
        z, opt_state, _ = self.batched_step(g_params, z, opt_state, targets, noise, t)
        return z, opt_state, targets, noise

    def refine_scan(self, g_params, z, targets):
        """``self.refine`` iterations of :attr:`batched_refine` as one ``lax.scan``."""

        def body(carry, _):
            return self.batched_refine(g_params, *carry, targets), None

        (z, _), _ = jax.lax.scan(body, (z, _initial_damping(z)), None, length=self.refine)
        return z

    def finish(self, g_params, z, targets):
        """The best restart of each image: ``(z (B, d), loss (B,))``."""

        def objective(z, x):
            return latent_loss(z, x, g_params, self.generator_apply, self.loss_spec)

        b = targets.shape[0] // self.restarts
        final = jax.vmap(objective)(z, targets).reshape(b, self.restarts)
        best = jnp.argmin(final, axis=1)
        rows = jnp.arange(b)
        return z.reshape(b, self.restarts, self.latent_dim)[rows, best], final[rows, best]

    def scan(self, g_params, images, keys):
        carry = self.start(keys, images)

        def body(carry, t):
            return self.step(g_params, carry, t), None

        (z, _, targets, _), _ = jax.lax.scan(body, carry, jnp.arange(self.steps))
        if self.refine:  # chunk by chunk: bounded memory, see REFINE_CHUNK
            z = jax.lax.map(
                lambda zx: self.refine_scan(g_params, zx[0][None], zx[1][None])[0], (z, targets),
                batch_size=REFINE_CHUNK,
            )
        return self.finish(g_params, z, targets)


def invert_batch(
    generator_apply: GeneratorApply,
    g_params: Any,
    images: jax.Array,
    keys: jax.Array,
    *,
    latent_dim: int,
    steps: int,
    lr: float,
    loss: LossSpec = "l2",
    restarts: int = 1,
    clip: str | None = "stochastic",
    schedule: str | None = "cosine",
    refine: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """Pure, traceable core of :func:`invert`: one key per image, one ``lax.scan``.

    Image ``i`` draws its ``restarts`` starting points from ``split(keys[i])[0]`` and
    its clipping noise from ``split(keys[i])[1]`` folded with the restart and step
    index, so the random draws of an image do not depend on which other images share
    the batch. The results agree only up to floating-point round-off, since a batched
    matrix product may sum in another order; with stochastic clipping a component that
    leaves the box in one run but stays inside in the other is redrawn, so two runs can
    end at different latents of similar loss.
    Returns ``(z (B, d), final loss (B,))`` for the best restart of each image.
    """
    inv = _BatchedInversion(generator_apply, latent_dim, steps, lr, loss, restarts, clip, schedule, refine)
    return inv.scan(g_params, images, keys)


@functools.lru_cache(maxsize=32)
def _compiled(generator_apply, latent_dim, steps, lr, loss_spec, restarts, clip, schedule, refine, mesh, loop):
    """Jitted pieces for one setting: the whole ``scan``, or for the host loop
    ``(start, step, refine_step, finish)``."""
    inv = _BatchedInversion(generator_apply, latent_dim, steps, lr, dict(loss_spec), restarts, clip, schedule, refine)
    if loop == "host":
        return (jax.jit(inv.start), jax.jit(inv.step, donate_argnums=1),
                jax.jit(inv.batched_refine, donate_argnums=(1, 2)), jax.jit(inv.finish))
    if mesh is None:
        return jax.jit(inv.scan)
    data, rep = sharding.batch_sharding(mesh), sharding.replicated(mesh)
    return jax.jit(inv.scan, in_shardings=(rep, data, data), out_shardings=(data, data))


def _per_image_keys(rng: jax.Array, num: int) -> jax.Array:
    """A single key (raw ``(2,)`` or typed ``()``) is split in ``num``; a batch is kept."""
    typed = jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key)
    return jax.random.split(rng, num) if rng.ndim == (0 if typed else 1) else rng


def default_loop() -> str:
    """``"host"`` on CPU, ``"scan"`` elsewhere.

    XLA:CPU runs convolutions inside a ``while`` loop (what ``lax.scan`` lowers to)
    about 7× slower than the same convolutions at the top level of a program
    (measured on the MNIST generator, 256 latents, 2 cores), so on CPU the steps are
    driven from Python, one jitted call per step for the whole batch; the dispatch
    cost is shared by every image of the batch.
    """
    return "host" if jax.default_backend() == "cpu" else "scan"


def invert(
    generator_apply: GeneratorApply,
    g_params: Any,
    images: np.ndarray | jax.Array,
    *,
    latent_dim: int,
    steps: int = 500,
    lr: float = 0.05,
    loss: LossSpec = "l2",
    restarts: int = 1,
    clip: str | None = "stochastic",
    schedule: str | None = "cosine",
    refine: int = 0,
    rng: jax.Array | None = None,
    mesh: jax.sharding.Mesh | None = None,
    loop: str | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Recovers the latents of a batch of images, optimising all of them in parallel.

    Args:
      generator_apply: ``(g_params, z (n, d)) -> images (n, H, W, C)`` in [0, 1]
        (e.g. ``Generator(...).apply``); must be hashable (it keys the compile cache).
      g_params: generator parameters.
      images: ``(B, H, W, C)`` floats in [0, 1].
      latent_dim: ``d``.
      steps, lr, schedule: Adam steps, peak learning rate, ``"cosine"`` decay or None.
      loss: ``"l1"``, ``"l2"``, ``"ssim"``, ``"ms_ssim"`` or a dict of weights.
      restarts: random starts per image; the lowest final loss wins.
      clip: ``"stochastic"``, ``"project"`` or None (see the module docstring).
      refine: Levenberg–Marquardt iterations after the Adam steps (``"l2"`` loss only;
        see the module docstring); 0 = none.
      rng: one key (split into one per image) or a ``(B,)`` batch of keys; default
        ``PRNGKey(0)``.
      mesh: a mesh with a ``"data"`` axis; by default all devices when there are
        several. The batch is padded to a multiple of the mesh size.
      loop: ``"scan"`` (the whole descent is one jitted ``lax.scan``), ``"host"`` (one
        jitted call per step for the whole batch) or None for :func:`default_loop`.
        Both give the same latents.

    Returns:
      ``(z, loss)``: latents ``(B, d)`` and each image's final loss ``(B,)``.
    """
    images = jnp.asarray(images, jnp.float32)
    if images.ndim != 4:
        raise ImageError(f"invert expects an NHWC batch of images, got shape {tuple(images.shape)}")
    if steps < 1 or restarts < 1 or latent_dim < 1:
        raise ConfigError(f"steps, restarts and latent_dim must be >= 1, got {steps}, {restarts}, {latent_dim}")
    loop = default_loop() if loop is None else loop
    if loop not in ("scan", "host"):
        raise ConfigError(f"unknown inversion loop {loop!r}; use 'scan' or 'host'")
    b = images.shape[0]
    keys = _per_image_keys(jax.random.PRNGKey(0) if rng is None else rng, b)
    if keys.shape[0] != b:
        raise ConfigError(f"got {keys.shape[0]} keys for {b} images")
    if mesh is None and jax.device_count() > 1:
        mesh = sharding.data_mesh()
    pad = 0 if mesh is None else (-b) % mesh.size
    if pad:
        images = jnp.concatenate([images, jnp.repeat(images[-1:], pad, axis=0)])
        keys = jnp.concatenate([keys, jnp.repeat(keys[-1:], pad, axis=0)])
    compiled = _compiled(
        generator_apply, int(latent_dim), int(steps), float(lr), normalize_loss(loss),
        int(restarts), clip, schedule, int(refine), mesh, loop,
    )
    if loop == "scan":
        z, final = compiled(g_params, images, keys)
        return z[:b], final[:b]
    start, step, refine_step, finish = compiled
    if mesh is not None:
        images = jax.device_put(images, sharding.batch_sharding(mesh))
        keys = jax.device_put(keys, sharding.batch_sharding(mesh))
        g_params = sharding.replicate(g_params, mesh)
    carry = start(keys, images)
    for t in range(int(steps)):
        carry = step(g_params, carry, jnp.int32(t))
    z, _, targets, _ = carry
    if refine:  # chunk by chunk (bounded memory, see REFINE_CHUNK), one call per iteration
        parts = []
        for i in range(0, z.shape[0], REFINE_CHUNK):
            part, x = z[i : i + REFINE_CHUNK], targets[i : i + REFINE_CHUNK]
            damping = _initial_damping(part)
            for _ in range(int(refine)):
                part, damping = refine_step(g_params, part, damping, x)
            parts.append(part)
        z = jnp.concatenate(parts)
    z, final = finish(g_params, z, targets)
    return z[:b], final[:b]
