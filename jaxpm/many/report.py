"""What a sweep shows: rows sorted by a column, the best point, the table on stdout, sweep.png.

Columns have a direction where one exists: more ESS is better, fewer µs, seconds,
divergences and failed solves are better, r_hat closer to 1 (smaller) is better. The best
point is the first ``ok`` row by the sort column when it has a direction, else by ESS/s
(with sampling) or µs per logp+dlogp (without).

>>> rows = [{"point": 0, "status": "ok", "us_per_eval": 80.0}, {"point": 1, "status": "ok", "us_per_eval": 60.0},
...         {"point": 2, "status": "failed", "us_per_eval": None}]
>>> [r["point"] for r in sort_rows(rows, "us_per_eval")], best(rows, "point", sampling=False)
([1, 0, 2], 1)
"""

from __future__ import annotations

import json
import math
from typing import Any

from rich.console import Console
from rich.table import Table

from jaxpm.errors import ConfigError, did_you_mean

HIGHER_IS_BETTER = ("ess_per_s", "min_ess_bulk", "min_ess_tail")
LOWER_IS_BETTER = ("us_per_eval", "sampler_seconds", "max_r_hat", "divergences", "failed_solves", "max_backend_diff")
PLAIN = ("point", "status", "error", "run_dir", "logp", "check_grad_ok")


def columns(keys: list[str], sampling: bool) -> list[str]:
    """The columns a sweep can be sorted by."""
    metrics = [c for c in (*LOWER_IS_BETTER, *HIGHER_IS_BETTER) if sampling or c in ("us_per_eval", "max_backend_diff")]
    return [*PLAIN[:1], *keys, *PLAIN[1:], *metrics]


def check_sort(column: str, keys: list[str], sampling: bool, label: str) -> None:
    """``--sort COLUMN`` names a column of this sweep (else bad input, before anything runs)."""
    known = columns(keys, sampling)
    if column not in known:
        hint = did_you_mean(column, known) if "did you mean" in did_you_mean(column, known) else ""
        raise ConfigError("--sort", f"no column {column!r} to sort by{hint}; expected one of: {', '.join(known)}",
                          label)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


def _order(value: Any) -> tuple:
    """A sort key that puts missing values last and never compares a number with a string."""
    if value is None:
        return (2, 0, "")
    n = _number(value)
    if n is not None:
        return (0, n, "")
    return (1, 0, json.dumps(value, sort_keys=True, default=str))


def sort_rows(rows: list[dict], column: str) -> list[dict]:
    """Rows sorted by ``column``, the better first where the column has a direction;
    rows without a value (failed, pending) last."""
    def key(r):
        value = r.get(column)
        n = _number(value)
        if column in HIGHER_IS_BETTER and n is not None:
            return (0, -n, "")
        return _order(value)

    return sorted(rows, key=key)


def best(rows: list[dict], column: str, sampling: bool) -> int | None:
    """The ``point`` of the best ``ok`` row (see the module), or None."""
    by = column if column in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER) else ("ess_per_s" if sampling else "us_per_eval")
    ok = [r for r in rows if r.get("status") == "ok" and _number(r.get(by)) is not None]
    return sort_rows(ok, by)[0]["point"] if ok else None


def _fmt(value: Any, column: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if column in ("us_per_eval", "ess_per_s", "sampler_seconds", "min_ess_bulk", "min_ess_tail"):
            return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)


_STATUS = {"ok": "[green]ok[/green]", "check_failed": "[yellow]check_failed[/yellow]", "failed": "[red]failed[/red]",
           "pending": "[dim]pending[/dim]"}
_HEADERS = {"us_per_eval": "µs/eval", "logp": "logp", "max_backend_diff": "backend diff", "check_grad_ok": "grad ok",
            "sampler_seconds": "sampler s", "min_ess_bulk": "ESS bulk", "min_ess_tail": "ESS tail",
            "ess_per_s": "ESS/s", "max_r_hat": "max r_hat", "divergences": "div", "failed_solves": "failed solves"}


