"""logp+dlogp per call: jaxpm.jax_op against pure JAX, pytensor.wrap_jax and the post's Ops.

    python benchmarks/bench_ops.py [--quick] [--json out.json] [--only ode|ode4|cnn] [--repeats N]

Every implementation is its own PyMC model built the same way, compiled the way PyMC's
NUTS compiles it (``model.logp_dlogp_function(ravel_inputs=True, mode=...)``, then
``f._pytensor_function`` with ``trust_input=True`` called on the raveled point), on the C
backend (mode ``FAST_RUN``) and the JAX backend (mode ``JAX``). The references are the same
log density written directly in JAX on the same unconstrained (raveled) parameters,
Jacobian terms of the log transforms included, jitted as ``value_and_grad`` (reverse) and
as value + ``jacfwd`` (forward, ``diffrax.ForwardMode``); for the ODEs a third, tuned
reference (forward mode through the solve only) is shown for information.

Each row: first call (compile + run) and a check that logp and dlogp agree with the
reverse pure-JAX reference to 1e-8 relative; then all rows of a model are timed in a few
round-robin rounds (warm-up, ``gc.collect()``, a loop of timed calls), and the median of
all timed calls is reported. This is a benchmark, not a test: nothing is asserted about
time; the targets at the end are printed as pass/miss. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import diffrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pytensor.graph import Op
from pytensor.link.jax.dispatch import jax_funcify
from rich.console import Console
from rich.table import Table

import jaxpm  # noqa: F401  (jax_enable_x64 and EQX_ON_ERROR=nan, before anything is traced)
from jaxpm import jax_op

BACKENDS = {"C": "FAST_RUN", "JAX": "JAX"}
AGREE_RTOL = 1e-8
SEED = 20230103
LOG_2PI = float(np.log(2 * np.pi))

# wide enough for the tables when the output is a file or a pipe
console = Console() if sys.stdout.isatty() else Console(width=150)


# --------------------------------------------------------------------------------------
# Log densities in JAX, written as PyMC writes them
# --------------------------------------------------------------------------------------


def normal_lp(x, mu, sigma):
    return -0.5 * ((x - mu) / sigma) ** 2 - jnp.log(sigma) - 0.5 * LOG_2PI


def halfnormal_lp(x, sigma):
    return 0.5 * jnp.log(2.0 / jnp.pi) - jnp.log(sigma) - 0.5 * (x / sigma) ** 2


def lognormal_lp(x, mu, sigma):
    return normal_lp(jnp.log(x), mu, sigma) - jnp.log(x)


# --------------------------------------------------------------------------------------
# The models
# --------------------------------------------------------------------------------------


@dataclass
class Problem:
    """One model, written three ways: a JAX function to wrap, a PyMC model, a JAX logp.

    ``jax_fn(sensitivity)`` returns the named JAX function that the implementations wrap
    ("reverse": diffrax's default ``RecursiveCheckpointAdjoint``; "forward":
    ``diffrax.ForwardMode``). ``build_model(wrapped)`` builds the PyMC model around a
    PyTensor-level version of it. ``jax_logp(fn)`` is the same log density as a JAX
    function of the raveled unconstrained point, value variables in ``names`` order.
    """

    key: str
    title: str
    jax_fn: Callable[[str], Callable]
    build_model: Callable[[Callable], pm.Model]
    jax_logp: Callable[[Callable], Callable]
    names: list[str]
    point: np.ndarray
    implementations: list[Implementation]
    references: list[str]  # sensitivities of the pure-JAX references
    warmup: int  # untimed calls before the first timing round
    repeats: int  # timed calls per row, over all rounds
    rounds: int  # timing rounds, round-robin over the rows
    rewarm: int  # untimed calls before each later round
    post_types: tuple | None = None  # (itype, otype) for the post's hand-written Ops


def _named(fn: Callable, name: str) -> Callable:
    fn.__name__ = fn.__qualname__ = name
    return fn


_ADJOINTS = {"reverse": diffrax.RecursiveCheckpointAdjoint, "forward": diffrax.ForwardMode}


def _ode_fn(key: str, solve: Callable) -> Callable[[str], Callable]:
    """``solve(p, adjoint)`` -> a named function of ``p`` alone, per sensitivity."""

    def make(sensitivity):
        adjoint = _ADJOINTS[sensitivity]()
        return _named(lambda p: solve(p, adjoint), f"{key}_solve_{sensitivity}")

    return make


# --- 1. the post's ODE ----------------------------------------------------------------

POST_TS = np.array([0.0, 1.0, 2.0, 3.0])
POST_OBS = np.array([1.0, 0.367, 0.135, 0.049])


def _decay(t, y, args):
    return -y


def post_solve(y0, adjoint):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_decay),
        diffrax.Dopri5(),
        t0=0.0,
        t1=3.0,
        dt0=0.1,
        y0=y0,
        saveat=diffrax.SaveAt(ts=jnp.asarray(POST_TS)),
        stepsize_controller=diffrax.PIDController(rtol=1e-5, atol=1e-5),
        adjoint=adjoint,
    )
    return sol.ys


def post_ode_problem(quick: bool) -> Problem:
    def build_model(solve):
        with pm.Model() as model:
            y0 = pm.Normal("y0", 0, 1)
            noise = pm.HalfNormal("noise", 1)
            ys = solve(y0)
            pm.Normal("llike", mu=ys, sigma=noise, observed=POST_OBS)
        return model

    def jax_logp(solve):
        def logp(x):
            y0, noise_log = x[0], x[1]
            noise = jnp.exp(noise_log)
            prior = normal_lp(y0, 0.0, 1.0) + halfnormal_lp(noise, 1.0) + noise_log
            return prior + jnp.sum(normal_lp(POST_OBS, solve(y0), noise))

        return logp

    return Problem(
        key="ode",
        title="post ODE: dy/dt = -y, 1 parameter through Dopri5, 4 save points",
        jax_fn=_ode_fn("post", post_solve),
        build_model=build_model,
        jax_logp=jax_logp,
        names=["y0", "noise_log__"],
        point=np.array([0.3, 0.0]),  # y0 = 0 makes the adaptive steps blow up
        implementations=ODE_IMPLEMENTATIONS,
        references=["reverse", "forward", "tuned"],
        warmup=20 if quick else 50,
        repeats=200 if quick else 500,
        rounds=4 if quick else 5,
        rewarm=5,
        post_types=(pt.dscalar, pt.dvector),
    )


# --- 2. Lotka-Volterra: 4 parameters through the solver, 21 save points --------------

LV_THETA = np.array([0.55, 0.028, 0.8, 0.024])  # (a, b, c, d)
LV_Y0 = np.array([33.0, 6.2])
LV_TS = np.arange(21.0)
LV_PRIOR_SIGMA = np.float64(0.5)  # numpy floats: PyTensor makes a Python 0.5 a float32 constant, and log(0.5) float32
LV_NOISE = 0.1
LV_SIGMA_SCALE = np.float64(0.5)


def _lotka_volterra(t, y, theta):
    a, b, c, d = theta[0], theta[1], theta[2], theta[3]
    u, v = y[0], y[1]
    return jnp.stack([(a - b * v) * u, (-c + d * u) * v])


def lv_solve(theta, adjoint):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_lotka_volterra),
        diffrax.Dopri5(),
        t0=0.0,
        t1=20.0,
        dt0=0.1,
        y0=jnp.asarray(LV_Y0),
        args=theta,
        saveat=diffrax.SaveAt(ts=jnp.asarray(LV_TS)),
        stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6),
        adjoint=adjoint,
    )
    return sol.ys


def lv_problem(quick: bool) -> Problem:
    rng = np.random.default_rng(SEED)
    truth = np.asarray(jax.jit(lambda th: lv_solve(th, diffrax.RecursiveCheckpointAdjoint()))(LV_THETA))
    observed = truth * np.exp(LV_NOISE * rng.standard_normal(truth.shape))
    prior_mu = np.log(LV_THETA)

    def build_model(solve):
        with pm.Model() as model:
            theta = pm.LogNormal("theta", mu=prior_mu, sigma=LV_PRIOR_SIGMA, shape=4)
            sigma = pm.HalfNormal("sigma", LV_SIGMA_SCALE)
            ys = solve(theta)
            pm.LogNormal("pops", mu=pt.log(ys), sigma=sigma, observed=observed)
        return model

    def jax_logp(solve):
        def logp(x):
            theta_log, sigma_log = x[:4], x[4]
            theta, sigma = jnp.exp(theta_log), jnp.exp(sigma_log)
            prior = jnp.sum(lognormal_lp(theta, prior_mu, LV_PRIOR_SIGMA) + theta_log)
            prior += halfnormal_lp(sigma, LV_SIGMA_SCALE) + sigma_log
            return prior + jnp.sum(lognormal_lp(observed, jnp.log(solve(theta)), sigma))

        return logp

    point = np.concatenate([np.log(LV_THETA * np.array([1.05, 0.97, 0.98, 1.03])), [np.log(0.15)]])
    return Problem(
        key="ode4",
        title="ode4: Lotka-Volterra, 4 parameters through Dopri5 (rtol=atol=1e-6), 21 save points",
        jax_fn=_ode_fn("lv", lv_solve),
        build_model=build_model,
        jax_logp=jax_logp,
        names=["theta_log__", "sigma_log__"],
        point=point,
        implementations=ODE_IMPLEMENTATIONS,
        references=["reverse", "forward", "tuned"],
        warmup=20 if quick else 50,
        repeats=200 if quick else 500,
        rounds=4 if quick else 5,
        rewarm=5,
        post_types=(pt.dvector, pt.dmatrix),
    )


# --- 3. the post's CNN ------------------------------------------------------------------


class CNN(nn.Module):
    """The post's (flax's MNIST example) CNN: 824,458 parameters for 28x28x1 images."""

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(features=32, kernel_size=(3, 3))(x)
        x = nn.relu(x)
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = nn.Conv(features=64, kernel_size=(3, 3))(x)
        x = nn.relu(x)
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nn.Dense(features=256)(x)
        x = nn.relu(x)
        return nn.Dense(features=10)(x)


def cnn_logits(params, images):
    return CNN().apply({"params": params}, images)


def digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (no download), resized to 28x28x1 in [0, 1]."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    small = x[:n].reshape(n, 8, 8) / 16.0
    images = np.asarray(jax.image.resize(jnp.asarray(small), (n, 28, 28), "linear"))
    return images[..., None], y[:n].astype("int64")


def cnn_problem(quick: bool) -> Problem:
    images, labels = digits(1000)
    shapes = jax.eval_shape(lambda: CNN().init(jax.random.key(0), jnp.zeros((1, 28, 28, 1))))["params"]
    layout = [(layer, name, tuple(s.shape)) for layer, ps in shapes.items() for name, s in ps.items()]
    names = [f"{layer}_{name}" for layer, name, _ in layout]
    sizes = [int(np.prod(shape)) for *_, shape in layout]
    assert sum(sizes) == 824_458, sum(sizes)

    def build_model(net):
        with pm.Model() as model:
            params = {}
            for layer, name, shape in layout:
                params.setdefault(layer, {})[name] = pm.Normal(f"{layer}_{name}", 0, 1, shape=shape)
            logits = net(params, images)
            pm.Categorical("label", logit_p=logits, observed=labels)
        return model

    def jax_logp(net):
        x_images = jnp.asarray(images)

        def unravel(x):
            params, start = {}, 0
            for (layer, name, shape), size in zip(layout, sizes, strict=False):
                params.setdefault(layer, {})[name] = x[start : start + size].reshape(shape)
                start += size
            return params

        def logp(x):
            logits = net(unravel(x), x_images)
            loglik = jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1)
            return jnp.sum(normal_lp(x, 0.0, 1.0)) + jnp.sum(loglik)

        return logp

    return Problem(
        key="cnn",
        title="cnn: the post's flax CNN, 824,458 Normal(0, 1) weights, 1000 digits (28x28)",
        jax_fn=lambda sensitivity: cnn_logits,
        build_model=build_model,
        jax_logp=jax_logp,
        names=names,
        point=0.1 * np.random.default_rng(SEED).standard_normal(sum(sizes)),
        implementations=CNN_IMPLEMENTATIONS,
        references=["reverse"],
        warmup=1,
        repeats=3,
        rounds=3,
        rewarm=0,
    )


# --------------------------------------------------------------------------------------
# The implementations: each builder returns a function of PyTensor variables
# --------------------------------------------------------------------------------------


@dataclass
class Implementation:
    name: str
    kind: str  # "jax_op" | "wrap_jax" | "post": what the targets compare
    build: Callable[[Problem], Callable]


def build_jax_op_reverse(problem: Problem, fuse_vjp: bool) -> Callable:
    return jax_op(problem.jax_fn("reverse"), grad="reverse", fuse_vjp=fuse_vjp)


def build_jax_op_auto(problem: Problem) -> Callable:
    """``jax_op(solve)`` with no arguments, ``solve`` written as the post's readers write
    it (diffrax's default adjoint): what ``grad="auto"`` makes of it."""
    return jax_op(problem.jax_fn("reverse"))


def build_jax_op_forward(problem: Problem) -> Callable:
    return jax_op(problem.jax_fn("forward"), grad="forward")


def build_wrap_jax(problem: Problem) -> Callable:
    return pytensor.wrap_jax(problem.jax_fn("reverse"))


def build_post_ops(problem: Problem) -> Callable:
    """The post's pattern: an Op around ``jax.jit(solve)`` whose grad is a second Op
    around the jitted VJP, both registered with ``jax_funcify`` for the JAX backend."""
    sol_op_jax = problem.jax_fn("reverse")
    itype, otype = problem.post_types
    jitted_sol_op_jax = jax.jit(sol_op_jax)

    def vjp_sol_op_jax(y0, gz):
        _, vjp_fn = jax.vjp(sol_op_jax, y0)
        return vjp_fn(gz)[0]

    jitted_vjp_sol_op_jax = jax.jit(vjp_sol_op_jax)

    class SolOp(Op):
        itypes = [itype]
        otypes = [otype]

        def perform(self, node, inputs, outputs):
            (y0,) = inputs
            result = jitted_sol_op_jax(y0)
            outputs[0][0] = np.asarray(result, dtype="float64")

        def grad(self, inputs, output_grads):
            (y0,) = inputs
            (gz,) = output_grads
            return [vjp_sol_op(y0, gz)]

    class VJPSolOp(Op):
        itypes = [itype, otype]
        otypes = [itype]

        def perform(self, node, inputs, outputs):
            (y0, gz) = inputs
            result = jitted_vjp_sol_op_jax(y0, gz)
            outputs[0][0] = np.asarray(result, dtype="float64")

    sol_op = SolOp()
    vjp_sol_op = VJPSolOp()

    @jax_funcify.register(SolOp)
    def sol_op_jax_funcify(op, **kwargs):
        return sol_op_jax

    @jax_funcify.register(VJPSolOp)
    def vjp_sol_op_jax_funcify(op, **kwargs):
        return vjp_sol_op_jax

    return sol_op


ODE_IMPLEMENTATIONS = [
    Implementation("jax_op(solve), no arguments (grad=auto)", "jax_op", build_jax_op_auto),
    Implementation("jax_op reverse, fuse_vjp=True", "jax_op", lambda p: build_jax_op_reverse(p, True)),
    Implementation("jax_op reverse, fuse_vjp=False", "jax_op", lambda p: build_jax_op_reverse(p, False)),
    Implementation("jax_op forward", "jax_op", build_jax_op_forward),
    Implementation("pytensor.wrap_jax", "wrap_jax", build_wrap_jax),
    Implementation("post's hand-written Ops", "post", build_post_ops),
]
CNN_IMPLEMENTATIONS = [
    Implementation("jax_op reverse, fuse_vjp=True", "jax_op", lambda p: build_jax_op_reverse(p, True)),
    Implementation("jax_op reverse, fuse_vjp=False", "jax_op", lambda p: build_jax_op_reverse(p, False)),
    Implementation("pytensor.wrap_jax", "wrap_jax", build_wrap_jax),
]
REFERENCE_NAMES = {
    "reverse": "pure JAX value_and_grad",
    "forward": "pure JAX value + jacfwd",
    "tuned": "pure JAX, jacfwd through the solve only",
}


def compile_pymc(problem: Problem, wrapped: Callable, mode: str) -> Callable:
    """logp+dlogp of the raveled point, compiled and called the way PyMC's NUTS does."""
    model = problem.build_model(wrapped)
    f = model.logp_dlogp_function(ravel_inputs=True, mode=mode)
    names = [v.name for v in f._grad_vars]
    if names != problem.names:
        raise RuntimeError(f"value variables {names} are not in the order of the JAX logp {problem.names}")
    fn = f._pytensor_function
    fn.trust_input = True
    return fn


def compile_pure_jax(problem: Problem, sensitivity: str) -> Callable:
    """The reference: jitted (logp, dlogp) of the raveled point, written directly in JAX.

    "reverse": ``value_and_grad``; "forward": value and ``jacfwd`` of the whole logp in
    one forward pass (``ForwardMode`` solve; every parameter's tangent goes through the
    solve, also those that do not enter it); "tuned": ``value_and_grad`` with the solve
    given a ``custom_vjp`` built from its forward-mode Jacobian, so only the solver's own
    parameters are pushed through it (what jax_op forward does on the JAX backend).
    """
    if sensitivity == "tuned":
        logp = problem.jax_logp(forward_sensitivity(problem.jax_fn("forward")))
        return jax.jit(jax.value_and_grad(logp))
    logp = problem.jax_logp(problem.jax_fn(sensitivity))
    if sensitivity == "reverse":
        return jax.jit(jax.value_and_grad(logp))

    def value_and_jacfwd(x):
        lp = logp(x)
        return lp, lp

    jac = jax.jacfwd(value_and_jacfwd, has_aux=True)
    return jax.jit(lambda x: jac(x)[::-1])  # (value, gradient) from one forward pass


def forward_sensitivity(solve: Callable) -> Callable:
    """``solve`` made reverse-differentiable through its forward-mode Jacobian."""

    @jax.custom_vjp
    def f(p):
        return solve(p)

    def value_twice(q):
        ys = solve(q)
        return ys, ys

    def fwd(p):
        jac, ys = jax.jacfwd(value_twice, has_aux=True)(p)
        return ys, jac

    def bwd(jac, g):
        return (jnp.tensordot(g, jac, axes=g.ndim),)

    f.defvjp(fwd, bwd)
    return f


# --------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------


@dataclass
class Row:
    implementation: str
    backend: str
    kind: str
    times: list[float] = field(default_factory=list)
    first_call_s: float = float("nan")
    max_rel_err: float = float("nan")
    error: str | None = None
    ratio: float = float("nan")

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.max_rel_err <= AGREE_RTOL)

    @property
    def median(self) -> float:
        return float(np.median(self.times)) if self.times else float("nan")

    def quantile(self, q: float) -> float:
        return float(np.quantile(self.times, q)) if self.times else float("nan")


