"""Working with posterior draws: pick some, and compute model quantities at them.

>>> import numpy as np, xarray as xr
>>> post = xr.Dataset({"a": (("chain", "draw"), np.arange(6.0).reshape(2, 3))})
>>> [float(p["a"]) for p in thinned(post, ["a"], 3)]
[0.0, 2.0, 5.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


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


__all__ = ["thinned", "at_draws"]
