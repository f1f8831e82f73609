"""The samplers, by name: what ``sample.sampler`` may say.

Adding a sampler is one module with a :class:`~jaxpm.sampling.base.Sampler` subclass and
one entry here; the spec's allowed names and mass matrices, ``jaxpm list`` and ``jaxpm
bench --sample`` read :data:`SAMPLERS`.
"""

from __future__ import annotations

from jaxpm.sampling.base import Sampler
from jaxpm.sampling.fits import Advi, Map
from jaxpm.sampling.jax_nuts import Blackjax, Numpyro
from jaxpm.sampling.nutpie import Nutpie
from jaxpm.sampling.pymc_nuts import PymcNuts

SAMPLERS: dict[str, Sampler] = {s.name: s for s in (Nutpie(), PymcNuts(), Numpyro(), Blackjax(), Advi(), Map())}
"""Name -> sampler, in the order ``jaxpm list`` shows them."""

MCMC = tuple(name for name, s in SAMPLERS.items() if s.mcmc)
"""The NUTS samplers (chains, tuning, r_hat and ESS apply)."""

FITS = tuple(name for name, s in SAMPLERS.items() if not s.mcmc)
"""The fits (an approximation's draws, or one point)."""

__all__ = ["SAMPLERS", "MCMC", "FITS"]
