"""Built-in vector fields ``f(t, y, args) -> dy/dt``, and how a config names its own.

Every function here has diffrax's signature. ``args`` is whatever pytree the config's
``ode.args`` evaluates to; the docstring of each field says what it expects.

A config may also name ``package.module:function`` (an importable module) or
``path/to/file.py:function`` (relative to the config file).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jax.numpy as jnp

from jaxpm.errors import ConfigError, did_you_mean
from jaxpm.loading import load_callable


def decay(t, y, args):
    """dy/dt = -y (the post's example); ``args`` unused."""
    return -y


def exponential(t, y, args):
    """dy/dt = k y; ``args`` is the rate k (negative for decay)."""
    return args * y


def logistic(t, y, args):
    """dy/dt = r y (1 - y / K); ``args`` is [r, K]."""
    r, k = args[0], args[1]
    return r * y * (1 - y / k)


def lotka_volterra(t, y, args):
    """Predator-prey. ``y`` = [prey, predator]; ``args`` = [alpha, beta, gamma, delta]:
    prey' = alpha prey - beta prey predator; predator' = -gamma predator + delta prey predator.
    """
    alpha, beta, gamma, delta = args[0], args[1], args[2], args[3]
    u, v = y[0], y[1]
    return jnp.stack([(alpha - beta * v) * u, (-gamma + delta * u) * v])


def sir(t, y, args):
    """Epidemic. ``y`` = [S, I, R] as fractions; ``args`` = [beta, gamma]."""
    beta, gamma = args[0], args[1]
    s, i = y[0], y[1]
    return jnp.stack([-beta * s * i, beta * s * i - gamma * i, gamma * i])


def van_der_pol(t, y, args):
    """y'' - mu (1 - y^2) y' + y = 0 as a first-order system; ``args`` is mu (stiff when large)."""
    x, v = y[0], y[1]
    return jnp.stack([v, args * (1 - x**2) * v - x])


def one_comp_mm_elim_abs(t, y, args):
    """One-compartment pharmacokinetics, first-order absorption, Michaelis-Menten elimination.

    ``y`` = [C] (concentration); ``args`` = [k_a, K_m, V_m, D, V]:
    dC/dt = exp(-k_a t) D k_a / V - (V_m / V) C / (K_m + C).
    """
    k_a, k_m, v_m, dose, vol = args[0], args[1], args[2], args[3], args[4]
    c = y[0]
    return jnp.stack([jnp.exp(-k_a * t) * dose * k_a / vol - (v_m / vol) * c / (k_m + c)])


BUILTIN: dict[str, Callable] = {
    f.__name__: f for f in (decay, exponential, logistic, lotka_volterra, sir, van_der_pol, one_comp_mm_elim_abs)
}


def resolve(name: str, base_dir: Path | None = None, key: str = "ode.vector_field") -> Callable:
    """The function a config's ``vector_field`` names."""
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" not in name:
        raise ConfigError(key, f"unknown vector field '{name}'{did_you_mean(name, BUILTIN)} "
                               "(or give 'package.module:function' / 'file.py:function')")
    return load_callable(name, base_dir, key)
