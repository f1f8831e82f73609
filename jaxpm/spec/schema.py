"""The whole config: :class:`Spec`, assembled from every part's section.

The experiments' sections (``exp``, ``ode``, ``cnn``) come from
:data:`jaxpm.experiments.registry.BUILTIN`, the ``sample:`` section from
:mod:`jaxpm.sampling.settings`, the ``predictive:`` section from
:mod:`jaxpm.predictive.settings`; this module adds what is common to every config (priors,
likelihood, deterministics, evaluation, gradient checks, output) and the rules that
need the whole (one namespace of names, a section for the chosen experiment, a start the
experiment provides). It checks *shape* only: which keys exist, their types, that named
distributions, solvers and files exist. It does not parse expressions, build models or
load data.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from jaxpm.backends import BACKENDS
from jaxpm.data import check_suffix
from jaxpm.errors import did_you_mean
from jaxpm.experiments.registry import BUILTIN, PLUGIN_FORM
from jaxpm.predictive.settings import Predictive
from jaxpm.sampling.settings import Sample
from jaxpm.section import Dist, Float, Int, Prior, Section, callable_ref, existing_file, fail, plain_value, show
from jaxpm.spec.grid import Sweep
from jaxpm.spec.sbc import Sbc

DEFAULT_SEED = 20230103
DICT_LABEL = "<dict>"
"""How errors name a config given as a mapping."""
DICT_NAME = "experiment"
"""The name of a config given as a mapping without ``name``."""


class ObservedFile(Section):
    """``observed: {file: data.csv, columns: [a, b]}`` or ``{file: data.npy}``."""

    file: str
    columns: list[str] | None = None  # None: every column

    @field_validator("file")
    @classmethod
    def _exists(cls, file: str, info: ValidationInfo) -> str:
        problem = check_suffix(file)
        if problem:
            fail(problem)
        return existing_file(file, info)

    @model_validator(mode="after")
    def _columns_need_csv(self) -> ObservedFile:
        problem = check_suffix(self.file, self.columns)
        if problem:
            fail(problem, "columns")
        return self


def _observed_kind(value: Any) -> str:
    if isinstance(value, Mapping | ObservedFile):
        return "<file>"
    if isinstance(value, str):
        return "<name>"
    return "<list>" if isinstance(value, list | tuple) else "<number>"


Observed = Annotated[
    Union[
        Annotated[ObservedFile, Tag("<file>")],
        Annotated[str, Tag("<name>")],
        Annotated[list[Any], Tag("<list>")],
        Annotated[float, Tag("<number>")],
    ],
    Discriminator(_observed_kind),
]


class Likelihood(Dist):
    """An observed random variable: a :class:`~jaxpm.section.Dist` plus ``observed`` data.

    ``observed`` is a list (or a number), a name or expression (``labels``), or a file
    mapping; relative file paths are relative to the config and stored absolute.
    """

    observed: Observed

    @field_validator("observed", mode="before")
    @classmethod
    def _observed_form(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, Mapping | ObservedFile | str | list | tuple | int | float):
            fail(f"expected a list, a name or {{file: data.csv}}, got {show(value)}")
        if isinstance(value, str) and Path(value).suffix.lower() in (".csv", ".npy"):
            fail(f"to read a data file write observed: {{file: {value}}}")
        if isinstance(value, str) and not value.strip():
            fail("expected a list, a name or {file: data.csv}, got an empty string")
        return value


class Evaluate(Section):
    """``evaluate:``: logp/dlogp on each backend at one point, compared and timed."""

    backends: list[Literal[tuple(BACKENDS)]] = Field(default_factory=lambda: list(BACKENDS), min_length=1)
    point: Literal["initial"] | dict[str, Any] = "initial"  # or {value_var_name: value}
    rtol: Float = Field(1e-6, ge=0)
    atol: Float = Field(1e-8, ge=0)
    repeats: Int = Field(20, gt=0)

    @field_validator("backends")
    @classmethod
    def _unique(cls, backends: list[str]) -> list[str]:
        for i, name in enumerate(backends):
            if name in backends[:i]:
                fail(f"backend {name!r} is listed twice", i)
        return backends

    @field_validator("point", mode="before")
    @classmethod
    def _point_form(cls, value: Any) -> Any:
        if value == "initial" or isinstance(value, Mapping):
            return value
        fail(f"expected 'initial' or a mapping from value variables to values, got {show(value)}")


class CheckGrad(Section):
    """``check_grad:``: compare gradients with finite differences at a few points."""

    enabled: bool = True
    points: Int = Field(3, gt=0)
    rtol: Float = Field(1e-4, ge=0)
    atol: Float = Field(1e-6, ge=0)
    eps: Float | None = Field(None, gt=0)  # None: a sweep of steps (see jaxpm.gradcheck)
    # Overrides for the model the checks run on, e.g. {ode.rtol: 1e-10}: an adaptive
    # solver's AD gradient ignores how step sizes depend on the parameters, so it matches
    # finite differences only to about the solver's tolerance; checking at a tight one
    # tests the gradient code, not the discretisation.
    set: dict[str, Any] = Field(default_factory=dict)


class Output(Section):
    """``output:``: where run folders go (relative to the working directory)."""

    dir: str = Field("results", min_length=1)


class SpecBase(Section):
    """What every config has; :class:`Spec` adds one optional section per built-in experiment."""

    name: str = DICT_NAME
    experiment: str
    seed: Int = Field(DEFAULT_SEED, ge=0)
    priors: dict[str, Prior] = Field(default_factory=dict)
    likelihood: dict[str, Likelihood] = Field(default_factory=dict)
    plugin: dict[str, Any] = Field(default_factory=dict)  # free-form, for "module:function" experiments
    deterministics: dict[str, Any] = Field(default_factory=dict)
    evaluate: Evaluate = Field(default_factory=Evaluate)
    check_grad: CheckGrad = Field(default_factory=CheckGrad)
    sample: Sample = Field(default_factory=Sample)
    predictive: Predictive = Field(default_factory=Predictive)
    output: Output = Field(default_factory=Output)
    sweep: Sweep | None = None  # jaxpm sweep's grid; jaxpm run ignores it
    sbc: Sbc | None = None  # jaxpm sbc's settings; jaxpm run ignores it

    _label: str = PrivateAttr(DICT_LABEL)
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*", name):
            fail(f"expected a name usable as a folder name (letters, digits, _ . + -), got {name!r}")
        return name

    @field_validator("experiment")
    @classmethod
    def _experiment(cls, value: str, info: ValidationInfo) -> str:
        if value in BUILTIN:
            return value
        form = f"{', '.join(BUILTIN)} or '{PLUGIN_FORM}'"
        if ":" not in value:
            hint = did_you_mean(value, BUILTIN)
            fail(f"unknown experiment {value!r}" + (hint if "did you mean" in hint else f"; expected {form}"))
        return callable_ref(value, info, form)

    @field_validator("priors", mode="before")
    @classmethod
    def _priors_unobserved(cls, priors: Any) -> Any:
        if isinstance(priors, Mapping):
            for name, prior in priors.items():
                if isinstance(prior, Mapping) and "observed" in prior:
                    fail(f"priors cannot be observed; move {name!r} to likelihood", name, "observed")
        return priors

    @model_validator(mode="after")
    def _consistent(self) -> SpecBase:
        experiment = BUILTIN.get(self.experiment)
        if experiment is not None and self.section is None:
            fail(f"missing section {self.experiment!r} for experiment {self.experiment!r}", self.experiment)
        elsewhere = {start: what for e in BUILTIN.values() for start, what in e.fit_starts.items()}
        self.sample.check_start(experiment.fit_starts if experiment else {}, self.experiment, elsewhere)
        self._unique_names(experiment)
        return self

    def _unique_names(self, experiment) -> None:
        """Every model variable needs its own name: priors, outputs, deterministics, likelihood."""
        places: list[tuple[str, tuple[str, ...]]] = [(n, ("priors", n)) for n in self.priors]
        if experiment is not None:
            places += [(n, (self.experiment, "output")) for n in experiment.outputs(self.section)]
        places += [(n, ("deterministics", n)) for n in self.deterministics]
        places += [(n, ("likelihood", n)) for n in self.likelihood]
        seen: dict[str, str] = {}
        for name, key in places:
            if name in seen:
                fail(f"name {name!r} is already used by {seen[name]}; pick another name", *key)
            seen[name] = ".".join(key)

    # -- the experiment's section

    @property
    def section(self) -> Any:
        """The chosen experiment's section: ``self.ode`` for ``experiment: ode``, the
        ``plugin:`` mapping for a plugin."""
        if self.experiment in BUILTIN:
            return getattr(self, self.experiment)
        return self.plugin

    # -- where it came from

    @property
    def label(self) -> str:
        """How errors name this config: the path as the user gave it, or ``"<dict>"``."""
        return self._label

    @property
    def base_dir(self) -> Path:
        """The directory relative paths resolve against: the config's, or the cwd for dicts."""
        return self._base_dir

    def resolve_path(self, p: str | os.PathLike) -> Path:
        """``p`` as an absolute path; relative paths are relative to :attr:`base_dir`."""
        path = Path(p).expanduser()
        return path if path.is_absolute() else Path(os.path.normpath(self.base_dir / path))

    # -- output

    def raw(self) -> dict[str, Any]:
        """The resolved spec as plain data (defaults written out, unused experiment sections and an absent
        ``sweep:`` or ``sbc:`` left out)."""
        unused = {k for k in (*BUILTIN, "sweep", "sbc") if getattr(self, k) is None}
        return self.model_dump(mode="json", exclude=unused, fallback=plain_value)

    def to_yaml(self) -> str:
        """The resolved spec as YAML, re-runnable as it is.

        Defaults are written out, ``name`` is filled in and data paths are absolute, so
        the text loads to an equal :class:`Spec` from any directory. Unused experiment
        sections (``exp``/``ode``/``cnn`` left out of the config) are omitted.
        """
        return yaml.safe_dump(self.raw(), sort_keys=False, default_flow_style=None, allow_unicode=True, width=100)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpecBase):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = None  # equal by value, and mutable: not hashable


Spec = create_model(
    "Spec",
    __base__=SpecBase,
    __module__=__name__,
    __doc__="""The whole validated config. Build it with :func:`jaxpm.spec.load_spec`.

    One optional field per built-in experiment (``exp``, ``ode``, ``cnn``: its section),
    besides :class:`SpecBase`'s. Data paths inside are absolute; :attr:`label` names the
    config in errors and :attr:`base_dir` is where it came from. Two specs are equal when
    their settings are, wherever they were loaded from.
    """,
    **{name: (e.section | None, None) for name, e in BUILTIN.items()},
)

__all__ = ["Spec", "SpecBase", "Likelihood", "ObservedFile", "Evaluate", "CheckGrad", "Output", "DEFAULT_SEED",
           "DICT_LABEL", "DICT_NAME"]
