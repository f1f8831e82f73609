"""JAX samplers for PyMC distributions that PyTensor's JAX backend cannot draw from.

PyTensor dispatches each ``RandomVariable`` to a JAX sampler (``jax_sample_fn``, a
``functools.singledispatch``); PyMC's own ``TruncatedNormalRV`` has none, so the prior of
any model with a ``TruncatedNormal`` (``lotka_volterra.yaml``'s rates) could not be drawn
in JAX. Importing this module registers one, with ``jax.random.truncated_normal`` on the
standardised bounds. Other distributions without one fall back to PyMC's own sampling
(:mod:`jaxpm.predictive.vectorised`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from pymc.distributions.continuous import TruncatedNormalRV
from pytensor.link.jax.dispatch.random import jax_sample_fn


@jax_sample_fn.register(TruncatedNormalRV)
def truncated_normal_sampler(op, node):
    """``mu + sigma * z`` with ``z`` a standard normal truncated to ``[(lower - mu) / sigma, (upper - mu) / sigma]``."""

    def sample_fn(rng_key, size, dtype, mu, sigma, lower, upper):
        if size is None:
            size = jnp.broadcast_shapes(*(jnp.shape(p) for p in (mu, sigma, lower, upper)))
        z = jax.random.truncated_normal(rng_key, (lower - mu) / sigma, (upper - mu) / sigma, size, dtype)
        return (mu + sigma * z).astype(dtype)

    return sample_fn


__all__ = ["truncated_normal_sampler"]
