"""The ``sweep:`` section and ``--grid KEY=V1,V2``: which variants of a config ``jaxpm sweep`` runs.

A sweep varies config values, each named by its key path (``ode.solver``). ``grid`` keys
are crossed with each other (every combination, the last key varying fastest); ``zip``
keys vary together, their lists read side by side, as one more axis of the grid::

    sweep:
      grid: {ode.solver: [Tsit5, Kvaerno5], sample.sampler: [nutpie, numpyro]}
      zip: {ode.rtol: [1.0e-5, 1.0e-8], ode.atol: [1.0e-5, 1.0e-8]}   # 2 x 2 x 2 = 8 points

Values are YAML, as with ``--set``: ``1e-8`` (no dot) is the *string* ``'1e-8'`` to
YAML 1.1, which a numeric setting takes as the number; the sweep's table shows each
value as the validated config has it.

>>> s = Sweep.model_validate({"grid": {"ode.solver": ["Tsit5", "Kvaerno5"]},
...                           "zip": {"ode.rtol": [1e-5, 1e-8], "ode.atol": [1e-5, 1e-8]}})
>>> [p["ode.solver"] + f" {p['ode.rtol']:g}" for p in s.points()]
['Tsit5 1e-05', 'Tsit5 1e-08', 'Kvaerno5 1e-05', 'Kvaerno5 1e-08']
>>> parse_grid(["ode.solver=Tsit5,Dopri5", "evaluate.backends=[c],[c, jax]"])
{'ode.solver': ['Tsit5', 'Dopri5'], 'evaluate.backends': [['c'], ['c', 'jax']]}
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from jaxpm.errors import ConfigError
from jaxpm.section import Section, fail, show
from jaxpm.spec.reading import load_yaml

RESERVED = ("sweep", "output.dir", "output")
"""Keys a sweep cannot vary: the sweep itself, and where points write (the sweep decides)."""


def axis_problem(key: Any, values: Any, unique: bool = True) -> str | None:
    """What is wrong with one axis ``key: [values]`` of a sweep, or None. A zipped key's
    values may repeat (``unique=False``): its rows, read across the keys, may not."""
    if not isinstance(key, str) or not all(p.strip() for p in key.split(".")):
        return f"expected a key path such as ode.solver, got {show(key)}"
    if key in RESERVED or key.startswith("sweep."):
        return f"{key} cannot be swept: the sweep sets it for every point"
    if not isinstance(values, list | tuple):
        return f"expected a list of values to try, got {show(values)}"
    if not values:
        return "expected at least one value, got an empty list"
    seen = [_same(v) for v in values] if unique else []
    for i, v in enumerate(seen):
        if v in seen[:i]:
            return f"value {show(values[i])} is listed twice"
    return None


def _same(value: Any) -> str:
    """A comparable form of a YAML value (lists and mappings included)."""
    return json.dumps(value, sort_keys=True, default=str)


class Sweep(Section):
    """``sweep:``: the grid ``jaxpm sweep`` runs (``jaxpm run`` ignores it). See the module."""

    grid: dict[str, list[Any]] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("grid", "zip", mode="before")
    @classmethod
    def _axes(cls, axes: Any, info: ValidationInfo) -> Any:
        if not isinstance(axes, Mapping):
            fail(f"expected a mapping from key paths to lists of values, got {show(axes)}")
        for key, values in axes.items():
            problem = axis_problem(key, values, unique=info.field_name == "grid")
            if problem:
                fail(problem, key)
        return axes

    @model_validator(mode="after")
    def _consistent(self) -> Sweep:
        lengths = {len(v) for v in self.zip.values()}
        if len(lengths) > 1:
            sizes = ", ".join(f"{k}: {len(v)}" for k, v in self.zip.items())
            fail(f"zip keys vary together, so their lists need the same length; got {sizes}", "zip")
        rows = [_same(r) for r in zip(*self.zip.values(), strict=True)]
        for i, row in enumerate(rows):
            if row in rows[:i]:
                fail(f"row {i} of the zipped values repeats row {rows.index(row)}", "zip")
        keys = [*self.grid, *self.zip]
        for key in keys:
            if key in self.grid and key in self.zip:
                fail(f"{key} is in both grid and zip; keep it in one", "zip", key)
            inside = next((k for k in keys if k.startswith(key + ".")), None)
            if inside:
                fail(f"{key} and {inside} overlap: sweep the whole {key} or keys inside it, not both",
                     "grid" if key in self.grid else "zip", key)
        return self

    @property
    def keys(self) -> list[str]:
        """The key paths the sweep varies: the grid's, then the zip's."""
        return [*self.grid, *self.zip]

    def points(self) -> list[dict[str, Any]]:
        """Every point: ``{key path: value}``, grid keys crossed (last fastest), zip as one more axis."""
        axes: list[list[dict[str, Any]]] = [[{k: v} for v in values] for k, values in self.grid.items()]
        if self.zip:
            axes.append([dict(zip(self.zip, row, strict=True)) for row in zip(*self.zip.values(), strict=True)])
        if not axes:
            return []
        return [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*axes)]


def parse_grid(items: Sequence[str] | None) -> dict[str, list[Any]]:
    """``["KEY=V1,V2", ...]`` (``--grid``) -> ``{KEY: [V1, V2]}``, each value YAML.

    The values are read as one YAML flow list, so a value may itself be a list or a
    mapping: ``evaluate.backends=[c],[c,jax]`` is two values.
    """
    grid: dict[str, list[Any]] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(key, f"--grid expects KEY.PATH=V1,V2,..., got {item!r}")
        try:
            values = load_yaml(f"[{text}]")
        except ConfigError as e:
            raise ConfigError(key, f"--grid {key}: cannot read {text!r} as values V1,V2,...: {e.message}") from None
        if key in grid:
            raise ConfigError(key, f"--grid {key} is given twice; list all its values in one --grid")
        problem = axis_problem(key, values)
        if problem:
            raise ConfigError(key, f"--grid {key}: {problem}")
        grid[key] = values
    return grid


def merge(config_sweep: Mapping[str, Any] | None, grid: Mapping[str, list[Any]]) -> dict[str, Any]:
    """The config's ``sweep:`` (as plain data) with ``--grid`` axes added; a ``--grid`` key
    replaces the same key of the config's grid. A key of the config's zip cannot be
    changed from the command line (its lists must keep their length)."""
    merged = {"grid": dict((config_sweep or {}).get("grid") or {}), "zip": dict((config_sweep or {}).get("zip") or {})}
    for key, values in grid.items():
        if key in merged["zip"]:
            raise ConfigError(key, f"--grid {key}: the config varies it in sweep.zip; change it there")
        merged["grid"][key] = list(values)
    return merged


__all__ = ["Sweep", "parse_grid", "merge", "axis_problem", "RESERVED"]
