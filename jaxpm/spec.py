"""The YAML spec: one file that says everything about an experiment.

This module turns a config (a YAML file, a built-in config name, or a plain dict) into a
validated :class:`Spec`. It checks *shape* only: which keys exist, their types, that
named distributions and solvers exist, that data files are there. It does not parse
expressions (``"log(ode)"``), build models or load data; other modules do that from the
validated spec.

How validation is split:

* pydantic does the work. Each section is a small model; ``extra="forbid"`` rejects
  unknown keys, field types and constraints reject wrong values, a few validators check
  what types cannot say (a distribution name exists, a file exists, a section matches
  ``experiment``).
* This module translates. A pydantic ``ValidationError`` never reaches the user: its
  first error becomes a :class:`~jaxpm.errors.ConfigError` whose key is the dotted path
  into the YAML (``evaluate.backends[1]``) and whose message is one line that says what
  is wrong and what would be right (``'cuda' is not a backend; expected one of: c, jax,
  numba``).

Validators report problems with :func:`_fail`, which can point below the validated
value (``at=("x", "observed")``) so that the key path names the exact culprit.

Example::

    spec = load_spec("ode", overrides=["ode.rtol=1e-8", "evaluate.backends=[c]"])
    spec.ode.save_times(spec)       # -> array([0., 1., 2., 3.])
    print(spec.to_yaml())           # the resolved config, re-runnable as it is
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from jaxpm.errors import ConfigError, did_you_mean

__all__ = [
    "Spec",
    "Dist",
    "Prior",
    "Likelihood",
    "ExpSection",
    "OdeSection",
    "CnnSection",
    "load_spec",
    "resolve_config",
    "builtin_configs",
    "apply_overrides",
    "BUILTIN_EXPERIMENTS",
    "CONFIG_DIR",
]

#: The experiments jaxpm ships; anything else must be ``"package.module:function"``.
BUILTIN_EXPERIMENTS = ("exp", "ode", "cnn")

#: The packaged configs (``jaxpm/configs`` is a symlink to the repository's ``configs/``).
CONFIG_DIR = Path(__file__).parent / "configs"

DEFAULT_SEED = 20230103
_DICT_LABEL = "<dict>"
_DICT_NAME = "experiment"
_ERROR = "jaxpm"  # the pydantic error type our validators raise


# --------------------------------------------------------------------------- helpers


def _fail(message: str, *at: str | int) -> None:
    """Reject a value from inside a validator.

    ``at`` continues the key path below the value being validated, e.g. a validator of
    ``priors`` calls ``_fail("...", "x", "observed")`` to blame ``priors.x.observed``.
    The message travels in the context (not the template) so braces in it are safe.
    """
    raise PydanticCustomError(_ERROR, "{message}", {"message": message, "at": at})


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML, short: ``'abc'``, ``1.5``, ``null``, ``a list [1, 2]``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (Mapping, list, tuple)):
        text = json.dumps(value, default=str)
        text = text if len(text) <= 40 else text[:37] + "..."
        return f"{'a mapping' if isinstance(value, Mapping) else 'a list'} {text}"
    return repr(value)


def _no_bool(what: str):
    """A before-validator: YAML ``true`` is not a number (pydantic would take it as 1)."""

    def check(value: Any) -> Any:
        if isinstance(value, bool):
            _fail(f"expected {what}, got {_show(value)}")
        return value

    return BeforeValidator(check)


Float = Annotated[float, _no_bool("a number")]
Int = Annotated[int, _no_bool("an integer")]


def _base_dir(info: ValidationInfo) -> Path:
    """The directory relative paths resolve against (passed as validation context)."""
    return Path((info.context or {}).get("base_dir") or Path.cwd())


def _absolute(value: str, info: ValidationInfo) -> Path:
    """``value`` as an absolute, normalised path (``~`` expanded, relative to the config)."""
    return Path(os.path.normpath(_base_dir(info) / Path(value).expanduser()))


def _existing_file(value: str, info: ValidationInfo) -> str:
    """The absolute path of a file that must exist; the spec stores it absolute."""
    path = _absolute(value, info)
    if not path.is_file():
        _fail(f"file not found: {path}")
    return str(path)


def _resolve_callable(ref: str, info: ValidationInfo, form: str) -> str:
    """Check ``"module:function"``; make the file absolute in ``"file.py:function"``."""
    module, _, func = ref.partition(":")
    if ref.count(":") != 1 or not module.strip() or not func.strip():
        _fail(f"expected {form}, got {ref!r}")
    if module.endswith(".py"):
        return f"{_existing_file(module, info)}:{func}"
    return ref


@functools.cache
def _distributions() -> frozenset[str]:
    """Names of PyMC distribution classes (imported lazily: PyMC takes seconds to load)."""
    import pymc
    from pymc.distributions import Distribution

    bases = {"Distribution", "Continuous", "Discrete"}
    return frozenset(
        name
        for name in dir(pymc)
        if name not in bases
        and isinstance(cls := getattr(pymc, name), type)
        and issubclass(cls, Distribution)
    )


@functools.cache
def _solvers() -> frozenset[str]:
    """Names of concrete diffrax solver classes (``Tsit5``, ``Dopri5``, ``Kvaerno5``, ...)."""
    import diffrax

    def concrete(cls: type) -> bool:
        return not (
            cls.__name__.startswith("Abstract")
            or inspect.isabstract(cls)
            or getattr(cls, "__abstractvars__", None)
        )

    return frozenset(
        name
        for name in dir(diffrax)
        if isinstance(cls := getattr(diffrax, name), type)
        and issubclass(cls, diffrax.AbstractSolver)
        and concrete(cls)
    )


# --------------------------------------------------------------------------- sections


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
                    _fail(f"unknown key {_show(key)}{hint}", key)
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
        names = _distributions()
        if name not in names:
            hint = did_you_mean(name, names) or "; expected a PyMC distribution class such as Normal"
            _fail(f"unknown distribution {name!r}{hint}")
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
            _fail("a prior cannot be observed; move it to likelihood", "observed")
        return data


class ObservedFile(Section):
    """``observed: {file: data.csv, columns: [a, b]}`` or ``{file: data.npy}``."""

    file: str
    columns: list[str] | None = None  # None: every column

    @field_validator("file")
    @classmethod
    def _exists(cls, file: str, info: ValidationInfo) -> str:
        suffix = Path(file).suffix.lower()
        if suffix not in (".csv", ".npy"):
            _fail(f"cannot read {suffix or 'extension-less'} files; expected a .csv or .npy file")
        return _existing_file(file, info)

    @model_validator(mode="after")
    def _columns_need_csv(self) -> "ObservedFile":
        if self.columns is not None and not self.file.lower().endswith(".csv"):
            _fail("columns apply to .csv files only", "columns")
        return self


def _observed_kind(value: Any) -> str:
    if isinstance(value, (Mapping, ObservedFile)):
        return "<file>"
    if isinstance(value, str):
        return "<name>"
    return "<list>" if isinstance(value, (list, tuple)) else "<number>"


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
    """An observed random variable: a :class:`Dist` plus ``observed`` data.

    ``observed`` is a list (or a number), a name or expression (``labels``), or a file
    mapping; relative file paths are relative to the config and stored absolute.
    """

    observed: Observed

    @field_validator("observed", mode="before")
    @classmethod
    def _observed_form(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(
            value, (Mapping, ObservedFile, str, list, tuple, int, float)
        ):
            _fail(f"expected a list, a name or {{file: data.csv}}, got {_show(value)}")
        if isinstance(value, str) and Path(value).suffix.lower() in (".csv", ".npy"):
            _fail(f"to read a data file write observed: {{file: {value}}}")
        if isinstance(value, str) and not value.strip():
            _fail("expected a list, a name or {file: data.csv}, got an empty string")
        return value


class ExpSection(Section):
    """``exp: {input: x, output: y}``: y = exp(x) through the wrapped JAX function."""

    input: str
    output: str


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
        return _existing_file(file, info)


def _saveat_kind(value: Any) -> str:
    if isinstance(value, SaveAtFile) or (isinstance(value, Mapping) and "file" in value):
        return "<file>"
    return "<range>" if isinstance(value, (Mapping, SaveAtRange)) else "<list>"


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
    sensitivity: Literal["auto", "forward", "adjoint", "backsolve"] = "auto"
    output: str = "ode"

    @field_validator("vector_field")
    @classmethod
    def _vector_field(cls, ref: str, info: ValidationInfo) -> str:
        if ":" in ref:
            return _resolve_callable(ref, info, "a built-in name, 'package.module:function' or 'file.py:function'")
        if not ref.strip():
            _fail("expected a built-in name, 'package.module:function' or 'file.py:function'")
        return ref

    @field_validator("y0")
    @classmethod
    def _y0(cls, value: Any) -> Any:
        if value is None:
            _fail("expected the initial state (a number, list or expression), got null")
        return value

    @field_validator("saveat", mode="before")
    @classmethod
    def _saveat_form(cls, value: Any) -> Any:
        if not isinstance(value, (list, tuple, Mapping, BaseModel)):
            _fail(f"expected a list of times, {{start, stop, num}} or {{file, column}}, got {_show(value)}")
        return value

    @field_validator("saveat")
    @classmethod
    def _increasing(cls, value: Any) -> Any:
        if isinstance(value, list):
            if not value:
                _fail("expected at least one save time, got an empty list")
            if any(b < a for a, b in zip(value, value[1:])):
                _fail(f"save times must be in increasing order, got {value}")
        return value

    @field_validator("solver")
    @classmethod
    def _known_solver(cls, name: str) -> str:
        names = _solvers()
        if name not in names:
            hint = did_you_mean(name, names) or "; expected a diffrax solver class such as Tsit5"
            _fail(f"unknown solver {name!r}{hint}")
        return name

    def save_times(self, spec: "Spec | None" = None) -> np.ndarray:
        """The save times as a float array: the list, the linspace, or the CSV column."""
        saveat = self.saveat
        if isinstance(saveat, SaveAtRange):
            return np.linspace(saveat.start, saveat.stop, saveat.num)
        if isinstance(saveat, SaveAtFile):
            return _read_column(saveat, spec.label if spec is not None else None)
        return np.asarray(saveat, dtype=float)


def _read_column(saveat: SaveAtFile, label: str | None) -> np.ndarray:
    import pandas as pd

    try:
        table = pd.read_csv(saveat.file)
    except Exception as exc:  # pandas raises many types; all mean "unreadable"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError("ode.saveat.file", f"cannot read {saveat.file}: {reason}", label) from None
    if saveat.column not in table.columns:
        columns = [str(c) for c in table.columns]
        raise ConfigError(
            "ode.saveat.column",
            f"no column {saveat.column!r} in {saveat.file}{did_you_mean(saveat.column, columns)}",
            label,
        )
    try:
        return table[saveat.column].to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(
            "ode.saveat.column", f"column {saveat.column!r} of {saveat.file} is not numeric", label
        ) from None


def _default_weight_prior() -> Prior:
    # model_construct: no validation, so defining the default does not import PyMC
    return Prior.model_construct(dist="Normal", mu=0, sigma=1)


class CnnSection(Section):
    """``cnn:``: a flax CNN classifying digit images, as in the PyMC Labs post."""

    source: Literal["digits", "mnist", "npz"] = "digits"
    n: Int = Field(1000, gt=0)
    holdout: Int = Field(500, ge=0)  # images after the first n, for held-out accuracy
    data_dir: str | None = None  # tensorflow-datasets cache for source: mnist
    path: str | None = None  # the .npz file for source: npz
    split: str = "train"
    layers: list[Any] | None = None  # None: the post's architecture
    weight_prior: Prior = Field(default_factory=_default_weight_prior)
    dtype: Literal["float32", "float64"] = "float64"
    inference_dtype: Literal["float32", "float64"] | None = None  # sampling and fits; None: dtype
    output: str = "logits"
    labels: str = "labels"

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else str(_absolute(value, info))

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _existing_file(value, info)

    @model_validator(mode="after")
    def _npz_needs_path(self) -> "CnnSection":
        if self.source == "npz" and self.path is None:
            _fail("required key 'path' is missing (source: npz reads images from a .npz file)", "path")
        return self


class Evaluate(Section):
    """``evaluate:``: logp/dlogp on each backend at one point, compared and timed."""

    backends: list[Literal["c", "numba", "jax"]] = Field(
        default_factory=lambda: ["c", "numba", "jax"], min_length=1
    )
    point: Literal["initial"] | dict[str, Any] = "initial"  # or {value_var_name: value}
    rtol: Float = Field(1e-6, ge=0)
    atol: Float = Field(1e-8, ge=0)
    repeats: Int = Field(20, gt=0)

    @field_validator("backends")
    @classmethod
    def _unique(cls, backends: list[str]) -> list[str]:
        for i, name in enumerate(backends):
            if name in backends[:i]:
                _fail(f"backend {name!r} is listed twice", i)
        return backends

    @field_validator("point", mode="before")
    @classmethod
    def _point_form(cls, value: Any) -> Any:
        if value == "initial" or isinstance(value, Mapping):
            return value
        _fail(f"expected 'initial' or a mapping from value variables to values, got {_show(value)}")


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


#: ``sample.optimizer``: PyMC's stochastic optimisers for ADVI (``pm.<name>(learning_rate=...)``).
ADVI_OPTIMIZERS = ("adagrad_window", "adam", "adamax", "adagrad", "rmsprop", "adadelta", "sgd", "momentum",
                   "nesterov_momentum")
#: Samplers that take ``sample.start``: the fits. NUTS samplers choose their own start.
FITS = ("advi", "map")


MASS_MATRICES = {
    "nutpie": ("diag", "low_rank"),
    "pymc": ("diag", "full"),
    "numpyro": ("diag", "full"),
    "blackjax": ("diag", "full"),
}
"""The mass matrices each NUTS sampler adapts (``sample.mass_matrix``)."""


class Sample(Section):
    """``sample:``: draw from the posterior (off unless enabled).

    The fits (``advi``, ``map``) have their own settings; each defaults to what PyMC does::

        iterations: 20000     # advi: optimisation steps; map: at most this many logp+gradient evaluations
        start: initial        # initial: the model's initial point | flax: the CNN's flax initialisation
        start_sigma: null     # advi: first std of every mean-field normal (null: PyMC's 0.69)
        optimizer: adagrad_window   # advi: any of ADVI_OPTIMIZERS (pm.adam, ...)
        learning_rate: null   # advi: the optimiser's step size (null: PyMC's default)

    NUTS samplers take::

        mass_matrix: diag     # diag | low_rank (nutpie) | full (pymc, numpyro, blackjax)
        jitter: true          # start each chain at the initial point plus Uniform(-1, 1)
                              # noise in the unconstrained space (PyMC's default); false: no noise
        initvals: {}          # {free variable: value} overriding the model's initial point
        start: initial        # initial: the initial point above, jittered
                              # mode: around the posterior mode, found by L-BFGS from
                              # `restarts` jittered initial points (jaxpm.starts); each
                              # chain at a draw from the Laplace approximation there
        restarts: 16          # start: mode: how many L-BFGS runs look for the mode

    Every sampler takes ``progressbar: true`` (its own live progress bar); ``false`` shows
    a spinner instead. numpyro's bar is a host callback compiled into the sampler, and
    JAX's compilation cache keeps no program with one: without the bar, a second run of
    the same model loads the compiled sampler instead of compiling it again.
    """

    enabled: bool = False
    sampler: Literal["nutpie", "pymc", "numpyro", "blackjax", "advi", "map"] = "nutpie"
    draws: Int = Field(1000, gt=0)
    tune: Int = Field(1000, ge=0)
    chains: Int = Field(4, gt=0)
    cores: Int | None = Field(None, gt=0)
    target_accept: Float = Field(0.8, gt=0, lt=1)
    iterations: Int = Field(20000, gt=0)  # advi: steps; map: most logp+gradient evaluations
    seed: Int | None = Field(None, ge=0)  # None: the top-level seed
    start: Literal["initial", "flax", "mode"] = "initial"  # fits: flax; NUTS samplers: mode
    start_sigma: Float | None = Field(None, gt=0)  # advi; unconstrained space
    optimizer: Literal[ADVI_OPTIMIZERS] = "adagrad_window"  # advi
    learning_rate: Float | None = Field(None, gt=0)  # advi; None: the optimiser's default
    mass_matrix: Literal["diag", "low_rank", "full"] = "diag"  # NUTS samplers
    jitter: bool = True  # NUTS samplers
    initvals: dict[str, Any] = Field(default_factory=dict)  # NUTS samplers; checked against the model
    progressbar: bool = True
    restarts: Int = Field(16, gt=0)  # start: mode

    @model_validator(mode="after")
    def _start_for_sampler(self) -> "Sample":
        if self.start == "flax" and self.sampler not in FITS:
            _fail(f"flax is a start for the fits ({' and '.join(FITS)}); for {self.sampler} set "
                  "sample.start=initial or mode", "start")
        if self.start == "mode" and self.sampler in FITS:
            _fail(f"mode is a start for NUTS chains; {self.sampler} starts from initial or flax: "
                  "set sample.start=initial", "start")
        return self

    @model_validator(mode="after")
    def _nutpie_tunes(self) -> "Sample":
        if self.sampler == "nutpie" and self.tune == 0:
            _fail("nutpie needs at least one tuning step (its adaptation panics on 0): "
                  "set sample.tune >= 1", "tune")
        return self

    @model_validator(mode="after")
    def _mass_matrix_supported(self) -> "Sample":
        supported = MASS_MATRICES.get(self.sampler, ("diag",))
        if self.mass_matrix not in supported:
            _fail(f"{self.sampler} has no {self.mass_matrix} mass matrix; it supports "
                  f"{', '.join(supported)}", "mass_matrix")
        return self


class Output(Section):
    """``output:``: where run folders go (relative to the working directory)."""

    dir: str = Field("results", min_length=1)


# --------------------------------------------------------------------------- the spec


class Spec(Section):
    """The whole validated config. Build it with :func:`load_spec`.

    Data paths inside are absolute; :attr:`label` names the config in errors and
    :attr:`base_dir` is where it came from. Two specs are equal when their settings
    are, wherever they were loaded from (so ``load_spec(spec.to_yaml()-file) == spec``).
    """

    name: str = _DICT_NAME
    experiment: str
    seed: Int = Field(DEFAULT_SEED, ge=0)
    priors: dict[str, Prior] = Field(default_factory=dict)
    likelihood: dict[str, Likelihood] = Field(default_factory=dict)
    exp: ExpSection | None = None
    ode: OdeSection | None = None
    cnn: CnnSection | None = None
    plugin: dict[str, Any] = Field(default_factory=dict)  # free-form, for "module:function" experiments
    deterministics: dict[str, Any] = Field(default_factory=dict)
    evaluate: Evaluate = Field(default_factory=Evaluate)
    check_grad: CheckGrad = Field(default_factory=CheckGrad)
    sample: Sample = Field(default_factory=Sample)
    output: Output = Field(default_factory=Output)

    _label: str = PrivateAttr(_DICT_LABEL)
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*", name):
            _fail(f"expected a name usable as a folder name (letters, digits, _ . + -), got {name!r}")
        return name

    @field_validator("experiment")
    @classmethod
    def _experiment(cls, value: str, info: ValidationInfo) -> str:
        if value in BUILTIN_EXPERIMENTS:
            return value
        form = "exp, ode, cnn or 'package.module:function'"
        if ":" not in value:
            hint = did_you_mean(value, BUILTIN_EXPERIMENTS)
            _fail(f"unknown experiment {value!r}" + (hint if "did you mean" in hint else f"; expected {form}"))
        return _resolve_callable(value, info, form)

    @field_validator("priors", mode="before")
    @classmethod
    def _priors_unobserved(cls, priors: Any) -> Any:
        if isinstance(priors, Mapping):
            for name, prior in priors.items():
                if isinstance(prior, Mapping) and "observed" in prior:
                    _fail(f"priors cannot be observed; move {name!r} to likelihood", name, "observed")
        return priors

    @model_validator(mode="after")
    def _consistent(self) -> "Spec":
        if self.experiment in BUILTIN_EXPERIMENTS and getattr(self, self.experiment) is None:
            _fail(f"missing section {self.experiment!r} for experiment {self.experiment!r}", self.experiment)
        if self.sample.start == "flax" and self.experiment != "cnn":
            _fail(f"flax initialises a CNN's network; experiment {self.experiment!r} has none: "
                  "set sample.start=initial", "sample", "start")
        self._unique_names()
        return self

    def _unique_names(self) -> None:
        """Every model variable needs its own name: priors, outputs, deterministics, likelihood."""
        places: list[tuple[str, tuple[str, ...]]] = [(n, ("priors", n)) for n in self.priors]
        if self.experiment in BUILTIN_EXPERIMENTS:
            places.append((getattr(self, self.experiment).output, (self.experiment, "output")))
        places += [(n, ("deterministics", n)) for n in self.deterministics]
        places += [(n, ("likelihood", n)) for n in self.likelihood]
        seen: dict[str, str] = {}
        for name, key in places:
            if name in seen:
                _fail(f"name {name!r} is already used by {seen[name]}; pick another name", *key)
            seen[name] = ".".join(key)

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

    def to_yaml(self) -> str:
        """The resolved spec as YAML, re-runnable as it is.

        Defaults are written out, ``name`` is filled in and data paths are absolute, so
        the text loads to an equal :class:`Spec` from any directory. Unused experiment
        sections (``exp``/``ode``/``cnn`` left out of the config) are omitted.
        """
        unused = {k for k in BUILTIN_EXPERIMENTS if getattr(self, k) is None}
        data = self.model_dump(mode="json", exclude=unused, fallback=_plain)
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, allow_unicode=True, width=100)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Spec):
            return NotImplemented
        return self.model_dump() == other.model_dump()


def _plain(value: Any) -> Any:
    """Serialise values pydantic does not know (numpy arrays and scalars from a dict config)."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


