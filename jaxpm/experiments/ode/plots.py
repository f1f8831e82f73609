"""The ODE's figure: the posterior of the solution at the save times, over the data."""

from __future__ import annotations

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
    plt = pyplot()
    times = np.asarray(times, dtype=float)
    draws = np.asarray(draws, dtype=float).reshape(len(draws), len(times), -1)
    n_comp = draws.shape[2]
    obs = None if observed is None else np.asarray(observed, dtype=float).reshape(len(times), n_comp)
    lo, med, hi = np.nanpercentile(draws, [5, 50, 95], axis=0)
    ncols = min(n_comp, 3)
    nrows = -(-n_comp // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.2 * nrows), squeeze=False)
    dense = len(times) > 30
    for c in range(n_comp):
        ax = axes.ravel()[c]
        name = labels[c] if labels is not None and c < len(labels) else (output if n_comp == 1 else f"{output}[:, {c}]")
        ax.fill_between(times, lo[:, c], hi[:, c], color="C0", alpha=0.3, lw=0, label="90% band")
        ax.plot(times, med[:, c], color="C0", marker=None if dense else ".", label="posterior median")
        if obs is not None:
            ax.plot(times, obs[:, c], "o", color="k", ms=4, label=observed_name or "observed")
        ax.set_title(name)
        ax.set_xlabel("t")
    for ax in axes.ravel()[n_comp:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=8)
    fig.suptitle(f"{output}: posterior at the save times ({len(draws)} draws)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


__all__ = ["ode_fit"]
