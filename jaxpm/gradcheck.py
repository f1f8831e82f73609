"""``jaxpm check-grad``: is every gradient in the model right?

Three checks, each at the same seeded points drawn from the prior (not only the initial
point):

1. **ops** — every wrapped JAX function at its inputs' values there: the derivative of a
   random projection of its outputs along random directions of its float inputs, against
   central finite differences (what ``pytensor.gradient.verify_grad`` does, with the
   step sweep below instead of one fixed step).
2. **model** — the model's dlogp against central finite differences of its logp, along
   random directions (each direction costs a few logp evaluations, whatever the size).
3. **jax** — the C backend's dlogp against ``jax.grad`` of the JAX-compiled logp (the
   ``get_jaxified_logp`` route that numpyro, blackjax and nutpie's JAX backend take).

Where the checks run. A point whose logp is not finite (a failed solve, outside the
support) cannot be checked: it is not counted, more are drawn (up to
:data:`MAX_DRAWS_PER_POINT` per point asked for), and the checks fail when none could be
checked. At a checked point every number is expected to be finite: a NaN gradient, or a
logp that is not finite next to the point, is a failure naming the op or variable and the
point, never a skip.

Finite differences of a noisy function. A solver makes logp noisy at the level of its
tolerance, and where logp is steep in that noise (the log of a concentration near zero,
at a wild prior draw) no single step gives the derivative to ``rtol``. When no step of the
sweep agrees, :func:`central_difference` measures how far apart the estimates at a ladder
of large steps are, and the check passes when the analytic value lies within that spread
of them: a wrong derivative rule (a factor, a sign) still lies far outside it. The report
counts such comparisons (``noise_bounded``); a point where the estimates disagree by more
than half their size cannot be checked at all.

Which model. An adaptive ODE solver's AD gradient treats the step sizes as constants, so
at the configured tolerance it agrees with finite differences only to about that
tolerance: a correct model would fail. Each experiment says what its checks need
(:meth:`~jaxpm.experiments.base.Experiment.check_overrides`: for an ODE, the same model
solved to 1e-10); ``check_grad.set`` adds to or overrides that. The report says, in
``set``, what the checked model was built with; choices ``auto`` made for the run's model
(an ODE's sensitivity) stay as they were and are reported under ``auto``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from jaxpm.progress import Progress

DIRECTIONS = 3
"""Random directions per point for the directional checks."""

MAX_DRAWS_PER_POINT = 10
"""Prior draws tried per point asked for, to find points whose logp is finite."""

STEPS = (1e-6, 1e-4, 1e-2, 1e-5, 1e-3, 1e-7)
"""Relative step sizes tried, in order, by :func:`central_difference`."""

LADDER = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3)
"""Relative steps whose estimates measure the finite differences' own uncertainty (their
spread) when no step of :data:`STEPS` agrees with the analytic value."""

MAX_NOISE = 0.5
"""A ladder whose spread exceeds this fraction of its median cannot check anything."""


@dataclass
class Estimate:
    """A finite-difference derivative: the value closest to the analytic one, and the
    uncertainty it was accepted with (0: it agreed within rtol/atol; NaN: none finite)."""

    value: float
    spread: float = 0.0
    too_noisy: bool = False


@dataclass
class Tally:
    """One check's result so far: the largest errors, the points checked, what went wrong."""

    reference: str
    rtol: float
    atol: float
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    checked: set = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    noise_bounded: int = 0
    too_noisy: int = 0

    def compare(self, analytic: float, numeric: float | Estimate, where: str, point: int) -> None:
        """Judge one analytic value against a numeric one (an :class:`Estimate` brings the
        spread it is allowed beyond rtol/atol)."""
        estimate = numeric if isinstance(numeric, Estimate) else Estimate(numeric)
        if estimate.too_noisy:
            self.too_noisy += 1
            return
        value, spread = estimate.value, estimate.spread
        abs_err = abs(analytic - value)
        rel_err = abs_err / max(abs(analytic), abs(value), 1e-12)
        self.max_abs_err = max(self.max_abs_err, abs_err)
        self.max_rel_err = max(self.max_rel_err, rel_err)
        self.checked.add(point)
        self.noise_bounded += spread > 0
        if not abs_err <= self.atol + self.rtol * max(abs(analytic), abs(value)) + spread:
            bound = f" (finite differences uncertain by {spread:.3g})" if spread else ""
            self.problems.append(f"{where} at point {point}: {analytic:.6g} against {value:.6g} "
                                 f"({self.reference}){bound}, relative error {rel_err:.2g}")

    def problem(self, message: str, point: int) -> None:
        self.checked.add(point)
        self.problems.append(message)

    def result(self, nothing_to_check: bool = False, **extra) -> dict:
        if not self.checked and self.too_noisy:
            self.problems.append(f"finite differences were too noisy to check anything ({self.too_noisy} tries): "
                                 "tighten the solver for the checks with check_grad.set")
        return {
            **extra,
            "ok": not self.problems and (bool(self.checked) or nothing_to_check),
            "points": len(self.checked),
            "max_abs_err": self.max_abs_err,
            "max_rel_err": self.max_rel_err,
            "rtol": self.rtol,
            "atol": self.atol,
            "reference": self.reference,
            "noise_bounded": self.noise_bounded,
            "too_noisy": self.too_noisy,
            "problems": self.problems[:10] + ([f"... and {len(self.problems) - 10} more"] * (len(self.problems) > 10)),
        }


