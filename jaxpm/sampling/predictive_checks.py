"""What a sampled run adds for predictive checks and model comparison.

:func:`add_groups` runs before ``posterior.nc`` is written: the ``predictive:`` section
says which groups to compute (:func:`jaxpm.predictive.predictive_groups`, on the JAX
backend, on the model the sampler ran on); the experiment may add its held-out data
(:meth:`~jaxpm.experiments.base.Experiment.heldout`); PSIS-LOO gives run.json's ``loo``,
with a warning when any observation's Pareto k is above 0.7. :func:`figures` draws
``ppc.png`` and ``prior_ppc.png`` (the experiment's own figure, or ArviZ's ``plot_ppc``).
Nothing here fails a run: a part that cannot be computed or drawn is a warning.

Groups in ``posterior.nc``: ``observed_data``, ``posterior_predictive``,
``log_likelihood``, ``prior``, ``prior_predictive``; with held-out data
``heldout_observed_data``, ``heldout_log_likelihood`` and ``heldout_predictive``
(:data:`HELDOUT_GROUPS`).
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np

from jaxpm import plots
from jaxpm.errors import first_line
from jaxpm.experiments.base import Fitted, HeldOut
from jaxpm.predictive import heldout_elpd, loo, loo_info, predictive_groups, thin
from jaxpm.predictive.elpd import PARETO_K
from jaxpm.rundir import write_with
from jaxpm.sampling.files import MAX_SUMMARY_COMPONENTS

HELDOUT_GROUPS = ("heldout_observed_data", "heldout_log_likelihood", "heldout_predictive")
"""The groups of an experiment's held-out data (:class:`~jaxpm.experiments.base.HeldOut`)."""

FIGURES = {"posterior_predictive": "ppc.png", "prior_predictive": "prior_ppc.png"}
"""The predictive check figure of each group."""


def add_groups(prep, fitted: Fitted, seed: int, progress) -> list[str]:
    """Add the predictive groups to ``fitted.idata``, the ``predictive`` and ``loo`` blocks
    to ``fitted.info``; return warnings (one line each)."""
    settings = prep.spec.predictive
    idata = fitted.idata
    info: dict[str, Any] = {"groups": [], "backends": {}, "seconds": None}
    fitted.info["predictive"] = info
    fitted.info["loo"] = None
    if not settings.any:
        info["groups"] = _groups(idata)
        return []
    warnings: list[str] = []
    began = time.perf_counter()
    model = prep.inference_model()
    posterior = thin(idata.posterior, settings.draws)
    n_draws = int(posterior.sizes["chain"] * posterior.sizes["draw"])
    prior_draws = settings.resolved_prior_draws(n_draws) if settings.prior else 0
    info.update(draws=n_draws, prior_draws=prior_draws)
    _ensure_observed_data(idata, model)
    what = " and ".join(w for w, on in (("posterior predictive", settings.posterior),
                                        ("log-likelihood", settings.log_likelihood),
                                        (f"{prior_draws} prior draws", prior_draws)) if on)
    try:
        with progress.step(f"{prep.spec.name}: {what} at {n_draws} draws (JAX)"):
            done = predictive_groups(model, posterior, seed=seed, posterior_predictive=settings.posterior,
                                     log_likelihood=settings.log_likelihood, prior_draws=prior_draws)
        _leave_out_large_priors(done.groups, info)
        idata.add_groups(done.groups)
        info.update(backends=done.backends, job_seconds=done.seconds, batch=done.batch)
        warnings += [f"predictive: {note}" for note in done.notes]
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - a run keeps its draws whatever happens here
        warnings.append(f"predictive groups not computed: {type(e).__name__}: {first_line(e)}")
    if settings.posterior or settings.log_likelihood:
        warnings += _heldout(prep, fitted, posterior, settings, info)
    info["groups"] = _groups(idata)
    if "log_likelihood" in idata.groups():
        warnings += _loo(fitted, progress)
    info["seconds"] = time.perf_counter() - began
    return warnings


def figures(prep, fitted: Fitted) -> list[str]:
    """``ppc.png`` and ``prior_ppc.png`` for the predictive groups ``fitted.idata`` has:
    the experiment's figure, else ArviZ's ``plot_ppc``. Returns what could not be drawn."""
    problems: list[str] = []
    for group, name in FIGURES.items():
        if group not in fitted.idata.groups():
            continue
        try:
            draw = prep.experiment.predictive_figure(fitted, group) or functools.partial(plots.ppc, fitted.idata, group)
            fitted.save(name, lambda p, draw=draw: write_with(p, draw))
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - a figure that cannot be drawn is a warning
            problems.append(f"{name} not written: {type(e).__name__}: {first_line(e)}")
    return problems


