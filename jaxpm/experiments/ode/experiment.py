"""``ode:`` an ODE solved with diffrax, its solution at the save times named ``output``.

::

    ode:
      vector_field: lotka_volterra     # built-in, "package.module:function" or "file.py:function"
      y0: z_init                       # expression (a scalar or a vector state)
      args: theta                      # expression, list or mapping of expressions
      saveat: {start: 0, stop: 20, num: 21}
      solver: Dopri5                   # any diffrax solver; Kvaerno5 etc. for stiff systems
      sensitivity: auto                # auto | forward | adjoint | backsolve

The solution is ``ys`` with shape ``(len(saveat), *y0.shape)``. A failed solve never
raises (see :mod:`jaxpm.experiments.ode.solve`): a potential ``<output>_failed`` adds
``-inf`` to the logp, and a sampler sees a rejected proposal, not an exception.

``sensitivity: auto`` measures: forward mode for one or two parameters through the
solver; otherwise forward, adjoint and backsolve are each timed on a value+gradient of the
solve at the prior's median of its inputs, and the fastest is kept (forward unless another
is clearly faster), with the timings in run.json's ``auto`` block.

After sampling, the ODE is solved again at the kept draws: failed solves are counted
(``failed_solves_in_draws``, 0 unless something is wrong, since a failed solve has logp
-inf and cannot be accepted) and ``fit.png`` shows the posterior band of the solution
over the data. The predictive checks (``ppc.png``, ``prior_ppc.png``) show the bands of
the predictive draws of the observed variable that lines up with the solution, over
time, with the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from jaxpm import rundir
from jaxpm.draws import at_draws, thinned
from jaxpm.errors import ConfigError
from jaxpm.experiments.base import Experiment, Fitted
from jaxpm.experiments.ode import plots, vector_fields
from jaxpm.experiments.ode.section import OdeSection
from jaxpm.experiments.ode.solve import (
    ALWAYS_FORWARD,
    SOLVE_OPS,
    choose_sensitivity,
    is_adaptive,
    n_params,
    time_sensitivities,
)

FORWARD_MAX_PARAMS = 10
"""``sensitivity: auto`` uses forward mode up to this many scalar parameters."""

CHECK_TOLERANCE = 1e-10
"""``check-grad`` solves adaptive ODEs to this relative and absolute tolerance."""

CHECK_MAX_STEPS = 100_000
"""... with at most this many steps."""

MAX_CHECK_DRAWS = 8000
"""At most this many draws are re-solved to count failed solves (evenly thinned)."""

FIT_DRAWS = 200
"""Draws (evenly thinned) behind the band in ``fit.png``."""


@dataclass
class OdeBuilt:
    """The built solve: its output's name, the success flag, the save times, the sensitivity used."""

    output: str
    solution: Any
    ok: Any
    save_times: np.ndarray
    sensitivity: str
    scalar_parameters: float
    sensitivity_reason: str = ""  # why auto chose it ("" when the config said)


