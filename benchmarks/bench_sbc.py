"""How fast ``jaxpm sbc`` fits simulations, and what one simulation costs beyond its sampling.

    python benchmarks/bench_sbc.py [CONFIG] [--sims 100] [--workers N] [--fit-set K=V ...] [--json out.json]

Runs ``jaxpm sbc CONFIG --sims N --json`` (default: the packaged ``ode`` config, 100
simulations, a local cluster of one worker per core) in a subprocess, as a user would,
and reads its ``sbc.json``. It prints:

* the whole command's wall time (imports, building the models, simulating the data,
  starting the cluster, every fit, the tests and the plots) and simulations per minute
  over it, with issue 16's goal (100 simulations of ode.yaml in under 5 minutes);
* per simulation (medians over the simulations): the task's seconds on its worker, the
  sampler call's seconds, and what is left: setting the data, thinning, ranking, the
  log-likelihood at L + 1 points, and the record. Their share of the task is what a
  simulation costs beyond sampling;
* the one-off set-up per worker (building the fitting model and compiling the sampler and
  the log-likelihood), which the first simulation on each worker pays; nutpie compiles
  its logp lazily, so its JAX compile lands in that first simulation's sampler seconds;
* the machine's load (``uptime``) before and after: the figures are wall clock on a
  shared machine.

``--fit-set sample.sampler=numpyro`` shows what a sampler that compiles in every call
(PyMC's numpyro path jits the whole sampler afresh) costs instead. A benchmark, not a
test: nothing is asserted.
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


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "unknown"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="ode")
    parser.add_argument("--sims", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--fit-set", action="append", default=[])
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "jaxpm.cli", "sbc", args.config, "--sims", str(args.sims), "--out", out, "--json"]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        for item in args.fit_set:
            cmd += ["--fit-set", item]
        load_before = uptime()
        began = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - began
        load_after = uptime()
        if proc.returncode not in (0, 1):
            sys.stderr.write(proc.stderr[-3000:])
            return proc.returncode
        info = json.loads(proc.stdout)

    t = info["timings"]
    sims = info["simulations"]
    later = [s for s in sims if not s.get("setup_seconds")]  # not the first on its worker
    med = _median
    per_task = med([s["seconds"] for s in later])
    sampler = med([s["sampler_seconds"] for s in later if s.get("sampler_seconds") is not None])
    beyond = med([s["seconds"] - s["sampler_seconds"] for s in later if s.get("sampler_seconds") is not None])
    workers = len(info["workers"])
    figures = {
        "config": args.config,
        "sims": info["sims"],
        "workers": workers,
        "cores": os.cpu_count(),
        "fit_set": args.fit_set,
        "sampler": info["settings"]["sampler"],
        "compiled_once": info["settings"]["compiled_once"],
        "exit_code": proc.returncode,
        "ok": info["ok"],
        "failed": info["failed"],
        "divergent": info["divergent"],
        "wall_seconds": wall,
        "sims_per_minute": 60 * info["sims"] / wall,
        "sbc_run_seconds": t["wall_seconds"],
        "median_task_seconds": per_task,
        "median_sampler_seconds": sampler,
        "median_seconds_beyond_sampling": beyond,
        "share_beyond_sampling": beyond / per_task if per_task else None,
        "steady_sims_per_minute": 60 * workers / per_task if per_task else None,
        "setup_seconds_per_worker": t["setup_seconds_per_worker"],
        "first_sim_sampler_seconds": sorted(s["sampler_seconds"] for s in sims if s.get("setup_seconds")),
        "uptime_before": load_before,
        "uptime_after": load_after,
        "goal": "100 simulations of ode.yaml in under 5 minutes",
        "goal_met": args.config == "ode" and info["sims"] >= 100 and wall < 300,
    }
    print(f"jaxpm sbc {args.config} --sims {info['sims']} {' '.join('--fit-set ' + f for f in args.fit_set)}".strip())
    print(f"  sampler {figures['sampler']['sampler']} ({figures['sampler']['chains']} chains x "
          f"({figures['sampler']['tune']} tune + {figures['sampler']['draws']} draws)), compiled once per worker: "
          f"{figures['compiled_once']}; {workers} workers on {figures['cores']} cores")
    print(f"  whole command: {wall:.1f} s, {figures['sims_per_minute']:.1f} simulations per minute "
          f"(exit {proc.returncode}, {info['failed']} failed, {info['divergent']} divergent)")
    print(f"  per simulation (median, after the first on each worker): {per_task:.3f} s on its worker, "
          f"{sampler:.3f} s sampling, {beyond:.3f} s beyond sampling "
          f"({figures['share_beyond_sampling']:.1%}); steady state {figures['steady_sims_per_minute']:.0f} "
          "simulations per minute")
    print(f"  set-up per worker (model built, sampler and log-likelihood compiled): "
          f"{', '.join(f'{s:.1f}' for s in figures['setup_seconds_per_worker'])} s; first simulation's sampler "
          f"call: {', '.join(f'{s:.1f}' for s in figures['first_sim_sampler_seconds'])} s")
    print(f"  load before: {load_before}\n  load after:  {load_after}")
    if args.config == "ode" and info["sims"] >= 100:
        print(f"  goal, {figures['goal']}: {'pass' if figures['goal_met'] else 'miss'}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


if __name__ == "__main__":
    raise SystemExit(main())
