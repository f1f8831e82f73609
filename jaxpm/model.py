"""From a validated :class:`~jaxpm.spec.Spec` to a ``pm.Model``.

The order is the YAML's: priors (each may use earlier ones), deterministics that need only
priors, the experiment (which adds its named outputs, e.g. ``ode`` or ``logits``), the
remaining deterministics, the likelihood. Every name lives in one namespace,
:attr:`Context.names`, which is what expressions resolve against.

Experiments are functions ``build(section, ctx)`` called inside the model context; the
built-in ones live in :mod:`jaxpm.experiments`, and ``experiment: "pkg.module:build"``
calls a user's. They add nodes through :class:`Context`.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pymc as pm

from jaxpm import expr
from jaxpm.errors import ConfigError
from jaxpm.ops import JaxFunction, JaxOpError
from jaxpm.spec import Spec, load_spec


@dataclass
class OpUse:
    """One application of a wrapped JAX function in the model, for ``check-grad``."""

    name: str
    fn: JaxFunction
    args: tuple
    kwargs: dict

    def __call__(self, *leaves):
        """Apply the function with its dynamic (PyTensor) leaves replaced by ``leaves``."""
        import jax

        flat, treedef = jax.tree.flatten((self.args, self.kwargs))
        it = iter(leaves)
        flat = [next(it) if _is_dynamic(v) else v for v in flat]
        args, kwargs = jax.tree.unflatten(treedef, flat)
        return self.fn(*args, **kwargs)

    @property
    def inputs(self) -> list:
        import jax

        return [v for v in jax.tree.leaves((self.args, self.kwargs)) if _is_dynamic(v)]


def _is_dynamic(v) -> bool:
    from pytensor.graph import Variable

    return isinstance(v, Variable)


@dataclass
class Context:
    """What an experiment's ``build(section, ctx)`` works with.

    ``names`` maps every name an expression may use to its value (PyTensor variables,
    arrays); ``value(v, key)`` evaluates a YAML value against it; ``add`` names a node
    (optionally as a ``pm.Deterministic``); ``apply`` applies a wrapped JAX function and
    records it so that ``jaxpm check-grad`` can verify its gradient.
    """

    spec: Spec
    model: pm.Model
    names: dict[str, Any] = field(default_factory=dict)
    ops: list[OpUse] = field(default_factory=list)
    data: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def value(self, v, key: str):
        return expr.evaluate(v, self.names, key)

    def add(self, name: str, var, *, deterministic: bool = False, key: str = ""):
        if name in self.names:
            raise ConfigError(key, f"name '{name}' is already used; pick another name")
        if deterministic:
            var = pm.Deterministic(name, var)
        self.names[name] = var
        return var

    def add_data(self, name: str, array: np.ndarray, key: str = ""):
        """Data an experiment provides (e.g. the CNN's labels), usable as ``observed``."""
        self.data[name] = array
        return self.add(name, array, key=key)

    def apply(self, fn: JaxFunction, *args, key: str = "", **kwargs):
        try:
            out = fn(*args, **kwargs)
        except JaxOpError as e:
            raise ConfigError(key, str(e)) from e
        self.ops.append(OpUse(fn.name, fn, args, kwargs))
        return out

    def distribution(self, name: str, dist: str, params: dict, key: str, observed=None):
        """``pm.<dist>(name, **params)``, the params evaluated as expressions."""
        return _distribution(self, name, dist, params, key, observed)

    def path(self, p: str | Path) -> Path:
        return self.spec.resolve_path(p)


def build_model(spec_or_path, overrides=None) -> pm.Model:
    """The PyMC model a config describes (``jaxpm.build_model``)."""
    return build(spec_or_path, overrides)[0]


def build(spec_or_path, overrides=None) -> tuple[pm.Model, Context]:
    """Build the model; also return the :class:`Context` (ops used, data, experiment info)."""
    spec = spec_or_path if isinstance(spec_or_path, Spec) else load_spec(spec_or_path, overrides)
    try:
        return _build(spec)
    except ConfigError as e:
        raise e.within(spec.label) from None


def _build(spec: Spec) -> tuple[pm.Model, Context]:
    with pm.Model(name="") as model:
        ctx = Context(spec, model)
        for name, dist in spec.priors.items():
            ctx.add(name, ctx.distribution(name, dist.dist, dist.params, f"priors.{name}"))
        pending = dict(spec.deterministics)
        _add_ready_deterministics(ctx, pending)
        build_experiment = experiment_builder(spec.experiment, spec.base_dir)
        with _experiment_errors(spec.experiment):
            build_experiment(_section(spec), ctx)
        _add_ready_deterministics(ctx, pending)
        for name, value in pending.items():  # what is left names something unknown:
            key = f"deterministics.{name}"  # evaluating it raises the did-you-mean error
            ctx.add(name, ctx.value(value, key), deterministic=True, key=key)
        for name, dist in spec.likelihood.items():
            key = f"likelihood.{name}"
            observed = _observed(ctx, dist.observed, f"{key}.observed")
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


def _section(spec: Spec):
    if ":" in spec.experiment:
        return spec.plugin
    return getattr(spec, spec.experiment)


BUILTIN_EXPERIMENTS = ("exp", "ode", "cnn")


def experiment_builder(name: str, base_dir: Path | None = None):
    """The ``build(section, ctx)`` function of a built-in or plugin experiment."""
    if name in BUILTIN_EXPERIMENTS:
        return importlib.import_module(f"jaxpm.experiments.{name}").build
    from jaxpm.loading import load_callable

    return load_callable(name, base_dir, "experiment")


class _experiment_errors:
    """Report an unexpected exception inside a plugin experiment as bad input, not a crash."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, typ, exc, tb):
        if exc is None or isinstance(exc, ConfigError) or self.name in BUILTIN_EXPERIMENTS:
            return False
        raise ConfigError("plugin", f"experiment '{self.name}' failed: {typ.__name__}: {exc}") from exc


def _distribution(ctx: Context, name: str, dist_name: str, raw_params: dict, key: str, observed=None):
    cls = getattr(pm, dist_name)
    params = {k: ctx.value(v, f"{key}.{k}") for k, v in raw_params.items()}
    if "shape" in params and isinstance(params["shape"], np.ndarray):
        params["shape"] = tuple(int(s) for s in params["shape"])
    accepted = _accepted_params(cls)
    for k in params:
        if accepted is not None and k not in accepted:
            from jaxpm.errors import did_you_mean

            raise ConfigError(f"{key}.{k}", f"{dist_name} has no parameter '{k}'{did_you_mean(k, accepted)}")
    if observed is not None:
        params["observed"] = observed
    try:
        rv = cls(name, **params)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - PyMC's own message, on one line, names the problem
        raise ConfigError(key, f"{dist_name}: {_one_line(e)}") from None
    if observed is not None:
        try:  # building the term's logp graph checks the data's static shape against the parameters
            ctx.model.logp(vars=[rv], sum=False)
        except Exception as e:  # noqa: BLE001
            shape = getattr(observed, "shape", "?")
            raise ConfigError(f"{key}.observed", f"observed data of shape {tuple(shape)} does not fit {dist_name}'s parameters: {_one_line(e)}") from None
    return rv


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _accepted_params(cls) -> set[str] | None:
    try:
        sig = inspect.signature(cls.dist)
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values() if p.name not in ("kwargs",)):
        return None
    names = {p for p in sig.parameters if p not in ("cls", "args", "kwargs")}
    return names | {"shape", "dims", "size", "initval", "transform", "default_transform", "observed", "total_size"}


def _observed(ctx: Context, value, key: str):
    from jaxpm.spec import ObservedFile

    if isinstance(value, ObservedFile):
        return load_table(ctx.path(value.file), value.columns, key)
    if isinstance(value, str) and value in ctx.data:
        return ctx.data[value]
    out = ctx.value(value, key)
    if isinstance(out, np.ndarray | int | float):
        return np.asarray(out, dtype=float)
    return out


def load_table(path: Path, columns, key: str) -> np.ndarray:
    """A ``.csv`` (optionally some columns) or ``.npy`` file as a float array."""
    if path.suffix == ".npy":
        if columns:
            raise ConfigError(f"{key}.columns", "columns apply to .csv files only; remove them for .npy")
        try:
            return np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise ConfigError(f"{key}.file", f"cannot read {path}: {e}") from None
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"{key}.file", f"cannot read {path} as CSV: {e}") from None
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            from jaxpm.errors import did_you_mean

            raise ConfigError(f"{key}.columns", f"no column '{missing[0]}' in {path.name}{did_you_mean(missing[0], frame.columns)}")
        frame = frame[list(columns)]
    try:
        data = frame.to_numpy(dtype=float)
    except ValueError as e:
        raise ConfigError(f"{key}.file", f"{path.name} has non-numeric values ({e}); select numeric columns") from None
    return data[:, 0] if data.shape[1] == 1 else data
