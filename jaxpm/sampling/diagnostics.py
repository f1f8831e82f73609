"""What a sampling run's draws say: usable draws, divergences, r_hat, ESS, ESS per second.

What the run.json ``sampling`` block says about failed ODE solves, exactly:

* ``divergences``: divergent transitions after tuning (all samplers);
  ``divergences_in_warmup``: during tuning (nutpie, pymc; ``null`` where the sampler
  does not keep its tuning statistics).
* ``nonfinite_logp_divergences`` / ``..._in_warmup`` (nutpie only): divergent
  transitions whose last leapfrog step reached a point where the logp was not finite.
  In an ODE model that is a failed solve (the ``<output>_failed`` potential) or a
  likelihood that overflowed; other samplers do not record where a divergence ended,
  so for them the field is ``null``. It counts transitions, not solves: a trajectory
  stops at the first non-finite logp it meets, so each counted transition met exactly
  one, and transitions that ended otherwise are not counted.

Time and efficiency: ``ess_per_second`` is the smallest bulk ESS over every scalar in the
posterior divided by ``sampling_seconds``; ``ess_per_wall_second`` divides by
``wall_seconds`` (see :class:`~jaxpm.sampling.base.Draws`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from jaxpm.sampling.base import Draws


def usable_draws(posterior) -> tuple[int, int]:
    """(draws whose every variable is finite, all draws)."""
    n_chain = posterior.sizes.get("chain", 0)
    n_draw = posterior.sizes.get("draw", 0)
    finite = np.ones((n_chain, n_draw), dtype=bool)
    for var in posterior.data_vars.values():
        values = np.asarray(var.values)
        if values.dtype.kind in "fc":
            finite &= np.isfinite(values.reshape(n_chain, n_draw, -1)).all(axis=-1)
    return int(finite.sum()), n_chain * n_draw


def diagnostics(idata, mcmc: bool, draws: Draws | None) -> dict:
    """Divergences, r_hat, ESS and ESS per second (all ``None`` where they do not apply,
    e.g. for a fit: ``mcmc`` false)."""
    out: dict[str, Any] = {
        "divergences": None,
        "divergences_in_warmup": None,
        "nonfinite_logp_divergences": None,
        "nonfinite_logp_divergences_in_warmup": None,
        "max_r_hat": None,
        "min_ess_bulk": None,
        "min_ess_tail": None,
        "ess_per_second": None,
        "ess_per_wall_second": None,
    }
    if idata is None or not mcmc:
        return out
    stats = idata.get("sample_stats")
    warm = idata.get("warmup_sample_stats")
    out["divergences"] = _count(stats, "diverging")
    out["divergences_in_warmup"] = _count(warm, "diverging")
    out["nonfinite_logp_divergences"] = _nonfinite_divergences(stats)
    out["nonfinite_logp_divergences_in_warmup"] = _nonfinite_divergences(warm)
    post = idata.posterior
    if post.sizes.get("draw", 0) >= 4:
        import arviz as az

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["max_r_hat"] = _reduce(az.rhat(post), np.nanmax)
            out["min_ess_bulk"] = _reduce(az.ess(post, method="bulk"), np.nanmin)
            out["min_ess_tail"] = _reduce(az.ess(post, method="tail"), np.nanmin)
    ess = out["min_ess_bulk"]
    if ess is not None:
        if draws.sampling_seconds:
            out["ess_per_second"] = ess / draws.sampling_seconds
        if draws.wall_seconds:
            out["ess_per_wall_second"] = ess / draws.wall_seconds
    return out


def _count(stats, name: str) -> int | None:
    if stats is None or name not in stats:
        return None
    return int(np.asarray(stats[name].values).sum())


def _nonfinite_divergences(stats) -> int | None:
    """Divergent transitions whose end point nutpie could not record: the logp there was
    not finite (nutpie stores ``divergence_end`` only for finite end points)."""
    if stats is None or "divergence_end" not in stats or "diverging" not in stats:
        return None
    diverging = np.asarray(stats["diverging"].values, dtype=bool)
    ends = np.asarray(stats["divergence_end"].values)
    ends = ends.reshape(*diverging.shape, -1)
    return int((diverging & np.isnan(ends).any(axis=-1)).sum())


def _reduce(dataset, how) -> float | None:
    values = [np.asarray(v.values, dtype=float).ravel() for v in dataset.data_vars.values()]
    values = np.concatenate(values) if values else np.array([])
    values = values[np.isfinite(values)]
    return float(how(values)) if values.size else None


def advice(out: dict) -> list[str]:
    """What a modeller should know about a finished sampling run, one line each."""
    notes = []
    if out.get("usable_draws") is not None and 0 < out["usable_draws"] < out.get("draws_total", 0):
        notes.append(f"{out['draws_total'] - out['usable_draws']} draws have non-finite values")
    if out.get("max_r_hat") is not None and out["max_r_hat"] > 1.01:
        notes.append(f"max r_hat {out['max_r_hat']:.3f} > 1.01: chains disagree; sample longer or reparameterise")
    if out.get("divergences"):
        notes.append(f"{out['divergences']} divergent transitions after tuning; raise target_accept or reparameterise")
    if out.get("failed_solves_in_draws"):
        notes.append(f"the ODE solve fails at {out['failed_solves_in_draws']} kept draws")
    return notes


def one_line(out: dict, mcmc: bool) -> str:
    """The line printed when sampling ends."""
    if not mcmc:
        n = out["usable_draws"]
        return f"sampling done in {out['wall_seconds']:.1f} s ({n} draw{'' if n == 1 else 's'} kept)"
    parts = [f"sampled in {out['wall_seconds']:.1f} s"]
    if out.get("divergences") is not None:
        parts.append(f"{out['divergences']} divergences")
    if out.get("max_r_hat") is not None:
        parts.append(f"max r_hat {out['max_r_hat']:.3f}")
    if out.get("min_ess_bulk") is not None:
        parts.append(f"min bulk ESS {out['min_ess_bulk']:.0f}")
    if out.get("ess_per_second") is not None:
        parts.append(f"{out['ess_per_second']:.0f} ESS/s")
    return ", ".join(parts)


__all__ = ["usable_draws", "diagnostics", "advice", "one_line"]
