"""Vector fields that fail when JAX traces them (for tests/test_bad_input.py)."""

import jax.numpy as jnp


def wrong_shape(t, y, args):
    """Returns 3 numbers for a scalar state."""
    return jnp.zeros(3)


def undefined_name(t, y, args):
    """Uses a name that does not exist."""
    return -y * rate  # noqa: F821
