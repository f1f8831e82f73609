"""The ``jaxpm`` command line: a thin Typer layer over the library.

Exit status: 0 all good; 1 a check failed; 2 bad input (one line on stderr, no
traceback unless ``--debug``); 130 interrupted.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    name="jaxpm",
    help="Run PyMC models whose heart is JAX code: build, check gradients, compare backends, sample.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

ConfigsArg = Annotated[Optional[list[str]], typer.Argument(help="Config paths or built-in names (default: the built-in exp, ode and cnn configs).", show_default=False)]  # noqa: E501
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a config value: KEY.PATH=VALUE (VALUE is YAML). Repeatable.")]  # noqa: E501
BackendOpt = Annotated[Optional[list[str]], typer.Option("--backend", help="Backend to use: c, numba or jax. Repeatable.")]  # noqa: E501
OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Output root for run folders (default: the config's output.dir).")]  # noqa: E501
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")]


def _guard(fn, debug: bool) -> int:
    """Run ``fn`` and turn errors into the documented exit statuses."""
    from jaxpm.errors import ConfigError

    try:
        return fn()
    except ConfigError as e:
        if debug:
            traceback.print_exc()
        err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted: finished files were kept", markup=False)
        return 130


def _many_done(result, table, json_out: bool, debug: bool) -> int:
    """The end of a many-run command (sweep, sbc): each failed task's traceback with
    ``--debug``, the result as JSON or ``table``, exit 0 when everything passed, else 1."""
    if debug:
        for outcome in result.outcomes.values():
            if outcome.traceback:
                err.print(f"{outcome.key}:\n{outcome.traceback}", markup=False, highlight=False)
    if json_out:
        _print_json(result.info)
    else:
        table(result.info, out)
    return 0 if result.ok else 1


def _progress():
    from jaxpm.progress import Progress

    return Progress.stderr()


def _configs(configs: list[str] | None) -> list[str]:
    from jaxpm.spec import TRUST_CONFIGS, builtin_configs, resolve_config

    if configs:
        return [str(resolve_config(c)) if not Path(c).exists() else c for c in configs]
    return [str(p) for p in builtin_configs().values() if p.stem in TRUST_CONFIGS]


def _print_json(obj) -> None:
    from jaxpm.rundir import dumps

    sys.stdout.write(dumps(obj, indent=2) + "\n")


@app.command()
def run(
    config: Annotated[str, typer.Argument(help="Config path or built-in name (e.g. ode).")],
    set_: SetOpt = None,
    backend: BackendOpt = None,
    out_dir: OutOpt = None,
    sample: Annotated[Optional[bool], typer.Option("--sample/--no-sample", help="Sample (overrides sample.enabled).")] = None,  # noqa: E501
    explain: Annotated[bool, typer.Option("--explain", help="Say what each setting left at auto would be, and why; run nothing.")] = False,  # noqa: E501
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
):
    """Build the model, evaluate logp/dlogp on each backend, check gradients, sample if
    asked, and write a run folder."""
    from jaxpm import runner, tables
    from jaxpm.spec import cli_overrides

    def go():
        overrides = cli_overrides(set_, backend, out_dir, sample)
        if explain:
            choices = runner.run(config, overrides, progress=_progress(), explain=True)
            if json_out:
                _print_json({"auto": choices})
            else:
                tables.auto(choices, out)
            return 0
        result = runner.run(config, overrides, progress=_progress())
        if json_out:
            _print_json(result.info)
        else:
            tables.evaluation(result.info["evaluation"], out)
            if "check_grad" in result.info:
                tables.check_grad(result.info["check_grad"], out)
            if "sampling" in result.info:
                tables.sampling(result.info["sampling"], out)
            out.print(f"run folder: {result.run_dir}")
        return 0 if result.ok else 1

    raise typer.Exit(_guard(go, debug))


@app.command("compare-backends")
def compare_backends(
    configs: ConfigsArg = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
):
    """logp terms and dlogp on each backend side by side, with the largest differences
    and the time per logp+dlogp evaluation."""
    from jaxpm import tables
    from jaxpm.evaluation import evaluate_backends
    from jaxpm.prepare import prepare
    from jaxpm.spec import cli_overrides

    def go():
        progress = _progress()
        experiments = []
        for config in _configs(configs):
            prep = prepare(config, cli_overrides(set_, backend), progress)
            experiments.append(evaluate_backends(prep, progress))
            if not json_out:
                tables.evaluation(experiments[-1], out)
        if json_out:
            _print_json({"experiments": experiments})
        return 0 if all(e["ok"] for e in experiments) else 1

    raise typer.Exit(_guard(go, debug))


@app.command("check-grad")
def check_grad(
    configs: ConfigsArg = None,
    set_: SetOpt = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
):
    """Gradient checks at points drawn from the prior: every wrapped op and the model's
    dlogp against central finite differences, and the C backend against jax.grad of the
    jaxified logp."""
    from jaxpm import tables
    from jaxpm.gradcheck import check_gradients
    from jaxpm.prepare import prepare
    from jaxpm.spec import cli_overrides

    def go():
        progress = _progress()
        experiments = []
        for config in _configs(configs):
            prep = prepare(config, cli_overrides(set_), progress)
            experiments.append(check_gradients(prep, progress))
            if not json_out:
                tables.check_grad(experiments[-1], out)
        if json_out:
            _print_json({"experiments": experiments})
        return 0 if all(e["ok"] for e in experiments) else 1

    raise typer.Exit(_guard(go, debug))


@app.command("list")
def list_(json_out: JsonOpt = False):
    """Built-in experiments, configs, vector fields, solvers, samplers and backends."""
    from jaxpm import catalog

    items = catalog.catalog()
    if json_out:
        _print_json(items)
        return
    table = Table(title="jaxpm", show_header=True)
    table.add_column("kind")
    table.add_column("names")
    for kind, names in items.items():
        table.add_row(kind, ", ".join(names))
    out.print(table)


@app.command()
def bench(
    configs: ConfigsArg = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    out_dir: OutOpt = None,
    repeats: Annotated[Optional[int], typer.Option("--repeats", min=1, help="Timed calls per implementation after warm-up (default: enough for ~0.5 s each).")] = None,  # noqa: E501
    sample: Annotated[bool, typer.Option("--sample", help="Also time each NUTS sampler (wall time, ESS/s).")] = False,
    sampler: Annotated[Optional[list[str]], typer.Option("--sampler", help="With --sample: a NUTS sampler (repeatable; default: every one).")] = None,  # noqa: E501
    draws: Annotated[int, typer.Option("--draws", min=1, help="With --sample: draws per chain.")] = 500,
    tune: Annotated[int, typer.Option("--tune", min=0, help="With --sample: tuning steps per chain.")] = 500,
    chains: Annotated[int, typer.Option("--chains", min=1, help="With --sample: chains.")] = 2,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
):
    """logp+dlogp per evaluation through jax_op on each backend, pytensor.wrap_jax and pure
    JAX, as ratios to the best pure-JAX figure; with --sample, each sampler's ESS/s."""
    from jaxpm import bench as bench_mod
    from jaxpm.spec import cli_overrides

    def go():
        options = None
        if sample:
            options = bench_mod.SampleOptions(bench_mod.check_samplers(sampler), draws, tune, chains)
        result = bench_mod.bench(
            _configs(configs),
            cli_overrides(set_, backend, out_dir),
            repeats=repeats,
            sample=options,
            progress=_progress(),
            on_result=None if json_out else (lambda entry: bench_mod.show(entry, out)),
        )
        if json_out:
            _print_json(result)
        return 0 if result["ok"] else 1

    raise typer.Exit(_guard(go, debug))


