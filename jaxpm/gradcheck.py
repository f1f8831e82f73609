"""``jaxpm check-grad``: is every gradient in the model right?

Three checks, each at seeded points drawn from the prior (not only the initial point):

1. **ops** — every wrapped JAX function, through ``pytensor.gradient.verify_grad`` (random
   projection, finite differences), plus a central-difference directional derivative
   whose errors are what the report shows. Ops with more than :data:`FULL_CHECK_MAX`
   inputs (the CNN's 824k weights) are checked along random directions only.
2. **model** — the model's dlogp against central finite differences of its logp, along
   random directions (each direction costs two logp evaluations, whatever the size).
3. **jax** — the C backend's dlogp against ``jax.grad`` of the JAX-compiled logp (the
   ``get_jaxified_logp`` route that numpyro, blackjax and nutpie's JAX backend take).
"""

from __future__ import annotations

import math

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from jaxpm.progress import Progress

FULL_CHECK_MAX = 2000
"""Ops with at most this many scalar inputs also go through ``verify_grad``."""

DIRECTIONS = 3
"""Random directions per point for the directional checks."""


def _err(analytic: float, numeric: float) -> tuple[float, float]:
    abs_err = abs(analytic - numeric)
    return abs_err, abs_err / max(abs(analytic), abs(numeric), 1e-12)


def _draw(variables: list, n: int, seed: int) -> list[np.ndarray]:
    """``n`` forward draws of each variable from the prior, one array per variable."""
    if not variables:
        return []
    draws = pm.draw(list(variables), draws=n, random_seed=seed)
    draws = list(draws) if isinstance(draws, list | tuple) else [draws]
    return [np.expand_dims(d, 0) for d in draws] if n == 1 else draws  # draws=1 drops the axis


