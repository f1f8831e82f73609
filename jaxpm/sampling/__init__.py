"""Sampling: every sampler behind one interface, and one driver that runs them.

- :mod:`~jaxpm.sampling.base`: the :class:`Sampler` interface, :class:`Job` and :class:`Draws`;
- :mod:`~jaxpm.sampling.registry`: the samplers by name;
- :mod:`~jaxpm.sampling.nutpie`, :mod:`~jaxpm.sampling.pymc_nuts`, :mod:`~jaxpm.sampling.jax_nuts`
  (numpyro, blackjax), :mod:`~jaxpm.sampling.fits` (advi, map): the samplers;
- :mod:`~jaxpm.sampling.settings`: the ``sample:`` section;
- :mod:`~jaxpm.sampling.starts`: where chains start (``start: mode``, ``initvals``);
- :mod:`~jaxpm.sampling.driver`: :func:`sample_and_save`, the one driver;
- :mod:`~jaxpm.sampling.diagnostics` and :mod:`~jaxpm.sampling.files`: what a run's draws
  say, and the files it keeps.
"""

from jaxpm.sampling.base import Draws, Job, Sampler
from jaxpm.sampling.driver import sample_and_save
from jaxpm.sampling.registry import FITS, MCMC, SAMPLERS
from jaxpm.sampling.settings import Sample

__all__ = ["Sampler", "Job", "Draws", "SAMPLERS", "MCMC", "FITS", "Sample", "sample_and_save"]
