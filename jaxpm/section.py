"""The building blocks of every config section: the base class, distributions, field types.

Each part of a config is a small pydantic model deriving from :class:`Section`:
``extra="forbid"`` with a did-you-mean for unknown keys, field types and constraints for
the rest. Experiments define their own section (``jaxpm.experiments.ode.OdeSection``),
samplers theirs (``jaxpm.sampling.Sample``); :mod:`jaxpm.spec` assembles them into the
whole :class:`~jaxpm.spec.Spec` and translates pydantic's errors into one-line
:class:`~jaxpm.errors.ConfigError` messages.

Validators reject a value with :func:`fail`, which can point below the value being
validated (``at=("x", "observed")``) so that the error's key path names the exact
culprit. Paths in a section are resolved against the config's folder, passed as the
validation context ``{"base_dir": ...}``.

>>> class Demo(Section):
...     rate: Float = 1.0
>>> Demo.model_validate({"rate": 2}).rate
2.0
>>> Demo.model_validate({"rat": 2})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for Demo
...
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from jaxpm.errors import did_you_mean

ERROR_TYPE = "jaxpm"
"""The pydantic error type :func:`fail` raises (its message is already one line for the user)."""


def fail(message: str, *at: str | int) -> None:
    """Reject a value from inside a validator.

    ``at`` continues the key path below the value being validated, e.g. a validator of
    ``priors`` calls ``fail("...", "x", "observed")`` to blame ``priors.x.observed``.
    The message travels in the context (not the template) so braces in it are safe.
    """
    raise PydanticCustomError(ERROR_TYPE, "{message}", {"message": message, "at": at})


def show(value: Any) -> str:
    """A value as the user wrote it in YAML, short: ``'abc'``, ``1.5``, ``null``, ``a list [1, 2]``.

    >>> show(None), show(True), show([1, 2]), show("x")
    ('null', 'true', 'a list [1, 2]', "'x'")
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list | tuple):
        text = json.dumps(value, default=str)
        text = text if len(text) <= 40 else text[:37] + "..."
        return f"{'a mapping' if isinstance(value, Mapping) else 'a list'} {text}"
    return repr(value)


def _no_bool(what: str):
    """A before-validator: YAML ``true`` is not a number (pydantic would take it as 1)."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            fail(f"expected {what}, got {show(value)}")
        return value

    return BeforeValidator(check)


Float = Annotated[float, _no_bool("a number")]
"""A number (not ``true``/``false``)."""
Int = Annotated[int, _no_bool("an integer")]
"""An integer (not ``true``/``false``)."""


def base_dir(info: ValidationInfo) -> Path:
    """The directory relative paths resolve against (passed as validation context)."""
    return Path((info.context or {}).get("base_dir") or Path.cwd())


def absolute_path(value: str, info: ValidationInfo) -> Path:
    """``value`` as an absolute, normalised path (``~`` expanded, relative to the config)."""
    return Path(os.path.normpath(base_dir(info) / Path(value).expanduser()))


def existing_file(value: str, info: ValidationInfo) -> str:
    """The absolute path of a file that must exist; sections store paths absolute."""
    path = absolute_path(value, info)
    if not path.is_file():
        fail(f"file not found: {path}")
    return str(path)


def callable_ref(ref: str, info: ValidationInfo, form: str) -> str:
    """Check ``"module:function"``; make the file absolute in ``"file.py:function"``."""
    module, _, func = ref.partition(":")
    if ref.count(":") != 1 or not module.strip() or not func.strip():
        fail(f"expected {form}, got {ref!r}")
    if module.endswith(".py"):
        return f"{existing_file(module, info)}:{func}"
    return ref


@functools.cache
def distributions() -> frozenset[str]:
    """Names of PyMC distribution classes (imported lazily: PyMC takes seconds to load)."""
    import pymc
    from pymc.distributions import Distribution

    bases = {"Distribution", "Continuous", "Discrete"}
    return frozenset(
        name
        for name in dir(pymc)
        if name not in bases and isinstance(cls := getattr(pymc, name), type) and issubclass(cls, Distribution)
    )


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, with a did-you-mean."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and cls.model_config.get("extra") == "forbid":
            known = list(cls.model_fields)
            for key in data:
                if key not in known:
                    hint = did_you_mean(key, known) or f"; expected one of: {', '.join(known)}"
                    fail(f"unknown key {show(key)}{hint}", key)
        return data


class Dist(Section):
    """A PyMC distribution: ``{dist: Normal, mu: 0, sigma: 1, shape: 3}``.

    ``dist`` names the class (``getattr(pymc, dist)``); every other key is passed to it as
    a parameter or keyword argument. Their values (numbers, nested lists, expressions)
    are kept as written; the model builder evaluates them.
    """

    model_config = ConfigDict(extra="allow")

    dist: str

    @field_validator("dist")
    @classmethod
    def _known_distribution(cls, name: str) -> str:
        names = distributions()
        if name not in names:
            hint = did_you_mean(name, names) or "; expected a PyMC distribution class such as Normal"
            fail(f"unknown distribution {name!r}{hint}")
        return name

    @property
    def params(self) -> dict[str, Any]:
        """The distribution's parameters and keyword arguments (everything but ``dist``)."""
        return dict(self.__pydantic_extra__ or {})


class Prior(Dist):
    """A free random variable: a :class:`Dist` without ``observed``."""

    @model_validator(mode="before")
    @classmethod
    def _not_observed(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "observed" in data:
            fail("a prior cannot be observed; move it to likelihood", "observed")
        return data


def plain_value(value: Any) -> Any:
    """Serialise values pydantic does not know (numpy arrays and scalars from a dict config)."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


__all__ = [
    "ERROR_TYPE", "Section", "Dist", "Prior", "Float", "Int", "fail", "show", "base_dir", "absolute_path",
    "existing_file", "callable_ref", "distributions", "plain_value",
]
