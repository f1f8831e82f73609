"""The figures of a sampled run: traces, posteriors, the ODE fit, the CNN's digits.

Every function takes the data it draws and a path to write, and writes one PNG with the
non-interactive Agg backend; callers hand them to :func:`jaxpm.results.write_with` so a
file is whole or absent. Nothing here knows about PyMC models.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Variables with more scalar components than this are left out of trace/posterior plots.
MAX_COMPONENTS = 10
#: At most this many variables in trace/posterior plots.
MAX_VARS = 8


def _plt():
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

    plt = _plt()
    axes = az.plot_trace(dataset, compact=True, figsize=(10, 2.2 * len(dataset.data_vars)))
    fig = np.asarray(axes).ravel()[0].figure
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def posterior(dataset, path: str | Path, *, point_estimate: str = "mean") -> None:
    """``az.plot_posterior`` of ``dataset`` (see :func:`plot_dataset`)."""
    import arviz as az

    plt = _plt()
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
    plt = _plt()
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


def digits(
    images: np.ndarray,
    predicted: np.ndarray,
    path: str | Path,
    *,
    labels: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    title: str = "",
    n: int = 32,
) -> None:
    """A grid of the first ``n`` images titled with their predicted class (green when it
    matches the label, red when not) and, if given, the predicted probability."""
    plt = _plt()
    n = min(n, len(images))
    ncols = 8
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.4 * ncols, 1.65 * nrows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= n:
            continue
        img = np.asarray(images[i], dtype=float)
        ax.imshow(img.reshape(img.shape[0], img.shape[1], -1)[..., 0], cmap="gray_r")
        text = f"{int(predicted[i])}"
        color = "k"
        if labels is not None:
            right = int(predicted[i]) == int(labels[i])
            color = "green" if right else "red"
            text += "" if right else f" ({int(labels[i])})"
        if confidence is not None:
            text += f" {confidence[i]:.2f}"
        ax.set_title(text, color=color, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def loss(history: np.ndarray, path: str | Path, *, title: str = "ADVI loss") -> None:
    """The optimisation loss per iteration (log scale when positive), with a running mean."""
    plt = _plt()
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