# --------------------------------------------------------------------------- loading


def builtin_configs() -> dict[str, Path]:
    """Name -> path of each packaged config (``configs/*.yaml``), sorted by name."""
    if not CONFIG_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(CONFIG_DIR.glob("*.yaml"))}


def resolve_config(name_or_path: str | os.PathLike) -> Path:
    """The config file meant by a CLI argument: an existing file, else a built-in name.

    ``"configs/ode.yaml"`` is a path; ``"ode"`` is the packaged ``ode.yaml`` unless a
    file called ``ode`` exists in the working directory.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    builtins = builtin_configs()
    if text in builtins:
        return builtins[text]
    if path.exists():
        raise ConfigError("", "is a directory, not a config file", text)
    hint = did_you_mean(text, builtins) if builtins and os.sep not in text and not path.suffix else ""
    raise ConfigError("", f"no such config file or built-in config{hint}", text)


def apply_overrides(
    raw: Mapping[str, Any], overrides: Sequence[str] | Mapping[str, Any] | None
) -> dict[str, Any]:
    """A copy of ``raw`` with ``--set`` overrides applied.

    Overrides are ``"a.b.c=VALUE"`` strings, VALUE parsed as YAML (``[c, jax]`` is a
    list, ``1.0e-8`` a number, ``null`` None), or a mapping ``{"a.b.c": value}`` whose
    values are used as they are. Missing intermediate mappings are created, so an
    override may add a new prior: ``priors.z={dist: Normal, mu: 0, sigma: 1}``.
    """
    result = copy.deepcopy(dict(raw))
    if overrides is None:
        return result
    if isinstance(overrides, str):
        overrides = [overrides]
    items = overrides.items() if isinstance(overrides, Mapping) else map(_parse_override, overrides)
    for key, value in items:
        if not isinstance(key, str):
            raise ConfigError(str(key), f"override keys must be strings like 'a.b.c', got {_show(key)}")
        _set_path(result, key, value)
    return result


def _parse_override(item: str) -> tuple[str, Any]:
    """``"a.b=VALUE"`` -> ``("a.b", yaml.safe_load("VALUE"))``."""
    if not isinstance(item, str):
        raise ConfigError("", f"--set expects KEY.PATH=VALUE, got {_show(item)}")
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(key, f"--set expects KEY.PATH=VALUE, got {item!r}")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(key, f"--set {key}: cannot parse {text!r} as YAML: {problem}") from None
    return key, value


def _set_path(data: dict[str, Any], key: str, value: Any) -> None:
    parts = [p.strip() for p in key.split(".")]
    if not all(parts):
        raise ConfigError(key, f"--set expects KEY.PATH=VALUE with non-empty dotted parts, got key {key!r}")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if child is None:  # `ode:` left empty in YAML
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(key, f"cannot set {key!r}: {where} is {_show(child)}, not a mapping")
        node = child
    node[parts[-1]] = value


def load_spec(
    source: str | os.PathLike | Mapping[str, Any] | Spec,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
) -> Spec:
    """Read, override and validate a config; every failure is a :class:`ConfigError`.

    ``source`` is a path, a built-in config name (``"ode"``), a mapping (label
    ``"<dict>"``, paths relative to the working directory) or a :class:`Spec` (returned
    as is, or re-validated with the overrides applied).
    """
    if isinstance(source, Spec):
        if not overrides:
            return source
        raw, label, base_dir = source.model_dump(mode="json", fallback=_plain), source.label, source.base_dir
        raw = {k: v for k, v in raw.items() if not (k in BUILTIN_EXPERIMENTS and v is None)}
        name = source.name
    elif isinstance(source, Mapping):
        raw, label, base_dir, name = dict(source), _DICT_LABEL, Path.cwd(), _DICT_NAME
    else:
        label = os.fspath(source)
        path = resolve_config(label)
        raw = _read_yaml(path, label)
        base_dir, name = Path(os.path.abspath(path)).parent, path.stem
    try:
        raw = apply_overrides(raw, overrides)
    except ConfigError as exc:
        raise exc.within(config=label) from None
    raw.setdefault("name", name)
    try:
        spec = Spec.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise _config_error(exc, raw, label) from None
    spec._label, spec._base_dir = label, base_dir
    return spec


def _read_yaml(path: Path, label: str) -> dict[str, Any]:
    """The top-level mapping of a YAML file (``yaml.safe_load`` only: no Python tags)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError("", "cannot read config: not UTF-8 text", label) from None
    except OSError as exc:
        raise ConfigError("", f"cannot read config: {exc.strerror or exc}", label) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("", _yaml_message(exc), label) from None
    if raw is None:
        raise ConfigError("", "the config is empty; expected a mapping with at least 'experiment'", label)
    if not isinstance(raw, dict):
        raise ConfigError("", f"expected a mapping of keys at the top level, got {_show(raw)}", label)
    return raw


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    if mark is None:
        return f"invalid YAML: {problem}"
    return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"


