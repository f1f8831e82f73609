"""What ``jaxpm sbc`` shows: the table of uniformity tests, and the figures: rank
histograms with the binomial band (``ranks.png``) and ECDF differences with the simultaneous 95% band (``ecdf.png``).

The ECDF band is the one the uniformity test uses (:func:`jaxpm.many.ranks.ecdf_band`,
from the same simulated null), so a curve that leaves it is a quantity whose p-value is
below 0.05 before the adjustment for several quantities; each panel's title gives the
p-value and the adjusted level, red when the quantity fails.
"""

from __future__ import annotations

import math

import numpy as np

from jaxpm.many import ranks as rk

HISTOGRAM_PROB = 0.99
"""The rank histogram's band: the central 99% of one bin's count under uniformity."""


def table(info: dict, out) -> None:
    """The quantities' tests (p-value, adjusted level, pass), the failed and divergent
    simulations, the verdict and the folder, on ``out`` (a rich Console)."""
    from rich.table import Table

    t = Table(title=f"{info['name']}: simulation-based calibration, {info['finished']} of {info['sims']} "
                    f"simulations, ranks among L = {info['L']} draws")
    for col, justify in (("quantity", "left"), ("p-value", "right"), ("level", "right"), ("ranked", "right"),
                         ("result", "left")):
        t.add_column(col, justify=justify)
    for name, q in info["quantities"].items():
        floor = 1 / (rk.NULL_SIMULATIONS + 1)  # the smallest p-value a simulated null gives
        p = q["p_value"]
        t.add_row(name, f"≤ {floor:.2g}" if p <= floor * (1 + 1e-9) else f"{p:.3g}", f"{q['level']:.3g}", str(q["n"]),
                  "[green]uniform[/green]" if q["ok"] else "[bold red]NOT uniform[/bold red]")
    out.print(t)
    for r in info["simulations"]:
        if r["status"] == "failed":
            out.print(f"sim {r['sim']} failed: {r['error']}", markup=False, highlight=False)
    if info["divergent"]:
        out.print(f"divergent fits (ranked): {info['divergent']} ({_some(info['divergent_sims'])})", highlight=False)
    for w in info.get("warnings", []):
        out.print(f"warning: {w}", markup=False, highlight=False)
    tm = info["timings"]
    verdict = "[green]calibrated[/green]" if info["ok"] else "[bold red]NOT calibrated[/bold red]"
    share = tm.get("share_beyond_sampling")
    out.print(f"{verdict}: {info['failed']} failed, {info['divergent']} divergent, {info['finished']} fitted in "
              f"{tm['wall_seconds']:.0f} s on {len(info.get('workers') or {})} workers"
              + (f" (median {tm['median_sim_seconds']:.2f} s per simulation, {share:.0%} of it not sampling)"
                 if share is not None else "") + f"; sbc folder: {info['sbc_dir']}", highlight=False)


def _some(sims: list[int]) -> str:
    return "sims " + ", ".join(map(str, sims[:10])) + (", ..." if len(sims) > 10 else "")


def _grid(n: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows + 0.6), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return plt, fig, axes.ravel()


def _title(ax, name: str, test: dict) -> None:
    ok = test.get("ok")
    ax.set_title(f"{name}\np = {test.get('p_value', float('nan')):.3g} (level {test.get('level', float('nan')):.3g})",
                 fontsize=8, color="black" if ok else "tab:red")


def bins_for(n_ranks: int, L: int) -> int:
    """Bins of the rank histogram: about 10 ranks expected per bin, at most L + 1 bins, at least 2.

    >>> bins_for(100, 100), bins_for(1000, 100), bins_for(10, 1)
    (10, 100, 2)
    """
    return int(max(2, min(L + 1, n_ranks // 10 if n_ranks >= 20 else 2)))


def histograms(rows: list[dict], quantities: dict[str, dict], L: int, path: str) -> None:
    """ranks.png: one histogram per quantity, the grey band the central 99% of a bin's count
    when the ranks are uniform."""
    names = list(quantities)
    plt, fig, axes = _grid(len(names))
    for ax, name in zip(axes, names, strict=False):
        values = np.array([r["ranks"][name] for r in rows if name in r["ranks"]])
        bins = bins_for(len(values), L)
        edges = np.linspace(-0.5, L + 0.5, bins + 1)
        counts, _ = np.histogram(values, edges)
        # equal-width bins of the integer ranks may hold unequal numbers of integers: band per bin
        per_bin = np.diff(np.floor(edges + 0.5))
        lo, hi = (np.array(v) for v in zip(*[_band(len(values), k / (L + 1)) for k in per_bin], strict=True))
        ax.fill_between(edges.repeat(2)[1:-1], lo.repeat(2), hi.repeat(2), color="0.85", step=None, lw=0)
        ax.plot(edges.repeat(2)[1:-1], (len(values) * per_bin / (L + 1)).repeat(2), color="0.5", lw=0.8)
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="tab:blue", alpha=0.75,
               edgecolor="white", lw=0.5)
        ax.set_xlim(-0.5, L + 0.5)
        ax.set_xlabel(f"rank (0..{L})", fontsize=7)
        ax.tick_params(labelsize=7)
        _title(ax, name, quantities[name])
    fig.suptitle(f"SBC rank histograms ({len(rows)} simulations; grey: {HISTOGRAM_PROB:.0%} band if uniform)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def _band(n: int, p: float) -> tuple[float, float]:
    from scipy import stats

    lo, hi = stats.binom.interval(HISTOGRAM_PROB, n, p)
    return float(lo), float(hi)


def ecdfs(rows: list[dict], quantities: dict[str, dict], L: int, null: np.ndarray, path: str) -> None:
    """ecdf.png: per quantity, the ECDF of the fractional ranks minus the uniform CDF, with
    the simultaneous 95% band of the test."""
    names = list(quantities)
    plt, fig, axes = _grid(len(names))
    n = len(rows)
    z, lower, upper = rk.ecdf_band(n, L, null, 0.95)
    at = rk.points(n, L)
    for ax, name in zip(axes, names, strict=False):
        values = np.array([r["ranks"][name] for r in rows if name in r["ranks"]], dtype=int)
        ecdf = rk.ecdf_counts(values, L, at) / max(1, len(values))
        # the ECDF at z_j holds until the next point: steps after each point, from (0, 0) to (1, 0)
        zs = np.concatenate([[0.0], z, [1.0]])
        ax.fill_between(zs, np.concatenate([[0.0], lower - z, [0.0]]), np.concatenate([[0.0], upper - z, [0.0]]),
                        color="0.85", step="post", lw=0)
        ax.axhline(0, color="0.5", lw=0.8)
        outside = (ecdf < lower) | (ecdf > upper)
        ax.step(zs, np.concatenate([[0.0], ecdf - z, [0.0]]), where="post",
                color="tab:red" if outside.any() else "tab:blue", lw=1.2)
        ax.set_xlim(0, 1)
        ax.set_xlabel("fractional rank", fontsize=7)
        ax.tick_params(labelsize=7)
        _title(ax, name, quantities[name])
    fig.suptitle(f"SBC: ECDF minus uniform CDF ({n} simulations; grey: simultaneous 95% band)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


__all__ = ["table", "histograms", "ecdfs", "bins_for", "HISTOGRAM_PROB"]
