"""The ODE's figures: the posterior of the solution (``fit.png``) and the predictive draws
of the data (``ppc.png``, ``prior_ppc.png``), over time, with the data."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxpm.plots import pyplot


def ode_fit(
    times: np.ndarray,
    draws: np.ndarray,
    path: str | Path,
    *,
    observed: np.ndarray | None = None,
    output: str = "ode",
    observed_name: str | None = None,
    labels: Sequence[str] | None = None,
) -> None:
    """Posterior median and 90% band of an ODE solution at the save times, over the data.

    ``draws`` has shape ``(n_draws, n_times, *state)``; the state is flattened into
    components, one panel each. ``observed`` (optional) has the solution's shape (or its
    size) and is drawn as points.
    """
    _bands(times, draws, path, observed=observed, name=output, observed_name=observed_name, labels=labels,
           levels=(90,), median="posterior median", log_scale=False,
           title=f"{output}: posterior at the save times ({len(draws)} draws)")


def ode_predictive(
    times: np.ndarray,
    draws: np.ndarray,
    path: str | Path,
    *,
    observed: np.ndarray,
    name: str,
    labels: Sequence[str] | None = None,
    what: str = "posterior predictive",
) -> None:
    """The predictive check over time: median, 50% and 90% bands of predictive draws of the
    observed variable ``name`` (shape ``(n_draws, n_times, *state)``), and the data as
    points. A log scale when a band is positive and spans more than three decades (a
    prior predictive)."""
    _bands(times, draws, path, observed=observed, name=name, observed_name="observed", labels=labels,
           levels=(50, 90), median=f"{what} median", log_scale=True,
           title=f"{name}: {what} ({len(draws)} draws) against the data")


def _bands(times, draws, path, *, observed, name, observed_name, labels, levels, median, log_scale, title) -> None:
    plt = pyplot()
    times = np.asarray(times, dtype=float)
    draws = np.asarray(draws, dtype=float).reshape(len(draws), len(times), -1)
    n_comp = draws.shape[2]
    obs = None if observed is None else np.asarray(observed, dtype=float).reshape(len(times), n_comp)
    ncols = min(n_comp, 3)
    nrows = -(-n_comp // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.2 * nrows), squeeze=False)
    dense = len(times) > 30
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-NaN times (failed solves in prior draws)
        mid = np.nanpercentile(draws, 50, axis=0)
        bands = {level: np.nanpercentile(draws, [50 - level / 2, 50 + level / 2], axis=0) for level in levels}
    for c in range(n_comp):
        ax = axes.ravel()[c]
        label = labels[c] if labels is not None and c < len(labels) else (name if n_comp == 1 else f"{name}[:, {c}]")
        for i, level in enumerate(sorted(levels, reverse=True)):
            lo, hi = bands[level]
            alpha = 0.3 if len(levels) == 1 else 0.2 + 0.15 * i
            ax.fill_between(times, lo[:, c], hi[:, c], color="C0", alpha=alpha, lw=0, label=f"{level}% band")
        ax.plot(times, mid[:, c], color="C0", marker=None if dense else ".", label=median)
        if obs is not None:
            ax.plot(times, obs[:, c], "o", color="k", ms=4, label=observed_name or "observed")
        low, high = bands[max(levels)][0][:, c], bands[max(levels)][1][:, c]
        if log_scale and np.all(low > 0) and np.nanmax(high) > 1e3 * np.nanmin(low):
            ax.set_yscale("log")
        ax.set_title(label)
        ax.set_xlabel("t")
    for ax in axes.ravel()[n_comp:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


__all__ = ["ode_fit", "ode_predictive"]