def close(analytic: float, numeric: float, rtol: float, atol: float) -> bool:
    return bool(abs(analytic - numeric) <= atol + rtol * max(abs(analytic), abs(numeric)))


def central_difference(along, analytic: float, scale: float, eps: float | None, rtol: float, atol: float) -> Estimate:
    """d/dh along(h) at 0 by central differences, trying step sizes until one agrees.

    No single step is right for every model: one that suits a smooth function (1e-6)
    measures a solver's noise, one that suits the solver (1e-3) is too coarse elsewhere.
    Trying a sweep and keeping the closest estimate cannot make a wrong gradient pass — a
    factor or sign error disagrees with every step — but stops solver noise from failing
    a right one. When none agrees, the estimates at :data:`LADDER` give the spread the
    analytic value is judged against (see the module docstring). ``check_grad.eps`` fixes
    the step instead.
    """
    memo: dict[float, float] = {}

    def estimate(h: float) -> float:
        if h not in memo:
            memo[h] = (along(h) - along(-h)) / (2 * h)
        return memo[h]

    best = math.nan
    for h in [eps] if eps else [s * scale for s in STEPS]:
        numeric = estimate(h)
        if np.isfinite(numeric) and not abs(numeric - analytic) >= abs(best - analytic):
            best = numeric
        if close(analytic, best, rtol, atol):
            return Estimate(best)
    if eps or not np.isfinite(best):
        return Estimate(best)
    ladder = np.array([estimate(s * scale) for s in LADDER])
    ladder = ladder[np.isfinite(ladder)]
    if ladder.size < 2:
        return Estimate(best)
    spread = float(ladder.max() - ladder.min())
    middle = float(np.median(ladder))
    if spread > MAX_NOISE * abs(middle):
        return Estimate(middle, spread, too_noisy=True)
    inside = float(np.clip(analytic, ladder.min(), ladder.max()))  # the ladder's value nearest the analytic one
    return Estimate(inside, spread)


def _scale(arrays) -> float:
    return max([float(np.max(np.abs(a), initial=0.0)) for a in arrays] + [1.0])


# ------------------------------------------------------------------------- points


