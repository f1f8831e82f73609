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

And it keeps XLA's compiled programs on disk between runs (JAX's persistent compilation
cache, :data:`JAX_CACHE_DIR`), as PyTensor keeps its compiled C: a second ``jaxpm run``
of a model loads the sampler numpyro compiled the first time instead of compiling it
again (8 s for Lotka-Volterra). ``JAXPM_JAX_CACHE`` names another folder, or ``off``;
your own ``JAX_COMPILATION_CACHE_DIR`` wins.
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

JAX_CACHE_DIR = os.environ.get(
    "JAXPM_JAX_CACHE",
    os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "jaxpm", "xla"),
)
"""Where compiled XLA programs are kept (``off``: nowhere)."""

JAX_CACHE_MAX_BYTES = 2**30
"""The cache's size limit: past it, the least recently used programs go (JAX's LRU)."""


def _compilation_cache(path: str) -> None:
    if jax.config.jax_compilation_cache_dir is not None:
        return  # the user's own cache
    if path.strip().lower() in ("", "0", "off", "false", "none"):
        return
    jax.config.update("jax_compilation_cache_dir", path)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        # JAX's default keeps programs that took over 1 s to compile; a model's
        # logp+dlogp on the JAX backend takes 0.5-3 s, and each is compiled once per run
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    if jax.config.jax_compilation_cache_max_size == -1:
        jax.config.update("jax_compilation_cache_max_size", JAX_CACHE_MAX_BYTES)


_compilation_cache(JAX_CACHE_DIR)

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
