"""jaxpm: PyMC models whose heart is JAX code.

Importing jaxpm switches JAX to float64 (``jax_enable_x64``) so that JAX and PyTensor's
C backend agree to the last digit, and asks equinox to turn runtime errors inside a
jitted solve into NaNs (``EQX_ON_ERROR=nan``) instead of exceptions, so that a failed
ODE solve becomes ``logp = -inf`` rather than a crashed sampler. Both are set before
JAX or equinox is imported by us; set ``EQX_ON_ERROR`` yourself to override.

It also gives JAX :data:`HOST_DEVICES` CPU devices (``jax_num_cpu_devices``, what
``numpyro.set_host_device_count`` does), so that numpyro and blackjax run one chain per
device in parallel instead of one after the other. This only works before JAX has
started its backend; ``JAXPM_HOST_DEVICES`` or your own setting wins.
"""

from __future__ import annotations

import os

os.environ.setdefault("EQX_ON_ERROR", "nan")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

HOST_DEVICES = int(os.environ.get("JAXPM_HOST_DEVICES", max(4, os.cpu_count() or 1)))
"""CPU devices JAX gets: at least 4 (the default number of chains), else one per core."""


def _host_devices(n: int) -> None:
    from jax._src import xla_bridge

    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return  # the user's own setting
    if jax.config.jax_num_cpu_devices != -1 or xla_bridge.backends_are_initialized():
        return  # set already, or too late to change
    jax.config.update("jax_num_cpu_devices", n)


_host_devices(HOST_DEVICES)

from jaxpm.ops import jax_op  # noqa: E402

__version__ = "0.1.0"

__all__ = ["jax_op", "load_spec", "build_model", "run", "__version__"]


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