# --------------------------------------------------------------------------- error translation

_TYPE_MESSAGES = {
    "a number": {"float_type", "float_parsing", "finite_number", "decimal_type", "decimal_parsing"},
    "an integer": {"int_type", "int_parsing", "int_from_float", "int_parsing_size"},
    "true or false": {"bool_type", "bool_parsing"},
    "a string": {"string_type", "string_sub_type", "string_unicode"},
    "a list": {"list_type", "tuple_type", "iterable_type", "set_type"},
    "a mapping": {"dict_type", "mapping_type", "model_type", "model_attributes_type"},
}
_BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="),
           "less_than": ("lt", "<"), "less_than_equal": ("le", "<=")}
#: How a Literal field's values are called in "'cuda' is not a backend".
_NOUNS = {"backends": "backend", "sampler": "sampler", "sensitivity": "sensitivity mode",
          "source": "data source", "dtype": "dtype", "inference_dtype": "dtype", "start": "start point",
          "optimizer": "stochastic optimiser", "mass_matrix": "mass matrix"}


def _config_error(exc: ValidationError, data: Any, label: str) -> ConfigError:
    """The first pydantic error as a :class:`ConfigError` with a YAML key path."""
    error = exc.errors(include_url=False)[0]
    kind, loc, ctx = error["type"], tuple(error["loc"]), error.get("ctx") or {}
    parts = _key_parts(loc, data, missing=kind == "missing")
    if kind == _ERROR:
        parts += [(p, isinstance(p, int)) for p in ctx.get("at", ())]
    field = next((str(p) for p, index in reversed(parts) if not index), "")
    message = _message(kind, ctx, error.get("input"), loc, field, error["msg"])
    return ConfigError(_format_key(parts), message, label)


