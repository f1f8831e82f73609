"""The YAML spec: one file that says everything about an experiment.

- :mod:`~jaxpm.spec.schema`: the whole :class:`Spec` (pydantic), assembled from the
  sections experiments and samplers own;
- :mod:`~jaxpm.spec.load`: :func:`load_spec` (file, built-in name, mapping or Spec, with overrides);
- :mod:`~jaxpm.spec.configs`: the built-in configs, and what a command-line argument names;
- :mod:`~jaxpm.spec.overrides`: ``--set KEY.PATH=VALUE``;
- :mod:`~jaxpm.spec.reading`: YAML through SafeLoader, duplicate keys refused;
- :mod:`~jaxpm.spec.translate`: pydantic's errors as one line naming the key and the fix.

>>> spec = load_spec("ode")
>>> spec.experiment, spec.ode.solver, spec.sample.sampler
('ode', 'Dopri5', 'nutpie')
"""

from jaxpm.spec.configs import CONFIG_DIR, TRUST_CONFIGS, builtin_configs, resolve_config
from jaxpm.spec.load import load_spec
from jaxpm.spec.overrides import apply_overrides, cli_overrides
from jaxpm.spec.schema import CheckGrad, Evaluate, Likelihood, ObservedFile, Output, Spec

__all__ = [
    "Spec", "Likelihood", "ObservedFile", "Evaluate", "CheckGrad", "Output", "load_spec", "resolve_config",
    "builtin_configs", "apply_overrides", "cli_overrides", "CONFIG_DIR", "TRUST_CONFIGS",
]
