"""jaxpm: PyMC models whose heart is JAX code.

The public API:

- :func:`jax_op`: wrap a JAX function so that it takes and returns PyTensor variables;
- :func:`load_spec`: read and validate a YAML config;
- :func:`build_model`: the ``pm.Model`` a config describes;
- :func:`run`: run a config end to end and write its run folder.

Importing jaxpm sets JAX up first (float64, host devices, the compilation cache): see
:mod:`jaxpm.jax_settings`; in a worker process of many runs, also its own PyTensor compile
directory: see :mod:`jaxpm.worker_settings`.
"""

from __future__ import annotations

from jaxpm import worker_settings  # noqa: F401 - first: a worker's own PyTensor compiledir, before PyTensor
from jaxpm.jax_settings import HOST_DEVICES, JAX_CACHE_DIR  # before JAX or equinox is used

# isort: split
from jaxpm import rewrites  # noqa: F401 - registers the fusion rewrites with PyTensor
from jaxpm.ops import jax_op

__version__ = "0.1.0"

__all__ = ["jax_op", "load_spec", "build_model", "run", "HOST_DEVICES", "JAX_CACHE_DIR", "__version__"]


def __getattr__(name):  # lazy: the CLI and the API pull in PyMC only when used
    if name == "load_spec":
        from jaxpm.spec import load_spec

        return load_spec
    if name == "build_model":
        from jaxpm.model import build_model

        return build_model
    if name == "run":
        from jaxpm.runner import run

        return run
    raise AttributeError(f"module 'jaxpm' has no attribute {name!r}")
