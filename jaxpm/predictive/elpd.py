"""How well a fitted model predicts data it did not see: PSIS-LOO and held-out ELPD.

Both come as ArviZ's ``ELPDData`` (what ``az.loo`` returns), so that ``az.compare`` ranks
runs of either kind:

- :func:`loo`: ``az.loo`` of the pointwise log-likelihood, every observed variable
  pooled into one list of observations (a model with one observed variable is exactly
  ``az.loo(idata)``);
- :func:`heldout_elpd`: the log predictive density of data held out of the fit (the
  CNN's held-out digits), computed exactly, ``log mean_s p(y_i | theta_s)`` per
  observation: no importance sampling, so no Pareto k.

:func:`loo_info` is run.json's ``loo`` block.

>>> import arviz as az, xarray as xr
>>> rng = np.random.default_rng(0)
>>> ll = xr.Dataset({"y": (("chain", "draw", "y_dim_0"), rng.normal(-1, 0.1, (2, 100, 5)))})
>>> post = xr.Dataset({"mu": (("chain", "draw"), rng.normal(size=(2, 100)))})
>>> info = loo_info(loo(az.InferenceData(posterior=post, log_likelihood=ll)))
>>> info["n_observations"], info["n_draws"], info["pareto_k_over_0.7"]
(5, 200, 0)
"""

from __future__ import annotations

import warnings

import numpy as np

PARETO_K = 0.7
"""Observations whose Pareto k exceeds this make PSIS-LOO unreliable (Vehtari et al., 2024)."""

POOLED = "pooled"
"""The name of the pooled variable when a model has several observed variables (its dimension: ``observation``)."""


def loo(idata):
    """``az.loo(..., pointwise=True)`` of ``idata``'s ``log_likelihood`` group, every
    observed variable pooled; relative efficiencies from the posterior draws the
    log-likelihood was computed at. Raises ValueError when there is no log-likelihood or
    a single draw (a MAP point: nothing to importance-sample)."""
    import arviz as az

    if "log_likelihood" not in idata.groups():
        raise ValueError("no log_likelihood group")
    ll = idata.log_likelihood
    n_draws = int(ll.sizes.get("chain", 1) * ll.sizes.get("draw", 1))
    if n_draws < 2:
        raise ValueError(f"PSIS-LOO needs posterior draws; this run has {n_draws}")
    ll = pooled(ll)
    groups = {"log_likelihood": ll}
    if "posterior" in idata.groups():
        post = idata.posterior
        groups["posterior"] = post.sel(chain=ll["chain"], draw=ll["draw"]) if "draw" in post.coords else post
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Pareto k warning: callers report it (loo_info)
        return az.loo(az.InferenceData(**groups), pointwise=True)


def pooled(ll):
    """``ll`` as one variable: itself when it has one, else every variable flattened and
    concatenated along a dimension ``observation`` as :data:`POOLED`."""
    import xarray as xr

    if len(ll.data_vars) == 1:
        return ll
    parts = [var.values.reshape(var.sizes["chain"], var.sizes["draw"], -1) for var in ll.data_vars.values()]
    return xr.Dataset({POOLED: (("chain", "draw", "observation"), np.concatenate(parts, axis=2))},
                      coords={"chain": ll["chain"].values, "draw": ll["draw"].values})


def heldout_elpd(log_likelihood: np.ndarray):
    """The exact expected log predictive density of held-out observations as ArviZ's
    ``ELPDData`` (so that ``az.compare`` takes it): ``elpd_i = log mean_s exp(ll[s, i])``.

    ``log_likelihood`` has shape ``(chain, draw, *observations)``. ``p_loo`` is NaN
    (there is no in-sample fit to compare with) and there are no Pareto k values.

    >>> ll = np.log(np.array([[[0.5, 0.25], [0.5, 0.75]]]))  # 1 chain, 2 draws, 2 observations
    >>> e = heldout_elpd(ll)
    >>> round(float(e["elpd_loo"]), 6), round(2 * float(np.log(0.5)), 6), int(e["n_data_points"])
    (-1.386294, -1.386294, 2)
    """
    import xarray as xr
    from arviz import ELPDData
    from scipy.special import logsumexp

    ll = np.asarray(log_likelihood, dtype=float)
    draws = ll.shape[0] * ll.shape[1]
    flat = ll.reshape(draws, -1)
    elpd_i = logsumexp(flat, axis=0) - np.log(draws)
    n = elpd_i.size
    se = float(np.sqrt(n * np.var(elpd_i)))
    pointwise = xr.DataArray(elpd_i, dims=["observation"], name="loo_i")
    return ELPDData(
        data=[float(elpd_i.sum()), se, np.nan, draws, n, False, pointwise, "log", PARETO_K],
        index=["elpd_loo", "se", "p_loo", "n_samples", "n_data_points", "warning", "loo_i", "scale", "good_k"],
    )


def k_over(elpd, threshold: float = PARETO_K) -> int | None:
    """How many observations have a Pareto k above ``threshold`` (None: no Pareto k, held-out)."""
    if "pareto_k" not in elpd:
        return None
    return int(np.sum(np.asarray(elpd["pareto_k"]) > threshold))


def loo_info(elpd) -> dict:
    """run.json's ``loo`` block from :func:`loo`'s result: ``elpd_loo``, its standard
    error ``se``, ``p_loo``, ``pareto_k_over_0.7``, ``n_observations``, ``n_draws``."""
    return {
        "elpd_loo": float(elpd["elpd_loo"]),
        "se": float(elpd["se"]),
        "p_loo": float(elpd["p_loo"]),
        "pareto_k_over_0.7": k_over(elpd),
        "n_observations": int(elpd["n_data_points"]),
        "n_draws": int(elpd["n_samples"]),
        "scale": str(elpd["scale"]),
    }


__all__ = ["loo", "loo_info", "heldout_elpd", "pooled", "k_over", "PARETO_K", "POOLED"]
