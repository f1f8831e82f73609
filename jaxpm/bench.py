"""``jaxpm bench``: how fast is logp+dlogp, against what, and which sampler to use.

For each config, one logp+dlogp evaluation (what a gradient-based sampler pays per
leapfrog step) is timed at the configured point for:

1. ``jax_op``: the model as jaxpm builds it, on each configured backend (``c``,
   ``numba``, ``jax``), compiled by :func:`jaxpm.backends.compile_backend`;
2. ``pytensor.wrap_jax``: the same model rebuilt with every ``ctx.apply(fn, ...)`` going
   through ``pytensor.wrap_jax(fn.fn)`` instead of jaxpm's wrapper (:func:`wrap_jax_wrapper`),
   on the same backends; "n/a" with the reason when wrap_jax cannot build, differentiate
   or run the model;
3. pure JAX: ``jax.jit(jax.value_and_grad(logp))`` of the whole model as one JAX program,
   ``logp = pymc.sampling.jax.get_jaxified_logp(model)`` (PyMC's ``negative_logp=True``
   default returns +logp); and, where the model has forward-mode ops, value and
   ``jax.jacfwd`` of the logp in one jitted forward pass, with the ops' raw JAX functions
   (:func:`raw_jax_wrapper`: jaxpm's JAX-backend ``custom_vjp`` refuses forward mode).

Timing: the first call (compilation + one run) is reported apart from the median of
repeated calls after a warm-up (:func:`jaxpm.backends._seconds_per_eval`, every result
fetched as a NumPy array so that asynchronous JAX work is counted). Ratios are to the
fastest pure-JAX figure. Every implementation's logp and gradient are checked against the
C backend's to :data:`AGREE_RTOL` (logp relative to |logp|, the gradient in the max norm
relative to the reference gradient's).

``--sample`` adds, per NUTS sampler, the wall time and effective sample size per second of
a short run (:func:`jaxpm.sampling.sample_and_save`).

Each config gets a run folder ``<out>/<name>-bench/<run-id>/`` with ``bench.json`` (every
figure, machine and package versions) and ``bench.png`` (a bar chart), written whole.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from jaxpm import rundir
from jaxpm.backends import compile_backend, seconds_per_eval
from jaxpm.errors import ConfigError, did_you_mean
from jaxpm.model import build
from jaxpm.ops import JaxOp
from jaxpm.prepare import prepare
from jaxpm.progress import Progress
from jaxpm.sampling import MCMC, sample_and_save

AGREE_RTOL = 1e-8
"""Relative tolerance of the agreement check against the C backend."""

SAMPLERS = MCMC
"""The samplers ``--sample`` compares: every NUTS sampler in the registry."""

SAMPLE_DEFAULTS = {"draws": 500, "tune": 500, "chains": 2}
"""Small sampling runs: enough for a stable ESS/s, short enough for a benchmark."""

TIME_BUDGET_SECONDS = 0.5
"""Without ``--repeats``: timed calls per row to fill about this long (at least
:data:`MIN_REPEATS`, at most :data:`MAX_REPEATS`)."""
MIN_REPEATS = 3
MAX_REPEATS = 1000

PURE_BACKEND = "jax.jit"
"""What the pure-JAX rows show as their backend."""

IMPLEMENTATIONS = {
    "jax_op": "jax_op",
    "wrap_jax": "pytensor.wrap_jax",
    "pure_reverse": "pure JAX value_and_grad",
    "pure_forward": "pure JAX value + jacfwd",
}


# --------------------------------------------------------------------------------------
# The alternative implementations of the same model
# --------------------------------------------------------------------------------------


def wrap_jax_wrapper(notes: list[str]):
    """A model wrapper (see :func:`jaxpm.model.build_model`) that applies every JAX function
    through ``pytensor.wrap_jax`` instead of jaxpm's wrapper.

    ``fn`` is a :class:`jaxpm.ops.JaxFunction`; its raw JAX function ``fn.fn`` is wrapped
    instead. Arguments are split the way ``jax_op`` splits them: array leaves become
    PyTensor constants (wrap_jax would bake them into the function as static values);
    keyword arguments without a PyTensor variable in them are static and bound with
    ``functools.partial``, so that wrap_jax sees only the dynamic inputs.

    ``notes`` collects, per wrapped function, what is known to stop wrap_jax from
    differentiating it (non-float outputs, forward-mode-only functions): the likely
    reason when the model then fails to compile.
    """
    import jax
    import pytensor
    import pytensor.tensor as pt
    from pytensor.graph import Variable

    def as_input(leaf):
        if isinstance(leaf, np.ndarray | np.generic | jax.Array):
            return pt.as_tensor_variable(np.asarray(leaf))
        return leaf

    def has_variable(tree) -> bool:
        return any(isinstance(leaf, Variable) for leaf in jax.tree.leaves(tree))

    def wrapper(fn, *args, **kwargs):
        args = jax.tree.map(as_input, args)
        kwargs = {k: jax.tree.map(as_input, v) for k, v in kwargs.items()}
        static = {k: v for k, v in kwargs.items() if not has_variable(v)}
        dynamic = {k: v for k, v in kwargs.items() if k not in static}
        f = functools.partial(fn.fn, **static)
        f.__name__ = fn.name  # wrap_jax names its Op after the function
        out = pytensor.wrap_jax(f)(*args, **dynamic)
        leaves = [v for v in jax.tree.leaves(out) if isinstance(v, Variable)]
        other = sorted({v.dtype for v in leaves if v.dtype[:5] not in ("float", "compl")})
        if other:
            notes.append(f"'{fn.name}' returns {'/'.join(other)} outputs, and wrap_jax's gradient Op types every "
                         "output's cotangent like the output")
        if fn.grad == "forward":
            notes.append(f"'{fn.name}' is wrapped with grad='forward' in this model (its function may allow "
                         "forward mode only, e.g. diffrax.ForwardMode), and wrap_jax differentiates in reverse mode")
        return out

    return wrapper


def raw_jax_wrapper(fn, *args, **kwargs):
    """A model wrapper under which the JAX backend runs each op as its raw JAX function.

    jaxpm gives forward-mode Ops a ``jax.custom_vjp`` on the JAX backend (so that
    ``jax.grad`` works through e.g. ``diffrax.ForwardMode``); JAX cannot push tangents
    through a ``custom_vjp``, so the forward-mode reference is built with
    ``jax_custom_vjp=False``.
    """
    return fn.variant(jax_custom_vjp=False)(*args, **kwargs)


def pure_jax_reverse(model):
    """``(lp, *dlogp)`` of the value arrays, jitted: ``jax.value_and_grad`` of the model."""
    import jax
    from pymc.sampling.jax import get_jaxified_logp

    logp = get_jaxified_logp(model)  # negative_logp=True (the default) returns +logp

    def value_and_grad(*xs):
        lp, grads = jax.value_and_grad(logp)(list(xs))
        return (lp, *grads)

    return jax.jit(value_and_grad)


def pure_jax_forward(model):
    """``(lp, *dlogp)``: the logp and its ``jax.jacfwd`` in one jitted forward pass
    (``model`` built with :func:`raw_jax_wrapper`)."""
    import jax
    from pymc.sampling.jax import get_jaxified_logp

    logp = get_jaxified_logp(model)

    def twice(xs):
        lp = logp(xs)
        return lp, lp

    def value_and_jacfwd(*xs):
        grads, lp = jax.jacfwd(twice, has_aux=True)(list(xs))
        return (lp, *grads)

    return jax.jit(value_and_jacfwd)


def has_forward_ops(ctx) -> bool:
    return any(use.fn.grad == "forward" for use in ctx.ops)


# --------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------


@dataclass
class Row:
    """One implementation on one backend."""

    kind: str  # jax_op | wrap_jax | pure_reverse | pure_forward
    backend: str
    seconds_per_eval: float | None = None
    first_call_seconds: float | None = None
    compile_seconds: float | None = None
    calls: int | None = None
    logp: float | None = None
    logp_rel_err: float | None = None
    dlogp_rel_err: float | None = None
    agrees: bool | None = None  # None: not run, or nothing to compare with
    ratio_to_best_pure_jax: float | None = None
    error: str | None = None  # why the row is n/a

    @property
    def implementation(self) -> str:
        return IMPLEMENTATIONS[self.kind]

    @property
    def is_pure(self) -> bool:
        return self.kind.startswith("pure")

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {
            "implementation": self.implementation,
            "kind": "pure_jax" if self.is_pure else self.kind,
            "mode": {"pure_reverse": "reverse", "pure_forward": "forward"}.get(self.kind),
            "backend": d.pop("backend"),
            "ok": self.error is None,
            "us_per_eval": None if self.seconds_per_eval is None else self.seconds_per_eval * 1e6,
            **{k: v for k, v in d.items() if k != "kind"},
        }


def _describe(stage: str, e: BaseException) -> str:
    text = str(e).strip()
    first = text.splitlines()[0] if text else ""
    return f"{stage}: {type(e).__name__}: {first}"[:300]


def _timed(fn, args, repeats: int | None) -> tuple[float, int]:
    """(median seconds per call, number of timed calls), after a warm-up; ``repeats=None``
    times enough calls to fill :data:`TIME_BUDGET_SECONDS`."""
    if repeats is not None:
        return seconds_per_eval(fn, args, repeats)[1], repeats
    _, rough = seconds_per_eval(fn, args, MIN_REPEATS)
    n = int(min(MAX_REPEATS, TIME_BUDGET_SECONDS / max(rough, 1e-9)))
    if n <= MIN_REPEATS:
        return rough, MIN_REPEATS
    return seconds_per_eval(fn, args, n)[1], n


def _measure(row: Row, make, args, repeats: int | None, reference) -> tuple[Any, list[np.ndarray] | None]:
    """Compile (``make() -> (fn, compile seconds)``), call once, check, time. Failures are
    recorded in the row, never raised: one broken implementation must not stop the others.
    Returns ``(fn, first outputs)``, ``(None, None)`` on failure."""
    try:
        fn, row.compile_seconds = make()
    except Exception as e:  # noqa: BLE001
        row.error = _describe("compile", e)
        return None, None
    try:
        start = time.perf_counter()
        outs = [np.asarray(o) for o in fn(*args)]
        row.first_call_seconds = time.perf_counter() - start
    except Exception as e:  # noqa: BLE001
        row.error = _describe("first call", e)
        return None, None
    row.logp = float(outs[0])
    if reference is not None:
        _check(row, outs, reference)
    try:
        row.seconds_per_eval, row.calls = _timed(fn, args, repeats)
    except Exception as e:  # noqa: BLE001
        row.error = _describe("timing", e)
    return fn, outs


def _check(row: Row, outs: list[np.ndarray], reference: list[np.ndarray]) -> None:
    """logp relative to |logp|; the gradient in the max norm relative to the reference's."""
    tiny = np.finfo(float).tiny
    lp, lp_ref = float(outs[0]), float(reference[0])
    if lp == lp_ref or (np.isnan(lp) and np.isnan(lp_ref)):
        row.logp_rel_err = 0.0
    elif not np.isfinite(lp) or not np.isfinite(lp_ref):
        row.logp_rel_err = float("inf")
    else:
        row.logp_rel_err = abs(lp - lp_ref) / max(abs(lp_ref), tiny)
    g = [np.ravel(np.asarray(x, dtype=float)) for x in outs[1:]]
    g_ref = [np.ravel(np.asarray(x, dtype=float)) for x in reference[1:]]
    if [x.shape for x in g] != [x.shape for x in g_ref]:
        row.dlogp_rel_err = float("inf")
    else:
        g, g_ref = np.concatenate([*g, [0.0]]), np.concatenate([*g_ref, [0.0]])
        same = (g == g_ref) | (np.isnan(g) & np.isnan(g_ref))
        diff = np.where(same, 0.0, np.nan_to_num(np.abs(g - g_ref), nan=np.inf))
        scale = float(np.max(np.abs(g_ref[np.isfinite(g_ref)]), initial=0.0))
        row.dlogp_rel_err = float(np.max(diff)) / max(scale, tiny) if np.max(diff) > 0 else 0.0
    row.agrees = bool(row.logp_rel_err <= AGREE_RTOL and row.dlogp_rel_err <= AGREE_RTOL)