def finite_points(model, n: int, seed: int) -> tuple[list[dict[str, np.ndarray]], int]:
    """Up to ``n`` points in value space (transformed as the sampler sees them), drawn from
    the prior, whose logp is finite; and how many were drawn to find them."""
    import pymc as pm

    logp = model.compile_logp()
    rvs = list(model.free_RVs)
    values = [model.rvs_to_values[rv] for rv in rvs]
    to_values = pm.compile(rvs, [_forward(model, rv) for rv in rvs], on_unused_input="ignore") if rvs else None
    limit = n * MAX_DRAWS_PER_POINT
    points: list[dict[str, np.ndarray]] = []
    drawn = 0
    batch = n
    rng_seed = seed
    while len(points) < n and drawn < limit:
        size = min(batch, limit - drawn)
        draws = _draw(rvs, size, rng_seed)
        rng_seed += 1
        for i in range(size):
            drawn += 1
            if to_values is None:
                point = {}
            else:
                transformed = to_values(*[np.asarray(d[i], dtype=rv.dtype) for d, rv in zip(draws, rvs, strict=True)])
                point = {v.name: np.asarray(x, dtype=v.dtype) for v, x in zip(values, transformed, strict=True)}
            if np.isfinite(float(logp(point))):
                points.append(point)
                if len(points) == n:
                    break
        batch = max(n, 2 * batch)
    return points, drawn


def _forward(model, rv):
    """``rv``'s value in the sampler's space: its transform applied, or itself."""
    transform = model.rvs_to_transforms.get(rv)
    return rv if transform is None else transform.forward(rv, *rv.owner.inputs)


def _draw(variables: list, n: int, seed: int) -> list[np.ndarray]:
    """``n`` forward draws of each variable from the prior, one array per variable."""
    import pymc as pm

    if not variables:
        return []
    draws = pm.draw(list(variables), draws=n, random_seed=seed)
    draws = list(draws) if isinstance(draws, list | tuple) else [draws]
    return [np.expand_dims(d, 0) for d in draws] if n == 1 else draws  # draws=1 drops the axis


# ------------------------------------------------------------------------- the checks


def check_ops(prep, points: list[dict], rtol: float, atol: float, eps: float | None) -> list[dict]:
    """Check every wrapped op at its inputs' values at ``points``."""
    import pymc as pm

    model = prep.model
    value_vars = list(model.value_vars)
    rng = np.random.default_rng(prep.spec.seed)
    out = []
    for use in prep.ctx.ops:
        inputs = use.inputs
        tally = Tally("central finite differences", rtol, atol)
        floats = [j for j, x in enumerate(inputs) if x.dtype.startswith("float")]
        if floats and points:
            at_point = pm.compile(value_vars, model.replace_rvs_by_values(inputs), on_unused_input="ignore")
            first = [np.asarray(v) for v in at_point(**points[0])]
            shapes = [np.shape(v) for v in first]
            directional = _directional_op(use, shapes, floats)
            for i, point in enumerate(points):
                at = [np.asarray(v, dtype=x.dtype) for v, x in zip(at_point(**point), inputs, strict=True)]
                directional(at, rng, tally, i, eps)
        out.append(tally.result(op=use.name, nothing_to_check=not floats))
    return out


def _input_name(use, j: int) -> str:
    """The input's argument name, and the model variable it is where it is one: ``args (k)``."""
    name = use.inputs[j].name
    return use.input_names[j] + (f" ({name})" if name else "")


def _float_outputs(outs):
    import jax
    import pytensor.tensor as pt

    leaves = [o for o in jax.tree.leaves(outs) if o.dtype.startswith("float")]
    return pt.concatenate([pt.flatten(o) for o in leaves])


