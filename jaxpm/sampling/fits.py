"""The fits: mean-field ADVI (``pm.fit``) and the MAP point (``pm.find_MAP``).

For models where NUTS is impractical (the CNN's 824k weights). Both start where the
driver says (the model's initial point, or an experiment's own start such as the CNN's
flax initialisation); ``sample.iterations`` is ADVI's steps or find_MAP's budget of
logp+gradient evaluations.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from jaxpm.sampling.base import Draws, Job, Sampler, n_dim, sampled_names

MAP_LINE_SEARCH_SLACK = 25
"""``find_MAP`` may overrun scipy's ``maxfun`` by one line search; PyMC's hard cap allows that."""

MAX_POSTERIOR_BYTES = 512 * 2**20
"""ADVI keeps at most this many bytes of draws (the CNN: about 80 draws of 824k weights)."""

OPTIMIZERS = ("adagrad_window", "adam", "adamax", "adagrad", "rmsprop", "adadelta", "sgd", "momentum",
              "nesterov_momentum")
"""``sample.optimizer``: PyMC's stochastic optimisers for ADVI (``pm.<name>(learning_rate=...)``)."""


class Advi(Sampler):
    """Mean-field ADVI through ``pm.fit``: ``iterations`` steps of ``optimizer``, then
    ``draws`` draws from the fitted normals (fewer if they would not fit in
    :data:`MAX_POSTERIOR_BYTES`).

    The start (value variable -> array) is where the normals' means begin, and
    ``start_sigma`` their first standard deviation (one number for every scalar, in the
    unconstrained space). PyMC's defaults, the initial point and softplus(0) = 0.69, suit
    small models; a network needs both changed: at all-zero weights its hidden layers get
    no gradient, and noise of 0.69 on each of 824k weights makes the logits overflow.
    """

    name = "advi"
    mcmc = False
    backend = "c"

    def describe(self, settings) -> str:
        return f"ADVI, {settings.iterations} iterations, then {settings.draws} draws"

    def draw(self, job: Job) -> Draws:
        import pymc as pm

        model, s = job.model, job.settings
        make = getattr(pm, s.optimizer)  # PyMC's ADVI default is adagrad_window, rate 0.001
        optimizer = make() if s.learning_rate is None else make(learning_rate=s.learning_rate)
        kwargs: dict[str, Any] = {"obj_optimizer": optimizer}
        if job.start is not None:
            kwargs["start"] = job.start
        if s.start_sigma is not None:
            kwargs["start_sigma"] = {v.name: s.start_sigma for v in model.value_vars}
        begin = time.perf_counter()
        approx = pm.fit(n=s.iterations, method="advi", random_seed=job.seed, progressbar=job.progress.enabled,
                        model=model, **kwargs)
        fitted = time.perf_counter() - begin
        size = n_dim(model, constrained=True)
        kept = max(1, min(s.draws, MAX_POSTERIOR_BYTES // max(1, 8 * size)))
        with model:
            idata = approx.sample(kept, random_seed=job.seed)
        wall = time.perf_counter() - job.began
        loss = np.asarray(approx.hist, dtype=float)
        tail = loss[-max(1, len(loss) // 10):]
        info = {
            "draws_stored": kept,
            "optimizer": s.optimizer,
            "learning_rate": s.learning_rate,
            "start_sigma": s.start_sigma,
            "loss_initial": float(loss[0]) if len(loss) else None,
            "loss_final": float(np.nanmean(tail)) if len(tail) else None,
        }
        if kept < s.draws:
            info["draws_note"] = (
                f"{kept} of {s.draws} draws kept: {size} scalars per draw, posterior.nc limited "
                f"to {MAX_POSTERIOR_BYTES // 2**20} MB"
            )
        return Draws(idata, wall, fitted, info, loss=loss)


class Map(Sampler):
    """``pm.find_MAP`` (L-BFGS-B through scipy) for at most ``iterations`` logp+gradient
    evaluations: one draw, the mode.

    scipy is told the budget (``maxfun``) so that it stops at its best point so far;
    PyMC's own cap (``maxeval``) would stop mid line search, at whatever point it was
    trying. ``map_evaluations`` and ``map_message`` in run.json say how it ended.
    """

    name = "map"
    mcmc = False
    backend = "c"

    def describe(self, settings) -> str:
        return f"find_MAP (one point, at most {settings.iterations} evaluations)"

    def draw(self, job: Job) -> Draws:
        import arviz as az
        import pymc as pm
        from pymc.backends.arviz import find_observations

        model, s = job.model, job.settings
        begin = time.perf_counter()
        point, raw = pm.find_MAP(
            start=job.start,
            progressbar=job.progress.enabled,
            seed=job.seed,
            model=model,
            include_transformed=True,
            return_raw=True,
            maxeval=s.iterations + MAP_LINE_SEARCH_SLACK,
            options={"maxfun": s.iterations, "maxiter": s.iterations},
        )
        wall = time.perf_counter() - begin
        posterior = {n: np.asarray(point[n])[None, None] for n in sampled_names(model) if n in point}
        idata = az.from_dict(posterior=posterior, observed_data=find_observations(model))
        info: dict[str, Any] = {"max_evaluations": s.iterations}
        if raw is not None:  # None when PyMC's cap stopped it
            info.update(map_evaluations=int(raw.nfev), map_message=str(raw.message))
        try:
            logp = model.compile_logp()({v.name: point[v.name] for v in model.value_vars})
            info["map_logp"] = float(logp)
        except Exception:  # noqa: BLE001 - a diagnostic only
            pass
        return Draws(idata, time.perf_counter() - job.began, wall, info)


__all__ = ["Advi", "Map", "OPTIMIZERS", "MAX_POSTERIOR_BYTES"]
