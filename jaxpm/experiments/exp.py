"""``exp: {input: x, output: y}``: ``y = exp(x)`` through a wrapped JAX function.

The smallest experiment, from the post's first example: it proves the plumbing (a JAX
function inside a PyMC model, its gradient, all three backends) with nothing else going on.
"""

import jax.numpy as jnp

from jaxpm.ops import jax_op

exp_op = jax_op(jnp.exp, name="exp")


def build(section, ctx):
    x = ctx.value(section.input, "exp.input")
    ctx.add(section.output, ctx.apply(exp_op, x, key="exp.input"), deterministic=True, key="exp.output")
