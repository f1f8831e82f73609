"""The ``sbc:`` section: how ``jaxpm sbc`` simulates and fits (``jaxpm run`` ignores it).

Each simulation's fit is shorter than a full run: ``chains`` x (``tune`` + ``draws``)
replace the ``sample:`` section's counts (the sampler, mass matrix and start stay the
config's, ``auto`` resolved once). The posterior is thinned evenly within each chain to
``thinned`` draws (fewer when the fit has fewer, e.g. ``map``'s one); a rank is the number
of thinned draws below the true value, so it runs from 0 to L, the thinned draws kept.

    sbc:
      sims: 100          # simulations (--sims)
      chains: 2
      tune: 300
      draws: 250         # per chain: 2 x 250 = 500 draws, thinned to 100
      thinned: 100       # L, the draws each rank is counted among
      level: 0.05        # family-wise level of the uniformity tests (Holm over the quantities)
      max_failed: 0.1    # more than this share of failed fits: not calibrated

>>> s = Sbc.model_validate({"sims": 20})
>>> s.sims, s.draws, s.thinned, s.level
(20, 250, 100, 0.05)
"""

from __future__ import annotations

from pydantic import Field

from jaxpm.section import Float, Int, Section


class Sbc(Section):
    """``sbc:``: see the module."""

    sims: Int = Field(100, gt=0)
    chains: Int = Field(2, gt=0)
    tune: Int = Field(300, ge=0)
    draws: Int = Field(250, gt=0)
    thinned: Int = Field(100, gt=0)
    level: Float = Field(0.05, gt=0, lt=1)
    max_failed: Float = Field(0.1, ge=0, le=1)


__all__ = ["Sbc"]
