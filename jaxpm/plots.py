"""The figures every sampled run gets: traces, posteriors, an optimiser's loss, predictive checks.

Every function takes the data it draws and a path to write, and writes one PNG with the
non-interactive Agg backend; callers hand them to :func:`jaxpm.rundir.write_with` so a
file is whole or absent. Nothing here knows about PyMC models. Experiments draw their own
figures (``jaxpm.experiments.ode.plots``, ``jaxpm.experiments.cnn.plots``) with
:func:`pyplot`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Variables with more scalar components than this are left out of trace/posterior plots.
MAX_COMPONENTS = 10
#: At most this many variables in trace/posterior plots.
MAX_VARS = 8
#: Predictive draws drawn as lines in :func:`ppc`.
PPC_DRAWS = 100


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.switch_backend("Agg")
    return plt


def plot_dataset(posterior, max_vars: int = MAX_VARS, max_components: int = MAX_COMPONENTS):
    """A small view of ``posterior`` (an xarray Dataset with chain/draw dims) for plotting.

    Variables with at most ``max_components`` scalars per draw, in order, at most
    ``max_vars`` of them. When none is that small (a CNN: every variable is a weight
    array) the smallest variable is shown through its first ``max_components``
    components, flattened into one dimension named ``<var>_component``. Returns
    ``(dataset, skipped_names)``.
    """
    import xarray as xr

    sizes = {name: int(np.prod([n for d, n in var.sizes.items() if d not in ("chain", "draw")], dtype=int))
             for name, var in posterior.data_vars.items()}
    small = [name for name, n in sizes.items() if n <= max_components]
    chosen = small[:max_vars]
    if chosen:
        return posterior[chosen], [n for n in sizes if n not in chosen]
    if not sizes:
        return posterior, []
    name = min(sizes, key=sizes.get)
    var = posterior[name]
    flat = var.values.reshape(var.sizes["chain"], var.sizes["draw"], -1)[:, :, :max_components]
    view = xr.Dataset(
        {name: (("chain", "draw", f"{name}_component"), flat)},
        coords={"chain": var["chain"].values, "draw": var["draw"].values},
    )
    return view, [n for n in sizes if n != name]


def trace(dataset, path: str | Path) -> None:
    """``az.plot_trace`` of ``dataset`` (see :func:`plot_dataset`)."""
    import arviz as az

    plt = pyplot()
    axes = az.plot_trace(dataset, compact=True, figsize=(10, 2.2 * len(dataset.data_vars)))
    fig = np.asarray(axes).ravel()[0].figure
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def posterior(dataset, path: str | Path, *, point_estimate: str = "mean") -> None:
    """``az.plot_posterior`` of ``dataset`` (see :func:`plot_dataset`)."""
    import arviz as az

    plt = pyplot()
    panels = sum(int(np.prod([n for d, n in v.sizes.items() if d not in ("chain", "draw")], dtype=int))
                 for v in dataset.data_vars.values())
    cols = max(1, min(4, panels))
    rows = -(-panels // cols)
    with az.rc_context({"plot.max_subplots": max(panels, 1)}):
        axes = az.plot_posterior(dataset, point_estimate=point_estimate, hdi_prob=0.9, textsize=9,
                                 figsize=(3.4 * cols, 2.6 * rows), grid=(rows, cols))
    fig = np.asarray(axes).ravel()[0].figure
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def loss(history: np.ndarray, path: str | Path, *, title: str = "ADVI loss") -> None:
    """The optimisation loss per iteration (log scale when positive), with a running mean."""
    plt = pyplot()
    history = np.asarray(history, dtype=float)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(history, lw=0.5, alpha=0.5, color="C0")
    window = max(1, len(history) // 50)
    if len(history) >= window:
        smooth = np.convolve(history, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window - 1, len(history)), smooth, color="C1", label=f"running mean ({window})")
        ax.legend(fontsize=8)
    finite = history[np.isfinite(history)]
    if finite.size and finite.min() > 0:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def ppc(idata, group: str, path: str | Path, *, draws: int = PPC_DRAWS, seed: int = 0) -> None:
    """``az.plot_ppc``: the observed data against up to ``draws`` draws of ``group``
    (``posterior_predictive`` or ``prior_predictive``), one panel per observed variable,
    every dimension flattened."""
    import warnings

    import arviz as az

    plt = pyplot()
    kind = "prior" if group == "prior_predictive" else "posterior"
    data = idata[group]
    total = int(data.sizes.get("chain", 1) * data.sizes.get("draw", 1))
    panels = len(data.data_vars)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        axes = az.plot_ppc(idata, group=kind, observed=True, num_pp_samples=min(draws, total), random_seed=seed,
                           figsize=(6 * min(panels, 2), 3.6 * -(-panels // 2)))
    fig = np.asarray(axes).ravel()[0].figure
    fig.suptitle(f"{kind} predictive against the observed data ({min(draws, total)} of {total} draws)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
