"""The jitted float programs of the mean-scale hyperprior's codec (:mod:`jaxcodec.codecs.hyperprior`).

The codec of :class:`jaxcodec.models.hyperprior.MeanScaleHyperprior` (Minnen, Ballé &
Toderici, "Joint autoregressive and hierarchical priors for learned image compression",
NeurIPS 2018, without the context model) runs the float networks through the programs held
here: the analysis ``g_a`` and its per-quality gain ``m(q)``, the hyper-analysis ``h_a``
(rounded to the integer ``ẑ`` the stream codes, or continuous as the start of the
hyper-latent search) and the synthesis ``g_s`` rounded to 8-bit pixels. The entropy
parameters the decoder codes with never come from these: they are the integer
hyper-synthesis's (:mod:`jaxcodec.entropy.integer_net`).

Every codec of one architecture shares one :class:`Programs` (:func:`programs`; flax
modules compare and hash by their fields, so equal models find the same entry): one model
covers every quality through its gains and refined codecs are copies of the plain one, so
one compiled program per image size serves them all instead of one per codec (each program
is machine code mapped into the process; see :mod:`jaxcodec.runtime.compiled_code`). The encoder-side searches compile their steps once
per function they are given (:mod:`jaxcodec.codecs.refinement`,
:mod:`jaxcodec.codecs.hyper_refinement`), so the functions here are made once per
architecture as well:

* latent refinement's decoder ``g_s((u + μ)·m'(q))`` of the residual ``u = y − μ`` and its
  rate ``Σ −log2 P(u | σ_k)`` under the Gaussian conditional of each element's table scale
  ``σ_k`` (Ballé, Minnen, Singh, Hwang & Johnston, "Variational image compression with a
  scale hyperprior", ICLR 2018, Sec. 3;
  :func:`jaxcodec.entropy.gaussian_conditional.likelihood`);
* the hyper-latent search's code length of ``z`` under the factorized density,
  ``Σ −log2 p(z)``, with the float hyper-synthesis's ``(μ, σ)``.

Their networks run XLA's own convolutions (``conv_impl("direct")``), whose gradient is the
one the searches need, as in the factorized codec's refinement.
"""

from __future__ import annotations

import functools
from typing import Any

import jax.numpy as jnp

from jaxcodec.entropy import gaussian_conditional
from jaxcodec.ops.conv import conv_impl, full_precision_jit

__all__ = ["Programs", "programs"]


class Programs:
    """The jitted float pieces of one architecture, shared by every codec of it. ``model`` is
    a :class:`jaxcodec.models.hyperprior.MeanScaleHyperprior` (its methods are taken from
    the instance)."""

    def __init__(self, model: Any):
        cls = type(model)
        self.analysis = full_precision_jit(functools.partial(model.apply, method=cls.analysis))
        self.transform = full_precision_jit(functools.partial(model.apply, method=cls.transform))
        self.apply_gain = full_precision_jit(functools.partial(model.apply, method=cls.apply_gain))
        self.hyper_latent = full_precision_jit(functools.partial(model.apply, method=cls.hyper_analysis))
        self.hyper_analysis = full_precision_jit(
            lambda p, y: jnp.round(model.apply(p, y, method=cls.hyper_analysis)).astype(jnp.int32)
        )
        synthesis = functools.partial(model.apply, method=cls.synthesis)
        self.synthesis = full_precision_jit(
            lambda p, y, q: jnp.round(jnp.clip(synthesis(p, y, q), 0.0, 1.0) * 255.0).astype(jnp.uint8)
        )

        # Latent refinement's decoder and rate, of the residual ``u = y − μ`` given ``ẑ``;
        # ``fixed`` holds the parameters, μ, each element's table scale and the quality.
        # XLA's own convolutions, as the factorized codec's refinement (its gradient is the
        # one the search needs).
        def refine_synthesis(fixed, u):
            with conv_impl("direct"):
                return synthesis(fixed["params"], u + fixed["mean"], fixed["quality"])

        def refine_bits(fixed, u):
            p = gaussian_conditional.likelihood(u, 0.0, fixed["scale"])
            return -jnp.sum(jnp.log2(p))

        # The hyper-latent search's code length of ``z`` and float entropy parameters
        # (:mod:`jaxcodec.codecs.hyper_refinement`).
        def hyper_parameters(params, z):
            with conv_impl("direct"):
                z_bits = -jnp.sum(jnp.log2(model.apply(params, z, method=cls.hyper_likelihood)))
                mean, scale = model.apply(params, z, method=cls.entropy_parameters)
            return z_bits, mean, scale

        self.refine_synthesis = refine_synthesis
        self.refine_bits = refine_bits
        self.hyper_parameters = hyper_parameters


@functools.lru_cache(maxsize=8)
def programs(model: Any) -> Programs:
    """The codec programs of ``model``'s architecture, shared by every codec of an equal model."""
    return Programs(model)
