"""``ode:`` an ODE solved with diffrax, its solution at the save times named ``output``.

::

    ode:
      vector_field: lotka_volterra     # built-in, "package.module:function" or "file.py:function"
      y0: z_init                       # expression (a scalar or a vector state)
      args: theta                      # expression, list or mapping of expressions
      saveat: {start: 0, stop: 20, num: 21}
      solver: Dopri5                   # any diffrax solver; Kvaerno5 etc. for stiff systems
      sensitivity: auto                # auto | forward | adjoint | backsolve

The solution is ``ys`` with shape ``(len(saveat), *y0.shape)``.

Gradients. ``forward`` computes value and Jacobian in one forward-mode pass
(``diffrax.ForwardMode``): cheapest when few parameters go through the solver.
``adjoint`` differentiates the solver's steps in reverse (``RecursiveCheckpointAdjoint``),
``backsolve`` solves the adjoint ODE backwards (``BacksolveAdjoint``, less memory, an
approximate discrete gradient). ``auto`` picks ``forward`` for at most
:data:`FORWARD_MAX_PARAMS` scalar parameters, else ``adjoint``.

A failed solve (``max_steps`` reached, a non-finite state, a stiff solver's linear solve
failing) never raises: the solve runs with ``throw=False`` (and jaxpm sets
``EQX_ON_ERROR=nan``), the solution is replaced by ``y0`` so the likelihood stays finite,
and a potential ``<output>_failed`` adds ``-inf`` to the logp. A sampler sees a rejected
proposal, not an exception.
"""

from __future__ import annotations

import math

import diffrax as dfx
import jax.numpy as jnp
import numpy as np
import pymc as pm
import pytensor.tensor as pt

from jaxpm.errors import ConfigError
from jaxpm.experiments import vector_fields
from jaxpm.ops import jax_op

FORWARD_MAX_PARAMS = 10
"""``sensitivity: auto`` uses forward mode up to this many scalar parameters."""

_ADJOINTS = {
    "forward": dfx.ForwardMode,
    "adjoint": dfx.RecursiveCheckpointAdjoint,
    "backsolve": dfx.BacksolveAdjoint,
}


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
        adjoint=_ADJOINTS[sensitivity](),
        throw=False,
    )
    ok = (sol.result == dfx.RESULTS.successful) & jnp.all(jnp.isfinite(sol.ys))
    return jnp.where(ok, sol.ys, jnp.broadcast_to(y0, sol.ys.shape)), ok


# One wrapped function per sensitivity, shared by every model build: JAX compiles each
# (vector field, solver settings, input types) once per process.
_SOLVERS = {
    "forward": jax_op(solve, grad="forward", name="ode_solve"),
    "adjoint": jax_op(solve, name="ode_solve"),
    "backsolve": jax_op(solve, name="ode_solve"),
}


def build(section, ctx):
    spec = ctx.spec
    field = vector_fields.resolve(section.vector_field, spec.base_dir)
    y0 = ctx.value(section.y0, "ode.y0")
    if isinstance(y0, dict) or y0 is None:
        raise ConfigError("ode.y0", "y0 must be a scalar or a vector (an expression or a list of expressions)")
    y0 = pt.as_tensor_variable(y0).astype("float64")
    args = ctx.value(section.args, "ode.args")
    ts = np.asarray(section.save_times(spec), dtype=float)
    if ts.ndim != 1 or len(ts) == 0 or np.any(np.diff(ts) <= 0):
        raise ConfigError("ode.saveat", "save times must be a non-empty, strictly increasing list")
    t1 = float(section.t1) if section.t1 is not None else float(ts[-1])
    if not (section.t0 <= ts[0] and ts[-1] <= t1):
        raise ConfigError("ode.saveat", f"save times must lie in [t0, t1] = [{section.t0}, {t1}]")
    if section.dt0 is None and not issubclass(getattr(dfx, section.solver), dfx.AbstractAdaptiveSolver):
        raise ConfigError("ode.dt0", f"{section.solver} takes fixed steps: set dt0 (or pick an adaptive solver such as Tsit5)")

    n_params = _n_params(y0, args)
    sensitivity = section.sensitivity
    if sensitivity == "auto":
        sensitivity = "forward" if n_params <= FORWARD_MAX_PARAMS else "adjoint"
    ys, ok = ctx.apply(
        _SOLVERS[sensitivity],
        y0,
        args,
        vector_field=field,
        solver=section.solver,
        t0=float(section.t0),
        t1=t1,
        ts=tuple(ts.tolist()),
        dt0=None if section.dt0 is None else float(section.dt0),
        rtol=float(section.rtol),
        atol=float(section.atol),
        max_steps=int(section.max_steps),
        sensitivity=sensitivity,
        key="ode.vector_field",
    )
    ctx.add(section.output, ys, key="ode.output")
    pm.Potential(f"{section.output}_failed", pt.switch(ok, 0.0, -np.inf))
    ctx.info["ode"] = {
        "output": section.output,
        "ok": ok,
        "save_times": ts.tolist(),
        "sensitivity": sensitivity,
        "scalar_parameters": n_params,
    }


def _n_params(y0, args) -> float:
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
