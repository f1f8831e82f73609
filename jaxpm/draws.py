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


def over_draws(fn: Callable, *arrays, batch: int | None = None, segments: Sequence[int] | None = None,
               budget: int = MEMORY_BUDGET, compiler_options: dict | None = None):
    """``fn`` applied to every draw, vectorised: one jitted program, ``jax.vmap`` of ``fn``
    over a batch of draws, called batch after batch.

    Parameters
    ----------
    fn
        A JAX function of one draw: ``fn(*leaves)`` where each leaf is one entry along
        the leading axis of ``arrays`` (pytrees allowed); it returns a pytree of arrays.
    *arrays
        Pytrees of arrays whose leading axis is the draws (the same length in all).
    batch
        Draws per batch; None: the smallest segment (at most :data:`MAX_BATCH`), fewer
        when XLA's memory analysis of the compiled program says one batch needs more than
        ``budget`` bytes of working memory.
    segments
        Lengths of consecutive parts of the draws that never share a batch (default: one
        part). A vectorised adaptive ODE solve steps until its slowest draw is done, so
        prior draws (wild parameters, stiff solves) are kept apart from posterior ones.
    budget
        See ``batch``.
    compiler_options
        XLA options for compiling the program (e.g. ``{"xla_backend_optimization_level": 0}``).

    Returns
    -------
    ``(outputs, batch)``: ``fn``'s pytree with a leading axis over the draws (NumPy
    arrays), and the batch size used. Each segment is padded to a whole number of
    batches (repeating its last draw) and the padding dropped, so the result never depends
    on the batch size. The program is compiled once, for one batch; a loop over batches
    inside it (``jax.lax.map``) would compile slower and run no faster.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> out, used = over_draws(lambda a, b: {"sum": a.sum() + b}, np.ones((5, 3)), np.arange(5.0), batch=2)
    >>> out["sum"].tolist(), used
    ([3.0, 4.0, 5.0, 6.0, 7.0], 2)
    >>> over_draws(lambda a: a * 2, np.arange(5.0), segments=[3, 2])
    (array([0., 2., 4., 6., 8.]), 2)
    """
    import jax

    n = len(jax.tree.leaves(arrays)[0])
    segments = [n] if segments is None else [int(k) for k in segments]
    if n == 0 or sum(segments) != n or min(segments) < 1:
        raise ValueError(f"over_draws needs at least one draw in each segment, got {segments} for {n} draws")
    bounds = list(zip(np.cumsum([0, *segments[:-1]]), np.cumsum(segments), strict=True))
    program = jax.jit(jax.vmap(fn))

    def batches(size: int):
        """``(start, stop)`` of each batch, and the draws padded to whole batches per segment."""
        padded = jax.tree.map(lambda x: np.concatenate([_pad(np.asarray(x)[a:b], size) for a, b in bounds]), arrays)
        total = len(jax.tree.leaves(padded)[0])
        return [(i, i + size) for i in range(0, total, size)], padded

    def compiled(size: int):
        spans, padded = batches(size)
        first = jax.tree.map(lambda x: x[:size], padded)
        return program.lower(*first).compile(compiler_options), spans, padded

    size = max(1, min(batch or MAX_BATCH, min(segments)))
    run, spans, padded = compiled(size)
    if batch is None:
        temp = _temp_bytes(run)
        if temp is not None and temp > budget and size > 1:
            size = max(1, int(size * budget / temp))
            run, spans, padded = compiled(size)
    outs = [run(*jax.tree.map(lambda x, a=a, b=b: x[a:b], padded)) for a, b in spans]
    stacked = jax.tree.map(lambda *ys: np.concatenate([np.asarray(y) for y in ys]), *outs)
    keep, at = [], 0  # where each segment's own draws are among the padded ones
    for length in segments:
        keep.append(np.arange(at, at + length))
        at += length + (-length % size)
    keep = np.concatenate(keep)
    return jax.tree.map(lambda y: y[keep], stacked), size


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
