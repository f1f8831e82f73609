"""``auto``: the sampler settings an expert would choose, read from the model.

A modeller who writes ``sample: {enabled: true}`` for their own ODE should get what the
tuned configs carry by hand. Every setting left at ``auto`` is chosen here, before
sampling starts, and each choice comes with its reason (run.json's ``auto`` block; the
run prints them first). A value written in the config always wins, and the choices
respect it (``mass_matrix: full`` picks a sampler that has one).

- ``sampler``: a fit (``advi``) when NUTS is out of reach (more than :data:`FIT_ABOVE`
  unconstrained scalars, or a fit's start asked for); else NUTS with numpyro, the whole
  sampler one XLA program, when the model's chains can run in parallel under
  ``jax.pmap``; else nutpie, whose chains are threads (``jax.pmap`` cannot trace
  diffrax's implicit solvers today). nutpie first was tried and measured
  (``benchmarks/bench_defaults.py``): better on the post's ODE (3 divergences in 4,000
  draws against numpyro's 29), but on Lotka-Volterra with short runs its low-rank
  adaptation let a chain leave the main mode (300 tuning steps) or diverge 39 times in
  300 draws (1000 tuning steps, 2 chains), where numpyro had none.
- ``mass_matrix``: ``full`` up to :data:`FULL_MASS_MAX` scalars (the rates of an ODE move
  together; a dense matrix costs nothing at that size), else ``low_rank`` for nutpie,
  else ``diag``.
- ``start``: ``mode`` (multi-start L-BFGS, chains at Laplace draws) for NUTS on up to
  :data:`~jaxpm.sampling.starts.MAX_LAPLACE_DIM` scalars when the logp holds a solver (a
  wrapped JAX function with a loop, such as an ODE solve: gradients are expensive, so the
  search is cheap beside sampling, and a chain that starts in a minor mode stays there),
  else ``initial``; for a fit, the experiment's own start (the CNN's ``flax``) where it
  has one.
- ``target_accept``: :data:`SOLVER_TARGET_ACCEPT` for NUTS when the logp holds a solver,
  else PyMC's 0.8. An adaptive solve's logp bends more sharply in some places than in
  others (a noise scale near zero, fast dynamics), and a step size tuned for the bulk
  diverges there: on the post's ODE, numpyro with a full mass matrix gave 29 divergences
  in 4,000 draws at 0.8 and 2 at 0.9 (the same ESS); on Lotka-Volterra 0.9 costs 1.1x the
  wall time, with no divergence at either.
- the initial point: PyMC's support points, except where one lies outside its prior's
  central 99% (:func:`~jaxpm.sampling.starts.typical_point`); ``initvals`` win.
- ``iterations`` (fits): as many as fit in :data:`FIT_BUDGET_SECONDS` at the measured cost
  of one logp+dlogp, between :data:`MIN_ITERATIONS` and PyMC's 20,000.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jaxpm.sampling.base import n_dim
from jaxpm.sampling.jax_nuts import fails_under_pmap
from jaxpm.sampling.registry import MCMC, SAMPLERS
from jaxpm.sampling.settings import AUTO
from jaxpm.sampling.starts import MAX_LAPLACE_DIM, typical_point

FIT_ABOVE = 10_000
"""Above this many unconstrained scalars NUTS is not practical: ``sampler: auto`` fits."""

FULL_MASS_MAX = 50
"""``mass_matrix: auto`` adapts a full mass matrix up to this many unconstrained scalars."""

LOW_RANK_MAX = 5_000
"""... and nutpie's low-rank one up to this many."""

SOLVER_TARGET_ACCEPT = 0.9
"""``target_accept: auto`` for NUTS when the logp holds a solver (else :data:`TARGET_ACCEPT`)."""

TARGET_ACCEPT = 0.8
"""``target_accept: auto`` otherwise: PyMC's default."""

FIT_BUDGET_SECONDS = 60.0
"""``iterations: auto`` for a fit: the steps that fit in about this long."""

MIN_ITERATIONS = 40
MAX_ITERATIONS = 20_000


@dataclass
class Choice:
    """One setting chosen by ``auto``: the value and why."""

    value: Any
    reason: str


