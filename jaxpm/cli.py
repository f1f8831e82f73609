"""The ``jaxpm`` command line: a thin Typer layer over :mod:`jaxpm.runner`.

Exit status: 0 all good; 1 a check failed; 2 bad input (one line on stderr, no
traceback unless ``--debug``); 130 interrupted.
"""

from __future__ import annotations

import json
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

ConfigsArg = Annotated[Optional[list[str]], typer.Argument(help="Config paths or built-in names (default: every built-in config).", show_default=False)]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a config value: KEY.PATH=VALUE (VALUE is YAML). Repeatable.")]
BackendOpt = Annotated[Optional[list[str]], typer.Option("--backend", help="Backend to use: c, numba or jax. Repeatable.")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", help="Output root for run folders (default: the config's output.dir).")]
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


def _progress(json_out: bool):
    from jaxpm.progress import Progress

    return Progress.stderr()


def _configs(configs: list[str] | None) -> list[str]:
    from jaxpm.spec import builtin_configs, resolve_config

    if configs:
        return [str(resolve_config(c)) if not Path(c).exists() else c for c in configs]
    return [str(p) for p in builtin_configs().values() if p.stem in ("exp", "ode", "cnn")]


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(obj):
    from jaxpm.results import _default

    return _default(obj)


@app.command()
def run(
    config: Annotated[str, typer.Argument(help="Config path or built-in name (e.g. ode).")],
    set_: SetOpt = None,
    backend: BackendOpt = None,
    out_dir: OutOpt = None,
    sample: Annotated[Optional[bool], typer.Option("--sample/--no-sample", help="Sample (overrides sample.enabled).")] = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
):
    """Build the model, evaluate logp/dlogp on each backend, check gradients, sample if
    asked, and write a run folder."""
    from jaxpm import runner

    def go():
        result = runner.run(config, runner.overrides_from(set_, backend, out_dir, sample), progress=_progress(json_out))
        if json_out:
            _print_json(result.info)
        else:
            _show_evaluation(result.info["evaluation"])
            if "check_grad" in result.info:
                _show_check_grad(result.info["check_grad"])
            if "sampling" in result.info:
                _show_sampling(result.info["sampling"])
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
    from jaxpm import runner

    def go():
        progress = _progress(json_out)
        experiments = []
        for config in _configs(configs):
            prep = runner.prepare(config, runner.overrides_from(set_, backend), progress)
            experiments.append(runner.evaluate_backends(prep, progress))
            if not json_out:
                _show_evaluation(experiments[-1])
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
    """Gradient checks: every wrapped op (verify_grad), the model's dlogp against finite
    differences, and the C backend against jax.grad of the jaxified logp."""
    from jaxpm import runner
    from jaxpm.gradcheck import check_gradients

    def go():
        progress = _progress(json_out)
        experiments = []
        for config in _configs(configs):
            prep = runner.prepare(config, runner.overrides_from(set_), progress)
            experiments.append(check_gradients(prep, progress))
            if not json_out:
                _show_check_grad(experiments[-1])
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


# --------------------------------------------------------------------------- tables


def _fmt(x) -> str:
    if isinstance(x, list):
        return "[" + ", ".join(_fmt(v) for v in x[:6]) + (", ..." if len(x) > 6 else "") + "]"
    return f"{x:.8g}" if isinstance(x, float) else str(x)


def _status(ok: bool) -> str:
    return "[green]pass[/green]" if ok else "[bold red]FAIL[/bold red]"


def _show_evaluation(ev: dict) -> None:
    backends = list(ev["backends"])
    table = Table(title=f"{ev['name']}: logp and dlogp by backend ({ev['config']})")
    table.add_column("term")
    for b in backends:
        table.add_column(b, overflow="fold")
    first = ev["backends"][backends[0]]
    table.add_row("[bold]logp[/bold]", *[_fmt(ev["backends"][b]["logp"]) for b in backends])
    for name in first["logp_terms"]:
        table.add_row(f"  {name}", *[_fmt(ev["backends"][b]["logp_terms"][name]) for b in backends])
    for name in first["dlogp"]:
        table.add_row(f"d/d {name}", *[_fmt(ev["backends"][b]["dlogp"][name]) for b in backends])
    table.add_row("µs per logp+dlogp", *[f"{ev['backends'][b]['seconds_per_eval'] * 1e6:,.1f}" for b in backends])
    table.add_row(
        "compile + 1st call (s)",
        *[f"{ev['backends'][b]['compile_seconds'] + ev['backends'][b]['first_call_seconds']:.2f}" for b in backends],
    )
    out.print(table)
    out.print(
        f"max abs diff: logp {ev['max_abs_diff']['logp']:.3g}, dlogp {ev['max_abs_diff']['dlogp']:.3g}; "
        f"max rel diff: logp {ev['max_rel_diff']['logp']:.3g}, dlogp {ev['max_rel_diff']['dlogp']:.3g} -> {_status(ev['ok'])}"
    )
    for d in ev["disagreements"]:
        out.print(f"  [red]{d}[/red]")


def _show_check_grad(res: dict) -> None:
    table = Table(title=f"{res['name']}: gradient checks ({res['config']})")
    for col in ("check", "points", "max abs err", "max rel err", "result"):
        table.add_column(col)
    for op in res["ops"]:
        table.add_row(f"op {op['op']}", str(op["points"]), f"{op['max_abs_err']:.2e}", f"{op['max_rel_err']:.2e}", _status(op["ok"]))
    for key in ("model", "jax"):
        c = res[key]
        table.add_row(f"dlogp vs {c['reference']}", str(res.get("points", "")), f"{c['max_abs_err']:.2e}", f"{c['max_rel_err']:.2e}", _status(c["ok"]))
    out.print(table)


def _show_sampling(s: dict) -> None:
    table = Table(title="sampling")
    table.add_column("setting")
    table.add_column("value")
    for k, v in s.items():
        if isinstance(v, str | int | float | bool):
            table.add_row(k, _fmt(v))
    out.print(table)
    for w in s.get("warnings", []):
        out.print(f"[yellow]warning:[/yellow] {w}", highlight=False)


@app.command()
def bench(
    configs: ConfigsArg = None,
    set_: SetOpt = None,
    backend: BackendOpt = None,
    out_dir: OutOpt = None,
    repeats: Annotated[Optional[int], typer.Option("--repeats", min=1, help="Timed calls per implementation after warm-up (default: enough for ~0.5 s each).")] = None,
    sample: Annotated[bool, typer.Option("--sample", help="Also time each NUTS sampler (wall time, ESS/s).")] = False,
    sampler: Annotated[Optional[list[str]], typer.Option("--sampler", help="With --sample: nutpie, pymc, numpyro or blackjax (repeatable; default: all four).")] = None,
    draws: Annotated[int, typer.Option("--draws", min=1, help="With --sample: draws per chain.")] = 500,
    tune: Annotated[int, typer.Option("--tune", min=0, help="With --sample: tuning steps per chain.")] = 500,
    chains: Annotated[int, typer.Option("--chains", min=1, help="With --sample: chains.")] = 2,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
):
    """logp+dlogp per evaluation through jax_op on each backend, pytensor.wrap_jax and pure
    JAX, as ratios to the best pure-JAX figure; with --sample, each sampler's ESS/s."""
    from jaxpm import bench as bench_mod
    from jaxpm import runner

    def go():
        options = None
        if sample:
            options = bench_mod.SampleOptions(bench_mod.check_samplers(sampler), draws, tune, chains)
        result = bench_mod.bench(
            _configs(configs),
            runner.overrides_from(set_, backend, out_dir),
            repeats=repeats,
            sample=options,
            progress=_progress(json_out),
            on_result=None if json_out else (lambda entry: bench_mod.show(entry, out)),
        )
        if json_out:
            _print_json(result)
        return 0 if result["ok"] else 1

    raise typer.Exit(_guard(go, debug))


def main():  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