def _directional_op(use, shapes, floats):
    """A check of d/dh <w, f(x + h v)> by central differences against the analytic
    gradient, compiled once per op and returned as ``check(at, rng, tally, point, eps)``."""
    import pytensor
    import pytensor.tensor as pt

    xs = [pt.tensor(dtype=x.dtype, shape=shape) for x, shape in zip(use.inputs, shapes, strict=True)]
    y = _float_outputs(use(*xs))
    w = pt.vector(dtype=y.dtype, shape=(None,))
    cost = pt.sum(y * w)
    f_cost = pytensor.function([*xs, w], cost)
    f_grad = pytensor.function([*xs, w], pytensor.grad(cost, [xs[j] for j in floats]))
    f_size = pytensor.function(xs, y.size, on_unused_input="ignore")

    def check(at, rng, tally: Tally, point: int, eps) -> None:
        n_out = int(f_size(*at))
        for _ in range(DIRECTIONS):
            wv = rng.normal(size=n_out)
            vs = [rng.normal(size=np.shape(at[j])) for j in floats]
            grads = f_grad(*at, wv)
            bad = [j for j, g in zip(floats, grads, strict=True) if not np.all(np.isfinite(g))]
            if bad:
                names = ", ".join(_input_name(use, j) for j in bad)
                tally.problem(f"op {use.name}: the gradient with respect to {names} is not finite at point "
                              f"{point}", point)
                return
            analytic = sum(float(np.sum(g * v)) for g, v in zip(grads, vs, strict=True))

            def along(h, wv=wv, vs=vs):
                moved = list(at)
                for j, v in zip(floats, vs, strict=True):
                    moved[j] = at[j] + h * v
                return float(f_cost(*moved, wv))

            scale = _scale([at[j] for j in floats])
            numeric = central_difference(along, analytic, scale, eps, tally.rtol, tally.atol)
            if not np.isfinite(numeric.value):
                tally.problem(f"op {use.name}: its outputs are not finite next to point {point}, so no finite "
                              "difference could be taken", point)
                return
            tally.compare(analytic, numeric, f"op {use.name}", point)

    return check


def check_model(prep, points: list[dict], rtol: float, atol: float, eps: float | None) -> dict:
    """dlogp against central finite differences of logp, along random directions."""
    model = prep.model
    names = [v.name for v in model.value_vars]
    logp = model.compile_logp()
    dlogp = model.compile_dlogp()
    rng = np.random.default_rng(prep.spec.seed + 1)
    tally = Tally("central finite differences of logp", rtol, atol)
    sizes = [int(np.size(points[0][n])) for n in names] if points else []
    for i, point in enumerate(points):
        g = np.asarray(dlogp(point), dtype=float)
        bad = _nonfinite_parts(g, names, sizes)
        if bad:
            tally.problem(f"dlogp is not finite at point {i}: {bad}", i)
            continue
        for _ in range(DIRECTIONS):
            vs = {n: rng.normal(size=np.shape(point[n])) for n in names}
            v_flat = np.concatenate([np.ravel(vs[n]) for n in names]) if names else np.zeros(0)
            analytic = float(np.dot(g, v_flat))

            def along(h, vs=vs, point=point):
                return float(logp({n: point[n] + h * vs[n] for n in names}))

            numeric = central_difference(along, analytic, _scale(point.values()), eps, rtol, atol)
            if not np.isfinite(numeric.value):
                tally.problem(f"logp is finite at point {i} but not next to it along a random direction, so no "
                              "finite difference could be taken", i)
                break
            tally.compare(analytic, numeric, "dlogp", i)
    return tally.result()


def check_jax(prep, points: list[dict], rtol: float, atol: float) -> dict:
    """C backend dlogp against ``jax.grad`` of the jaxified logp, entry by entry."""
    import jax
    from pymc.sampling.jax import get_jaxified_logp

    model = prep.model
    names = [v.name for v in model.value_vars]
    dlogp = model.compile_dlogp()
    jax_logp = get_jaxified_logp(model)  # sic: negative_logp=True (the default) returns +logp
    jax_grad = jax.jit(jax.grad(lambda xs: jax_logp(xs)))
    tally = Tally("jax.grad of the jaxified logp", rtol, atol)
    sizes = [int(np.size(points[0][n])) for n in names] if points else []
    for i, point in enumerate(points):
        c = np.asarray(dlogp(point), dtype=float)
        j = np.concatenate([np.ravel(np.asarray(g)) for g in jax_grad([point[n] for n in names])]) if names else c
        bad = [f"C: {b}" for b in [_nonfinite_parts(c, names, sizes)] if b]
        bad += [f"JAX: {b}" for b in [_nonfinite_parts(j, names, sizes)] if b]
        if bad:
            tally.problem(f"dlogp is not finite at point {i}: {'; '.join(bad)}", i)
            continue
        diff = np.abs(c - j)
        k = int(np.argmax(diff - (atol + rtol * np.abs(c)))) if diff.size else 0
        if diff.size:
            tally.compare(float(c[k]), float(j[k]), f"dlogp of '{_entry_name(k, names, sizes)}'", i)
            tally.max_rel_err = max(tally.max_rel_err, float((diff / np.maximum(np.abs(c), 1e-12)).max()))
            tally.max_abs_err = max(tally.max_abs_err, float(diff.max()))
    return tally.result()