def _key_parts(loc: tuple, data: Any, missing: bool) -> list[tuple[Any, bool]]:
    """The parts of ``loc`` that are real YAML keys or list indices, as ``(part, is_index)``.

    pydantic's ``loc`` also holds its own markers (union tags such as ``'<list>'``,
    ``'function-after[...]'``, ``'[key]'``). Walking the input alongside tells them
    apart: a real part is a key of the current mapping or an index into the current
    list. The one exception is a missing key, which is absent by definition.
    """
    parts: list[tuple[Any, bool]] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, Mapping) and part in node:
            parts.append((part, False))
            node = node[part]
        elif (isinstance(node, (list, tuple)) and isinstance(part, int)
              and not isinstance(part, bool) and 0 <= part < len(node)):
            parts.append((part, True))
            node = node[part]
        elif missing and i == len(loc) - 1:
            parts.append((part, False))
    return parts


def _format_key(parts: list[tuple[Any, bool]]) -> str:
    key = ""
    for part, index in parts:
        key += f"[{part}]" if index else (f".{part}" if key else str(part))
    return key


def _message(kind: str, ctx: dict, value: Any, loc: tuple, field: str, fallback: str) -> str:
    """One line saying what is wrong and what would be right."""
    if kind == _ERROR:
        return str(ctx["message"])
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", fallback))
    if kind == "missing":
        return f"required key {_show(loc[-1])} is missing"
    if kind == "extra_forbidden":
        return f"unknown key {_show(loc[-1])}"
    if "[key]" in loc:
        return f"names must be strings, got {_show(value)}"
    if kind == "literal_error":
        choices = re.findall(r"'((?:[^'\\]|\\.)*)'", str(ctx.get("expected", "")))
        noun = _NOUNS.get(field, f"valid {field or 'value'}")
        return f"{_show(value)} is not a {noun}{did_you_mean(value, choices)}"
    if kind in _BOUNDS:
        name, op = _BOUNDS[kind]
        return f"expected a value {op} {ctx.get(name)}, got {_show(value)}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length', 1)} item(s), got an empty list"
    if kind == "string_too_short":
        return "expected a non-empty string"
    for expected, kinds in _TYPE_MESSAGES.items():
        if kind in kinds:
            return f"expected {expected}, got {_show(value)}"
    return fallback.splitlines()[0]