def _compile_pytensor(model, backend: str):
    def make():
        compiled = compile_backend(model, backend)
        return compiled.logp_dlogp, compiled.compile_seconds

    return make


def _compile_jax(builder, make_model):
    def make():
        model = make_model()
        start = time.perf_counter()
        fn = builder(model)
        return fn, time.perf_counter() - start

    return make


# --------------------------------------------------------------------------------------
# One config
# --------------------------------------------------------------------------------------


@dataclass
class SampleOptions:
    samplers: tuple[str, ...] = SAMPLERS
    draws: int = SAMPLE_DEFAULTS["draws"]
    tune: int = SAMPLE_DEFAULTS["tune"]
    chains: int = SAMPLE_DEFAULTS["chains"]

    def overrides(self) -> list[str]:
        return [f"sample.draws={self.draws}", f"sample.tune={self.tune}", f"sample.chains={self.chains}"]


def check_samplers(samplers) -> tuple[str, ...]:
    """The ``--sampler`` names, validated (bad input otherwise); none given: all four."""
    if not samplers:
        return SAMPLERS
    for s in samplers:
        if s not in SAMPLERS:
            raise ConfigError("--sampler", f"unknown sampler '{s}'{did_you_mean(s, SAMPLERS)}")
    return tuple(dict.fromkeys(samplers))