def table(info: dict, out: Console) -> None:
    """The sweep's table, sorted by ``info["sort"]``, the best point starred; then the
    reasons of the points that are not ok, and where the folder is."""
    rows = sort_rows(info["rows"], info["sort"])
    sampling = any("ess_per_s" in r for r in rows)
    shown = ["us_per_eval", "logp", "max_backend_diff", "check_grad_ok"]
    if sampling:  # narrower: what compares samplers (sweep.csv has every column)
        shown = ["us_per_eval", "check_grad_ok", "ess_per_s", "min_ess_bulk", "min_ess_tail", "max_r_hat",
                 "divergences", "sampler_seconds"]
        if any(r.get("failed_solves") for r in rows):
            shown.insert(-1, "failed_solves")
    t = Table(title=f"{info['name']}: sweep of {info['points']} points, sorted by {info['sort']}")
    t.add_column("", no_wrap=True)
    t.add_column("point", justify="right", min_width=5)
    for k in info["keys"]:
        t.add_column(k, min_width=min(len(k), 16))
    t.add_column("status", min_width=6)
    for c in shown:
        t.add_column(_HEADERS[c], justify="right")
    for r in rows:
        star = "[bold green]★[/bold green]" if r["point"] == info.get("best") else ""
        t.add_row(star, str(r["point"]), *[_fmt(r.get(k), k) for k in info["keys"]],
                  _STATUS.get(r["status"], r["status"]), *[_fmt(r.get(c), c) for c in shown])
    if not out.is_terminal and out.width < 200:  # piped: the whole table, not 80 columns of it
        out = Console(file=out.file, width=200, no_color=out.no_color)
    out.print(t)
    if info.get("best") is not None:
        out.print(f"★ best: point {info['best']}", highlight=False)
    for r in sorted(info["rows"], key=lambda r: r["point"]):
        if r["status"] not in ("ok", "pending"):
            out.print(f"point {r['point']} {r['status']}: {r.get('error') or ''}", markup=False, highlight=False)
    c = info["counts"]
    out.print(f"{c['ok']} ok, {c['check_failed']} check_failed, {c['failed']} failed"
              + (f", {c['pending']} not run" if c.get("pending") else "")
              + f" in {info['wall_seconds']:.0f} s; sweep folder: {info['sweep_dir']}", markup=False, highlight=False)


def figure(rows: list[dict], keys: list[str], sampling: bool, best_point: int | None, path: str) -> None:
    """sweep.png: one bar per point for µs per logp+dlogp and, with sampling, ESS/s and the
    sampler's wall time; points without a value are marked by their status."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("us_per_eval", "µs per logp+dlogp (lower is better)")]
    if sampling:
        panels += [("ess_per_s", "min bulk ESS per second (higher is better)"),
                   ("sampler_seconds", "sampler wall time, s (lower is better)")]
    labels = [f"{r['point']}: " + ", ".join(_fmt(r.get(k), k) for k in keys) for r in rows]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels) + 1.5, 0.45 * len(rows) + 1.6),
                             squeeze=False, sharey=True)
    ys = list(range(len(rows)))
    for ax, (col, title) in zip(axes[0], panels, strict=True):
        values = [_number(r.get(col)) for r in rows]
        colours = ["tab:green" if r["point"] == best_point else ("tab:blue" if r["status"] == "ok" else "tab:orange")
                   for r in rows]
        ax.barh(ys, [v or 0.0 for v in values], color=colours)
        for y, (v, r) in enumerate(zip(values, rows, strict=True)):
            if v is None:
                ax.text(0, y, f" {r['status']}", va="center", color="tab:red", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(ys, labels, fontsize=8)
    axes[0][0].invert_yaxis()
    fig.suptitle("sweep: points compared (best in green, not ok in orange)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


__all__ = ["columns", "check_sort", "sort_rows", "best", "table", "figure", "HIGHER_IS_BETTER", "LOWER_IS_BETTER"]
