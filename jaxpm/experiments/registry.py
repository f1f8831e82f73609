"""The built-in experiments, by name: what ``experiment:`` may say besides ``"module:build"``.

Adding an experiment is one module (or subpackage) with an
:class:`~jaxpm.experiments.base.Experiment` and one entry here; the spec (its sections),
``jaxpm list`` and the model builder read :data:`BUILTIN`.
"""

from __future__ import annotations

from pathlib import Path

from jaxpm.experiments.base import Experiment
from jaxpm.experiments.cnn import CnnExperiment
from jaxpm.experiments.exp import ExpExperiment
from jaxpm.experiments.ode import OdeExperiment
from jaxpm.experiments.plugin import PluginExperiment
from jaxpm.loading import load_callable

BUILTIN: dict[str, Experiment] = {e.name: e for e in (ExpExperiment(), OdeExperiment(), CnnExperiment())}
"""Name -> experiment; each name is also the key of its YAML section."""

PLUGIN_FORM = "package.module:function"


def experiment(name: str, base_dir: Path | None = None) -> Experiment:
    """The experiment ``experiment: <name>`` means: a built-in, or a user's ``build`` function
    (``package.module:function`` or ``file.py:function``, relative to ``base_dir``)."""
    if name in BUILTIN:
        return BUILTIN[name]
    return PluginExperiment(name, load_callable(name, base_dir, "experiment"))


__all__ = ["BUILTIN", "PLUGIN_FORM", "experiment"]
