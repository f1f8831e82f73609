"""How long the predictive checks of a sampled run take: jaxpm's JAX programs against PyMC's own path.

    python benchmarks/bench_predictive.py [RUN_DIR] [--pymc] [--prior-draws 500] [--json out.json]

RUN_DIR is a sampled run folder (default: the newest ``results/lotka_volterra/*``, from
``jaxpm run lotka_volterra``: 4 chains x 1000 draws). Its ``config.yaml`` is built again
and its ``posterior.nc`` read; then, in a fresh interpreter each time:

* ``jaxpm``: :func:`jaxpm.predictive.predictive_groups` as a run calls it (the
  posterior predictive and pointwise log-likelihood at every posterior draw, and
  ``--prior-draws`` prior and prior predictive draws: two jitted JAX programs), then
  PSIS-LOO (``az.loo``) and the two figures (``ppc.png``, ``prior_ppc.png``). Twice:
  ``cold``, with an empty JAX compilation cache (a first run), and ``warm``, the same again
  (every later run of the same model and draw count).
* ``--pymc``: the same groups through PyMC's own functions on the same model and draws
  (``pm.sample_posterior_predictive``, ``pm.compute_log_likelihood``,
  ``pm.sample_prior_predictive``), which compile the model for PyTensor's default (C)
  backend and call it once per draw from Python.

Seconds are wall clock, compiling included, imports and model build excluded. A
benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(run_dir: Path, prior_draws: int, pymc: bool) -> dict:
    """One process's figures (called in the worker)."""
    import warnings

    import arviz as az

    import jaxpm  # noqa: F401 - JAX set up first
    from jaxpm.model import build_model
    from jaxpm.plots import ppc
    from jaxpm.predictive import loo, loo_info, predictive_groups

    warnings.simplefilter("ignore")
    model = build_model(str(run_dir / "config.yaml"))
    idata = az.from_netcdf(run_dir / "posterior.nc")
    posterior = idata.posterior[[v.name for v in model.free_RVs]].load()
    info = json.loads((run_dir / "run.json").read_text())
    seed = info["sampling"]["seed"]
    out: dict = {"draws": int(posterior.sizes["chain"] * posterior.sizes["draw"]), "prior_draws": prior_draws}

    began = time.perf_counter()
    done = predictive_groups(model, posterior, seed=seed, prior_draws=prior_draws)
    out["groups_seconds"] = time.perf_counter() - began
    out["steps"] = done.seconds
    fresh = az.InferenceData(posterior=posterior, observed_data=idata.observed_data, **done.groups)
    began = time.perf_counter()
    out["loo"] = loo_info(loo(fresh))
    out["loo_seconds"] = time.perf_counter() - began
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for group in ("posterior_predictive", "prior_predictive"):
            ppc(fresh, group, Path(tmp) / f"{group}.png")
    out["figures_seconds"] = time.perf_counter() - began
    if pymc:
        import pymc as pm

        began = time.perf_counter()
        pm.sample_posterior_predictive(az.InferenceData(posterior=posterior), model=model, random_seed=seed,
                                       progressbar=False)
        out["pymc_posterior_predictive_seconds"] = time.perf_counter() - began
        began = time.perf_counter()
        pm.compute_log_likelihood(az.InferenceData(posterior=posterior), model=model, extend_inferencedata=False,
                                  progressbar=False)
        out["pymc_log_likelihood_seconds"] = time.perf_counter() - began
        began = time.perf_counter()
        pm.sample_prior_predictive(prior_draws, model=model, random_seed=seed)
        out["pymc_prior_seconds"] = time.perf_counter() - began
    return out


def newest_run() -> Path:
    runs = sorted((ROOT / "results" / "lotka_volterra").glob("*/posterior.nc"))
    if not runs:
        sys.exit("no run folder given and none under results/lotka_volterra: run `jaxpm run lotka_volterra` first")
    return runs[-1].parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path)
    parser.add_argument("--pymc", action="store_true", help="also time PyMC's own functions (in the warm process)")
    parser.add_argument("--prior-draws", type=int, default=500)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    run_dir = (args.run_dir or newest_run()).resolve()
    if args.worker:
        print(json.dumps(measure(run_dir, args.prior_draws, args.pymc)))
        return

    results = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "JAXPM_JAX_CACHE": cache}
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        for label, pymc in (("cold", False), ("warm", args.pymc)):
            cmd = [sys.executable, __file__, str(run_dir), "--worker", "--prior-draws", str(args.prior_draws)]
            done = subprocess.run([*cmd, *(["--pymc"] if pymc else [])], env=env, capture_output=True, text=True,
                                  check=True)
            results[label] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"run folder: {run_dir}")
    for label, r in results.items():
        total = r["groups_seconds"] + r["loo_seconds"] + r["figures_seconds"]
        steps = ", ".join(f"{k} {v:.2f} s" for k, v in r["steps"].items())
        print(f"{label}: {r['draws']} posterior + {r['prior_draws']} prior draws: groups {r['groups_seconds']:.2f} s "
              f"({steps}); loo {r['loo_seconds']:.2f} s; figures {r['figures_seconds']:.2f} s; total {total:.2f} s")
        if "pymc_log_likelihood_seconds" in r:
            pymc_total = sum(r[k] for k in ("pymc_posterior_predictive_seconds", "pymc_log_likelihood_seconds",
                                            "pymc_prior_seconds"))
            print(f"  PyMC's functions: posterior predictive {r['pymc_posterior_predictive_seconds']:.2f} s, "
                  f"log-likelihood {r['pymc_log_likelihood_seconds']:.2f} s, prior {r['pymc_prior_seconds']:.2f} s; "
                  f"total {pymc_total:.2f} s against jaxpm's {r['groups_seconds']:.2f} s")
    if args.json:
        args.json.write_text(json.dumps({"run_dir": str(run_dir), **results}, indent=2))


if __name__ == "__main__":
    main()