def _entry_name(k: int, names: list[str], sizes: list[int]) -> str:
    for name, size in zip(names, sizes, strict=True):
        if k < size:
            return name if size == 1 else f"{name}[{k}]"
        k -= size
    return "?"


def _nonfinite_parts(g: np.ndarray, names: list[str], sizes: list[int]) -> str:
    """Which value variables' gradients hold NaN or infinite entries ('' when none do)."""
    parts, start = [], 0
    for name, size in zip(names, sizes, strict=True):
        piece = g[start:start + size]
        start += size
        bad = ~np.isfinite(piece)
        if bad.any():
            parts.append(f"d/d {name} is {float(piece[bad][0])}" + (f" at {int(bad.sum())} of {size} entries"
                                                                      if size > 1 else ""))
    return "; ".join(parts)


def check_gradients(prep, progress: Progress | None = None) -> dict:
    """All three checks for one prepared experiment, in the ``check-grad --json`` form."""
    progress = progress or Progress.quiet()
    spec = prep.spec
    cfg = spec.check_grad
    auto = prep.experiment.auto_choices(prep.ctx.built)
    overrides = {**prep.experiment.check_overrides(prep.section), **dict(cfg.set)}
    if overrides:
        # the model the checks run on keeps the choices "auto" made for the run's model
        kept = {key: value for key, (value, _) in auto.items() if key not in overrides}
        with progress.step(f"{spec.name}: building the model the checks run on ({_show(overrides)})"):
            prep = prep.with_overrides({**kept, **overrides})
    with progress.step(f"{spec.name}: drawing {cfg.points} points from the prior"):
        points, drawn = finite_points(prep.model, cfg.points, spec.seed)
    with progress.step(f"{spec.name}: checking the wrapped ops' gradients"):
        ops = check_ops(prep, points, cfg.rtol, cfg.atol, cfg.eps)
    with progress.step(f"{spec.name}: checking dlogp against finite differences"):
        model = check_model(prep, points, cfg.rtol, cfg.atol, cfg.eps)
    with progress.step(f"{spec.name}: checking dlogp against jax.grad"):
        jax_check = check_jax(prep, points, spec.evaluate.rtol * 100, spec.evaluate.atol * 100)
    problems = []
    if not points:
        problems.append(f"no point could be checked: logp was not finite at any of {drawn} points drawn from the "
                        "prior (failed solves or points outside the support)")
    ok = bool(points) and all(o["ok"] for o in ops) and model["ok"] and jax_check["ok"]
    return {
        "config": spec.label,
        "name": spec.name,
        "ok": ok,
        "points": len(points),
        "points_asked": cfg.points,
        "points_drawn": drawn,
        "checked_points": _shown(points),
        "set": overrides,
        "auto": {key: {"value": value, "reason": reason} for key, (value, reason) in auto.items()},
        "problems": problems,
        "ops": ops,
        "model": model,
        "jax": jax_check,
    }


SHOWN_POINT_SIZE = 100
"""Checked points are listed in the report when each has at most this many numbers."""


def _shown(points: list[dict]) -> list[dict] | None:
    """The checked points (value space), as the problems' "point i" refer to them; None for large models."""
    if not points or sum(int(np.size(v)) for v in points[0].values()) > SHOWN_POINT_SIZE:
        return None
    return [{k: np.asarray(v).tolist() for k, v in p.items()} for p in points]


def _show(overrides: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items())


__all__ = ["check_gradients", "check_ops", "check_model", "check_jax", "finite_points", "central_difference",
           "Estimate", "Tally"]
