"""A plugin experiment for the tests: a hand-written PyTensor Op whose ``perform`` (used
by the C and Numba backends) computes ``2 x`` while its JAX dispatch computes ``3 x``.

``jaxpm compare-backends --backend c --backend jax`` must report that they disagree.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.graph import Apply, Op
from pytensor.link.jax.dispatch import jax_funcify


class Double(Op):
    __props__ = ()

    def make_node(self, x):
        x = pt.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = np.asarray(2.0 * inputs[0], dtype=node.outputs[0].dtype)

    def infer_shape(self, fgraph, node, input_shapes):
        return input_shapes

    def grad(self, inputs, output_grads):
        return [2.0 * output_grads[0]]


@jax_funcify.register(Double)
def _jax_funcify_double(op, **kwargs):
    def not_double(x):
        return 3.0 * x  # wrong on purpose: disagrees with perform

    return not_double


double = Double()


def build(section, ctx):
    x = ctx.value(section.get("input", "x"), "plugin.input")
    ctx.add(section.get("output", "y"), double(x), deterministic=True, key="plugin.output")