@dataclass
class Resolved:
    """The ``sample:`` settings with nothing left at ``auto``, the choices made (setting ->
    :class:`Choice`, also for the initial point of each variable moved), and the starts
    that replace PyMC's (free variable -> value)."""

    settings: Any
    choices: dict[str, Choice] = field(default_factory=dict)
    initial: dict[str, np.ndarray] = field(default_factory=dict)

    def as_json(self) -> dict[str, dict[str, Any]]:
        return {key: {"value": _plain(c.value), "reason": c.reason} for key, c in self.choices.items()}


def resolve(model, settings, *, experiment, section, seed: int) -> Resolved:
    """Choose every ``auto`` setting of ``settings`` (a :class:`~jaxpm.sampling.Sample`) for
    ``model`` (the model the sampler runs on), as the module docstring says."""
    s = settings
    choices: dict[str, Choice] = {}
    size = n_dim(model)
    fit_starts = dict(experiment.fit_starts)
    solvers = _solver_ops(model)

    sampler = s.sampler
    if sampler == AUTO:
        sampler, reason = _choose_sampler(model, s, size, fit_starts)
        choices["sample.sampler"] = Choice(sampler, reason)
    kind = SAMPLERS[sampler]

    mass_matrix = s.mass_matrix
    if mass_matrix == AUTO:
        if not kind.mcmc:
            mass_matrix = "diag"
        elif size <= FULL_MASS_MAX and "full" in kind.mass_matrices:
            mass_matrix = "full"
            choices["sample.mass_matrix"] = Choice("full", f"{size} parameters (at most {FULL_MASS_MAX}): "
                                                           "a dense mass matrix learns how they move together")
        elif size <= LOW_RANK_MAX and "low_rank" in kind.mass_matrices:
            mass_matrix = "low_rank"
            choices["sample.mass_matrix"] = Choice("low_rank", f"{size} parameters: {sampler}'s low-rank "
                                                               "correction to a diagonal mass matrix")
        else:
            mass_matrix = "diag"
            choices["sample.mass_matrix"] = Choice("diag", f"{size} parameters")

    start = s.start
    if start == AUTO:
        start, reason = _choose_start(kind, size, solvers, fit_starts)
        choices["sample.start"] = Choice(start, reason)

    target_accept = s.target_accept
    if target_accept == AUTO:
        target_accept = TARGET_ACCEPT
        if kind.mcmc and solvers:
            target_accept = SOLVER_TARGET_ACCEPT
            choices["sample.target_accept"] = Choice(target_accept, (
                f"a solver in the logp ({', '.join(solvers)}): smaller steps where its curvature changes "
                f"sharply, fewer divergences (else {TARGET_ACCEPT})"))
        elif kind.mcmc:
            choices["sample.target_accept"] = Choice(target_accept, "no solver in the logp: PyMC's default")

    iterations = s.iterations
    if iterations == AUTO:
        iterations = MAX_ITERATIONS
        if not kind.mcmc:
            iterations, reason = _fit_iterations(model)
            choices["sample.iterations"] = Choice(iterations, reason)

    initial: dict[str, np.ndarray] = {}
    if kind.mcmc:
        typical, reasons = typical_point(model, seed)
        for name, value in typical.items():
            if name not in s.initvals:
                initial[name] = value
                choices[f"initial point: {name}"] = Choice(value, reasons[name])
    resolved = s.model_copy(update={"sampler": sampler, "mass_matrix": mass_matrix, "start": start,
                                    "iterations": iterations, "target_accept": target_accept})
    return Resolved(resolved, choices, initial)


def _choose_sampler(model, s, size: int, fit_starts: dict[str, str]) -> tuple[str, str]:
    if s.start in fit_starts:
        return "advi", f"start {s.start} is a start for the fits: mean-field ADVI"
    if size > FIT_ABOVE and s.start != "mode":
        return "advi", (f"{size:,} parameters (more than {FIT_ABOVE:,}): NUTS is not practical, "
                        "mean-field ADVI is")
    wanted = s.mass_matrix if s.mass_matrix != AUTO else None
    candidates = [name for name in MCMC if wanted is None or wanted in SAMPLERS[name].mass_matrices]
    if "numpyro" in candidates:
        problem = _pmap_problem(model)
        if problem is None:
            return "numpyro", ("the whole logp is one XLA program: numpyro runs the sampler in XLA, "
                               "chains in parallel on JAX devices")
        if "nutpie" in candidates:
            return "nutpie", f"numpyro's parallel chains cannot run this model ({problem}): nutpie's chains are threads"
    if candidates:
        return candidates[0], f"the first NUTS sampler with a {wanted} mass matrix"
    return MCMC[0], "the default NUTS sampler"


