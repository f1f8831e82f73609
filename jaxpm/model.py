"""From a validated :class:`~jaxpm.spec.Spec` to a ``pm.Model``.

The order is the YAML's: priors (each may use earlier ones), deterministics that need only
priors, the experiment (which adds its named outputs, e.g. ``ode`` or ``logits``), the
remaining deterministics, the likelihood. Every name lives in one namespace,
:attr:`~jaxpm.experiments.context.Context.names`, which is what expressions resolve against.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jaxpm import expr
from jaxpm.data import read_table
from jaxpm.errors import ConfigError
from jaxpm.experiments.context import Context, call_jax_op
from jaxpm.experiments.registry import experiment
from jaxpm.spec import ObservedFile, Spec, load_spec


def build_model(spec_or_path, overrides=None, *, wrapper: Callable[..., Any] = call_jax_op):
    """The PyMC model a config describes.

    Parameters
    ----------
    spec_or_path
        A :class:`~jaxpm.spec.Spec`, or anything :func:`~jaxpm.spec.load_spec` reads.
    overrides
        ``--set``-style overrides, applied when a config is read.
    wrapper
        How each JAX function enters the model: ``wrapper(fn, *args, **kwargs)`` with
        ``fn`` a :class:`~jaxpm.ops.JaxFunction` (default: ``fn(*args, **kwargs)``).
        ``jaxpm bench`` passes one that builds the same model with ``pytensor.wrap_jax``.

    Examples
    --------
    >>> model = build_model("ode")
    >>> [v.name for v in model.free_RVs]
    ['y0', 'noise']
    >>> round(float(model.compile_logp()(model.initial_point())), 6)
    -5.898142
    """
    return build(spec_or_path, overrides, wrapper=wrapper)[0]


def build(spec_or_path, overrides=None, *, wrapper: Callable[..., Any] = call_jax_op):
    """Build the model; also return the :class:`~jaxpm.experiments.context.Context` (the
    ops applied, the data, what the experiment built)."""
    spec = spec_or_path if isinstance(spec_or_path, Spec) else load_spec(spec_or_path, overrides)
    try:
        return _build(spec, wrapper)
    except ConfigError as e:
        raise e.within(spec.label) from None


def _build(spec: Spec, wrapper) -> tuple[Any, Context]:
    import pymc as pm

    kind = experiment(spec.experiment, spec.base_dir)
    with pm.Model(name="") as model:
        ctx = Context(model, spec.base_dir, wrapper, experiment=kind)
        for name, dist in spec.priors.items():
            ctx.add(name, ctx.distribution(name, dist.dist, dist.params, f"priors.{name}"))
        pending = dict(spec.deterministics)
        _add_ready_deterministics(ctx, pending)
        ctx.built = kind.build(spec.section, ctx)
        _add_ready_deterministics(ctx, pending)
        for name, value in pending.items():  # what is left names something unknown:
            key = f"deterministics.{name}"  # evaluating it raises the did-you-mean error
            ctx.add(name, ctx.value(value, key), deterministic=True, key=key)
        for name, dist in spec.likelihood.items():
            key = f"likelihood.{name}"
            observed = _observed(ctx, name, dist.observed, f"{key}.observed")
            ctx.add(name, ctx.distribution(name, dist.dist, dist.params, key, observed=observed), key=key)
    return model, ctx


def _add_ready_deterministics(ctx: Context, pending: dict) -> None:
    """Add (in order) every pending deterministic whose names all exist by now."""
    progress = True
    while progress:
        progress = False
        for name, value in list(pending.items()):
            if expr.names_in(value) <= set(ctx.names):
                key = f"deterministics.{name}"
                ctx.add(name, ctx.value(value, key), deterministic=True, key=key)
                del pending[name]
                progress = True


def _observed(ctx: Context, name: str, value, key: str):
    if isinstance(value, ObservedFile):
        if value.columns:
            ctx.columns[name] = list(value.columns)
        return read_table(ctx.path(value.file), value.columns, key)
    if isinstance(value, str) and value in ctx.data:
        return ctx.data[value]
    out = ctx.value(value, key)
    if isinstance(out, np.ndarray | int | float):
        return np.asarray(out, dtype=float)
    return out


__all__ = ["build_model", "build"]
