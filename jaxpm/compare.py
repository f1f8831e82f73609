"""``jaxpm compare``: which of several runs predicts its data best (ArviZ's ``az.compare``).

Each run folder's ``posterior.nc`` holds the pointwise log-likelihood of its observed
data (``log_likelihood``, :mod:`jaxpm.sampling.predictive_checks`). Runs are compared by
PSIS-LOO (``az.loo``, as in run.json's ``loo``) and ranked with ``az.compare``:
``elpd_loo`` (higher is better), its standard error, the difference to the best run and
the standard error of that difference, ``p_loo``, stacking weights, and how many
observations have a Pareto k above 0.7. When every run also holds data held out of the
fit (the CNN's held-out digits, ``heldout_log_likelihood``), they are compared on those
instead: the exact log predictive density of each held-out observation, no importance
sampling, so no Pareto k (null). A comparison only makes sense for the same data, so
runs whose observed (or held-out) data differ are bad input, as is a run without a
log-likelihood.

:func:`compare_runs` returns a :class:`Comparison`: ``doc`` is what ``--json`` prints,
``{"runs": [{"run_dir", "name", "rank", "elpd_loo", "se", "elpd_diff", "dse", "p_loo",
"weight", "pareto_k_over_0.7"}], "scale": "log"}`` in rank order, rank 0 the best;
:func:`show` prints it as a table and :func:`write` keeps it with ``az.plot_compare``'s
picture.

Two made-up run folders, the second model predicting the same three observations worse:

>>> import tempfile, arviz as az, xarray as xr
>>> def fake_run(root, name, mean):
...     folder = Path(root) / name
...     folder.mkdir()
...     rng = np.random.default_rng(0)
...     ll = rng.normal(mean, 0.1, size=(2, 100, 3))
...     az.InferenceData(
...         posterior=xr.Dataset({"mu": (("chain", "draw"), rng.normal(size=(2, 100)))}),
...         log_likelihood=xr.Dataset({"y": (("chain", "draw", "y_dim_0"), ll)}),
...         observed_data=xr.Dataset({"y": (("y_dim_0",), [0.1, 0.5, 0.9])}),
...     ).to_netcdf(str(folder / "posterior.nc"))
...     (folder / "run.json").write_text(json.dumps({"name": name}))
...     return folder
>>> with tempfile.TemporaryDirectory() as root:
...     result = compare_runs([fake_run(root, "worse", -3.0), fake_run(root, "better", -1.0)])
>>> [(r["name"], r["rank"], round(r["elpd_diff"], 1)) for r in result.doc["runs"]]
[('better', 0, 0.0), ('worse', 1, 6.0)]
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from jaxpm import rundir
from jaxpm.errors import ConfigError, first_line
from jaxpm.predictive.elpd import PARETO_K, heldout_elpd, k_over, loo

LABEL = "compare"
"""How errors name the command when no single run is to blame."""

KINDS = {"loo": ("observed_data", "log_likelihood"), "heldout": ("heldout_observed_data", "heldout_log_likelihood")}
"""What each kind of comparison reads: the data and the pointwise log-likelihood groups."""


@dataclass
class Run:
    """One run folder as ``jaxpm compare`` reads it: its name in run.json, its InferenceData."""

    run_dir: Path
    name: str
    idata: Any

    def has(self, group: str) -> bool:
        return group in self.idata.groups()


@dataclass
class Comparison:
    """``az.compare``'s table (``table``, indexed by :attr:`labels`), the ``--json``
    document (``doc``), and what was compared (``kind``: ``loo`` or ``heldout``)."""

    table: Any
    doc: dict
    kind: str
    labels: dict[str, Path]


def read_run(path: str | Path) -> Run:
    """The run folder at ``path``; a :class:`~jaxpm.errors.ConfigError` naming it when it is
    not one or kept no draws."""
    import arviz as az

    folder = Path(path)
    label = str(path)
    info_file = folder / "run.json"
    if not info_file.is_file():
        what = "no such folder" if not folder.exists() else "not a run folder (no run.json)"
        raise ConfigError("", f"{what}: give folders written by jaxpm run", label)
    try:
        info = json.loads(info_file.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError("run.json", f"cannot be read: {first_line(e)}", label) from None
    posterior = folder / "posterior.nc"
    if not posterior.is_file():
        raise ConfigError("posterior.nc", "missing: the run was not sampled; run its config.yaml again with --sample",
                          label)
    try:
        idata = az.from_netcdf(posterior)
    except Exception as e:  # noqa: BLE001 - whatever the reader says, on one line
        raise ConfigError("posterior.nc", f"cannot be read: {type(e).__name__}: {first_line(e)}", label) from None
    return Run(folder, str(info.get("name") or folder.parent.name), idata)


def compare_runs(paths: list[str | Path]) -> Comparison:
    """Read the run folders at ``paths``, check they can be compared, and rank them (see
    the module docstring). Bad input raises :class:`~jaxpm.errors.ConfigError`."""
    import arviz as az

    if len(paths) < 2:
        raise ConfigError("", f"give at least two run folders to compare (got {len(paths)})", LABEL)
    runs = [read_run(p) for p in paths]
    kind = "heldout" if all(r.has(KINDS["heldout"][1]) for r in runs) else "loo"
    data_group, ll_group = KINDS[kind]
    for run in runs:
        if not run.has(ll_group):
            raise ConfigError("log_likelihood", "posterior.nc has no pointwise log-likelihood: run it again with "
                              f"jaxpm run {run.run_dir / 'config.yaml'} --set predictive.log_likelihood=true",
                              str(run.run_dir))
    for run in runs[1:]:
        _same_data(runs[0], run, data_group)
    labels = _labels(runs)
    elpds = {}
    for label, run in zip(labels, runs, strict=True):
        try:
            elpds[label] = heldout_elpd(_ll_array(run.idata[ll_group])) if kind == "heldout" else loo(run.idata)
        except ValueError as e:
            raise ConfigError("log_likelihood", f"{first_line(e)}: compare runs that sample the posterior, or runs "
                              "that all keep held-out data (the CNN's cnn.holdout)", str(run.run_dir)) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare(elpds, ic="loo", scale="log")
    by_label = dict(zip(labels, runs, strict=True))
    doc = {"runs": [_row(label, table.loc[label], by_label[label], elpds[label]) for label in table.index],
           "scale": "log"}
    return Comparison(table, doc, kind, {label: by_label[label].run_dir for label in labels})


def show(comparison: Comparison, out: Console) -> None:
    """The comparison as a rich table, best first, and a line per run with unreliable Pareto k."""
    title = ("PSIS-LOO model comparison (log scale, higher elpd is better)" if comparison.kind == "loo" else
             "held-out comparison: exact elpd of the held-out data (log scale, higher is better)")
    table = Table(title=title)
    for col in ("rank", "run", "elpd_loo", "se", "elpd_diff", "dse", "p_loo", "weight", f"k>{PARETO_K}"):
        if col == "run":  # the names give way on a narrow terminal, never the numbers
            table.add_column(col, overflow="fold", ratio=1)
        else:
            table.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    for row, label in zip(comparison.doc["runs"], comparison.table.index, strict=True):
        k = row["pareto_k_over_0.7"]
        table.add_row(str(row["rank"]), label, f"{row['elpd_loo']:.2f}", f"{row['se']:.2f}",
                      f"{row['elpd_diff']:.2f}", f"{row['dse']:.2f}", f"{row['p_loo']:.2f}", f"{row['weight']:.3f}",
                      "-" if k is None else (f"[yellow]{k}[/yellow]" if k else "0"))
    out.print(table)
    for label in comparison.table.index:
        out.print(f"  {label}: {comparison.labels[label]}", highlight=False)
    for row, label in zip(comparison.doc["runs"], comparison.table.index, strict=True):
        if row["pareto_k_over_0.7"]:
            out.print(f"[yellow]warning:[/yellow] {label}: {row['pareto_k_over_0.7']} observations with Pareto k > "
                      f"{PARETO_K}: its elpd_loo is unreliable", highlight=False)


def write(comparison: Comparison, folder: str | Path) -> list[Path]:
    """``compare.json`` (the ``--json`` document) and ``compare.png`` (``az.plot_compare``)
    in ``folder``, each whole or not at all. Returns the files written."""
    import arviz as az

    from jaxpm.plots import pyplot

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [rundir.write_json(folder / "compare.json", comparison.doc)]

    def draw(path: str) -> None:
        plt = pyplot()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ax = az.plot_compare(comparison.table, insample_dev=False, figsize=(7, 1.2 + 0.6 * len(comparison.table)))
        fig = np.asarray(ax).ravel()[0].figure
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)

    written.append(rundir.write_with(folder / "compare.png", draw))
    return written


def _same_data(first: Run, other: Run, group: str) -> None:
    """``other`` must hold the same ``group`` (observed or held-out data) as ``first``."""
    a, b = first.idata[group] if first.has(group) else None, other.idata[group] if other.has(group) else None
    where = str(other.run_dir)
    if a is None or b is None:
        missing = other if b is None else first
        raise ConfigError(group, f"{missing.run_dir} has no {group}: compare runs fitted to the same data", where)
    names_a, names_b = set(a.data_vars), set(b.data_vars)
    if names_a != names_b:
        name = sorted(names_a ^ names_b)[0]
        raise ConfigError(f"{group}.{name}", f"observed here or in {first.run_dir} but not both: compare runs "
                          "fitted to the same data", where)
    for name in sorted(names_a):
        x, y = np.asarray(a[name].values), np.asarray(b[name].values)
        if x.shape != y.shape:
            raise ConfigError(f"{group}.{name}", f"shape {list(y.shape)} here, {list(x.shape)} in {first.run_dir}: "
                              "compare runs fitted to the same data", where)
        same = x == y if not np.issubdtype(x.dtype, np.floating) else (x == y) | (np.isnan(x) & np.isnan(y))
        if not np.all(same):
            raise ConfigError(f"{group}.{name}", f"{int(np.size(same) - np.sum(same))} of {np.size(same)} values "
                              f"differ from {first.run_dir}'s: compare runs fitted to the same data", where)


def _labels(runs: list[Run]) -> list[str]:
    """A unique label per run: its name, with the run id (folder name) when names repeat."""
    counts = Counter(r.name for r in runs)
    labels = [r.name if counts[r.name] == 1 else f"{r.name}/{r.run_dir.name}" for r in runs]
    seen: Counter = Counter()
    out = []
    for label in labels:
        seen[label] += 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def _ll_array(ds) -> np.ndarray:
    """A held-out log-likelihood group as one ``(chain, draw, n)`` array, every variable pooled."""
    parts = [v.values.reshape(v.sizes["chain"], v.sizes["draw"], -1) for v in ds.data_vars.values()]
    return np.concatenate(parts, axis=2)


def _row(label: str, row, run: Run, elpd) -> dict:
    return {
        "run_dir": str(run.run_dir),
        "name": run.name,
        "rank": int(row["rank"]),
        "elpd_loo": float(row["elpd_loo"]),
        "se": float(row["se"]),
        "elpd_diff": float(row["elpd_diff"]),
        "dse": float(row["dse"]),
        "p_loo": float(row["p_loo"]),
        "weight": float(row["weight"]),
        "pareto_k_over_0.7": k_over(elpd),
    }


__all__ = ["compare_runs", "read_run", "show", "write", "Comparison", "Run", "KINDS"]