def _choose_start(kind, size: int, solvers: list[str], fit_starts: dict[str, str]) -> tuple[str, str]:
    if not kind.mcmc:
        if fit_starts:
            start, what = next(iter(fit_starts.items()))
            return start, f"the experiment's own start for a fit: {start} ({what})"
        return "initial", "a fit starts at the initial point"
    if size > MAX_LAPLACE_DIM:
        return "initial", f"{size} parameters: a mode search and Laplace draws cost more than they save"
    if not solvers:
        return "initial", "no solver in the logp: cheap gradients, and a mode search would cost more than it saves"
    return "mode", (f"{size} parameters and a solver in the logp ({', '.join(solvers)}): find the posterior mode "
                    "first, so that no chain starts in a minor mode")


LOOPS = ("while", "scan")
"""JAX primitives that make a wrapped function a solver (an ODE's time steps, Newton iterations)."""


def _solver_ops(model) -> list[str]:
    """The names of the wrapped JAX functions in the logp that run a loop (a solver): where
    gradients are expensive and posteriors can have minor modes."""
    import jax
    from jax.extend import core as jcore
    from pytensor.graph.traversal import applys_between

    from jaxpm.ops import JaxOp

    def loops(jaxpr) -> bool:
        for eqn in jaxpr.eqns:
            if eqn.primitive.name in LOOPS:
                return True
            for value in eqn.params.values():
                for item in value if isinstance(value, tuple | list) else (value,):
                    if isinstance(item, jcore.ClosedJaxpr) and loops(item.jaxpr):
                        return True
        return False

    names = []
    for op in {n.op for n in applys_between(model.value_vars, [model.logp()]) if isinstance(n.op, JaxOp)}:
        if any(None in t.shape for t in op.input_types):
            continue
        try:
            closed = jax.make_jaxpr(op.flat_fn)(*[jax.ShapeDtypeStruct(t.shape, t.dtype) for t in op.input_types])
        except Exception:  # noqa: BLE001 - a function that cannot be traced here is not judged
            continue
        if loops(closed.jaxpr):
            names.append(op.name)
    return sorted(names)


def _pmap_problem(model) -> str | None:
    """Why the model's jaxified logp cannot be traced under ``jax.pmap`` (None: it can).

    Traced only, never run: ``jax.eval_shape`` of the pmapped gradient at the initial point.
    """
    import jax
    from pymc.sampling.jax import get_jaxified_logp

    try:
        logp = get_jaxified_logp(model)
        point = model.initial_point()
        xs = [np.asarray(point[v.name])[None] for v in model.value_vars]
        jax.eval_shape(jax.pmap(jax.grad(lambda *a: logp(list(a)), argnums=tuple(range(len(xs))))), *xs)
    except Exception as e:  # noqa: BLE001 - any failure to trace means numpyro would fail too
        if fails_under_pmap(e):
            return "jax.pmap cannot trace its solver"
        return f"{type(e).__name__} when traced under jax.pmap"
    return None


def _fit_iterations(model) -> tuple[int, str]:
    """The fit's steps that fit in the budget, at the measured cost of one logp+dlogp."""
    seconds = _seconds_per_gradient(model)
    if not math.isfinite(seconds) or seconds <= 0:
        return MAX_ITERATIONS, "PyMC's default (the cost of a gradient could not be measured)"
    n = int(np.clip(FIT_BUDGET_SECONDS / seconds, MIN_ITERATIONS, MAX_ITERATIONS))
    return n, (f"about {FIT_BUDGET_SECONDS:.0f} s of steps at {seconds * 1e3:.3g} ms per logp+dlogp "
               f"(between {MIN_ITERATIONS} and {MAX_ITERATIONS:,})")


def _seconds_per_gradient(model) -> float:
    """One logp+dlogp on the C backend at the initial point (the fits' backend), median of three."""
    try:
        fn = model.logp_dlogp_function(ravel_inputs=True)
        fn.set_extra_values({})
        point = model.initial_point()
        x = np.concatenate([np.ravel(point[v.name]) for v in model.value_vars])
        fn(x)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - start)
        return float(np.median(times))
    except Exception:  # noqa: BLE001
        return math.nan


def _plain(value):
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value


__all__ = ["resolve", "Resolved", "Choice", "FIT_ABOVE", "FULL_MASS_MAX", "LOW_RANK_MAX"]
