"""The ODE solve as a wrapped JAX function: diffrax, a success flag, one Op per sensitivity.

``solve`` never raises on a failed solve (``max_steps`` reached, a non-finite state, a
stiff solver's Newton iterations failing): it runs with ``throw=False`` (jaxpm sets
``EQX_ON_ERROR=nan``) and returns ``(ys, ok)`` with ``ys`` replaced by ``y0`` so that the
likelihood stays finite; the experiment turns ``ok`` into a ``-inf`` potential.

Gradients (``ode.sensitivity``). ``forward`` computes value and Jacobian in one
forward-mode pass (``diffrax.ForwardMode``): cheapest when few parameters go through the
solver. ``adjoint`` differentiates the solver's steps in reverse
(``RecursiveCheckpointAdjoint``), ``backsolve`` solves the adjoint ODE backwards
(``BacksolveAdjoint``, less memory, an approximate discrete gradient).
"""

from __future__ import annotations

import math
import time

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np

from jaxpm.autodiff import value_and_jacfwd
from jaxpm.ops import jax_op

ADJOINTS = {
    "forward": dfx.ForwardMode,
    "adjoint": dfx.RecursiveCheckpointAdjoint,
    "backsolve": dfx.BacksolveAdjoint,
}
"""``ode.sensitivity`` -> the diffrax adjoint it solves with."""


def solve(y0, args, *, vector_field, solver, t0, t1, ts, dt0, rtol, atol, max_steps, sensitivity):
    """Solve and report success: ``(ys, ok)``; on failure ``ys`` is ``y0`` broadcast."""
    solver = getattr(dfx, solver)()
    if isinstance(solver, dfx.AbstractAdaptiveSolver):
        controller = dfx.PIDController(rtol=rtol, atol=atol)
    else:
        controller = dfx.ConstantStepSize()
    sol = dfx.diffeqsolve(
        dfx.ODETerm(vector_field),
        solver,
        t0=t0,
        t1=t1,
        dt0=dt0,
        y0=y0,
        args=args,
        saveat=dfx.SaveAt(ts=jnp.asarray(ts)),
        stepsize_controller=controller,
        max_steps=max_steps,
        adjoint=ADJOINTS[sensitivity](),
        throw=False,
    )
    ok = (sol.result == dfx.RESULTS.successful) & jnp.all(jnp.isfinite(sol.ys))
    return jnp.where(ok, sol.ys, jnp.broadcast_to(y0, sol.ys.shape)), ok


SOLVE_OPS = {
    "forward": jax_op(solve, grad="forward", name="ode_solve"),
    "adjoint": jax_op(solve, grad="reverse", name="ode_solve"),
    "backsolve": jax_op(solve, grad="reverse", name="ode_solve"),
}
"""One wrapped function per sensitivity, shared by every model build: JAX compiles each
(vector field, solver settings, input types) once per process."""


TIMED_SENSITIVITIES = ("forward", "adjoint", "backsolve")
"""What ``sensitivity: auto`` times against each other."""

PREFER_FORWARD = 0.8
"""``auto`` keeps forward mode unless another method takes less than this fraction of its
time: forward mode's gradient is exact for the discretised solve (backsolve's is an
approximation), and a near tie should not flip between runs on timing noise."""

ALWAYS_FORWARD = 2
"""Up to this many scalar parameters through the solver, forward mode without timing."""

TIMED_CALLS = 3

_timed: dict = {}  # (settings, shapes) -> timings, per process


def time_sensitivities(y0: np.ndarray, args, settings: dict) -> dict[str, float]:
    """Seconds per value + gradient of a solve at ``y0``, ``args`` (concrete values) for each
    of :data:`TIMED_SENSITIVITIES`: the median of :data:`TIMED_CALLS` jitted calls after a
    warm-up; ``inf`` where a method fails. Kept per process, keyed by the solve's settings
    and the inputs' shapes."""
    leaves, treedef = jax.tree.flatten(args)
    key = (tuple(sorted((k, v if not callable(v) else id(v)) for k, v in settings.items())), np.shape(y0),
           treedef, tuple(np.shape(x) for x in leaves))
    if key in _timed:
        return _timed[key]
    out = {}
    for mode in TIMED_SENSITIVITIES:
        def loss(y0, args, mode=mode):
            ys, _ = solve(y0, args, **{**settings, "sensitivity": mode})
            return jnp.sum(jnp.sin(ys))  # a cotangent that touches every output

        if mode == "forward":
            f = jax.jit(lambda y0, args, loss=loss: value_and_jacfwd(lambda *xs: (loss(*xs),), (y0, args), [0, 1], [0]))
        else:
            f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        try:
            jax.block_until_ready(f(y0, args))
            times = []
            for _ in range(TIMED_CALLS):
                start = time.perf_counter()
                jax.block_until_ready(f(y0, args))
                times.append(time.perf_counter() - start)
            out[mode] = float(np.median(times))
        except Exception:  # noqa: BLE001 - a method that cannot run here loses
            out[mode] = math.inf
    _timed[key] = out
    return out


def choose_sensitivity(timings: dict[str, float]) -> tuple[str, str]:
    """The method ``auto`` keeps, and why (see :data:`PREFER_FORWARD`)."""
    shown = ", ".join(f"{m} {t * 1e3:.3g} ms" for m, t in timings.items())
    best = min(timings, key=timings.get)
    if best != "forward" and timings[best] < PREFER_FORWARD * timings["forward"]:
        return best, f"fastest value+gradient at a typical prior point ({shown})"
    return "forward", f"forward mode is exact and within {1 / PREFER_FORWARD:.2g}x of the fastest ({shown})"


def is_adaptive(solver: str) -> bool:
    """Whether the diffrax solver class ``solver`` chooses its own step sizes."""
    return issubclass(getattr(dfx, solver), dfx.AbstractAdaptiveSolver)


def n_params(y0, args) -> float:
    """Scalar float parameters going through the solver (inf when a shape is unknown)."""
    import jax
    from pytensor.graph import Variable

    total = 0.0
    for leaf in jax.tree.leaves((y0, args)):
        if isinstance(leaf, Variable):
            if not leaf.dtype.startswith("float"):
                continue
            shape = leaf.type.shape
            total += math.inf if None in shape else math.prod(shape)
    return total


__all__ = ["solve", "SOLVE_OPS", "ADJOINTS", "is_adaptive", "n_params", "time_sensitivities",
           "choose_sensitivity", "ALWAYS_FORWARD"]
