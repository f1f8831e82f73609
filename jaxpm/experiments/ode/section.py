"""The ``ode:`` section: which equation, from where, saved when, solved how."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, Discriminator, Field, Tag, ValidationInfo, field_validator

from jaxpm.data import read_column
from jaxpm.errors import did_you_mean
from jaxpm.section import Float, Int, Section, callable_ref, existing_file, fail, show

SENSITIVITIES = ("auto", "forward", "adjoint", "backsolve")
"""``ode.sensitivity``: how gradients go through the solver (see :mod:`jaxpm.experiments.ode.solve`)."""


@functools.cache
def solvers() -> frozenset[str]:
    """Names of concrete diffrax solver classes (``Tsit5``, ``Dopri5``, ``Kvaerno5``, ...)."""
    import diffrax

    def concrete(cls: type) -> bool:
        return not (
            cls.__name__.startswith("Abstract") or inspect.isabstract(cls) or getattr(cls, "__abstractvars__", None)
        )

    return frozenset(
        name
        for name in dir(diffrax)
        if isinstance(cls := getattr(diffrax, name), type) and issubclass(cls, diffrax.AbstractSolver) and concrete(cls)
    )


class SaveAtRange(Section):
    """``saveat: {start: 0, stop: 3, num: 4}``: ``num`` evenly spaced times."""

    start: Float
    stop: Float
    num: Int = Field(gt=0)


class SaveAtFile(Section):
    """``saveat: {file: times.csv, column: t}``: the times are a column of a CSV file."""

    file: str
    column: str

    @field_validator("file")
    @classmethod
    def _exists(cls, file: str, info: ValidationInfo) -> str:
        return existing_file(file, info)


def _saveat_kind(value: Any) -> str:
    if isinstance(value, SaveAtFile) or (isinstance(value, Mapping) and "file" in value):
        return "<file>"
    return "<range>" if isinstance(value, Mapping | SaveAtRange) else "<list>"


SaveAt = Annotated[
    Union[
        Annotated[list[Float], Tag("<list>")],
        Annotated[SaveAtRange, Tag("<range>")],
        Annotated[SaveAtFile, Tag("<file>")],
    ],
    Discriminator(_saveat_kind),
]


class OdeSection(Section):
    """``ode:``: solve dy/dt = vector_field(t, y, args) with diffrax, save at given times."""

    vector_field: str  # built-in name, "package.module:function" or "file.py:function"
    y0: Any  # expression, number or (nested) list
    args: Any = None  # expression, list or mapping of expressions: the pytree passed as args
    t0: Float = 0.0
    t1: Float | None = None  # None: the last save time
    saveat: SaveAt
    dt0: Float | None = None
    solver: str = "Tsit5"
    rtol: Float = Field(1e-6, gt=0)
    atol: Float = Field(1e-6, gt=0)
    max_steps: Int = Field(4096, gt=0)
    sensitivity: Literal[SENSITIVITIES] = "auto"
    output: str = "ode"

    @field_validator("vector_field")
    @classmethod
    def _vector_field(cls, ref: str, info: ValidationInfo) -> str:
        if ":" in ref:
            return callable_ref(ref, info, "a built-in name, 'package.module:function' or 'file.py:function'")
        if not ref.strip():
            fail("expected a built-in name, 'package.module:function' or 'file.py:function'")
        return ref

    @field_validator("y0")
    @classmethod
    def _y0(cls, value: Any) -> Any:
        if value is None:
            fail("expected the initial state (a number, list or expression), got null")
        return value

    @field_validator("saveat", mode="before")
    @classmethod
    def _saveat_form(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple | Mapping | BaseModel):
            fail(f"expected a list of times, {{start, stop, num}} or {{file, column}}, got {show(value)}")
        return value

    @field_validator("saveat")
    @classmethod
    def _increasing(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                fail("expected at least one save time, got an empty list")
            if any(b <= a for a, b in zip(value, value[1:], strict=False)):
                fail(f"save times must be strictly increasing, got {value}")
        return value

    @field_validator("solver")
    @classmethod
    def _known_solver(cls, name: str) -> str:
        names = solvers()
        if name not in names:
            hint = did_you_mean(name, names) or "; expected a diffrax solver class such as Tsit5"
            fail(f"unknown solver {name!r}{hint}")
        return name

    def save_times(self) -> np.ndarray:
        """The save times as a float array: the list, the linspace, or the CSV column."""
        saveat = self.saveat
        if isinstance(saveat, SaveAtRange):
            return np.linspace(saveat.start, saveat.stop, saveat.num)
        if isinstance(saveat, SaveAtFile):
            return read_column(saveat.file, saveat.column, "ode.saveat")
        return np.asarray(saveat, dtype=float)


__all__ = ["OdeSection", "SaveAtRange", "SaveAtFile", "SENSITIVITIES", "solvers"]
