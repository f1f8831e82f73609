"""The files every sampled run keeps: ``posterior.nc``, ``summary.csv``, trace and posterior plots.

Experiments add their own (``fit.png``, ``digits.png``) through
:meth:`~jaxpm.experiments.base.Experiment.after_sampling`.
"""

from __future__ import annotations

import warnings

import numpy as np

from jaxpm import plots, rundir
from jaxpm.errors import first_line

MAX_SUMMARY_COMPONENTS = 1000
"""Variables with more scalars than this are left out of ``summary.csv`` (CNN weights)."""

KEPT_GROUPS = ("posterior", "sample_stats", "observed_data", "constant_data", "prior", "prior_predictive",
               "posterior_predictive", "log_likelihood", "heldout_observed_data", "heldout_log_likelihood",
               "heldout_predictive")
"""The InferenceData groups ``posterior.nc`` keeps, where a run has them."""


def tidy(idata, model):
    """Drop what the samplers add beyond the model's variables: nutpie keeps the
    transformed values (``noise_log__``) whatever ``var_names`` says."""
    import arviz as az

    wanted = {v.name for v in (*model.free_RVs, *model.deterministics)}
    groups = {}
    for g in idata.groups():
        ds = idata[g]
        if g in ("posterior", "warmup_posterior"):
            ds = ds[[n for n in ds.data_vars if n in wanted]]
        groups[g] = ds
    return az.InferenceData(**groups)


def kept(idata):
    """The part of ``idata`` that ``posterior.nc`` keeps (:data:`KEPT_GROUPS`)."""
    import arviz as az

    return az.InferenceData(**{g: idata[g] for g in KEPT_GROUPS if g in idata.groups()})


def n_draws(posterior) -> int:
    return int(posterior.sizes.get("chain", 0) * posterior.sizes.get("draw", 0))


def summary(idata, sampler: str, mcmc: bool):
    """``az.summary`` of the variables with at most :data:`MAX_SUMMARY_COMPONENTS` scalars
    (with r_hat and ESS for MCMC), or, for a single point (``map``), its values in a column
    named after the sampler. Returns ``(table, skipped variable names)``."""
    import arviz as az
    import pandas as pd

    post = idata.posterior
    names, skipped = [], []
    for name, var in post.data_vars.items():
        size = int(np.prod([n for d, n in var.sizes.items() if d not in ("chain", "draw")], dtype=int))
        (names if size <= MAX_SUMMARY_COMPONENTS else skipped).append(name)
    if n_draws(post) == 1:
        rows = {}
        for name in names:
            values = np.asarray(post[name].values)[0, 0]
            if values.ndim == 0:
                rows[name] = float(values)
            else:
                for idx in np.ndindex(values.shape):
                    rows[f"{name}[{', '.join(map(str, idx))}]"] = float(values[idx])
        return pd.DataFrame({sampler: pd.Series(rows, dtype=float)}), skipped
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kind = "all" if mcmc else "stats"
        table = az.summary(idata, var_names=names or None, kind=kind, round_to="none") if names else pd.DataFrame()
    return table, skipped


def figures(idata, loss, save) -> list[str]:
    """``trace.png`` and ``posterior.png`` (not for a single point), ``loss.png`` for a fit
    with a loss history. A figure that cannot be drawn is reported in the returned list,
    never fails the run."""
    problems: list[str] = []

    def attempt(name: str, draw):
        try:
            save(name, lambda p: rundir.write_with(p, draw))
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001
            problems.append(f"{name} not written: {type(e).__name__}: {first_line(e)}")

    view, _ = plots.plot_dataset(idata.posterior)
    if n_draws(idata.posterior) > 1:  # one point: nothing to trace or smooth
        attempt("trace.png", lambda t: plots.trace(view, t))
        attempt("posterior.png", lambda t: plots.posterior(view, t))
    if loss is not None and len(loss):
        attempt("loss.png", lambda t: plots.loss(loss, t))
    return problems


__all__ = ["tidy", "kept", "summary", "figures", "n_draws", "MAX_SUMMARY_COMPONENTS", "KEPT_GROUPS"]
