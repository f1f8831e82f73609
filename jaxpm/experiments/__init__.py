"""Experiments: the kinds of model a config can describe, each behind one interface.

- :mod:`~jaxpm.experiments.base`: the :class:`Experiment` interface, and :class:`Fitted`
  (what an experiment gets after sampling);
- :mod:`~jaxpm.experiments.context`: the :class:`Context` an experiment builds with;
- :mod:`~jaxpm.experiments.exp`, :mod:`~jaxpm.experiments.ode`, :mod:`~jaxpm.experiments.cnn`:
  the built-in ones (the PyMC Labs post's three cases);
- :mod:`~jaxpm.experiments.plugin`: ``experiment: "package.module:build"``;
- :mod:`~jaxpm.experiments.registry`: the built-ins by name.

Experiments import the core (:mod:`jaxpm.ops`), the schema building blocks
(:mod:`jaxpm.section`) and small helpers; never sampling, the runner or the CLI.
"""

from jaxpm.experiments.base import Experiment, Fitted, HeldOut
from jaxpm.experiments.context import Context, OpUse
from jaxpm.experiments.registry import BUILTIN, experiment

__all__ = ["Experiment", "Fitted", "HeldOut", "Context", "OpUse", "BUILTIN", "experiment"]