@app.command()
def sweep(
    config: Annotated[Optional[str], typer.Argument(help="Config path or built-in name (optional with --resume).", show_default=False)] = None,  # noqa: E501
    grid: Annotated[Optional[list[str]], typer.Option("--grid", help="Sweep a key over values: KEY.PATH=V1,V2,... (each value YAML). Repeatable: the grid is every combination.")] = None,  # noqa: E501
    set_: SetOpt = None,
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help="Address of an existing Dask scheduler (tcp://host:port); default: a local cluster.")] = None,  # noqa: E501
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Worker processes of the local cluster (default: one per core).")] = None,  # noqa: E501
    out_dir: OutOpt = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="A sweep folder to continue: run only the points whose run folder is not complete.")] = None,  # noqa: E501
    sort: Annotated[str, typer.Option("--sort", help="Column to sort the table by (ess_per_s, us_per_eval, a grid key, ...).")] = "point",  # noqa: E501
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
):
    """Run a grid of variants of one config in parallel on Dask, each a full run, and
    compare them in one table (sweep.csv, sweep.json, sweep.png)."""
    from jaxpm.many import report
    from jaxpm.many import sweep as sweep_mod

    def go():
        progress = _progress()
        plan = sweep_mod.plan(config, set_, grid, resume=resume, progress=progress)
        report.check_sort(sort, plan.keys, plan.sampling, plan.base.label)
        result = sweep_mod.run_sweep(plan, out=out_dir, resume=resume, scheduler=scheduler, workers=workers,
                                     sort=sort, progress=progress)
        return _many_done(result, report.table, json_out, debug)

    raise typer.Exit(_guard(go, debug))


