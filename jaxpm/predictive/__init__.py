"""Predictive checks and model comparison: does the fitted model reproduce the data, and
which model predicts it better?

- :mod:`~jaxpm.predictive.settings`: the ``predictive:`` section;
- :mod:`~jaxpm.predictive.vectorised`: prior and posterior predictive draws and the
  pointwise log-likelihood, in one jitted JAX program over all draws;
- :mod:`~jaxpm.predictive.jax_samplers`: JAX samplers PyTensor lacks (``TruncatedNormal``);
- :mod:`~jaxpm.predictive.elpd`: PSIS-LOO (``az.loo``) and held-out ELPD, as ArviZ's
  ``ELPDData``, and the ``loo`` block of run.json.
"""

from jaxpm.predictive.elpd import heldout_elpd, loo, loo_info
from jaxpm.predictive.settings import Predictive
from jaxpm.predictive.vectorised import Predicted, predictive_groups, thin

__all__ = ["Predictive", "Predicted", "predictive_groups", "thin", "loo", "loo_info", "heldout_elpd"]
