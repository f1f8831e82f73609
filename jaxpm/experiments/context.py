"""What an experiment builds with: one namespace of names, and the door for JAX functions.

The model builder (:mod:`jaxpm.model`) makes a :class:`Context` inside the ``pm.Model``
context and hands it to the experiment's ``build(section, ctx)``. Every name an
expression may use lives in :attr:`Context.names`; :meth:`Context.apply` is the one way a
wrapped JAX function enters the model, so that ``jaxpm check-grad`` can find every op
(:attr:`Context.ops`) and ``jaxpm bench`` can build the same model with another wrapper
(:attr:`Context.wrapper`).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jaxpm import expr
from jaxpm.errors import ConfigError, did_you_mean, one_line
from jaxpm.ops import JaxFunction, JaxOpError


def call_jax_op(fn: JaxFunction, *args, **kwargs):
    """The default :attr:`Context.wrapper`: apply the jaxpm Op wrapper as it is."""
    return fn(*args, **kwargs)


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
        """The PyTensor variables the function was applied to, in pytree order."""
        import jax

        return [v for v in jax.tree.leaves((self.args, self.kwargs)) if _is_dynamic(v)]

    @property
    def input_names(self) -> list[str]:
        """Where each of :attr:`inputs` goes in the function's arguments: ``y0``,
        ``args[2]``, ``params['Conv_0_kernel']`` (positions when the signature is unknown)."""
        import jax

        try:
            params = list(inspect.signature(self.fn.fn).parameters)
        except (TypeError, ValueError):
            params = []
        names = []
        for path, leaf in jax.tree_util.tree_flatten_with_path((self.args, self.kwargs))[0]:
            if not _is_dynamic(leaf):
                continue
            top, head = path[0].idx, path[1]
            if top == 0:  # positional: args[i]
                i = head.idx
                name = params[i] if i < len(params) else f"argument {i}"
            else:  # keyword
                name = str(head.key)
            names.append(name + "".join(str(p) for p in path[2:]))
        return names


def _is_dynamic(v) -> bool:
    from pytensor.graph import Variable

    return isinstance(v, Variable)


@dataclass
class Context:
    """What an experiment's ``build(section, ctx)`` works with.

    ``names`` maps every name an expression may use to its value (PyTensor variables,
    arrays); ``value(v, key)`` evaluates a YAML value against it; ``add`` names a node
    (optionally as a ``pm.Deterministic``); ``apply`` applies a wrapped JAX function
    through ``wrapper`` (by default the function itself) and records it so that
    ``jaxpm check-grad`` can verify its gradient. ``base_dir`` is where relative paths in
    the config point from; ``experiment`` is the :class:`~jaxpm.experiments.base.Experiment`
    being built and ``built`` what its ``build`` returned;
    ``columns`` names the columns of observed data read from a table (``observed: {file:
    data.csv, columns: [hare, lynx]}``), by observed variable.
    """

    model: Any
    base_dir: Path
    wrapper: Callable[..., Any] = call_jax_op
    names: dict[str, Any] = field(default_factory=dict)
    ops: list[OpUse] = field(default_factory=list)
    data: dict[str, np.ndarray] = field(default_factory=dict)
    columns: dict[str, list[str]] = field(default_factory=dict)
    experiment: Any = None
    built: Any = None

    def value(self, v, key: str):
        return expr.evaluate(v, self.names, key)

    def add(self, name: str, var, *, deterministic: bool = False, key: str = ""):
        import pymc as pm

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
            out = self.wrapper(fn, *args, **kwargs)
        except JaxOpError as e:
            raise ConfigError(key, str(e)) from e
        self.ops.append(OpUse(fn.name, fn, args, kwargs))
        return out

    def distribution(self, name: str, dist: str, params: dict, key: str, observed=None):
        """``pm.<dist>(name, **params)``, the params evaluated as expressions."""
        return distribution(self, name, dist, params, key, observed)

    def path(self, p: str | Path) -> Path:
        """``p`` as an absolute path; relative paths are relative to :attr:`base_dir`."""
        path = Path(p).expanduser()
        return path if path.is_absolute() else Path(os.path.normpath(self.base_dir / path))


def distribution(ctx: Context, name: str, dist_name: str, raw_params: dict, key: str, observed=None):
    """``pm.<dist_name>(name, **params, observed=observed)`` with each parameter evaluated as an
    expression; an unknown parameter, or data that does not fit, is a ConfigError."""
    import pymc as pm

    cls = getattr(pm, dist_name)
    params = {k: ctx.value(v, f"{key}.{k}") for k, v in raw_params.items()}
    if "shape" in params and isinstance(params["shape"], np.ndarray):
        params["shape"] = tuple(int(s) for s in params["shape"])
    accepted = _accepted_params(cls)
    for k in params:
        if accepted is not None and k not in accepted:
            raise ConfigError(f"{key}.{k}", f"{dist_name} has no parameter '{k}'{did_you_mean(k, accepted)}")
    if observed is not None:
        params["observed"] = observed
    try:
        rv = cls(name, **params)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - PyMC's own message, on one line, names the problem
        raise ConfigError(key, f"{dist_name}: {one_line(e)}") from None
    if observed is not None:
        try:  # building the term's logp graph checks the data's static shape against the parameters
            ctx.model.logp(vars=[rv], sum=False)
        except Exception as e:  # noqa: BLE001
            shape = tuple(getattr(observed, "shape", ()))
            raise ConfigError(
                f"{key}.observed",
                f"observed data of shape {shape} does not fit {dist_name}'s parameters: {one_line(e)}",
            ) from None
    return rv


def _accepted_params(cls) -> set[str] | None:
    try:
        sig = inspect.signature(cls.dist)
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values() if p.name not in ("kwargs",)):
        return None
    names = {p for p in sig.parameters if p not in ("cls", "args", "kwargs")}
    return names | {"shape", "dims", "size", "initval", "transform", "default_transform", "observed", "total_size"}


__all__ = ["Context", "OpUse", "call_jax_op", "distribution"]
