"""Vector fields with deliberately broken derivative rules, for the trust tools' tests.

dy/dt = -k y, with k y computed through a ``jax.custom_jvp`` whose rule for k is wrong:
``decay_nan_jvp`` returns NaN * dk (the value, and so logp, stay right), ``decay_wrong_jvp``
returns 1.7 times the true derivative.
"""

import jax
import jax.numpy as jnp


def _rate_with_jvp(factor):
    @jax.custom_jvp
    def rate(k, y):
        return k * y

    @rate.defjvp
    def rate_jvp(primals, tangents):
        k, y = primals
        dk, dy = tangents
        return k * y, factor * y * dk + k * dy

    return rate


_nan_rate = _rate_with_jvp(jnp.nan)
_wrong_rate = _rate_with_jvp(1.7)


def decay_nan_jvp(t, y, args):
    return -_nan_rate(args, y)


def decay_wrong_jvp(t, y, args):
    return -_wrong_rate(args, y)
