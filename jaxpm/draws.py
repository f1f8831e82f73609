"""Working with posterior draws: pick some, compute model quantities at them, and run a
JAX function over all of them in one vectorised program (:func:`over_draws`).

>>> import numpy as np, xarray as xr
>>> post = xr.Dataset({"a": (("chain", "draw"), np.arange(6.0).reshape(2, 3))})
>>> [float(p["a"]) for p in thinned(post, ["a"], 3)]
[0.0, 2.0, 5.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

MEMORY_BUDGET = 512 * 2**20
"""Bytes of working memory one batch of :func:`over_draws` may take (XLA's own estimate)."""

MAX_BATCH = 10_000
"""At most this many draws in one batch of :func:`over_draws`."""


def thinned(posterior, names: Sequence[str], limit: int) -> list[dict[str, np.ndarray]]:
    """Up to ``limit`` draws (evenly thinned over chains x draws) as ``{name: value}``."""
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    total = n_chain * n_draw
    idx = np.unique(np.linspace(0, total - 1, min(limit, total)).round().astype(int)) if total else []
    arrays = {n: np.asarray(posterior[n].values).reshape(total, *posterior[n].shape[2:]) for n in names}
    return [{n: arrays[n][i] for n in names} for i in idx]


def at_draws(model, outputs: Sequence[Any]) -> Callable[[dict], list]:
    """A compiled function from the free variables' (constrained) values, by name, to
    ``outputs`` (graph variables that may depend on the model's random variables)."""
    import pytensor
    from pytensor.graph.replace import graph_replace

    rvs = list(model.free_RVs)
    inputs = [rv.type(name=rv.name) for rv in rvs]
    replaced = graph_replace(list(outputs), dict(zip(rvs, inputs, strict=True)), strict=False)
    fn = pytensor.function(inputs, replaced, mode="FAST_RUN", on_unused_input="ignore")
    names = [rv.name for rv in rvs]

    def call(point: dict):
        return fn(*[point[n] for n in names])

    return call


def over_draws(fn: Callable, *arrays, batch: int | None = None, budget: int = MEMORY_BUDGET,
               compiler_options: dict | None = None):
    """``fn`` applied to every draw, as one jitted JAX program: ``jax.vmap`` over a batch
    of draws, ``jax.lax.map`` over the batches.

    Parameters
    ----------
    fn
        A JAX function of one draw: ``fn(*leaves)`` where each leaf is one entry along
        the leading axis of ``arrays`` (pytrees allowed); it returns a pytree of arrays.
    *arrays
        Pytrees of arrays whose leading axis is the draws (the same length in all).
    batch
        Draws per batch; None: as many as fit in ``budget`` bytes of working memory by
        XLA's memory analysis of the compiled program (at most :data:`MAX_BATCH`).
    budget
        See ``batch``.
    compiler_options
        XLA options for compiling the program (e.g. ``{"xla_backend_optimization_level": 0}``).

    Returns
    -------
    ``(outputs, batch)``: ``fn``'s pytree with a leading axis over the draws (NumPy
    arrays), and the batch size used. The draws are padded to a whole number of batches
    (repeating the last one) and the padding dropped, so the result never depends on the
    batch size.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> out, used = over_draws(lambda a, b: {"sum": a.sum() + b}, np.ones((5, 3)), np.arange(5.0), batch=2)
    >>> out["sum"].tolist(), used
    ([3.0, 4.0, 5.0, 6.0, 7.0], 2)
    """
    import jax

    n = len(jax.tree.leaves(arrays)[0])
    if n == 0:
        raise ValueError("over_draws needs at least one draw")

    def program(size: int):
        def run(*xs):
            if size >= n:  # one batch: no loop around it (a simpler program, compiled sooner)
                return jax.vmap(fn)(*xs)
            batches = jax.tree.map(lambda a: a.reshape(-1, size, *a.shape[1:]), xs)
            ys = jax.lax.map(lambda b: jax.vmap(fn)(*b), batches)
            return jax.tree.map(lambda y: y.reshape(-1, *y.shape[2:]), ys)

        padded = jax.tree.map(lambda a: _pad(np.asarray(a), size), arrays)
        return jax.jit(run).lower(*padded).compile(compiler_options), padded

    size = max(1, min(n, batch or MAX_BATCH))
    compiled, padded = program(size)
    if batch is None:
        temp = _temp_bytes(compiled)
        if temp is not None and temp > budget and size > 1:
            size = max(1, int(size * budget / temp))
            compiled, padded = program(size)
    out = compiled(*padded)
    return jax.tree.map(lambda y: np.asarray(y)[:n], out), size


def _pad(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` with its last entry repeated up to a multiple of ``size`` along the leading axis."""
    extra = -len(a) % size
    return a if extra == 0 else np.concatenate([a, np.repeat(a[-1:], extra, axis=0)])


def _temp_bytes(compiled) -> int | None:
    """XLA's estimate of a compiled program's working memory (None where it gives none)."""
    try:
        return int(compiled.memory_analysis().temp_size_in_bytes)
    except Exception:  # noqa: BLE001 - an estimate only; some backends have none
        return None


__all__ = ["thinned", "at_draws", "over_draws", "MEMORY_BUDGET", "MAX_BATCH"]
