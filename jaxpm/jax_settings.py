"""What importing jaxpm sets up for JAX, before anything is traced.

- float64 (``jax_enable_x64``), so that JAX and PyTensor's C backend agree to the last digit;
- ``EQX_ON_ERROR=nan``: equinox turns runtime errors inside a jitted solve into NaNs
  instead of exceptions, so that a failed ODE solve becomes ``logp = -inf`` rather than
  a crashed sampler (set ``EQX_ON_ERROR`` yourself to override);
- :data:`HOST_DEVICES` CPU devices (``jax_num_cpu_devices``, what
  ``numpyro.set_host_device_count`` does), so that numpyro and blackjax run one chain per
  device in parallel. This only works before JAX has started its backend;
  ``JAXPM_HOST_DEVICES`` or your own setting wins;
- JAX's persistent compilation cache in :data:`JAX_CACHE_DIR`, as PyTensor keeps its
  compiled C: a second run of a model loads what was compiled the first time.
  ``JAXPM_JAX_CACHE`` names another folder, or ``off``; your own
  ``JAX_COMPILATION_CACHE_DIR`` wins.
"""

from __future__ import annotations

import os

os.environ.setdefault("EQX_ON_ERROR", "nan")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

HOST_DEVICES = int(os.environ.get("JAXPM_HOST_DEVICES", max(4, os.cpu_count() or 1)))
"""CPU devices JAX gets: at least 4 (the default number of chains), else one per core."""


def _host_devices(n: int) -> None:
    # JAX has no public way to ask whether its backends have started (after which the
    # device count cannot change and setting it raises); xla_bridge is where JAX keeps it.
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
        # JAX's default keeps programs that took over 1 s to compile; a model's logp+dlogp
        # on the JAX backend often compiles in less, and each is compiled once per run
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    if jax.config.jax_compilation_cache_max_size == -1:
        jax.config.update("jax_compilation_cache_max_size", JAX_CACHE_MAX_BYTES)


_compilation_cache(JAX_CACHE_DIR)


__all__ = ["HOST_DEVICES", "JAX_CACHE_DIR", "JAX_CACHE_MAX_BYTES"]
