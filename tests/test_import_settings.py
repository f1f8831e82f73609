"""What importing jaxpm sets up for JAX: float64, host devices, the compilation cache.

Each check runs in a fresh interpreter: these settings only take effect before JAX starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, jax, jaxpm
import jax.numpy as jnp
jax.jit(lambda x: jnp.sin(x) * 2.0)(jnp.ones(3)).block_until_ready()
print(json.dumps({
    "x64": jax.config.jax_enable_x64,
    "devices": jax.local_device_count(),
    "cache": jax.config.jax_compilation_cache_dir,
    "max_bytes": jax.config.jax_compilation_cache_max_size,
}))
"""


def _probe(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "JAXPM_", "XLA_FLAGS"))}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_x64_and_a_device_per_chain(tmp_path):
    got = _probe(JAXPM_JAX_CACHE=str(tmp_path))
    assert got["x64"] is True and got["devices"] == max(4, os.cpu_count())  # 4 chains by default, or a core each


def test_host_devices_from_the_environment():
    """``JAXPM_HOST_DEVICES`` wins over the default (asked here for one more than that)."""
    wanted = max(4, os.cpu_count()) + 1
    assert _probe(JAXPM_JAX_CACHE="off", JAXPM_HOST_DEVICES=str(wanted))["devices"] == wanted


def test_compiled_programs_are_kept_in_the_cache_folder(tmp_path):
    cache = tmp_path / "xla"
    got = _probe(JAXPM_JAX_CACHE=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    assert got["cache"] == str(cache) and got["max_bytes"] == 2**30
    assert any(p.name.startswith("jit_") for p in cache.iterdir())


@pytest.mark.parametrize("off", ["off", "0", ""])
def test_the_cache_can_be_turned_off(tmp_path, off):
    assert _probe(JAXPM_JAX_CACHE=off)["cache"] is None


def test_the_users_own_cache_wins(tmp_path):
    got = _probe(JAXPM_JAX_CACHE=str(tmp_path / "ours"), JAX_COMPILATION_CACHE_DIR=str(tmp_path / "theirs"))
    assert got["cache"] == str(tmp_path / "theirs") and not (tmp_path / "ours").exists()
