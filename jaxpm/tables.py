"""The rich tables the commands print: one function per JSON document.

Each takes the document a command also prints with ``--json`` and a console to print on.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _fmt(x) -> str:
    if isinstance(x, list):
        return "[" + ", ".join(_fmt(v) for v in x[:6]) + (", ..." if len(x) > 6 else "") + "]"
    return f"{x:.8g}" if isinstance(x, float) else str(x)


def _status(ok: bool) -> str:
    return "[green]pass[/green]" if ok else "[bold red]FAIL[/bold red]"


def evaluation(ev: dict, out: Console) -> None:
    """The ``compare-backends`` table of one config."""
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
        f"max rel diff: logp {ev['max_rel_diff']['logp']:.3g}, dlogp {ev['max_rel_diff']['dlogp']:.3g}"
        f" -> {_status(ev['ok'])}"
    )
    for d in ev["disagreements"]:
        out.print(f"  [red]{d}[/red]")


def check_grad(res: dict, out: Console) -> None:
    """The ``check-grad`` table of one config."""
    table = Table(title=f"{res['name']}: gradient checks ({res['config']})")
    for col in ("check", "points", "max abs err", "max rel err", "result"):
        table.add_column(col)
    for op in res["ops"]:
        table.add_row(f"op {op['op']}", str(op["points"]), f"{op['max_abs_err']:.2e}", f"{op['max_rel_err']:.2e}",
                      _status(op["ok"]))
    for key in ("model", "jax"):
        c = res[key]
        table.add_row(f"dlogp vs {c['reference']}", str(res.get("points", "")), f"{c['max_abs_err']:.2e}",
                      f"{c['max_rel_err']:.2e}", _status(c["ok"]))
    out.print(table)


def sampling(s: dict, out: Console) -> None:
    """The settings and figures of a sampling run, and its warnings."""
    table = Table(title="sampling")
    table.add_column("setting")
    table.add_column("value")
    for k, v in s.items():
        if isinstance(v, str | int | float | bool):
            table.add_row(k, _fmt(v))
    out.print(table)
    for w in s.get("warnings", []):
        out.print(f"[yellow]warning:[/yellow] {w}", highlight=False)


__all__ = ["evaluation", "check_grad", "sampling"]
