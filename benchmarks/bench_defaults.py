"""Do the defaults sample like the tuned configs? Each ODE config, as shipped and cut to defaults.

    python benchmarks/bench_defaults.py [--config ode --config lotka_volterra ...]
        [--seeds 1,2,3,4,5,6] [--json out.json] [--draws 1000 --tune 1000 --chains 4]

For each of the project's ODE configs (ode, lotka_volterra, pharmacokinetics) it runs
``jaxpm run`` twice in fresh interpreters, one right after the other:

* ``shipped``: the config as it is (sampling switched on);
* ``defaults``: the same config with its ``sample:`` section cut to ``{enabled: true,
  draws: 1000, tune: 1000, chains: 4}``, and with no ``check_grad`` or ``sensitivity``
  settings (what a modeller writes for their own data).

It prints, for each, the wall time of the whole command, min bulk ESS, max r_hat,
divergences, what ``auto`` chose, and the targets of issue 14 as pass/miss: defaults
within 1.5x of the shipped wall time, min bulk ESS >= 1,000, r_hat <= 1.01, divergences
<= 0.1 % of draws, and the same posterior (every parameter's median within 0.1 of the
shipped run's 90 % interval width). ``--seeds`` also runs the cut Lotka-Volterra config
at those seeds (every chain in the main mode: r_hat <= 1.01 at each). Both runs share
one JAX compilation cache folder, warmed by a first run of each config that is not timed,
so that neither pays for compiling what the other compiled. Nothing is asserted: it is a
benchmark.
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

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ("ode", "lotka_volterra", "pharmacokinetics")
console = Console() if sys.stdout.isatty() else Console(width=160)


def user_config(name: str, folder: Path, draws: int, tune: int, chains: int) -> Path:
    """The packaged config with its expert settings cut, data paths made absolute."""
    raw = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    raw["sample"] = {"enabled": True, "draws": draws, "tune": tune, "chains": chains}
    raw.pop("check_grad", None)
    raw["ode"].pop("sensitivity", None)
    raw["ode"].pop("max_steps", None)
    _absolute(raw, ROOT / "configs")
    path = folder / f"{name}-defaults.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _absolute(node, base: Path) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "file" and isinstance(value, str) and not Path(value).is_absolute():
                node[key] = str(base / value)
            else:
                _absolute(value, base)
    elif isinstance(node, list):
        for item in node:
            _absolute(item, base)


def run(config, cache: Path, overrides: list[str]) -> dict:
    """``jaxpm run CONFIG --json`` in a fresh interpreter; the wall clock and run.json."""
    env = {**os.environ, "JAXPM_JAX_CACHE": str(cache)}
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "jaxpm.cli", "run", str(config), "--out", out, "--json",
               "--set", "check_grad.enabled=false", "--set", "evaluate.backends=[c]"]
        for o in overrides:
            cmd += ["--set", o]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        wall = time.perf_counter() - start
        if not proc.stdout.strip():
            raise SystemExit(f"jaxpm run {config} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        info = json.loads(proc.stdout)
        import arviz as az

        post = az.from_netcdf(Path(info["run_dir"]) / "posterior.nc").posterior if info["sampling"]["ok"] else None
        quantiles = {}
        if post is not None:
            for name, var in post.data_vars.items():
                values = np.asarray(var.values).reshape(-1, *var.shape[2:])
                quantiles[name] = np.quantile(values, [0.05, 0.5, 0.95], axis=0).tolist()
    s = info["sampling"]
    return {
        "wall_seconds": wall,
        "sampler": s.get("sampler"),
        "mass_matrix": s.get("mass_matrix"),
        "start": s.get("start"),
        "sampling_seconds": s.get("wall_seconds"),
        "min_ess_bulk": s.get("min_ess_bulk"),
        "max_r_hat": s.get("max_r_hat"),
        "divergences": s.get("divergences"),
        "draws_total": s.get("draws_total"),
        "ok": s.get("ok"),
        "auto": info.get("auto", {}),
        "quantiles": quantiles,
    }


def same_posterior(a: dict, b: dict) -> tuple[bool, float]:
    """Every parameter's median within 0.1 of the reference run's 90 % width; the worst ratio."""
    worst = 0.0
    for name, (lo, med, hi) in a["quantiles"].items():
        if name not in b["quantiles"]:
            continue
        width = np.maximum(np.asarray(hi) - np.asarray(lo), 1e-12)
        shift = np.abs(np.asarray(b["quantiles"][name][1]) - np.asarray(med)) / width
        worst = max(worst, float(np.max(shift)))
    return worst <= 0.1, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", choices=CONFIGS, help="repeatable; default: all three")
    parser.add_argument("--seeds", default="", help="extra seeds for the cut Lotka-Volterra config, e.g. 1,2,3,4,5,6")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    names = args.config or list(CONFIGS)
    report: dict = {"configs": {}, "seeds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "xla"
        for name in names:
            shipped = ROOT / "configs" / f"{name}.yaml"
            cut = user_config(name, tmp, args.draws, args.tune, args.chains)
            console.log(f"{name}: warming the compilation cache")
            run(shipped, cache, ["sample.enabled=true", "sample.draws=50", "sample.tune=50"])
            run(cut, cache, ["sample.draws=50", "sample.tune=50"])
            console.log(f"{name}: shipped")
            a = run(shipped, cache, ["sample.enabled=true"])
            console.log(f"{name}: defaults")
            b = run(cut, cache, [])
            report["configs"][name] = {"shipped": a, "defaults": b}
        for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
            cut = user_config("lotka_volterra", tmp, args.draws, args.tune, args.chains)
            console.log(f"lotka_volterra defaults, seed {seed}")
            report["seeds"][seed] = run(cut, cache, [f"seed={seed}"])
    show(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def show(report: dict) -> None:
    table = Table(title="defaults against the shipped configs (4 x (1000 + 1000) unless set)")
    for col in ("config", "run", "sampler", "wall s", "min bulk ESS", "max r_hat", "div", "ratio", "posterior",
                "targets"):
        table.add_column(col)
    for name, pair in report["configs"].items():
        a, b = pair["shipped"], pair["defaults"]
        ratio = b["wall_seconds"] / a["wall_seconds"]
        same, worst = same_posterior(a, b)
        for label, r in (("shipped", a), ("defaults", b)):
            targets = ""
            if label == "defaults":
                hits = {
                    "time<=1.5x": ratio <= 1.5,
                    "ESS>=1000": (r["min_ess_bulk"] or 0) >= 1000,
                    "r_hat<=1.01": (r["max_r_hat"] or 9) <= 1.01,
                    "div<=0.1%": (r["divergences"] or 0) <= 0.001 * (r["draws_total"] or 0),
                    "same posterior": same,
                }
                targets = ", ".join(f"{k} {'pass' if v else 'MISS'}" for k, v in hits.items())
            table.add_row(name, label, f"{r['sampler']} ({r['mass_matrix']}, {r['start']})", f"{r['wall_seconds']:.1f}",
                          f"{r['min_ess_bulk'] or 0:.0f}", f"{r['max_r_hat'] or float('nan'):.3f}",
                          str(r["divergences"]), f"{ratio:.2f}" if label == "defaults" else "",
                          f"{worst:.3f}" if label == "defaults" else "", targets)
    console.print(table)
    if report["seeds"]:
        seeds = Table(title="Lotka-Volterra with defaults, other seeds")
        for col in ("seed", "wall s", "min bulk ESS", "max r_hat", "div", "main mode at every chain"):
            seeds.add_column(col)
        for seed, r in report["seeds"].items():
            seeds.add_row(str(seed), f"{r['wall_seconds']:.1f}", f"{r['min_ess_bulk'] or 0:.0f}",
                          f"{r['max_r_hat'] or float('nan'):.3f}", str(r["divergences"]),
                          "pass" if (r["max_r_hat"] or 9) <= 1.01 else "MISS")
        console.print(seeds)


if __name__ == "__main__":
    main()
