"""How long until a trustworthy posterior: ``jaxpm run`` of Lotka–Volterra against pure numpyro.

    python benchmarks/bench_lotka_volterra.py [--config configs/lotka_volterra.yaml]
        [--json out.json] [--skip-numpyro] [--skip-jaxpm] [--seed N] [--jaxpm-seeds 1,2,3]

Ways to the posterior of the same model (posteriordb's ``hudson_lynx_hare``, 4 chains of
1000 tuning + 1000 kept draws), timed in the same process run, one after the other:

* ``jaxpm run CONFIG`` as a user runs it, in a subprocess: interpreter start, imports,
  model build, the config's backend evaluation and gradient checks, compilation, sampling,
  posterior.nc, summary and plots. Its wall clock is the figure; run.json's sampling
  block gives ESS, r_hat and divergences. Twice: ``cold``, with an empty JAX compilation
  cache (a first run), and ``warm``, the same command again (every later run; PyTensor's
  C cache is warm in both). ``--jaxpm-seeds`` adds warm runs at other seeds.
* pure numpyro + diffrax (``lv_numpyro.py``): Dopri5, rtol = atol = 1e-6,
  ``BacksolveAdjoint``, numpyro's NUTS with its defaults (issue 7's reference), and
  again with ``dense_mass=True`` (what a numpyro expert would try next); chains in
  parallel on as many JAX CPU devices as jaxpm gives itself (importing jaxpm sets them,
  see ``jaxpm.HOST_DEVICES``), so all get the same machine. Its wall clock covers
  tracing, compiling and sampling, not the interpreter and imports.

The figure of merit is min bulk ESS over all parameters per wall second. The targets of
issue 7 (against numpyro's defaults, with the warm run; the cold one is shown too) are
printed as pass/miss; nothing is asserted (it is a benchmark, not a test).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import jaxpm  # noqa: F401  (x64, EQX_ON_ERROR=nan, host devices: before JAX starts)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lv_numpyro  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "lotka_volterra.yaml"
TARGETS = {"wall_seconds": 100.0, "min_ess_bulk": 800.0, "max_r_hat": 1.01, "divergences": 0, "ratio": 2.0}

console = Console() if sys.stdout.isatty() else Console(width=150)


def run_jaxpm(config: Path, cache: Path, label: str, seed: int | None = None) -> dict:
    """``jaxpm run CONFIG --json`` in a fresh interpreter with its JAX compilation cache in
    ``cache``; returns the sampling figures."""
    env = {**os.environ, "JAXPM_JAX_CACHE": str(cache)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-c", "from jaxpm.cli import app; app()", "run", str(config), "--out", out, "--json"]
        if seed is not None:
            cmd += ["--set", f"seed={seed}"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        wall = time.perf_counter() - start
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise SystemExit(f"jaxpm run failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    info = json.loads(proc.stdout)
    s = info.get("sampling") or {}
    timing = info.get("timing", {})
    return {
        "name": f"jaxpm run, {label}",
        "wall_seconds": wall,
        "sampling_seconds": s.get("wall_seconds"),
        "other_seconds": wall - (s.get("wall_seconds") or 0.0),
        "run_total_seconds": timing.get("total_seconds"),
        "sampler": f"{s.get('sampler')} ({s.get('mass_matrix', 'diag')}, start {s.get('start', 'initial')}, "
                   f"{s.get('tune')} tune)",
        "start_seconds": (s.get("start_mode") or {}).get("seconds"),
        "min_ess_bulk": s.get("min_ess_bulk"),
        "min_ess_tail": s.get("min_ess_tail"),
        "max_r_hat": s.get("max_r_hat"),
        "divergences": s.get("divergences"),
        "exit_status": proc.returncode,
    }


def run_numpyro(seed: int, dense_mass: bool = False) -> dict:
    import arviz as az

    idata, wall, method = lv_numpyro.sample(seed=seed, dense_mass=dense_mass)
    post = idata.posterior[["theta", "z_init", "sigma"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess_bulk = az.ess(post, method="bulk")
        ess_tail = az.ess(post, method="tail")
        rhat = az.rhat(post)

    def reduce(ds, how):
        return float(how(np.concatenate([np.ravel(v.values) for v in ds.data_vars.values()])))

    return {
        "name": "pure numpyro + diffrax" + (", dense_mass" if dense_mass else ""),
        "wall_seconds": wall,
        "sampling_seconds": wall,
        "other_seconds": 0.0,
        "sampler": f"numpyro NUTS ({'full' if dense_mass else 'diag'}, 1000 tune, {method} chains)",
        "min_ess_bulk": reduce(ess_bulk, np.min),
        "min_ess_tail": reduce(ess_tail, np.min),
        "max_r_hat": reduce(rhat, np.max),
        "divergences": int(idata.sample_stats["diverging"].values.sum()),
        "grad_evals": int(idata.sample_stats["n_steps"].values.sum()) if "n_steps" in idata.sample_stats else None,
    }


def _f(x, fmt="{:.1f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this file")
    parser.add_argument("--skip-numpyro", action="store_true")
    parser.add_argument("--skip-jaxpm", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="numpyro's PRNG seed")
    parser.add_argument("--jaxpm-seeds", default="", help="comma-separated seeds for extra warm jaxpm runs")
    args = parser.parse_args(argv)

    import jax

    rows = []
    if not args.skip_jaxpm:
        with tempfile.TemporaryDirectory() as cache:
            for label in ("cold", "warm"):
                console.print(f"[bold]jaxpm run {args.config}[/bold] (subprocess, {label} JAX cache) ...")
                rows.append(run_jaxpm(args.config, Path(cache), label))
            for seed in filter(None, args.jaxpm_seeds.split(",")):
                console.print(f"[bold]jaxpm run {args.config} --set seed={seed}[/bold] (warm) ...")
                rows.append(run_jaxpm(args.config, Path(cache), f"warm, seed {seed}", int(seed)))
    if not args.skip_numpyro:
        for dense in (False, True):
            console.print(f"[bold]pure numpyro + diffrax[/bold]{' (dense_mass)' if dense else ''} ...")
            rows.append(run_numpyro(args.seed, dense_mass=dense))
    for r in rows:
        r["ess_per_second"] = (r["min_ess_bulk"] or 0.0) / r["wall_seconds"]

    devices = jax.local_device_count()
    table = Table(title=f"Lotka–Volterra, 4 x (1000 + 1000), {os.cpu_count()} cores, {devices} JAX CPU devices")
    for col in ("implementation", "sampler", "wall s", "sampling s", "min bulk ESS", "min tail ESS", "max r_hat",
                "divergences", "ESS / wall s"):
        table.add_column(col, justify="left" if col in ("implementation", "sampler") else "right")
    for r in rows:
        table.add_row(r["name"], r["sampler"], _f(r["wall_seconds"]), _f(r["sampling_seconds"]),
                      _f(r["min_ess_bulk"], "{:.0f}"),
                      _f(r["min_ess_tail"], "{:.0f}"), _f(r["max_r_hat"], "{:.3f}"), _f(r["divergences"], "{}"),
                      _f(r["ess_per_second"], "{:.2f}"))
    console.print(table)

    result = {"rows": rows, "targets": {}}
    by_name = {r["name"]: r for r in rows}
    ref = by_name.get("pure numpyro + diffrax")
    for label in ("warm", "cold"):
        ours = by_name.get(f"jaxpm run, {label}")
        if not ours:
            continue
        checks = {
            f"whole run <= {TARGETS['wall_seconds']:.0f} s": ours["wall_seconds"] <= TARGETS["wall_seconds"],
            f"min bulk ESS >= {TARGETS['min_ess_bulk']:.0f}": (ours["min_ess_bulk"] or 0) >= TARGETS["min_ess_bulk"],
            f"max r_hat <= {TARGETS['max_r_hat']}": (ours["max_r_hat"] or 9) <= TARGETS["max_r_hat"],
            "no divergences": ours["divergences"] == 0,
        }
        if ref:
            ratio = ours["ess_per_second"] / ref["ess_per_second"] if ref["ess_per_second"] else float("inf")
            result[f"ratio_{label}"] = ratio
            checks[f"ESS/s >= {TARGETS['ratio']:.0f}x pure numpyro (measured {ratio:.2f}x)"] = ratio >= TARGETS["ratio"]
        dense = by_name.get("pure numpyro + diffrax, dense_mass")
        if dense and dense["ess_per_second"]:
            result[f"ratio_{label}_vs_dense"] = ours["ess_per_second"] / dense["ess_per_second"]
        console.print(f"[bold]targets, {label} run[/bold]"
                      + (f" ({result[f'ratio_{label}_vs_dense']:.2f}x numpyro with dense_mass)" if dense else ""))
        for name, ok in checks.items():
            console.print(f"  {'[green]pass[/green]' if ok else '[red]miss[/red]'}  {name}")
        result["targets"][label] = checks
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
