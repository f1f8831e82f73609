"""How a JAX function is differentiated: pure JAX, no PyTensor.

The core (:mod:`jaxpm.ops`) stands on these:

- :func:`value_and_jacfwd`: a function's outputs and its forward-mode Jacobian with
  respect to some inputs, in one pass;
- :func:`forward_differentiable`: a function with its ``jax.custom_vjp`` rules replaced by
  the primal computation they wrap, so forward mode goes through functions that refuse it
  (diffrax's default ``RecursiveCheckpointAdjoint``);
- :func:`forward_form` and :func:`time_modes`: whether forward mode traces, and what each
  mode costs, for ``jax_op(grad="auto")``.

Like :mod:`jaxpm.ops`, this module imports nothing else of jaxpm.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore


def forward_differentiable(f: Callable) -> Callable:
    """``f`` with every ``jax.custom_vjp`` rule replaced by the primal computation it wraps.

    JAX refuses forward mode (``jax.jvp``, ``jax.jacfwd``) through a ``custom_vjp``: diffrax's
    default ``RecursiveCheckpointAdjoint`` is one, around its solver loop. The values are
    the same; only how they are differentiated changes: forward mode then goes through
    the primal computation, which is what ``diffrax.ForwardMode`` does. ``custom_jvp``
    rules are kept.

    >>> import jax, jax.numpy as jnp
    >>> @jax.custom_vjp
    ... def double(x):
    ...     return 2 * x
    >>> double.defvjp(lambda x: (2 * x, None), lambda _, g: (2 * g,))
    >>> float(jax.jacfwd(forward_differentiable(double))(1.0))
    2.0
    """

    def g(*args):
        closed, shape = jax.make_jaxpr(f, return_shape=True)(*args)
        outs = _eval_without_custom_vjp(closed.jaxpr, closed.consts, jax.tree.leaves(args))
        return jax.tree.unflatten(jax.tree.structure(shape), outs)

    return g


def _has_custom_vjp(jaxpr) -> bool:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "custom_vjp_call":
            return True
        if eqn.primitive.name != "custom_jvp_call" and any(_has_custom_vjp(c.jaxpr) for c in _sub_jaxprs(eqn)):
            return True
    return False


def _sub_jaxprs(eqn):
    for value in eqn.params.values():
        for item in value if isinstance(value, tuple | list) else (value,):
            if isinstance(item, jcore.ClosedJaxpr):
                yield item


def _rewritten(closed):
    """A closed jaxpr (a loop body, a jitted call) with its custom_vjp calls inlined."""
    if not _has_custom_vjp(closed.jaxpr):
        return closed
    avals = [v.aval for v in closed.jaxpr.invars]
    return jax.make_jaxpr(lambda *a: _eval_without_custom_vjp(closed.jaxpr, closed.consts, a))(*avals)


def _eval_without_custom_vjp(jaxpr, consts, args) -> list:
    """``jax.core.eval_jaxpr``, with each ``custom_vjp_call`` evaluated as its primal jaxpr
    (recursively, also inside loops, conditionals and jitted calls)."""
    env = {}

    def read(v):
        return v.val if isinstance(v, jcore.Literal) else env[v]

    env.update(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        if eqn.primitive.name == "custom_vjp_call":
            call = eqn.params["call_jaxpr"]
            outs = _eval_without_custom_vjp(call.jaxpr, call.consts, invals)
        else:
            params = dict(eqn.params)
            if eqn.primitive.name != "custom_jvp_call":  # its jvp rule is used, never its primal
                for key, value in params.items():
                    if isinstance(value, jcore.ClosedJaxpr):
                        params[key] = _rewritten(value)
                    elif isinstance(value, tuple) and value and all(isinstance(v, jcore.ClosedJaxpr) for v in value):
                        params[key] = tuple(_rewritten(v) for v in value)
            with eqn.ctx.manager:
                outs = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(params))
        env.update(zip(eqn.outvars, outs if eqn.primitive.multiple_results else [outs], strict=True))
    return [read(v) for v in jaxpr.outvars]


def forward_form(flat_fn, structs, diff, float_out) -> tuple[Callable | None, str]:
    """``flat_fn`` if forward mode traces through it, else its :func:`forward_differentiable`
    form if that traces; with a note on which (or why neither)."""
    if structs is None:
        return flat_fn, " (shapes unknown: not traced ahead of time)"

    def probe(f):
        jax.eval_shape(lambda *xs: value_and_jacfwd(f, xs, diff, float_out), *structs)

    try:
        probe(flat_fn)
        return flat_fn, ""
    except Exception as first:  # noqa: BLE001 - custom_vjp refuses jvp; anything else: try the rewrite too
        stripped = forward_differentiable(flat_fn)
        try:
            probe(stripped)
        except Exception:  # noqa: BLE001
            return None, f"{type(first).__name__}: {_first_line(first)}"
        return stripped, " (through the primal of its custom_vjp rules)"


TIMED_CALLS = 5
"""Calls timed per mode (after one warm-up) when ``grad="auto"`` times both."""


def time_modes(flat_fn, forward_fn, structs, diff, float_out) -> tuple[float, float]:
    """Seconds per value+Jacobian (forward) and per value+VJP (reverse) at all-ones inputs,
    each the median of :data:`TIMED_CALLS` calls after a warm-up; inf where a call fails."""
    xs = [jnp.ones(s.shape, s.dtype) for s in structs]

    def forward(*xs):
        return value_and_jacfwd(forward_fn, xs, diff, float_out)

    def reverse(*xs):
        ys, pullback = jax.vjp(lambda *d: pick(flat_fn(*insert(xs, diff, d)), float_out), *[xs[i] for i in diff])
        return ys, pullback(tuple(jnp.ones_like(y) for y in ys))

    out = []
    for f in (jax.jit(forward), jax.jit(reverse)):
        try:
            jax.block_until_ready(f(*xs))
            times = []
            for _ in range(TIMED_CALLS):
                start = time.perf_counter()
                jax.block_until_ready(f(*xs))
                times.append(time.perf_counter() - start)
            out.append(float(np.median(times)))
        except Exception:  # noqa: BLE001 - a mode that cannot run at these inputs loses
            out.append(math.inf)
    return out[0], out[1]


def pick(ys, idx) -> tuple:
    """``(ys[k] for k in idx)``."""
    return tuple(ys[k] for k in idx)


def insert(xs, idx, values) -> list:
    """``xs`` with ``xs[i]`` replaced by ``values``, for ``i`` in ``idx``."""
    xs = list(xs)
    for i, v in zip(idx, values, strict=False):
        xs[i] = v
    return xs


def restricted(f, xs, diff, connected):
    """f as a function of its float inputs only, returning its connected outputs only."""

    def g(*d):
        ys = f(*insert(xs, diff, d))
        return tuple(y for y, c in zip(ys, connected, strict=False) if c)

    return g


def value_and_jacfwd(f, xs, diff, float_out):
    """(outputs, jacobians[k][j] = d out_{float_out[k]} / d xs[diff[j]]) in one forward pass."""

    def g(*d):
        ys = f(*insert(xs, diff, d))
        return tuple(ys[k] for k in float_out), ys

    jacs, ys = jax.jacfwd(g, argnums=tuple(range(len(diff))), has_aux=True)(*[xs[i] for i in diff])
    return ys, jacs


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else ""


__all__ = ["forward_differentiable", "forward_form", "time_modes", "value_and_jacfwd", "restricted", "insert",
           "pick", "TIMED_CALLS"]
