"""Test-wide settings, applied before jaxpm is imported.

Tests never touch the user's own JAX compilation cache (``~/.cache/jaxpm/xla``): the
session gets a temporary one, and child processes (the CLI run as a real process, Dask
workers) inherit it through the environment.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

if "JAXPM_JAX_CACHE" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="jaxpm-test-xla-")
    os.environ["JAXPM_JAX_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
