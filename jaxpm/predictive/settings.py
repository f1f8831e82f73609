"""The ``predictive:`` section: which predictive checks a sampled run computes.

Every part is on by default; each costs about one forward pass of the model per draw.
``draws`` keeps at least one draw per chain.
Switch parts off for large models::

    predictive:
      prior: true           # prior and prior_predictive groups, prior_ppc.png
      posterior: true       # posterior_predictive group, ppc.png
      log_likelihood: true  # log_likelihood group (pointwise), loo in run.json
      draws: null           # at most this many posterior draws, thinned evenly in each chain (null: all)
      prior_draws: null     # draws from the prior (null: as many as the posterior draws used, 20 to 500)

>>> default, seven = Predictive(), Predictive(prior_draws=7)
>>> default.resolved_prior_draws(4000), default.resolved_prior_draws(1), seven.resolved_prior_draws(4000)
(500, 20, 7)
"""

from __future__ import annotations

from pydantic import Field

from jaxpm.section import Int, Section

PRIOR_DRAWS = (20, 500)
"""``prior_draws: null``: as many prior draws as posterior draws, within these bounds (500 is PyMC's default)."""


class Predictive(Section):
    """``predictive:``: prior and posterior predictive draws and the pointwise log-likelihood
    of a sampled run (see the module docstring)."""

    prior: bool = True
    posterior: bool = True
    log_likelihood: bool = True
    draws: Int | None = Field(None, gt=0)
    prior_draws: Int | None = Field(None, gt=0)

    @property
    def any(self) -> bool:
        """Whether anything is computed at all."""
        return self.prior or self.posterior or self.log_likelihood

    def resolved_prior_draws(self, posterior_draws: int) -> int:
        """How many prior draws: ``prior_draws``, or as many as ``posterior_draws`` within :data:`PRIOR_DRAWS`."""
        if self.prior_draws is not None:
            return self.prior_draws
        low, high = PRIOR_DRAWS
        return int(min(high, max(low, posterior_draws)))


__all__ = ["Predictive", "PRIOR_DRAWS"]
