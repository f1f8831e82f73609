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

import diffrax as dfx
import jax.numpy as jnp

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


__all__ = ["solve", "SOLVE_OPS", "ADJOINTS", "is_adaptive", "n_params"]