@app.command()
def sbc(
    config: Annotated[Optional[str], typer.Argument(help="Config path or built-in name (optional with --resume).", show_default=False)] = None,  # noqa: E501
    sims: Annotated[Optional[int], typer.Option("--sims", help="Simulations (default: the config's sbc.sims, else 100).")] = None,  # noqa: E501
    set_: SetOpt = None,
    fit_set: Annotated[Optional[list[str]], typer.Option("--fit-set", help="Override a value of the fitting model only (KEY.PATH=VALUE): a narrower prior, another sampler. Repeatable.")] = None,  # noqa: E501
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help="Address of an existing Dask scheduler (tcp://host:port); default: a local cluster.")] = None,  # noqa: E501
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Worker processes of the local cluster (default: one per core).")] = None,  # noqa: E501
    out_dir: OutOpt = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="An sbc folder to continue: fit only the simulations without a finished record.")] = None,  # noqa: E501
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
):
    """Simulation-based calibration: fit data simulated from the prior many times in
    parallel on Dask, rank the true values among the draws, test the ranks for
    uniformity (sbc.json, ranks.csv, ranks.png, ecdf.png)."""
    from jaxpm.many import sbc as sbc_mod
    from jaxpm.many import sbc_report

    def go():
        progress = _progress()
        plan = sbc_mod.plan(config, set_, fit_set, sims=sims, resume=resume, scheduler=scheduler,
                            workers=workers, progress=progress)
        result = sbc_mod.run_sbc(plan, out=out_dir, resume=resume, scheduler=scheduler, workers=workers,
                                 progress=progress)
        return _many_done(result, sbc_report.table, json_out, debug)

    raise typer.Exit(_guard(go, debug))


@app.command()
def compare(
    run_dirs: Annotated[Optional[list[Path]], typer.Argument(help="Two or more run folders written by jaxpm run with sampling.", show_default=False)] = None,  # noqa: E501
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Also write compare.json and compare.png (az.plot_compare) into this folder.")] = None,  # noqa: E501
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
):
    """PSIS-LOO model comparison (ArviZ's compare) of sampled runs fitted to the same
    observed data: elpd_loo, differences and their standard errors, weights."""
    from jaxpm import compare as comparing

    def go():
        result = comparing.compare_runs(run_dirs or [])
        if out_dir is not None:
            comparing.write(result, out_dir)
        if json_out:
            _print_json(result.doc)
        else:
            comparing.show(result, out)
        return 0

    raise typer.Exit(_guard(go, debug))


def main():  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
