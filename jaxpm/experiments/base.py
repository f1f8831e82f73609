"""What an experiment is: the interface every kind of model a config can describe implements.

An experiment owns one YAML section (``ode:``, ``cnn:``, ...), turns it into named graph
nodes inside the PyMC model, and may add to a sampled run what only it knows how to show
(the ODE's fitted curves, the CNN's accuracy on held-out digits), draw its own predictive
check figure (the ODE's bands over time) and give data it held out of the fit (the CNN's
held-out digits, for comparing runs). The model builder, the sampling driver and the
runner talk to every experiment through this interface and never by its name.

A minimal experiment, the shape of :mod:`jaxpm.experiments.exp`::

    class Square(Experiment):
        name = "square"
        section = SquareSection          # a jaxpm.section.Section subclass

        def outputs(self, section):
            return [section.output]

        def build(self, section, ctx):
            x = ctx.value(section.input, "square.input")
            ctx.add(section.output, ctx.apply(square_op, x), deterministic=True)

Register it in :data:`jaxpm.experiments.registry.BUILTIN`; the spec, ``jaxpm list`` and
the model builder read that registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from jaxpm.progress import Progress
from jaxpm.section import Section


@dataclass
class Fitted:
    """What :meth:`Experiment.after_sampling` gets: a sampled (or fitted) model and where
    to put what it finds.

    ``ctx`` is the model's build :class:`~jaxpm.experiments.context.Context` (the model,
    what ``build`` returned as ``ctx.built``, the column names of observed tables);
    ``info`` is run.json's ``sampling`` block (add keys to it); ``save(name, writer)``
    writes a file into the run folder (``writer(path)``, whole or not at all); ``sampler``
    is the sampler's name and ``mcmc`` whether it drew a posterior by MCMC.
    """

    ctx: Any
    section: Any
    idata: Any
    info: dict
    save: Callable[[str, Callable[[Path], Any]], None]
    sampler: str
    mcmc: bool
    progress: Progress = field(default_factory=Progress.quiet)

    @property
    def model(self):
        return self.ctx.model

    @property
    def built(self):
        return self.ctx.built


@dataclass
class HeldOut:
    """Data an experiment held back from the fit (the CNN's held-out digits) and the fitted
    model's predictive there, for :meth:`Experiment.heldout`.

    ``name`` is the observed variable the data stand in for (``label``); ``observed`` the
    held-out data; ``log_likelihood`` their pointwise log-likelihood at each draw, shape
    ``(chain, draw, *observed.shape)``; ``predictive`` more quantities per draw (each
    ``(chain, draw, ...)``), e.g. the CNN's class probabilities.
    """

    name: str
    observed: np.ndarray
    log_likelihood: np.ndarray
    predictive: dict[str, np.ndarray] = field(default_factory=dict)


class Experiment:
    """One kind of model a config can describe (see the module docstring).

    Class attributes:

    ``name``
        the value of ``experiment:`` and the key of the experiment's YAML section;
    ``section``
        the section's schema (a :class:`~jaxpm.section.Section`), or None for plugins,
        which take the free-form ``plugin:`` mapping;
    ``fit_starts``
        extra values of ``sample.start`` the experiment provides for the fits, each with
        what it does (the CNN's ``flax``: "initialises a CNN's network"), each handled by
        :meth:`fit_start`.
    """

    name: ClassVar[str] = ""
    section: ClassVar[type[Section] | None] = None
    fit_starts: ClassVar[dict[str, str]] = {}

    def outputs(self, section: Any) -> list[str]:
        """The names the experiment adds to the model (checked for clashes before building)."""
        return []

    def build(self, section: Any, ctx: Any) -> Any:
        """Add the experiment's nodes to the model through ``ctx`` (a
        :class:`~jaxpm.experiments.context.Context`, inside the model's context); return
        what the later hooks need (kept as ``ctx.built``)."""
        raise NotImplementedError

    def describe(self, built: Any) -> dict[str, Any]:
        """JSON-friendly facts about the built experiment, for run.json's ``experiment`` block."""
        return {}

    def auto_choices(self, built: Any) -> dict[str, tuple[Any, str]]:
        """What the build chose for settings left at ``auto`` (``{"ode.sensitivity":
        ("forward", reason)}``): recorded in run.json's ``auto`` block and written into the
        run's config.yaml, so that a rerun does what this run did."""
        return {}

    def check_overrides(self, section: Any) -> dict[str, Any]:
        """Spec overrides (``{"key.path": value}``) for the model ``check-grad`` runs on,
        where the configured one would make a right gradient look wrong (an adaptive ODE
        solve at a loose tolerance); ``check_grad.set`` adds to these."""
        return {}

    def inference_overrides(self, section: Any) -> dict[str, Any]:
        """Spec overrides (``{"key.path": value}``) for the model samplers and fits run on,
        when it differs from the evaluated one (the CNN's ``inference_dtype``)."""
        return {}

    def fit_start(self, start: str, built: Any, seed: int) -> dict[str, Any]:
        """Where a fit starts for ``sample.start: <start>`` (one of :attr:`fit_starts`):
        value variable name -> array."""
        raise NotImplementedError(f"{self.name} has no fit start {start!r}")

    def after_sampling(self, fitted: Fitted) -> None:
        """Add the experiment's own results to a sampled run (files through
        ``fitted.save``, facts in ``fitted.info``). Called only when there are usable draws."""

    def predictive_figure(self, fitted: Fitted, group: str) -> Callable[[str], None] | None:
        """The experiment's own figure of the data against the draws in
        ``fitted.idata[group]`` (``posterior_predictive`` for ``ppc.png``,
        ``prior_predictive`` for ``prior_ppc.png``): a function that writes it to a path,
        or None for the default, ArviZ's ``plot_ppc`` (the ODE draws bands over time)."""
        return None

    def heldout(self, fitted: Fitted, posterior: Any) -> HeldOut | None:
        """The fitted model's predictive on data the experiment held out of the fit, at the
        draws in ``posterior`` (an xarray Dataset, possibly thinned): kept in posterior.nc
        and what ``jaxpm compare`` ranks such runs by. None: no held-out data (the default)."""
        return None


__all__ = ["Experiment", "Fitted", "HeldOut"]
