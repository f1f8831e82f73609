"""Graph rewrites that let logp and dlogp share one JAX call of a wrapped function.

``fuse_forward_and_jacobian``: a forward-mode function's plain node is replaced by the
value outputs of its value-and-Jacobian node on the same inputs, so one ``jax.jacfwd``
call serves both. ``fuse_forward_and_vjp`` (opt-in, ``jax_op(fuse_vjp=True)``, C backend
only): the forward node and the VJP node become one ``jax.vjp`` call whose pullback feeds
the backward node. Both are registered in PyTensor's optimisation database when jaxpm is
imported.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from pytensor.compile import optdb
from pytensor.graph import Apply, Op
from pytensor.graph.rewriting.basic import GraphRewriter
from pytensor.graph.type import Type
from pytensor.tensor.exceptions import ShapeError

from jaxpm.ops import JaxOp, is_float_type


def fused_ops(vjp_op: JaxOp) -> tuple[VJPForward, VJPBackward]:
    """For a VJP op: the (forward-with-pullback, backward) pair that replaces it and its
    primal on the C backend; made once per op, so JAX compiles them once."""
    if "fused" not in vjp_op.derived:
        fwd = VJPForward(vjp_op)
        vjp_op.derived["fused"] = (fwd, VJPBackward(fwd))
    return vjp_op.derived["fused"]


class _PullbackType(Type):
    """A JAX pullback (``jax.vjp``'s second result) travelling between two nodes."""

    def filter(self, data, strict=False, allow_downcast=None):
        return data

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))


class VJPForward(Op):
    """``jax.vjp`` of a primal JaxOp: its outputs, plus the pullback for the backward node."""

    def __init__(self, vjp_op: JaxOp):
        self.vjp_op = vjp_op
        primal = vjp_op.primal
        diff = list(vjp_op.wrt)
        self.float_out = [k for k, t in enumerate(primal.output_types) if is_float_type(t)]
        self.connected = vjp_op.connected
        f, float_out = primal.flat_fn, self.float_out

        def forward(*xs):
            def g(*d):  # differentiate the float outputs; carry the others (flags, counts) as aux
                full = list(xs)
                for i, v in zip(diff, d, strict=True):
                    full[i] = v
                ys = f(*full)
                return tuple(ys[k] for k in float_out), ys

            _, pullback, ys = jax.vjp(g, *[xs[i] for i in diff], has_aux=True)
            return ys, pullback

        self.jitted = jax.jit(forward)
        self.name = f"vjp_forward({primal.name})"

    def make_node(self, *inputs):
        outs = [t() for t in self.vjp_op.primal.output_types] + [_PullbackType()()]
        return Apply(self, list(inputs), outs)

    def perform(self, node, inputs, outputs):
        ys, pullback = self.jitted(*inputs)
        for storage, y in zip(outputs, ys, strict=False):
            storage[0] = np.array(y)
        outputs[-1][0] = pullback

    def infer_shape(self, fgraph, node, input_shapes):
        return [*self.vjp_op.primal.infer_shape(fgraph, node, input_shapes), None]


class VJPBackward(Op):
    """Applies the pullback of a :class:`VJPForward` node to output cotangents."""

    def __init__(self, fwd: VJPForward):
        self.fwd = fwd
        types = fwd.vjp_op.primal.output_types

        def backward(pullback, *gs):
            it = iter(gs)
            cts = tuple(
                jnp.asarray(next(it), dtype=types[k].dtype)
                if fwd.connected[k]
                else jnp.zeros(types[k].shape, types[k].dtype)
                for k in fwd.float_out
            )
            return pullback(cts)

        self.jitted = jax.jit(backward)
        self.name = f"vjp_backward({fwd.vjp_op.primal.name})"

    def make_node(self, pullback, *gs):
        return Apply(self, [pullback, *gs], [t() for t in self.fwd.vjp_op.output_types])

    def perform(self, node, inputs, outputs):
        for storage, g in zip(outputs, self.jitted(*inputs), strict=False):
            storage[0] = np.array(g)

    def infer_shape(self, fgraph, node, input_shapes):
        shapes = [t.shape for t in self.fwd.vjp_op.output_types]
        if any(None in s for s in shapes):
            raise ShapeError(f"{self.name}: output shape unknown until run")
        return shapes


class _FuseWithDerived(GraphRewriter):
    """Let a primal node share the JAX call of its derived node on the same inputs.

    ``role="jacobian"``: the primal outputs are replaced by the value outputs of the
    value-and-Jacobian node. ``role="vjp"``: primal + VJP become one ``jax.vjp`` call whose
    pullback feeds the backward node (C/Python backends only: the pullback is a Python
    object that Numba cannot carry, and XLA fuses the JAX backend's graph by itself).
    """

    def __init__(self, role: str):
        self.role = role

    def apply(self, fgraph):
        derived_nodes = [n for n in fgraph.toposort() if isinstance(n.op, JaxOp) and n.op.role == self.role]
        for dnode in derived_nodes:
            if dnode not in fgraph.apply_nodes:  # replaced by an earlier fusion
                continue
            primal = dnode.op.primal
            n_in = len(primal.input_types)
            xs = dnode.inputs[:n_in]
            pnode = _find_application(fgraph, primal, xs)
            if pnode is None or (self.role == "vjp" and not primal.fuse_vjp):
                continue
            if self.role == "jacobian":
                fgraph.replace_all(
                    list(zip(pnode.outputs, dnode.outputs[: len(pnode.outputs)], strict=False)),
                    reason="fuse_forward_and_jacobian",
                )
            else:
                fwd, bwd = fused_ops(dnode.op)
                fwd_outs = fwd(*xs, return_list=True)
                grads = bwd(fwd_outs[-1], *dnode.inputs[n_in:], return_list=True)
                fgraph.replace_all(
                    [*zip(pnode.outputs, fwd_outs[:-1], strict=True), *zip(dnode.outputs, grads, strict=True)],
                    reason="fuse_forward_and_vjp",
                )


def _find_application(fgraph, op, inputs):
    if not inputs:
        return next((n for n in fgraph.apply_nodes if n.op is op and not n.inputs), None)
    for client, _ in fgraph.clients.get(inputs[0], ()):
        if getattr(client, "op", None) is op and list(client.inputs) == list(inputs):
            return client
    return None


fuse_forward_and_jacobian = _FuseWithDerived("jacobian")
fuse_forward_and_vjp = _FuseWithDerived("vjp")
# After canonicalize/specialize (so merged inputs match), before inplace (49.x).
optdb.register("jaxpm_fuse_forward_and_jacobian", fuse_forward_and_jacobian, "fast_run", "fast_compile", position=48.1)
optdb.register(
    "jaxpm_fuse_forward_and_vjp", fuse_forward_and_vjp, "fast_run", "fast_compile", "cxx_only", position=48.2
)


__all__ = ["fuse_forward_and_jacobian", "fuse_forward_and_vjp", "fused_ops", "VJPForward", "VJPBackward"]