def _prior_points(model, n: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``n`` points in value space drawn from the prior (transformed as the sampler sees them)."""
    draws = _draw(model.free_RVs, n, seed)
    points = []
    for i in range(n):
        point = {}
        for rv, d in zip(model.free_RVs, draws, strict=False):
            value_var = model.rvs_to_values[rv]
            transform = model.rvs_to_transforms.get(rv)
            x = np.asarray(d[i], dtype=rv.dtype)
            if transform is not None:
                x = transform.forward(pt.as_tensor(x), *rv.owner.inputs).eval()
            point[value_var.name] = np.asarray(x, dtype=value_var.dtype)
        points.append(point)
    return points


def check_ops(prep, points: int, rtol: float, atol: float, eps: float | None) -> list[dict]:
    """Check every wrapped op at points drawn from the prior of its inputs."""
    out = []
    rng = np.random.default_rng(prep.spec.seed)
    for use in prep.ctx.ops:
        inputs = use.inputs
        floats = [j for j, x in enumerate(inputs) if x.dtype.startswith("float")]
        values = _draw(inputs, points, prep.spec.seed)
        worst_abs = worst_rel = 0.0
        ok = True
        if floats:
            shapes = [np.shape(v[0]) for v in values]
            directional = _directional_op(use, shapes, floats)
            for i in range(points):
                at = [np.asarray(v[i], dtype=x.dtype) for v, x in zip(values, inputs, strict=False)]
                if sum(math.prod(s) for s in shapes) <= FULL_CHECK_MAX:
                    ok &= _verify_grad(use, at, floats, rng, rtol, atol, eps)
                a, r, passed = directional(at, rng, rtol, atol, eps)
                worst_abs, worst_rel, ok = max(worst_abs, a), max(worst_rel, r), ok and passed
        out.append({"op": use.name, "ok": bool(ok), "points": points, "max_abs_err": worst_abs,
                    "max_rel_err": worst_rel})
    return out


def _float_outputs(outs) -> pt.TensorVariable:
    import jax

    leaves = [o for o in jax.tree.leaves(outs) if o.dtype.startswith("float")]
    return pt.concatenate([pt.flatten(o) for o in leaves])


def _verify_grad(use, at, floats, rng, rtol, atol, eps) -> bool:
    def fun(*float_inputs):
        leaves = [pt.constant(a) for a in at]
        for j, x in zip(floats, float_inputs, strict=False):
            leaves[j] = x
        return _float_outputs(use(*leaves))

    try:
        pytensor.gradient.verify_grad(fun, [at[j] for j in floats], rng=rng, abs_tol=atol, rel_tol=rtol, eps=eps)
    except pytensor.gradient.GradientError:
        return False
    return True


def _directional_op(use, shapes, floats):
    """A check of d/dh <w, f(x + h v)> by central differences against the analytic
    gradient, compiled once per op and returned as ``check(at, rng, rtol, atol, eps)``."""
    xs = [pt.tensor(dtype=x.dtype, shape=shape) for x, shape in zip(use.inputs, shapes, strict=False)]
    y = _float_outputs(use(*xs))
    w = pt.vector(dtype=y.dtype, shape=(None,))
    cost = pt.sum(y * w)
    f_cost = pytensor.function([*xs, w], cost)
    f_grad = pytensor.function([*xs, w], pytensor.grad(cost, [xs[j] for j in floats]))
    f_size = pytensor.function(xs, y.size, on_unused_input="ignore")

    def check(at, rng, rtol, atol, eps):
        n_out = int(f_size(*at))
        worst_abs = worst_rel = 0.0
        ok = True
        for _ in range(DIRECTIONS):
            wv = rng.normal(size=n_out)
            vs = [rng.normal(size=np.shape(at[j])) for j in floats]
            analytic = sum(float(np.sum(g * v)) for g, v in zip(f_grad(*at, wv), vs, strict=False))

            def along(h, wv=wv, vs=vs):
                moved = list(at)
                for j, v in zip(floats, vs, strict=False):
                    moved[j] = at[j] + h * v
                return float(f_cost(*moved, wv))

            numeric = _central_difference(along, analytic, _scale([at[j] for j in floats]), eps, rtol, atol)
            a, r = _err(analytic, numeric)
            worst_abs, worst_rel = max(worst_abs, a), max(worst_rel, r)
            ok = ok and _close(analytic, numeric, rtol, atol)
        return worst_abs, worst_rel, ok

    return check


STEPS = (1e-6, 1e-4, 1e-2, 1e-5, 1e-3, 1e-7)
"""Relative step sizes tried, in order, by :func:`_central_difference`."""


def _central_difference(along, analytic: float, scale: float, eps, rtol: float, atol: float) -> float:
    """d/dh along(h) at 0 by central differences, trying step sizes until one agrees.

    An adaptive ODE solver makes ``along`` noisy at the level of its tolerance, so a step
    that suits a smooth function (1e-6) measures noise, and one that suits the solver
    (1e-3) is too coarse elsewhere: no single step is right for every model. Trying a
    sweep and keeping the closest estimate cannot make a wrong gradient pass — a factor
    or sign error disagrees with every step — but stops solver noise from failing a
    right one. ``check_grad.eps`` fixes the step instead.
    """
    best = math.nan
    for h in [eps] if eps else [s * scale for s in STEPS]:
        numeric = (along(h) - along(-h)) / (2 * h)
        if np.isfinite(numeric) and not abs(numeric - analytic) >= abs(best - analytic):
            best = numeric
        if _close(analytic, best, rtol, atol):
            break
    return best


def _close(analytic: float, numeric: float, rtol: float, atol: float) -> bool:
    return bool(abs(analytic - numeric) <= atol + rtol * max(abs(analytic), abs(numeric)))


def _scale(arrays) -> float:
    return max([float(np.max(np.abs(a), initial=0.0)) for a in arrays] + [1.0])


def check_model(prep, points: list[dict], rtol: float, atol: float, eps: float | None) -> dict:
    """dlogp against central finite differences of logp, along random directions."""
    model = prep.model
    names = [v.name for v in model.value_vars]
    logp = model.compile_logp()
    dlogp = model.compile_dlogp()
    rng = np.random.default_rng(prep.spec.seed + 1)
    worst_abs = worst_rel = 0.0
    ok = True
    for point in points:
        g = dlogp(point)
        for _ in range(DIRECTIONS):
            vs = {n: rng.normal(size=np.shape(point[n])) for n in names}
            v_flat = np.concatenate([np.ravel(vs[n]) for n in names])
            analytic = float(np.dot(g, v_flat))

            def along(h, vs=vs, point=point):
                return float(logp({n: point[n] + h * vs[n] for n in names}))

            numeric = _central_difference(along, analytic, _scale(point.values()), eps, rtol, atol)
            if not (np.isfinite(analytic) and np.isfinite(numeric)):
                continue  # a point outside the support (e.g. a failed solve): nothing to compare
            a, r = _err(analytic, numeric)
            worst_abs, worst_rel = max(worst_abs, a), max(worst_rel, r)
            ok = ok and _close(analytic, numeric, rtol, atol)
    return {"ok": bool(ok), "max_abs_err": worst_abs, "max_rel_err": worst_rel,
            "reference": "central finite differences of logp"}


def check_jax(prep, points: list[dict], rtol: float, atol: float) -> dict:
    """C backend dlogp against ``jax.grad`` of the jaxified logp."""
    import jax
    from pymc.sampling.jax import get_jaxified_logp

    model = prep.model
    names = [v.name for v in model.value_vars]
    dlogp = model.compile_dlogp()
    jax_logp = get_jaxified_logp(model)  # sic: negative_logp=True (the default) returns +logp
    jax_grad = jax.jit(jax.grad(lambda xs: jax_logp(xs)))
    worst_abs = worst_rel = 0.0
    ok = True
    for point in points:
        c = np.asarray(dlogp(point))
        j = np.concatenate([np.ravel(np.asarray(g)) for g in jax_grad([point[n] for n in names])])
        finite = np.isfinite(c) & np.isfinite(j)
        diff = np.abs(c - j)[finite]
        if diff.size:
            worst_abs = max(worst_abs, float(diff.max()))
            worst_rel = max(worst_rel, float((diff / np.maximum(np.abs(c[finite]), 1e-12)).max()))
            ok = ok and bool(np.all(diff <= atol + rtol * np.abs(c[finite])))
    return {"ok": bool(ok), "max_abs_err": worst_abs, "max_rel_err": worst_rel,
            "reference": "jax.grad of the jaxified logp"}


def check_gradients(prep, progress=None) -> dict:
    """All three checks for one prepared experiment, in the ``check-grad --json`` form."""
    progress = progress or Progress.quiet()
    cfg = prep.spec.check_grad
    if cfg.set:
        prep = prep.with_overrides(dict(cfg.set), progress)
    spec = prep.spec
    with progress.step(f"{spec.name}: drawing {cfg.points} points from the prior"):
        points = _prior_points(prep.model, cfg.points, spec.seed)
    with progress.step(f"{spec.name}: checking the wrapped ops' gradients"):
        ops = check_ops(prep, cfg.points, cfg.rtol, cfg.atol, cfg.eps)
    with progress.step(f"{spec.name}: checking dlogp against finite differences"):
        model = check_model(prep, points, cfg.rtol, cfg.atol, cfg.eps)
    with progress.step(f"{spec.name}: checking dlogp against jax.grad"):
        jax_check = check_jax(prep, points, spec.evaluate.rtol * 100, spec.evaluate.atol * 100)
    ok = all(o["ok"] for o in ops) and model["ok"] and jax_check["ok"]
    return {
        "config": spec.label,
        "name": spec.name,
        "ok": ok,
        "points": cfg.points,
        "set": dict(cfg.set),
        "ops": ops,
        "model": model,
        "jax": jax_check,
    }
