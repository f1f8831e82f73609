"""The CNN experiment: the post's Bayesian flax network on digit images.

- :mod:`~jaxpm.experiments.cnn.section`: the ``cnn:`` section's schema;
- :mod:`~jaxpm.experiments.cnn.images`: digit images, offline first;
- :mod:`~jaxpm.experiments.cnn.nets`: a flax network from a YAML list of layers;
- :mod:`~jaxpm.experiments.cnn.experiment`: the experiment (build, fit start, accuracy after a fit);
- :mod:`~jaxpm.experiments.cnn.plots`: ``digits.png``.
"""

from jaxpm.experiments.cnn.experiment import CnnBuilt, CnnExperiment
from jaxpm.experiments.cnn.section import CnnSection

__all__ = ["CnnExperiment", "CnnBuilt", "CnnSection"]
