"""Where NUTS chains start when ``sample.start: mode``: around the posterior mode.

PyMC starts every chain at the model's initial point (each prior's support point, or
``sample.initvals``) plus Uniform(-1, 1) noise in the unconstrained space. When the
posterior has a minor mode, such a start can leave a chain there for good: on the
Lotka-Volterra posterior, jittered starts at the prior means sent a chain to a poor fit
(far below the main mode) at some seeds, and max r_hat was far above 1.01.

:func:`mode_start` looks before it leaps:

1. L-BFGS (scipy) on the unconstrained log density, Jacobian terms included, with its
   value and gradient jitted by JAX, from ``sample.restarts`` points: the initial point
   with PyMC's jitter, one seed per restart. A restart whose start or optimum has a
   non-finite logp (a failed ODE solve) is dropped.
2. The best optimum is the mode. Every distinct optimum found is reported (its logp and
   how many restarts reached it): more than one means the posterior has several modes.
3. The Hessian at the mode, from central differences of the gradient (a gradient through
   an ODE adjoint has no forward-mode derivative), gives the Laplace approximation
   ``N(mode, H^-1)``.
4. Each chain starts at its own draw from that approximation: spread as far as the
   posterior is wide, so that r_hat still compares chains that started apart, but not
   across a valley into another mode. With ``jitter: false``, or where the Hessian is not
   positive definite, or the model has more than :data:`MAX_LAPLACE_DIM` dimensions,
   every chain starts at the mode itself.

It also checks ``sample.initvals`` against the model (:func:`initvals`).
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_LAPLACE_DIM = 200
"""Above this many unconstrained dimensions the Hessian (2 gradients per dimension) is
not worth it: chains start at the mode."""

LBFGS_MAX_ITERATIONS = 500
"""L-BFGS iterations per restart: a restart that has not converged by then is kept as it
is (its logp still counts)."""

SAME_MODE_LOGP = 1e-2
"""Two optima whose logp differ by less than this are reported as the same mode."""


@dataclass
class ModeStart:
    """What :func:`mode_start` found, and the chains' starting points.

    ``points[c]`` is chain ``c``'s start as free variable -> value (constrained, what
    ``pm.sample(initvals=...)`` takes); ``flat[c]`` is the same start unconstrained and
    flattened in ``model.value_vars`` order (what nutpie takes).
    """

    mode: np.ndarray
    logp: float
    points: list[dict[str, np.ndarray]]
    flat: list[np.ndarray]
    laplace_sd: np.ndarray | None
    info: dict[str, Any] = field(default_factory=dict)
    _handed_out: Any = field(default_factory=itertools.count, repr=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False)

    def flat_start(self, seed: int) -> np.ndarray:
        """The next chain's start, whatever the ``seed``: nutpie asks once per chain, from
        its worker threads, with a random 64-bit seed (two chains' seeds could agree
        modulo the number of chains; the calls cannot)."""
        with self._lock:
            return self.flat[next(self._handed_out) % len(self.flat)]


def mode_start(model, s, seed: int, initial: dict[str, np.ndarray] | None = None) -> ModeStart:
    """Find the posterior mode from ``s.restarts`` jittered starts and draw one start per
    chain (``s.chains``) from the Laplace approximation there (see the module docstring).

    The restarts are jittered around ``initial`` (free variable -> value) over the model's
    initial point; None: ``s.initvals``. Raises ``RuntimeError`` when no restart reaches
    a finite logp.
    """
    import pymc as pm
    import scipy.optimize

    began = time.perf_counter()
    value_vars = list(model.value_vars)
    names = [v.name for v in value_vars]
    flatten, unflatten = _flattening(model, names)
    value_and_grad = _neg_logp_and_grad(model, unflatten)

    def objective(x):
        v, g = value_and_grad(x)
        return (v, g) if np.isfinite(v) and np.all(np.isfinite(g)) else (np.inf, np.zeros_like(x))

    jittered = pm.initial_point.make_initial_point_fn(
        model=model,
        overrides=(initvals(model, s) if initial is None else initial) or None,
        jitter_rvs=set(model.free_RVs),
        return_transformed=True,
    )
    seeds = np.random.SeedSequence(seed).generate_state(s.restarts)
    optima: list[tuple[float, np.ndarray]] = []
    evaluations = converged = 0
    for restart_seed in seeds:
        x0 = flatten(jittered(int(restart_seed)))
        if not np.isfinite(objective(x0)[0]):
            continue
        r = scipy.optimize.minimize(objective, x0, jac=True, method="L-BFGS-B",
                                    options={"maxiter": LBFGS_MAX_ITERATIONS})
        evaluations += int(r.nfev)
        converged += bool(r.success)
        if np.isfinite(r.fun):
            optima.append((float(r.fun), np.asarray(r.x, dtype=float)))
    if not optima:
        raise RuntimeError(
            f"start: mode found no finite logp from {s.restarts} jittered starts; "
            "set sample.initvals nearer the data, or sample.start=initial"
        )
    optima.sort(key=lambda o: o[0])
    best_neg, mode = optima[0]

    sd = None
    spread = "none (jitter: false)"
    chol = None
    if s.jitter:
        if mode.size > MAX_LAPLACE_DIM:
            spread = f"none ({mode.size} dimensions; the Laplace approximation needs at most {MAX_LAPLACE_DIM})"
        else:
            hessian = _hessian(objective, mode)
            try:
                chol = np.linalg.cholesky(hessian)
            except np.linalg.LinAlgError:
                spread = "none (the Hessian at the mode is not positive definite)"
            else:
                spread = "laplace"
                sd = np.sqrt(np.diag(np.linalg.inv(hessian)))
    rng = np.random.default_rng([seed, s.restarts])
    flat = []
    for _ in range(s.chains):
        x = mode if chol is None else mode + np.linalg.solve(chol.T, rng.standard_normal(mode.size))
        flat.append(x)
    constrained = pm.compile(value_vars, model.replace_rvs_by_values(model.free_RVs), mode="FAST_COMPILE")
    rv_names = [rv.name for rv in model.free_RVs]
    points = [dict(zip(rv_names, map(np.asarray, constrained(*unflatten(x))), strict=False)) for x in flat]
    info = {
        "restarts": int(s.restarts),
        "finite": len(optima),  # restarts that ended at a finite logp
        "converged": converged,  # ... and that L-BFGS says converged
        "modes": _distinct_modes(optima),
        "spread": spread,
        "evaluations": evaluations,
        "seconds": time.perf_counter() - began,
    }
    return ModeStart(mode, -best_neg, points, flat, sd, info)


def _flattening(model, names: list[str]):
    """(point dict -> flat vector, flat vector -> list of arrays) in ``names`` order."""
    point = model.initial_point()
    shapes = [np.shape(point[n]) for n in names]
    sizes = [int(np.prod(shape)) for shape in shapes]
    bounds = np.cumsum([0, *sizes])

    def flatten(p: dict) -> np.ndarray:
        return np.concatenate([np.ravel(np.asarray(p[n], dtype=float)) for n in names])

    def unflatten(x):
        return [x[a:b].reshape(shape) for a, b, shape in zip(bounds[:-1], bounds[1:], shapes, strict=False)]

    return flatten, unflatten


def _neg_logp_and_grad(model, unflatten):
    """-logp and its gradient of a flat unconstrained vector, one jitted JAX call (the
    model's JAX Ops run inside it, as they do in numpyro)."""
    import jax
    import jax.numpy as jnp
    from pymc.sampling.jax import get_jaxified_logp

    neg_logp = get_jaxified_logp(model, negative_logp=False)  # PyMC's flag: False gives -logp
    fn = jax.jit(jax.value_and_grad(lambda x: neg_logp(unflatten(x))))

    def call(x):
        v, g = fn(jnp.asarray(x, dtype=jnp.float64))
        return float(v), np.asarray(g, dtype=float)

    return call


def _hessian(objective, x: np.ndarray) -> np.ndarray:
    """Central differences of the gradient, symmetrised."""
    n = x.size
    h = 1e-3 * np.maximum(1.0, np.abs(x))
    rows = np.empty((n, n))
    for i in range(n):
        step = np.zeros(n)
        step[i] = h[i]
        rows[i] = (objective(x + step)[1] - objective(x - step)[1]) / (2 * h[i])
    return (rows + rows.T) / 2


def _distinct_modes(optima: list[tuple[float, np.ndarray]]) -> list[dict[str, float | int]]:
    """The optima's logp values, best first, with how many restarts reached each."""
    modes: list[dict[str, float | int]] = []
    for neg, _ in optima:
        if modes and abs(-neg - modes[-1]["logp"]) < SAME_MODE_LOGP:
            modes[-1]["restarts"] += 1
        else:
            modes.append({"logp": -neg, "restarts": 1})
    return modes


def initvals(model, s) -> dict[str, np.ndarray]:
    """``sample.initvals`` as arrays of each free variable's shape; a name that is not a
    free variable, or a value of the wrong shape or outside its support, is a ConfigError."""
    from jaxpm.errors import ConfigError, did_you_mean

    free = {rv.name: rv for rv in model.free_RVs}
    out = {}
    point = model.initial_point()
    for name, value in s.initvals.items():
        key = f"sample.initvals.{name}"
        if name not in free:
            raise ConfigError(key, f"{name!r} is not a free variable of the model{did_you_mean(name, list(free))}")
        rv = free[name]
        value_var = model.rvs_to_values[rv]
        shape = np.shape(point[value_var.name])
        try:
            array = np.broadcast_to(np.asarray(value, dtype=rv.dtype), shape).copy()
        except (TypeError, ValueError):
            raise ConfigError(key, f"expected a number or a list of shape {list(shape)}, got {value!r}") from None
        transform = model.rvs_to_transforms.get(rv)
        inner = transform.forward(array, *rv.owner.inputs).eval() if transform is not None else array
        if not np.all(np.isfinite(inner)):
            raise ConfigError(key, f"{value!r} is outside the support of {name}")
        out[name] = array
    return out


TYPICAL_DRAWS = 400
"""Prior draws behind :func:`typical_point`."""

TYPICAL_QUANTILE = 0.005
"""PyMC's start for a variable is kept when it lies within the prior's central 99%."""

TYPICAL_MAX_SIZE = 1000
"""Variables with more scalars than this keep PyMC's start (a CNN's weights)."""


def typical_point(model, seed: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Starts the prior itself finds typical, where PyMC's are not.

    PyMC starts each free variable at its distribution's support point. Mostly that is
    sound (a Normal's mean, a HalfNormal's 1), but not always: a ``TruncatedNormal`` with
    only a lower bound starts at ``lower + 1`` whatever its scale, twenty times the prior
    mean of a predation rate of 0.05, far in its prior's tail. Here
    every entry whose PyMC start lies outside its prior's central 99% (from
    :data:`TYPICAL_DRAWS` joint prior draws) starts at its prior median instead, if that
    is inside the support. Returns ``(free variable -> start, free variable -> reason)``
    for the variables changed.
    """
    import pymc as pm

    rvs = [rv for rv in model.free_RVs if 0 < _size(rv) <= TYPICAL_MAX_SIZE and rv.dtype.startswith("float")]
    if not rvs:
        return {}, {}
    pymc_start = pm.initial_point.make_initial_point_fn(model=model, return_transformed=False)(seed)
    try:
        draws = pm.draw(rvs, draws=TYPICAL_DRAWS, random_seed=seed)
    except Exception:  # noqa: BLE001 - a prior PyMC cannot forward-sample: keep its starts
        return {}, {}
    draws = draws if isinstance(draws, list | tuple) else [draws]
    starts, reasons = {}, {}
    for rv, d in zip(rvs, draws, strict=True):
        d = np.asarray(d, dtype=float)
        start = np.asarray(pymc_start[rv.name], dtype=float)
        lo, median, hi = np.quantile(d, [TYPICAL_QUANTILE, 0.5, 1 - TYPICAL_QUANTILE], axis=0)
        outside = (start < lo) | (start > hi)
        if not np.any(outside):
            continue
        proposal = np.where(outside, median, start).astype(rv.dtype)
        transform = model.rvs_to_transforms.get(rv)
        inner = transform.forward(proposal, *rv.owner.inputs).eval() if transform is not None else proposal
        if not np.all(np.isfinite(inner)):
            continue
        starts[rv.name] = proposal
        where = "" if start.ndim == 0 else f" at {int(outside.sum())} of {start.size} entries"
        reasons[rv.name] = (f"PyMC's start {_short(start)} lies outside the prior's central 99% "
                            f"({_short(lo)} to {_short(hi)}){where}: the prior median {_short(proposal)} instead")
    return starts, reasons


def _size(rv) -> int:
    shape = rv.type.shape
    return 0 if None in shape else int(np.prod(shape, dtype=int))


def _short(x) -> str:
    x = np.asarray(x, dtype=float)
    if x.ndim == 0:
        return f"{float(x):.3g}"
    return "[" + ", ".join(f"{v:.3g}" for v in x.ravel()[:6]) + (", ..." if x.size > 6 else "") + "]"


__all__ = ["ModeStart", "mode_start", "initvals", "typical_point", "MAX_LAPLACE_DIM"]
