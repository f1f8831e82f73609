"""The rich tables the commands print: one function per JSON document.

Each takes the document a command also prints with ``--json`` and a console to print on.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _fmt(x) -> str:
    """A number or list as a table cell (escaped: ``[nan, nan]`` is not rich markup)."""
    return escape(_text(x))


def _text(x) -> str:
    if isinstance(x, dict) and "size" in x:  # a large variable's summary (see jaxpm.backends.summary)
        return (f"{x['size']:,} entries: min {_text(x['min'])}, max {_text(x['max'])}, "
                f"L2 {_text(x['l2'])}, first {_text(x['first'])}")
    if isinstance(x, list):
        return "[" + ", ".join(_text(v) for v in x[:6]) + (", ..." if len(x) > 6 else "") + "]"
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
    if ev.get("compared", True):
        out.print(
            f"max abs diff: logp {ev['max_abs_diff']['logp']:.3g}, dlogp {ev['max_abs_diff']['dlogp']:.3g}; "
            f"max rel diff: logp {ev['max_rel_diff']['logp']:.3g}, dlogp {ev['max_rel_diff']['dlogp']:.3g}"
            + (" (of the finite entries)" if ev.get("nonfinite") else "")
            + f" -> {_status(ev['ok'])}"
        )
    else:
        out.print(f"one backend: nothing to compare; logp and dlogp checked for finite numbers -> {_status(ev['ok'])}")
    for d in [*ev["disagreements"], *ev.get("nonfinite", [])]:
        out.print(f"  [red]{escape(d)}[/red]", highlight=False)


def check_grad(res: dict, out: Console) -> None:
    """The ``check-grad`` table of one config: each check, the points it could check, its
    largest errors and the tolerance it was judged by; below it, what the checked model
    was built with and every problem found."""
    where = ", ".join(f"{k}={v}" for k, v in res.get("set", {}).items())
    caption = (f"checked at {res['points']} of {res['points_drawn']} prior draws (logp finite at those)"
               + (f"; on the model with {where}" if where else ""))
    table = Table(title=f"{res['name']}: gradient checks ({res['config']})", caption=caption)
    for col in ("check", "points", "max abs err", "max rel err", "tolerance", "result"):
        table.add_column(col)
    rows = [(f"op {op['op']}", op) for op in res["ops"]]
    rows += [("dlogp vs finite differences", res["model"]), ("dlogp vs jax.grad (JAX backend)", res["jax"])]
    for label, c in rows:
        tolerance = f"rtol {c['rtol']:.0e}, atol {c['atol']:.0e}"
        if c.get("noise_bounded"):
            tolerance += f" (+ FD spread, {c['noise_bounded']}x)"
        table.add_row(label, str(c["points"]), f"{c['max_abs_err']:.2e}", f"{c['max_rel_err']:.2e}", tolerance,
                      _status(c["ok"]))
    out.print(table)
    for problem in [*res.get("problems", []), *[p for _, c in rows for p in c.get("problems", [])]]:
        out.print(f"  [red]{problem}[/red]", highlight=False)


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


def auto(choices: dict, out: Console) -> None:
    """What ``auto`` chose for each setting, and why (``jaxpm run --explain``)."""
    table = Table(title="settings chosen by auto")
    for col in ("setting", "value", "why"):
        table.add_column(col, overflow="fold")
    for key, c in choices.items():
        table.add_row(key, _fmt(c["value"]), c["reason"])
    out.print(table)


__all__ = ["evaluation", "check_grad", "sampling", "auto"]
