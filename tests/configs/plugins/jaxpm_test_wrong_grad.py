"""A plugin experiment for the tests: ``y = exp(x)`` through ``jaxpm.jax_op``, but the
wrapped JAX function's derivative is deliberately wrong (twice the true one).

``jaxpm check-grad`` must catch it and name the op, ``bad_exp``.
"""

import jax
import jax.numpy as jnp

from jaxpm import jax_op


@jax.custom_jvp
def bad_exp(x):
    return jnp.exp(x)


@bad_exp.defjvp
def _bad_exp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = jnp.exp(x)
    return y, 2.0 * y * t  # wrong on purpose: d/dx exp(x) is exp(x)


bad_exp_op = jax_op(bad_exp, name="bad_exp")


def build(section, ctx):
    x = ctx.value(section.get("input", "x"), "plugin.input")
    y = ctx.apply(bad_exp_op, x, key="plugin.input")
    ctx.add(section.get("output", "y"), y, deterministic=True, key="plugin.output")