def machine() -> dict:
    return {
        "processor": platform.processor(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def bench_config(
    config,
    overrides: list[str] | None = None,
    *,
    repeats: int | None = None,
    sample: SampleOptions | None = None,
    progress: Progress | None = None,
) -> dict:
    """Benchmark one config and write its run folder; returns the ``bench.json`` content."""
    progress = progress or Progress.quiet()
    started = time.perf_counter()
    overrides = [*(overrides or []), *(sample.overrides() if sample else [])]
    prep = prepare(config, overrides, progress)
    spec = prep.spec
    folder = rundir.RunFolder.create(spec.output.dir, f"{spec.name}-bench")
    info: dict[str, Any] = {
        "config": spec.label,
        "name": spec.name,
        "run_dir": str(folder.path),
        "status": "running",
        "ok": False,
        "agree_rtol": AGREE_RTOL,
        "repeats": repeats if repeats is not None else "auto",
        "point": {k: rundir.plain(v) for k, v in prep.point.items()},
        "machine": machine(),
        "versions": rundir.versions(),
        "spec": spec.model_dump(mode="json"),
        "files": [],
    }

    def finish(info):
        info["timing"] = {"build_seconds": prep.build_seconds, "total_seconds": time.perf_counter() - started}
        info["machine"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None

    with folder.recorded(info, "bench.json", finish):
        rows = _bench_rows(prep, repeats, progress)
        info["reference"] = {"implementation": "jax_op", "backend": "c"}
        info.update(_summarise(rows))
        if sample is not None:
            info["sampling"] = _bench_samplers(prep, folder, sample, progress)
            failed = [f"{name}: {r['message'] or 'no usable draws'}"
                      for name, r in info["sampling"].items() if not r["ok"]]
            info["failures"] += [f"sampler {f}" for f in failed]
            info["ok"] = info["ok"] and not failed
        try:
            folder.save("bench.png", lambda p: rundir.write_with(p, lambda t: write_chart(info, t)))
        except Exception as e:  # noqa: BLE001 - a chart that cannot be drawn loses no figures
            info["chart_error"] = _describe("bench.png", e)
    return info


def _bench_rows(prep, repeats: int | None, progress: Progress) -> list[Row]:
    spec, model = prep.spec, prep.model
    name = spec.name
    backends = list(spec.evaluate.backends)
    names = [v.name for v in model.value_vars]
    args = [np.asarray(prep.point[n]) for n in names]
    rows: list[Row] = []

    # 1. jax_op on each backend; the C backend's result is the reference for all.
    reference = None
    by_backend: dict[str, Row] = {}
    for backend in ["c", *[b for b in backends if b != "c"]]:
        row = Row("jax_op", backend)
        if backend not in backends:  # C not asked for: compiled and called once, for the reference
            with progress.step(f"{name}: jax_op on c (the reference)"):
                try:
                    compiled = _compile_pytensor(model, "c")()[0]
                    reference = [np.asarray(o) for o in compiled(*args)]
                except Exception as e:  # noqa: BLE001
                    row.error = _describe("reference", e)
                    rows.append(row)
            continue
        with progress.step(f"{name}: jax_op on {backend}"):
            _, outs = _measure(row, _compile_pytensor(model, backend), args, repeats, reference)
        if backend == "c" and outs is not None:
            reference = outs
            _check(row, outs, reference)
        by_backend[backend] = row
    rows += [by_backend[b] for b in backends]

    # 2. pytensor.wrap_jax: the model rebuilt, on each backend.
    wrap_rows = [Row("wrap_jax", b) for b in backends]
    wrapped_model, reason, notes = None, None, []
    if not prep.ctx.ops:
        reason = "the model applies no JAX function through ctx.apply: nothing for wrap_jax to wrap"
    else:
        with progress.step(f"{name}: building the model with pytensor.wrap_jax"):
            try:
                wrapped_model, _ = build(spec, wrapper=wrap_jax_wrapper(notes))
                wrapped_args = [np.asarray(prep.point[v.name]) for v in wrapped_model.value_vars]
                if _uses_jax_op(wrapped_model):
                    wrapped_model = None
                    reason = "the experiment applies JAX functions without ctx.apply, which wrap_jax cannot replace"
            except Exception as e:  # noqa: BLE001
                wrapped_model, reason = None, _describe("build", e)
    if wrapped_model is None:
        wrap_rows = [Row("wrap_jax", "all", error=reason)]
    else:
        for row in wrap_rows:
            with progress.step(f"{name}: pytensor.wrap_jax on {row.backend}"):
                _measure(row, _compile_pytensor(wrapped_model, row.backend), wrapped_args, repeats, reference)
        for r in wrap_rows:
            if r.error and notes and r.error.startswith(("compile", "first call")):
                r.error += f" (likely cause: {'; '.join(notes)})"
        reasons = {r.error for r in wrap_rows}
        if len(wrap_rows) > 1 and len(reasons) == 1 and None not in reasons:  # same failure everywhere
            wrap_rows = [Row("wrap_jax", "all", error=reasons.pop())]
    rows += wrap_rows

    # 3. pure JAX: the whole model as one JAX program.
    pure = [("pure_reverse", pure_jax_reverse, lambda: model)]
    if has_forward_ops(prep.ctx):
        pure.append(("pure_forward", pure_jax_forward, lambda: build(spec, wrapper=raw_jax_wrapper)[0]))
    for kind, builder, make_model in pure:
        row = Row(kind, PURE_BACKEND)
        with progress.step(f"{name}: {row.implementation}"):
            _measure(row, _compile_jax(builder, make_model), args, repeats, reference)
        rows.append(row)
    return rows


def _uses_jax_op(model) -> bool:
    """Whether jaxpm's own Op is still in the model's logp graph."""
    from pytensor.graph.traversal import applys_between

    return any(isinstance(node.op, JaxOp) for node in applys_between(model.value_vars, [model.logp()]))


def _summarise(rows: list[Row]) -> dict:
    """Ratios to the fastest pure-JAX figure (among those that agree), and the verdict."""
    pure = [r.seconds_per_eval for r in rows if r.is_pure and r.seconds_per_eval and r.agrees is not False]
    best = min(pure) if pure else None
    for r in rows:
        if best and r.seconds_per_eval:
            r.ratio_to_best_pure_jax = r.seconds_per_eval / best
    disagree = [f"{r.implementation} ({r.backend})" for r in rows if r.agrees is False]
    broken = [f"jax_op ({r.backend}): {r.error}" for r in rows if r.kind == "jax_op" and r.error]
    return {
        "ok": not disagree and not broken,
        "best_pure_jax_seconds": best,
        "implementations": [r.as_dict() for r in rows],
        "disagreements": disagree,
        "failures": broken,
    }


# --------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------


def _bench_samplers(prep, folder: rundir.RunFolder, options: SampleOptions, progress: Progress) -> dict:
    """Per sampler: wall time, min bulk ESS and ESS/s of a short run (its files under
    ``samples/<sampler>/``). A sampler that fails is reported, not raised."""
    out = {}
    for sampler in options.samplers:
        spec = prep.spec
        sample = spec.sample.model_copy(update={"enabled": True, "sampler": sampler})
        # the samplers are timed here: no predictive checks after them
        predictive = spec.predictive.model_copy(update={"prior": False, "posterior": False, "log_likelihood": False})
        sprep = dataclasses.replace(prep, spec=spec.model_copy(update={"sample": sample, "predictive": predictive}))

        def save(name: str, writer, sampler=sampler):
            folder.save(f"samples/{sampler}/{name}", writer)

        try:
            res = sample_and_save(sprep, save, progress)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - a failed sampler is a result
            res = {"ok": False, "message": _describe("sampling", e)}
        ess_wall = res.get("ess_per_wall_second")
        out[sampler] = {
            "ok": bool(res.get("ok")),
            "message": res.get("message"),
            "draws": options.draws,
            "tune": options.tune,
            "chains": options.chains,
            "wall_seconds": res.get("wall_seconds"),
            "sampling_seconds": res.get("sampling_seconds"),
            "min_ess_bulk": res.get("min_ess_bulk"),
            "ess_per_second": ess_wall,  # over the wall time: what the user waits for
            "ess_per_sampling_second": res.get("ess_per_second"),
            "max_r_hat": res.get("max_r_hat"),
            "divergences": res.get("divergences"),
            "details": res,
        }
    return out


# --------------------------------------------------------------------------------------
# Several configs
# --------------------------------------------------------------------------------------


def bench(
    configs: list[str],
    overrides: list[str] | None = None,
    *,
    repeats: int | None = None,
    sample: SampleOptions | None = None,
    progress: Progress | None = None,
    on_result=None,
) -> dict:
    """``jaxpm bench``: every config in turn; ``on_result(entry)`` after each one."""
    experiments = []
    for config in configs:
        entry = bench_config(config, overrides, repeats=repeats, sample=sample, progress=progress)
        experiments.append(entry)
        if on_result is not None:
            on_result(entry)
    return {
        "ok": all(e["ok"] for e in experiments),
        "machine": machine(),
        "versions": rundir.versions(),
        "experiments": [{k: v for k, v in e.items() if k not in ("machine", "versions", "spec")} for e in experiments],
    }


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


def _us(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    us = seconds * 1e6
    return f"{us:,.0f}" if us >= 1000 else f"{us:,.1f}"


def show(entry: dict, console) -> None:
    """The rich tables of one config: the implementations, then the samplers (if any).
    Why a row is n/a is said below the table, by footnote number."""
    from rich.table import Table

    best = entry.get("best_pure_jax_seconds")
    table = Table(
        title=f"{entry['name']}: logp+dlogp per evaluation ({entry['config']})",
        caption=f"median of repeated calls after warm-up; best pure JAX {_us(best)} µs; "
        f"'agrees': logp and dlogp against jax_op on c, to {AGREE_RTOL:g} relative",
    )
    for col, justify in (("implementation", "left"), ("backend", "left"), ("µs per\nlogp+dlogp", "right"),
                         ("first\ncall s", "right"), ("× best\npure JAX", "right"), ("agrees", "left")):
        table.add_column(col, justify=justify, no_wrap=col in ("implementation", "backend"))
    footnotes = []
    for r in entry["implementations"]:
        if r["error"]:
            footnotes.append(f"{r['implementation']} ({r['backend']}): {r['error']}")
            table.add_row(r["implementation"], r["backend"], f"[yellow]n/a [{len(footnotes)}][/yellow]", "", "", "")
            continue
        first = (r["compile_seconds"] or 0.0) + (r["first_call_seconds"] or 0.0)
        ratio = "" if r["ratio_to_best_pure_jax"] is None else f"{r['ratio_to_best_pure_jax']:.2f}"
        err = max(r["logp_rel_err"] or 0.0, r["dlogp_rel_err"] or 0.0)
        if r["agrees"] is None:
            agrees = "–"
        elif r["agrees"]:
            agrees = f"[green]✓[/green] {err:.0e}"
        else:
            agrees = f"[bold red]✗[/bold red] {err:.0e}"
        table.add_row(r["implementation"], r["backend"], _us(r["seconds_per_eval"]), f"{first:.2f}", ratio, agrees)
    console.print(table)
    for i, note in enumerate(footnotes, 1):
        console.print(f"  [yellow][{i}][/yellow] {note}", highlight=False)
    if entry.get("sampling"):
        st = Table(title=f"{entry['name']}: samplers")
        for col, justify in (("sampler", "left"), ("draws\n×chains", "right"), ("wall s", "right"),
                             ("min bulk\nESS", "right"), ("ESS/s\n(wall)", "right"),
                             ("ESS/s\n(sampling)", "right"), ("diver-\ngences", "right"), ("", "left")):
            st.add_column(col, justify=justify)
        problems = []
        for sampler, s in entry["sampling"].items():
            def f(x, fmt):
                return "" if x is None else format(x, fmt)

            if s["ok"]:
                status = "[green]ok[/green]"
            else:
                problems.append(f"{sampler}: {s.get('message') or 'failed'}")
                status = f"[yellow]failed [{len(footnotes) + len(problems)}][/yellow]"
            st.add_row(sampler, f"{s['draws']}×{s['chains']}", f(s["wall_seconds"], ".1f"), f(s["min_ess_bulk"], ".0f"),
                       f(s["ess_per_second"], ".1f"), f(s["ess_per_sampling_second"], ".1f"),
                       f(s["divergences"], "d"), status)
        console.print(st)
        for i, note in enumerate(problems, len(footnotes) + 1):
            console.print(f"  [yellow][{i}][/yellow] {note}", highlight=False)
    for d in entry.get("disagreements", []):
        console.print(f"  [bold red]disagrees with jax_op on c: {d}[/bold red]")
    for d in entry.get("failures", []):
        console.print(f"  [bold red]failed: {d}[/bold red]")
    console.print(f"run folder: {entry['run_dir']}", highlight=False)


COLOURS = {"jax_op": "tab:blue", "wrap_jax": "tab:orange", "pure_jax": "tab:green"}


def write_chart(entry: dict, path) -> None:
    """Horizontal bars, log scale: µs per logp+dlogp for each implementation/backend."""
    from jaxpm.plots import pyplot

    plt = pyplot()
    rows = entry["implementations"]
    labels = [f"{r['implementation']} ({r['backend']})" for r in rows]
    values = [r["us_per_eval"] or np.nan for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.6))
    try:
        y = np.arange(len(rows))[::-1]
        ax.barh(y, values, color=[COLOURS.get(r["kind"], "tab:gray") for r in rows])
        ax.set_yticks(y, labels)
        ax.set_xscale("log")
        finite = [v for v in values if np.isfinite(v)]
        if finite:
            ax.set_xlim(min(finite) / 2, max(finite) * 4)
        for yi, r, v in zip(y, rows, values, strict=False):
            if np.isfinite(v):
                ratio = r["ratio_to_best_pure_jax"]
                text = f" {_us(v / 1e6)} µs" + ("" if ratio is None else f", {ratio:.2f}×")
                text += " ✗" if r["agrees"] is False else ""
                ax.text(v, yi, text, va="center", fontsize=8)
            else:
                ax.text(ax.get_xlim()[0], yi, " n/a", va="center", fontsize=8, color="gray")
        if entry.get("best_pure_jax_seconds"):
            ax.axvline(entry["best_pure_jax_seconds"] * 1e6, color="tab:green", linestyle="--", linewidth=0.8)
        ax.set_xlabel("µs per logp+dlogp (median, log scale)")
        ax.set_title(f"{entry['name']}: logp+dlogp per evaluation")
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)


__all__ = ["bench", "bench_config", "show", "write_chart", "wrap_jax_wrapper", "raw_jax_wrapper", "SampleOptions"]