def _groups(idata) -> list[str]:
    """The groups of ``idata`` that predictive checks and comparisons read."""
    return [g for g in ("observed_data", "posterior_predictive", "log_likelihood", "prior", "prior_predictive",
                        *HELDOUT_GROUPS) if g in idata.groups()]


def _leave_out_large_priors(groups: dict, info: dict) -> None:
    """The ``prior`` group keeps the variables of at most :data:`~jaxpm.sampling.files.MAX_SUMMARY_COMPONENTS`
    scalars per draw: a CNN's 824k weights drawn from Normal(0, 1) say nothing worth 6.6 MB
    a draw (their prior predictive, the labels, is kept). ``prior_left_out`` names the rest."""
    prior = groups.get("prior")
    if prior is None:
        return
    large = [name for name, var in prior.data_vars.items()
             if np.prod([n for d, n in var.sizes.items() if d not in ("chain", "draw")]) > MAX_SUMMARY_COMPONENTS]
    if large:
        groups["prior"] = prior.drop_vars(large)
        info["prior_left_out"] = large


def _ensure_observed_data(idata, model) -> None:
    """Every observed variable in ``observed_data`` (samplers normally put it there)."""
    if "observed_data" in idata.groups():
        return
    import arviz as az
    from pymc.backends.arviz import find_observations

    observed = find_observations(model)
    if observed:
        idata.add_groups({"observed_data": az.dict_to_dataset(observed, default_dims=[])})


def _heldout(prep, fitted: Fitted, posterior, settings, info: dict) -> list[str]:
    """The experiment's held-out data and predictive, into the :data:`HELDOUT_GROUPS`."""
    import arviz as az

    try:
        held: HeldOut | None = prep.experiment.heldout(fitted, posterior)
        if held is None:
            return []
        coords = {"chain": posterior["chain"].values, "draw": posterior["draw"].values}
        dims = {held.name: [f"{held.name}_dim_{i}" for i in range(held.observed.ndim)]}
        groups = {"heldout_observed_data": az.dict_to_dataset({held.name: held.observed}, default_dims=[],
                                                              dims=dims)}
        if settings.log_likelihood:
            groups["heldout_log_likelihood"] = az.dict_to_dataset({held.name: held.log_likelihood}, coords=coords,
                                                                  dims=dims)
        if settings.posterior and held.predictive:
            groups["heldout_predictive"] = az.dict_to_dataset(held.predictive, coords=coords)
        fitted.idata.add_groups(groups)
        if settings.log_likelihood:
            e = heldout_elpd(held.log_likelihood)
            info["heldout"] = {"elpd": float(e["elpd_loo"]), "se": float(e["se"]),
                               "n_observations": int(e["n_data_points"]), "n_draws": int(e["n_samples"])}
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001
        return [f"held-out predictive not computed: {type(e).__name__}: {first_line(e)}"]
    return []


def _loo(fitted: Fitted, progress) -> list[str]:
    """run.json's ``loo`` (or why there is none), and a warning for Pareto k above 0.7."""
    try:
        fitted.info["loo"] = info = loo_info(loo(fitted.idata))
    except ValueError as e:  # one draw (map): no PSIS-LOO
        fitted.info["predictive"]["loo_skipped"] = first_line(e)
        return []
    except Exception as e:  # noqa: BLE001
        return [f"loo not computed: {type(e).__name__}: {first_line(e)}"]
    bad = info["pareto_k_over_0.7"]
    progress.print(f"PSIS-LOO: elpd_loo {info['elpd_loo']:.2f} (se {info['se']:.2f}), p_loo {info['p_loo']:.2f}, "
                   f"{bad} of {info['n_observations']} observations with Pareto k > {PARETO_K}", highlight=False)
    if not bad:
        return []
    line = (f"PSIS-LOO: {bad} of {info['n_observations']} observations have Pareto k > {PARETO_K}, so elpd_loo "
            "is unreliable there (a misfit to those points, or too few draws)")
    progress.print(f"warning: {line}", markup=False, highlight=False)
    return [line]


__all__ = ["add_groups", "figures", "HELDOUT_GROUPS", "FIGURES"]
