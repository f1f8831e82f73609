"""``exp: {input: x, output: y}``: ``y = exp(x)`` through a wrapped JAX function.

The smallest experiment, from the post's first example: it proves the plumbing (a JAX
function inside a PyMC model, its gradient, all three backends) with nothing else going on.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxpm.experiments.base import Experiment
from jaxpm.ops import jax_op
from jaxpm.section import Section

exp_op = jax_op(jnp.exp, name="exp", grad="reverse")


class ExpSection(Section):
    """``exp: {input: x, output: y}``: y = exp(x) through the wrapped JAX function."""

    input: str
    output: str


class ExpExperiment(Experiment):
    """``y = exp(x)``, kept as a Deterministic named ``output``."""

    name = "exp"
    section = ExpSection

    def outputs(self, section: ExpSection) -> list[str]:
        return [section.output]

    def build(self, section: ExpSection, ctx) -> None:
        x = ctx.value(section.input, "exp.input")
        ctx.add(section.output, ctx.apply(exp_op, x, key="exp.input"), deterministic=True, key="exp.output")


__all__ = ["ExpExperiment", "ExpSection", "exp_op"]