def block(outputs) -> list[np.ndarray]:
    """Wait for (and fetch) every result, as a sampler needs them: numpy arrays."""
    return [np.asarray(o) for o in outputs]


def time_calls(fn: Callable, x: np.ndarray, warmup: int, repeats: int) -> list[float]:
    """Seconds per call for ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        block(fn(x))
    gc.collect()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        block(fn(x))
        times.append(time.perf_counter() - start)
    return times


def rel_err(result, reference) -> float:
    """Worst relative difference: of logp, and of the gradient in the max norm."""
    (lp, g), (lp_ref, g_ref) = result, reference
    g, g_ref = np.ravel(g), np.ravel(g_ref)
    if g.shape != g_ref.shape or not (np.isfinite(lp) and np.all(np.isfinite(g))):
        return float("inf")
    err_lp = abs(lp - lp_ref) / max(abs(lp_ref), np.finfo(float).tiny)
    err_g = float(np.max(np.abs(g - g_ref))) / max(float(np.max(np.abs(g_ref))), np.finfo(float).tiny)
    return float(max(err_lp, err_g))


def _describe(e: Exception) -> str:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}"[:160]


def prepare(row: Row, make: Callable[[], Callable], problem: Problem, reference):
    """Compile, call once, check against the reference: ``(fn, (logp, dlogp))``.

    A failure is recorded in the row (and gives ``(None, None)``), never raised: one
    broken implementation must not stop the others.
    """
    try:
        start = time.perf_counter()
        fn = make()
        lp, g = block(fn(problem.point))
        row.first_call_s = time.perf_counter() - start
    except Exception as e:  # noqa: BLE001
        row.error = _describe(e)
        console.log(f"  {row.implementation:40s} {row.backend:4s} [red]failed: {row.error}[/]")
        return None, None
    result = (float(lp), g)
    row.max_rel_err = 0.0 if reference is None else rel_err(result, reference)
    agree = "[green]✓[/]" if row.ok else "[red]✗[/]"
    console.log(f"  {row.implementation:40s} {row.backend:4s} first call {fmt_time(row.first_call_s):>10s}  "
                f"{agree} {row.max_rel_err:.0e}")
    return fn, result


def time_interleaved(compiled: list[tuple[Row, Callable]], problem: Problem, repeats: int):
    """Time every row in ``problem.rounds`` rounds, round-robin, so that a change of load
    on the machine during the run spreads over all rows instead of hitting a few."""
    per_round = -(-repeats // problem.rounds)
    for r in range(problem.rounds):
        # alternate the order, so that no row is always the one after the same neighbour
        for row, fn in compiled if r % 2 == 0 else compiled[::-1]:
            if row.error:
                continue
            warmup = problem.warmup if r == 0 else problem.rewarm
            try:
                row.times += time_calls(fn, problem.point, warmup, per_round)
            except Exception as e:  # noqa: BLE001
                row.error = _describe(e)
        console.log(f"  timing round {r + 1}/{problem.rounds} done ({per_round} calls per row)")


def run_problem(problem: Problem, repeats: int | None) -> tuple[list[Row], float]:
    console.rule(problem.title)
    compiled, reference = [], None
    for sensitivity in problem.references:
        kind = "pure" if sensitivity in ("reverse", "forward") else "pure-tuned"  # see README
        row = Row(REFERENCE_NAMES[sensitivity], "pure", kind)
        fn, result = prepare(row, lambda s=sensitivity: compile_pure_jax(problem, s), problem, reference)
        reference = reference or result
        compiled.append((row, fn))
    if reference is None:
        raise RuntimeError(f"{problem.key}: the pure-JAX reference failed: {compiled[0][0].error}")
    for impl in problem.implementations:
        try:
            wrapped, build_error = impl.build(problem), None  # one wrapped function, both backends
        except Exception as e:  # noqa: BLE001
            wrapped, build_error = None, _describe(e)
        for backend, mode in BACKENDS.items():
            row, fn = Row(impl.name, backend, impl.kind), None
            if build_error:
                row.error = build_error
            else:
                fn, _ = prepare(row, lambda m=mode, w=wrapped: compile_pymc(problem, w, m), problem, reference)
            compiled.append((row, fn))
    time_interleaved(compiled, problem, repeats or problem.repeats)
    rows = [row for row, _ in compiled]
    best_pure = min((r.median for r in rows if r.kind == "pure" and r.ok), default=float("nan"))
    for r in rows:
        r.ratio = r.median / best_pure
    return rows, best_pure


# --------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------


@dataclass
class Target:
    model: str
    description: str
    value: float  # the measured ratio
    limit: float | None  # None: shown for information, no goal
    higher_is_better: bool
    rows_ok: bool  # every row involved computed the right numbers

    @property
    def status(self) -> str:
        if not np.isfinite(self.value) or not self.rows_ok:
            return "n/a"
        if self.limit is None:
            return "info"
        passed = self.value >= self.limit if self.higher_is_better else self.value <= self.limit
        return "pass" if passed else "miss"


def _pick(rows, kind=None, backend=None, implementation=None) -> Row | None:
    """The fastest matching row; failed rows and rows with wrong numbers count as infinitely slow."""
    found = [
        r
        for r in rows
        if (kind is None or r.kind == kind)
        and (backend is None or r.backend == backend)
        and (implementation is None or r.implementation == implementation)
    ]
    return min(found, key=lambda r: r.median if r.ok else float("inf"), default=None)


def _ratio(a: Row | None, b: Row | None) -> tuple[float, bool]:
    if a is None or b is None:
        return float("nan"), False
    return a.median / b.median, a.ok and b.ok


def targets_for(key: str, rows: list[Row]) -> list[Target]:
    """The goals: ratios of the fastest row of one kind to the fastest of another."""

    def target(description, a, b, limit, higher_is_better):
        value, ok = _ratio(a, b)
        return Target(key, description, value, limit, higher_is_better, ok)

    pure = _pick(rows, kind="pure")
    if key == "cnn":
        c, jx = _pick(rows, kind="jax_op", backend="C"), _pick(rows, kind="jax_op", backend="JAX")
        return [
            target(f"best jax_op C ({c.implementation if c else '?'}) / best jax_op JAX", c, jx, 1.2, False),
            target("best jax_op JAX / pure JAX", jx, pure, 1.1, False),
        ]
    best = _pick(rows, kind="jax_op", backend="C")
    name = best.implementation if best else "?"
    auto = _pick(rows, backend="C", implementation="jax_op(solve), no arguments (grad=auto)")
    return [
        target(f"best jax_op C ({name}) / best pure JAX", best, pure, 1.25, False),
        target("jax_op(solve) with no arguments, C / best pure JAX", auto, pure, 2.5, False),
        target("speed-up: wrap_jax C / best jax_op C", _pick(rows, kind="wrap_jax", backend="C"), best, 2.5, True),
        target("speed-up: post's Ops C / best jax_op C", _pick(rows, kind="post", backend="C"), best, 2.5, True),
        target("best jax_op C / tuned pure JAX (no goal)", best, _pick(rows, kind="pure-tuned"), None, False),
    ]


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def table_for(problem: Problem, rows: list[Row], best_pure: float) -> Table:
    title = f"{problem.title}\nlogp+dlogp per call; best pure JAX = {fmt_time(best_pure)}"
    table = Table(title=title, title_justify="left")
    table.add_column("implementation")
    table.add_column("backend")
    table.add_column("median", justify="right")
    table.add_column("× best pure JAX", justify="right")
    table.add_column("IQR", justify="right")
    table.add_column("calls", justify="right")
    table.add_column("first call", justify="right")
    table.add_column("agrees (max rel err)")
    for r in rows:
        if r.error:
            table.add_row(r.implementation, r.backend, "[red]failed[/]", "", "", "", "", f"[red]✗ {r.error}[/]")
            continue
        iqr = (r.quantile(0.75) - r.quantile(0.25)) / r.median
        agree = f"[green]✓[/] {r.max_rel_err:.0e}" if r.ok else f"[red]✗ {r.max_rel_err:.1e}[/]"
        table.add_row(
            r.implementation,
            r.backend,
            fmt_time(r.median),
            f"{r.ratio:.2f}",
            f"±{100 * iqr / 2:.0f}%",
            str(len(r.times)),
            fmt_time(r.first_call_s),
            agree,
        )
    return table


def targets_table(targets: list[Target]) -> Table:
    table = Table(title="targets", title_justify="left")
    for col, just in (("model", "left"), ("target", "left"), ("measured", "right"), ("goal", "right"), ("", "left")):
        table.add_column(col, justify=just)
    colours = {"pass": "green", "miss": "red", "n/a": "yellow", "info": "blue"}
    for t in targets:
        goal = "-" if t.limit is None else f"{'≥' if t.higher_is_better else '≤'} {t.limit:g}×"
        value = f"{t.value:.2f}×" if np.isfinite(t.value) else "-"
        table.add_row(t.model, t.description, value, goal, f"[{colours[t.status]}]{t.status}[/]")
    return table


def environment() -> dict:
    import flax

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "versions": {
            "pymc": pm.__version__,
            "pytensor": pytensor.__version__,
            "jax": jax.__version__,
            "diffrax": diffrax.__version__,
            "flax": flax.__version__,
        },
        "argv": sys.argv,
    }


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------

PROBLEMS = {"ode": post_ode_problem, "ode4": lv_problem, "cnn": cnn_problem}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer ODE calls (20 warm-up, 200 timed); skip the CNN unless --only cnn")
    parser.add_argument("--json", metavar="PATH", help="write every median (and the targets) to this file")
    parser.add_argument("--only", choices=list(PROBLEMS), action="append", help="run only this model (repeatable)")
    parser.add_argument("--repeats", type=int,
                        help="timed calls per row, over all rounds (default: 500 ODE, 3 CNN; 200 ODE with --quick)")
    args = parser.parse_args(argv)

    keys = args.only or [k for k in PROBLEMS if not (args.quick and k == "cnn")]
    env = environment()
    console.log(f"{env['cpus']} CPUs, load average {env['loadavg_start'][0]:.2f}; {env['versions']}")
    report = {"environment": env, "agree_rtol": AGREE_RTOL, "models": {}, "targets": []}
    tables, targets = [], []
    for key in keys:
        problem = PROBLEMS[key](args.quick)
        rows, best_pure = run_problem(problem, args.repeats)
        tables.append(table_for(problem, rows, best_pure))
        targets += targets_for(key, rows)
        report["models"][key] = {
            "title": problem.title,
            "best_pure_jax_s": best_pure,
            "rows": [
                {
                    "implementation": r.implementation,
                    "backend": r.backend,
                    "kind": r.kind,
                    "median_s": r.median,
                    "p25_s": r.quantile(0.25),
                    "p75_s": r.quantile(0.75),
                    "calls": len(r.times),
                    "ratio_to_best_pure_jax": r.ratio,
                    "first_call_s": r.first_call_s,
                    "max_rel_err": r.max_rel_err,
                    "agrees": r.ok,
                    "error": r.error,
                }
                for r in rows
            ],
        }
    report["environment"]["loadavg_end"] = os.getloadavg()
    report["targets"] = [{**asdict(t), "status": t.status} for t in targets]

    console.print()
    for table in tables:
        console.print(table)
        console.print()
    console.print(targets_table(targets))
    load = report["environment"]["loadavg_end"][0]
    console.print(f"load average at the end: {load:.2f} (this machine has {env['cpus']} CPUs)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(_finite_or_none(report), fh, indent=2, allow_nan=False)
        console.print(f"wrote {args.json}")
    return 0


def _finite_or_none(obj):
    """The report as plain JSON: NaN and infinity (a failed row) become null."""
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


if __name__ == "__main__":
    sys.exit(main())
