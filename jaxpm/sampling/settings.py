"""The ``sample:`` section: which sampler, how many draws, where chains start.

The allowed samplers and each one's mass matrices come from the registry
(:data:`jaxpm.sampling.registry.SAMPLERS`); a sampler can refuse settings it cannot run
(:meth:`~jaxpm.sampling.base.Sampler.check`).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from jaxpm.errors import did_you_mean
from jaxpm.sampling.fits import OPTIMIZERS
from jaxpm.sampling.registry import FITS, SAMPLERS
from jaxpm.section import Float, Int, Section, fail

AUTO = "auto"
"""The value that leaves a setting to :mod:`jaxpm.sampling.auto`."""

STARTS = ("auto", "initial", "mode")
"""``sample.start`` for every model: ``initial`` (the initial point) and, for NUTS, ``mode``.
Experiments add their own starts for the fits (the CNN's ``flax``)."""


class Sample(Section):
    """``sample:``: draw from the posterior (off unless enabled).

    The fits (``advi``, ``map``) have their own settings; each defaults to what PyMC does::

        iterations: auto      # advi: optimisation steps; map: at most this many logp+gradient evaluations
        start: initial        # initial: the model's initial point | an experiment's own (the CNN's flax)
        start_sigma: null     # advi: first std of every mean-field normal (null: PyMC's 0.69)
        optimizer: adagrad_window   # advi: any of OPTIMIZERS (pm.adam, ...)
        learning_rate: null   # advi: the optimiser's step size (null: PyMC's default)

    NUTS samplers take::

        mass_matrix: diag     # diag | low_rank (nutpie) | full (pymc, numpyro, blackjax)
        jitter: true          # start each chain at the initial point plus Uniform(-1, 1)
                              # noise in the unconstrained space (PyMC's default); false: no noise
        initvals: {}          # {free variable: value} overriding the model's initial point
        start: initial        # initial: the initial point above, jittered
                              # mode: around the posterior mode, found by L-BFGS from
                              # `restarts` jittered initial points (jaxpm.sampling.starts);
                              # each chain at a draw from the Laplace approximation there
        restarts: 16          # start: mode: how many L-BFGS runs look for the mode

    ``sampler``, ``mass_matrix``, ``start`` and ``iterations`` default to ``auto``: chosen
    from the model by :mod:`jaxpm.sampling.auto` before sampling starts, each choice and
    its reason recorded in run.json's ``auto`` block (and written into the run's
    config.yaml). A value written in the config always wins.

    Every sampler takes ``progressbar: true`` (a live progress display); ``false`` shows a
    spinner instead. Where a sampler's own bar would be compiled into it (numpyro's is a
    host callback, and JAX's compilation cache keeps no program with one), jaxpm shows a
    spinner with the elapsed time instead, so that a second run of the same model loads
    the compiled sampler instead of compiling it again.
    """

    enabled: bool = False
    sampler: str = "auto"
    draws: Int = Field(1000, gt=0)
    tune: Int = Field(1000, ge=0)
    chains: Int = Field(4, gt=0)
    cores: Int | None = Field(None, gt=0)
    # auto: 0.9 for NUTS when the logp holds a solver, else 0.8 (see jaxpm.sampling.auto)
    target_accept: Annotated[Float, Field(gt=0, lt=1)] | Literal["auto"] = "auto"
    # advi: steps; map: most logp+gradient evaluations; auto: what fits in a time budget
    iterations: Annotated[Int, Field(gt=0)] | Literal["auto"] = "auto"
    seed: Int | None = Field(None, ge=0)  # None: the top-level seed
    start: str = "auto"  # auto | initial | mode (NUTS) | an experiment's fit start (flax)
    start_sigma: Float | None = Field(None, gt=0)  # advi; unconstrained space
    optimizer: Literal[OPTIMIZERS] = "adagrad_window"  # advi
    learning_rate: Float | None = Field(None, gt=0)  # advi; None: the optimiser's default
    mass_matrix: Literal["auto", "diag", "low_rank", "full"] = "auto"  # NUTS samplers
    jitter: bool = True  # NUTS samplers
    initvals: dict[str, Any] = Field(default_factory=dict)  # NUTS samplers; checked against the model
    progressbar: bool = True
    restarts: Int = Field(16, gt=0)  # start: mode

    START_KEY: ClassVar[tuple[str, ...]] = ("sample", "start")  # where check_start's errors point, from the spec

    @field_validator("sampler")
    @classmethod
    def _known_sampler(cls, name: str) -> str:
        if name != AUTO and name not in SAMPLERS:
            fail(f"{name!r} is not a sampler{did_you_mean(name, [AUTO, *SAMPLERS])}")
        return name

    @model_validator(mode="after")
    def _sampler_takes_these_settings(self) -> Sample:
        if self.sampler == AUTO:
            return self  # checked once chosen (jaxpm.sampling.auto)
        sampler = SAMPLERS[self.sampler]
        if self.mass_matrix != AUTO and self.mass_matrix not in sampler.mass_matrices:
            fail(f"{self.sampler} has no {self.mass_matrix} mass matrix; it supports "
                 f"{', '.join(sampler.mass_matrices)}", "mass_matrix")
        problem = sampler.check(self)
        if problem:
            key, _, message = problem.partition(": ")
            fail(message, key)
        return self

    def check_start(self, fit_starts: dict[str, str], experiment: str, elsewhere: dict[str, str]) -> None:
        """``start`` must be ``initial``, ``mode`` (NUTS) or one of the experiment's
        ``fit_starts`` (for a fit; start -> what it does). Called by the spec, which knows
        the experiment, and ``elsewhere``: the fit starts of other experiments."""
        sampler = SAMPLERS.get(self.sampler)
        if self.start == "mode" and sampler is not None and not sampler.mcmc:
            fail(f"mode is a start for NUTS chains; {self.sampler} starts from "
                 f"{' or '.join(['initial', *fit_starts])}: set sample.start=initial", *self.START_KEY)
        if self.start in STARTS:
            return
        if self.start not in fit_starts:
            if self.start in elsewhere:
                fail(f"{self.start} {elsewhere[self.start]}; experiment {experiment!r} has none: "
                     "set sample.start=initial", *self.START_KEY)
            hint = did_you_mean(self.start, [*STARTS, *fit_starts])
            fail(f"{self.start!r} is not a start point{hint}", *self.START_KEY)
        if sampler is not None and sampler.mcmc:
            fail(f"{self.start} is a start for the fits ({' and '.join(FITS)}); for {self.sampler} set "
                 "sample.start=initial or mode", *self.START_KEY)

__all__ = ["Sample", "STARTS", "AUTO"]