class OdeExperiment(Experiment):
    """A diffrax ODE solve inside the model (see the module docstring)."""

    name = "ode"
    section = OdeSection

    def outputs(self, section: OdeSection) -> list[str]:
        return [section.output]

    def build(self, section: OdeSection, ctx) -> OdeBuilt:
        import pymc as pm
        import pytensor.tensor as pt

        field = vector_fields.resolve(section.vector_field, ctx.base_dir)
        y0 = ctx.value(section.y0, "ode.y0")
        if isinstance(y0, dict) or y0 is None:
            raise ConfigError("ode.y0", "y0 must be a scalar or a vector (an expression or a list of expressions)")
        y0 = pt.as_tensor_variable(y0).astype("float64")
        args = ctx.value(section.args, "ode.args")
        ts = np.asarray(section.save_times(), dtype=float)
        if ts.ndim != 1 or len(ts) == 0 or np.any(np.diff(ts) <= 0):
            raise ConfigError("ode.saveat", "save times must be a non-empty, strictly increasing list")
        t1 = float(section.t1) if section.t1 is not None else float(ts[-1])
        if not (section.t0 <= ts[0] and ts[-1] <= t1):
            raise ConfigError("ode.saveat", f"save times must lie in [t0, t1] = [{section.t0}, {t1}]")
        if section.dt0 is None and not is_adaptive(section.solver):
            raise ConfigError(
                "ode.dt0", f"{section.solver} takes fixed steps: set dt0 (or pick an adaptive solver such as Tsit5)"
            )

        count = n_params(y0, args)
        settings = dict(
            vector_field=field,
            solver=section.solver,
            t0=float(section.t0),
            t1=t1,
            ts=tuple(ts.tolist()),
            dt0=None if section.dt0 is None else float(section.dt0),
            rtol=float(section.rtol),
            atol=float(section.atol),
            max_steps=int(section.max_steps),
        )
        sensitivity, why = section.sensitivity, ""
        if sensitivity == "auto":
            sensitivity, why = _auto_sensitivity(y0, args, count, settings)
        ys, ok = ctx.apply(SOLVE_OPS[sensitivity], y0, args, **settings, sensitivity=sensitivity,
                           key="ode.vector_field")
        ctx.add(section.output, ys, key="ode.output")
        pm.Potential(f"{section.output}_failed", pt.switch(ok, 0.0, -np.inf))
        return OdeBuilt(section.output, ys, ok, ts, sensitivity, count, why)

    def check_overrides(self, section: OdeSection) -> dict[str, Any]:
        """An adaptive solve is checked at :data:`CHECK_TOLERANCE` (or the config's, if
        tighter), with room for the steps that takes: the AD gradient of an adaptive solve
        treats step sizes as constants, so at a loose tolerance it agrees with finite
        differences only to about that tolerance, and a right gradient would fail."""
        if not is_adaptive(section.solver):
            return {}
        out: dict[str, Any] = {}
        if section.rtol > CHECK_TOLERANCE:
            out["ode.rtol"] = CHECK_TOLERANCE
        if section.atol > CHECK_TOLERANCE:
            out["ode.atol"] = CHECK_TOLERANCE
        if out and section.max_steps < CHECK_MAX_STEPS:
            out["ode.max_steps"] = CHECK_MAX_STEPS
        return out

    def auto_choices(self, built: OdeBuilt) -> dict[str, tuple[Any, str]]:
        if not built.sensitivity_reason:
            return {}
        return {"ode.sensitivity": (built.sensitivity, built.sensitivity_reason)}

    def describe(self, built: OdeBuilt) -> dict[str, Any]:
        return {
            "output": built.output,
            "save_times": built.save_times.tolist(),
            "sensitivity": built.sensitivity,
            "scalar_parameters": built.scalar_parameters,
        }

    def after_sampling(self, fitted: Fitted) -> None:
        """Count failed solves at the draws and draw ``fit.png`` (see the module docstring)."""
        built: OdeBuilt = fitted.built
        model = fitted.model
        fn = at_draws(model, [built.solution, built.ok])
        names = [rv.name for rv in model.free_RVs]
        points = thinned(fitted.idata.posterior, names, MAX_CHECK_DRAWS)
        fit_every = max(1, math.ceil(len(points) / FIT_DRAWS))
        failed, curves = 0, []
        for i, point in enumerate(points):
            ys, ok = fn(point)
            failed += not bool(ok)
            if i % fit_every == 0 and bool(ok):
                curves.append(np.asarray(ys))
        fitted.info["failed_solves_in_draws"] = failed
        fitted.info["draws_checked"] = len(points)
        if not curves:
            return
        curves = np.stack(curves)
        obs_name, observed, labels = matching_observed(model, curves.shape[1:], fitted.ctx.columns)
        fitted.save("fit.png", lambda p: rundir.write_with(p, lambda t: plots.ode_fit(
            built.save_times, curves, t, observed=observed, output=built.output, observed_name=obs_name,
            labels=labels)))

    def predictive_figure(self, fitted: Fitted, group: str):
        """The predictive draws of the observed variable shaped like the solution (one row per
        save time), as bands over time with the data; None (ArviZ's plot) when none is."""
        built: OdeBuilt = fitted.built
        shape = tuple(built.solution.type.shape)
        if None in shape:
            return None
        name, observed, labels = matching_observed(fitted.model, shape, fitted.ctx.columns)
        data = fitted.idata[group]
        if name is None or name not in data:
            return None
        draws = np.asarray(data[name].values).reshape(-1, *np.shape(observed))
        what = group.replace("_", " ")
        return lambda path: plots.ode_predictive(built.save_times, draws, path, observed=observed, name=name,
                                                 labels=labels, what=what)


TYPICAL_DRAWS = 64
"""Prior draws whose median is the point ``sensitivity: auto`` times the solve at."""


def _auto_sensitivity(y0, args, count: float, settings: dict) -> tuple[str, str]:
    """``sensitivity: auto``: forward mode for at most :data:`~jaxpm.experiments.ode.solve.ALWAYS_FORWARD`
    parameters; adjoint above :data:`FORWARD_MAX_PARAMS` without a typical point; else
    every method timed at the prior's median of the solve's inputs."""
    if count <= ALWAYS_FORWARD:
        return "forward", f"{int(count)} parameter{'s' * (count != 1)} through the solver: forward mode"
    point = _typical_inputs(y0, args)
    if point is None:
        if count <= FORWARD_MAX_PARAMS:
            return "forward", f"{count:g} parameters through the solver (at most {FORWARD_MAX_PARAMS}): forward mode"
        return "adjoint", f"{count:g} parameters through the solver (more than {FORWARD_MAX_PARAMS}): adjoint"
    return choose_sensitivity(time_sensitivities(*point, settings))


def _typical_inputs(y0, args):
    """The prior's median of the solve's inputs (y0, args), or None when they cannot be drawn."""
    import jax
    import pymc as pm
    from pytensor.graph import Variable

    leaves, treedef = jax.tree.flatten((y0, args))
    variables = [x for x in leaves if isinstance(x, Variable)]
    try:
        draws = pm.draw(variables, draws=TYPICAL_DRAWS, random_seed=0) if variables else []
    except Exception:  # noqa: BLE001 - inputs PyMC cannot forward-sample (free of the prior)
        return None
    draws = draws if isinstance(draws, list | tuple) else [draws]
    medians = iter([np.median(np.asarray(d, dtype=float), axis=0) for d in draws])
    values = [next(medians) if isinstance(x, Variable) else np.asarray(x, dtype=float) for x in leaves]
    return jax.tree.unflatten(treedef, values)


def matching_observed(
    model, shape, columns: dict[str, list[str]]
) -> tuple[str | None, np.ndarray | None, list[str] | None]:
    """The observed data that line up with an ODE solution of ``shape``: same size, one row
    per save time; and the names of its columns (``columns``, by observed variable) when
    they name the solution's components."""
    from pymc.backends.arviz import find_observations

    size = int(np.prod(shape))
    for obs_name, data in find_observations(model).items():
        data = np.asarray(data)
        if data.size == size and data.ndim >= 1 and data.shape[0] == shape[0]:
            n_comp = size // shape[0]
            labels = columns.get(obs_name)
            if labels is not None and (len(labels) != n_comp or n_comp < 2):
                labels = None
            return obs_name, data, labels
    return None, None, None


__all__ = ["OdeExperiment", "OdeBuilt", "FORWARD_MAX_PARAMS", "matching_observed"]
