"""The ODE experiment: a diffrax solve inside the model.

- :mod:`~jaxpm.experiments.ode.section`: the ``ode:`` section's schema;
- :mod:`~jaxpm.experiments.ode.vector_fields`: built-in right-hand sides, and how a config names its own;
- :mod:`~jaxpm.experiments.ode.solve`: the solve as a wrapped JAX function;
- :mod:`~jaxpm.experiments.ode.experiment`: the experiment (build, and what a sampled run gets);
- :mod:`~jaxpm.experiments.ode.plots`: ``fit.png``.
"""

from jaxpm.experiments.ode.experiment import OdeBuilt, OdeExperiment
from jaxpm.experiments.ode.section import OdeSection
from jaxpm.experiments.ode.vector_fields import BUILTIN as VECTOR_FIELDS

__all__ = ["OdeExperiment", "OdeBuilt", "OdeSection", "VECTOR_FIELDS"]
