"""JAX functions as PyTensor Ops: the core every jaxpm experiment stands on.

``jax_op(fn)`` turns a jittable JAX function into a function of PyTensor variables::

    @jax_op
    def solve(y0, args):
        return diffrax.diffeqsolve(...).ys

    ys = solve(y0_rv, {"k": k_rv})            # PyTensor variables in, PyTensor variables out

Arguments and results may be pytrees (lists, tuples, dicts, flax parameter trees). Leaves
that are PyTensor variables or arrays become Op inputs; every other leaf (numbers,
strings, callables, modules) is a *static* value baked into the Op. Output types come from
``jax.eval_shape``, so building a graph never runs JAX.

How it is built, and why:

* One :class:`JaxOp` per (wrapped function, static values, input types). ``jax_op`` keeps
  them in a cache, so the same function applied twice to the same inputs gives equal Ops
  (PyTensor merges the nodes), and a model rebuilt later reuses the functions JAX already
  compiled: jitting happens once per wrapped function and signature, not per model build.
* Gradients, ``grad="reverse"`` (default): the gradient node is another ``JaxOp`` around
  ``jax.vjp``, so grad-of-grad works by recursion. Only inputs that can vary are
  differentiated (not constants such as a CNN's images). With ``fuse_vjp=True`` a graph
  rewrite (:data:`fuse_forward_and_vjp`) makes the forward node's ``jax.vjp`` pullback feed
  the backward node instead of recomputing the forward pass; measured slower on a CPU in
  every case tried, so it is opt-in.
* ``grad="forward"``: the gradient node computes the value *and* the Jacobian in one
  ``jax.jacfwd`` call; the gradient is a cheap contraction with the output gradient.
  :func:`fuse_forward_and_jacobian` makes the plain forward node reuse that call's value.
  This is what an ODE with few parameters and many save points wants. On the JAX backend
  the function is wrapped in a ``jax.custom_vjp`` whose backward pass uses the same
  forward-mode Jacobian, so samplers that take ``jax.grad`` of the jaxified logp (nutpie's
  JAX backend, numpyro, blackjax) work even when the function itself cannot be reverse
  differentiated (``diffrax.ForwardMode``).
* On the JAX backend the Op hands XLA the raw function (``jax_funcify``), so the whole logp
  graph compiles as one program.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.gradient import DisconnectedType, disconnected_type, grad_not_implemented
from pytensor.graph import Apply, Constant, Op, Variable
from pytensor.graph.rewriting.basic import GraphRewriter
from pytensor.graph.type import Type
from pytensor.link.jax.dispatch import jax_funcify
from pytensor.tensor.exceptions import ShapeError
from pytensor.tensor.type import TensorType

__all__ = ["jax_op", "JaxFunction", "JaxOp", "JaxOpError"]

GradMode = Literal["reverse", "forward", None]


class JaxOpError(TypeError):
    """A wrapped JAX function could not be turned into an Op (names the function)."""


# --------------------------------------------------------------------------------------
# The Op
# --------------------------------------------------------------------------------------


class JaxOp(Op):
    """Applies one flat JAX function ``f(*arrays) -> tuple[arrays]`` inside a PyTensor graph.

    ``flat_fn`` takes exactly the Op's inputs as arrays and returns a tuple with one array
    per output; all pytree structure and static values live in the closure. Instances are
    made (and cached) by :class:`JaxFunction`; equality is identity, which is what lets
    PyTensor merge two applications of the same function to the same inputs.
    """

    default_output = None

    def __init__(
        self,
        flat_fn: Callable,
        input_types: Sequence[TensorType],
        output_types: Sequence[Type],
        *,
        name: str,
        grad: GradMode = "reverse",
        out_dims: Sequence[tuple] | None = None,
        fuse_vjp: bool = False,
    ):
        self.flat_fn = flat_fn
        self.input_types = tuple(input_types)
        self.output_types = tuple(output_types)
        self.name = name
        self.grad_mode = grad
        self.fuse_vjp = fuse_vjp
        # Output shapes as (int | (input_index, axis) | None) per dim, for infer_shape.
        self.out_dims = tuple(out_dims) if out_dims is not None else None
        self._derived: dict[Any, JaxOp] = {}  # vjp / jacobian / fused ops made from this one
        self.primal: JaxOp | None = None  # for derived ops: the op they were derived from
        self.role = "primal"

    def __str__(self):
        return self.name

    __repr__ = __str__

    # pickling (PyMC sends step methods to worker processes): drop compiled functions
    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("jitted", "jax_fn", "_packing")}

    @functools.cached_property
    def jitted(self) -> Callable:
        """The flat function, jitted once for this Op (used by the C and Numba backends).

        With several outputs of static shape it returns one flat buffer per dtype instead,
        which :meth:`perform` splits into views: each JAX array costs microseconds to hand
        to NumPy, and at ODE sizes that is a real share of a call.
        """
        groups = self._packing
        if groups is None:
            return jax.jit(self.flat_fn)
        f = self.flat_fn

        def packed(*xs):
            ys = f(*xs)
            return tuple(jnp.concatenate([jnp.ravel(ys[i]) for i, *_ in members]) for members in groups)

        return jax.jit(packed)

    @functools.cached_property
    def _packing(self) -> list[list[tuple]] | None:
        """Outputs grouped by dtype as ``(index, start, stop, shape)``; None: no packing."""
        if len(self.output_types) < 2 or any(None in t.shape for t in self.output_types):
            return None
        groups: dict[str, list[tuple]] = {}
        for i, t in enumerate(self.output_types):
            members = groups.setdefault(t.dtype, [])
            start = members[-1][2] if members else 0
            members.append((i, start, start + math.prod(t.shape), t.shape))
        return list(groups.values())

    # --- graph construction ------------------------------------------------------------

    def make_node(self, *inputs) -> Apply:
        if len(inputs) != len(self.input_types):
            raise JaxOpError(f"{self.name}: expected {len(self.input_types)} inputs, got {len(inputs)}")
        inputs = [t.filter_variable(x) for x, t in zip(inputs, self.input_types)]
        return Apply(self, inputs, [t() for t in self.output_types])

    def infer_shape(self, fgraph, node, input_shapes):
        if self.out_dims is None:  # some output dim is not an input dim: ask at run time
            raise ShapeError(f"{self.name}: output shape unknown until run")
        return [
            tuple(d if isinstance(d, int) else input_shapes[d[0]][d[1]] for d in dims)
            for dims in self.out_dims
        ]

    # --- execution (C and Numba backends) ----------------------------------------------

    def perform(self, node, inputs, outputs):
        # One copy out of JAX's read-only buffers: PyTensor may later write in place.
        results = self.jitted(*inputs)
        if self._packing is None:
            for storage, result in zip(outputs, results):
                storage[0] = np.array(result)
            return
        for buffer, members in zip(results, self._packing):
            buffer = np.array(buffer)
            for i, start, stop, shape in members:
                outputs[i][0] = buffer[start:stop].reshape(shape)

    # --- gradients ---------------------------------------------------------------------

    def connection_pattern(self, node):
        """Integer and boolean inputs carry no gradient to any output."""
        return [[_is_float(x.type)] * len(node.outputs) for x in node.inputs]

    def L_op(self, inputs, outputs, output_grads):
        connected = tuple(
            not isinstance(g.type, DisconnectedType) and _is_float(o.type)
            for o, g in zip(outputs, output_grads)
        )
        if self.grad_mode is None:
            return [grad_not_implemented(self, i, x, f"{self.name} was wrapped with grad=None") for i, x in enumerate(inputs)]
        # Differentiate only float inputs that can vary: a constant (the CNN's 1000 images)
        # would cost a gradient nobody reads.
        wrt = tuple(i for i, x in enumerate(inputs) if _is_float(x.type) and not isinstance(x, Constant))
        result = [pt.zeros_like(x) if _is_float(x.type) else disconnected_type() for x in inputs]
        if not any(connected) or not wrt:
            return result
        gs = [g for g, c in zip(output_grads, connected) if c]
        if self.grad_mode == "reverse":
            grads = self.vjp_op(connected, wrt)(*inputs, *gs, return_list=True)
            for i, g in zip(wrt, grads):
                result[i] = g
            return result
        # forward mode: value and Jacobian in one call, gradient = contraction
        valjac = self.jacobian_op(wrt)(*inputs, return_list=True)
        jacs = valjac[len(outputs):]
        diff_inputs = list(wrt)
        float_out = [k for k, o in enumerate(outputs) if _is_float(o.type)]
        for i, x in enumerate(inputs):
            if i not in diff_inputs:
                continue
            j = diff_inputs.index(i)
            total = None
            for k, (out, g) in enumerate(zip(outputs, output_grads)):
                if not connected[k]:
                    continue
                jac = jacs[float_out.index(k) * len(diff_inputs) + j]
                # an elementwise product and a sum fuse into one C loop; a tensordot
                # would become BLAS calls whose overhead dominates at ODE sizes
                term = (pt.shape_padright(g, x.ndim) * jac).sum(axis=tuple(range(out.ndim)), dtype=x.dtype, acc_dtype=x.dtype)
                total = term if total is None else total + term
            result[i] = total.astype(x.dtype)
        return result

    def vjp_op(self, connected: tuple[bool, ...], wrt: tuple[int, ...]) -> "JaxOp":
        """The Op computing the cotangents of inputs ``wrt`` from (inputs, cotangents of
        the connected outputs)."""
        key = ("vjp", connected, wrt)
        if key not in self._derived:
            f, n_in = self.flat_fn, len(self.input_types)
            diff = list(wrt)
            out_dtypes = [t.dtype for t, c in zip(self.output_types, connected) if c]

            def vjp_fn(*args):
                xs, gs = args[:n_in], args[n_in:]
                _, pullback = jax.vjp(_restricted(f, xs, diff, connected), *[xs[i] for i in diff])
                return tuple(pullback(tuple(jnp.asarray(g, dtype=d) for g, d in zip(gs, out_dtypes))))

            op = JaxOp(
                vjp_fn,
                self.input_types + tuple(t for t, c in zip(self.output_types, connected) if c),
                [self.input_types[i] for i in diff],
                name=f"vjp({self.name})",
                grad="reverse",
                out_dims=[tuple((i, a) if s is None else s for a, s in enumerate(self.input_types[i].shape)) for i in diff],
            )
            op.primal, op.role, op.connected, op.wrt = self, "vjp", connected, wrt
            self._derived[key] = op
        return self._derived[key]

    def fused_ops(self) -> tuple["_VJPForward", "_VJPBackward"]:
        """For a VJP op: the (forward-with-pullback, backward) pair that replaces it and its
        primal on the C backend; made once, so JAX compiles them once."""
        if "fused" not in self._derived:
            fwd = _VJPForward(self)
            self._derived["fused"] = (fwd, _VJPBackward(fwd))
        return self._derived["fused"]

    def jacobian_op(self, wrt: tuple[int, ...]) -> "JaxOp":
        """The Op computing (*outputs, *jacobians) in one forward-mode pass.

        Jacobians are ordered output-major: d out_k / d in_j for each float output k and
        each input j in ``wrt`` (integer and boolean outputs have no Jacobian).
        """
        key = ("jac", wrt)
        if key not in self._derived:
            f = self.flat_fn
            diff = list(wrt)
            float_out = [k for k, t in enumerate(self.output_types) if _is_float(t)]

            def valjac_fn(*xs):
                ys, jacs = _value_and_jacfwd(f, xs, diff, float_out)
                return (*ys, *[jac[j] for jac in jacs for j in range(len(diff))])

            jac_types, jac_dims = [], []
            for k in float_out:
                ot = self.output_types[k]
                for i in diff:
                    it = self.input_types[i]
                    jac_types.append(TensorType(ot.dtype, shape=ot.shape + it.shape))
                    odims = self.out_dims[k] if self.out_dims else (None,) * ot.ndim
                    jac_dims.append(tuple(odims) + tuple((i, a) if s is None else s for a, s in enumerate(it.shape)))
            op = JaxOp(
                valjac_fn,
                self.input_types,
                self.output_types + tuple(jac_types),
                name=f"value_and_jacobian({self.name})",
                grad="forward",
                out_dims=(list(self.out_dims) + jac_dims) if self.out_dims else None,
            )
            op.primal, op.role = self, "jacobian"
            self._derived[key] = op
        return self._derived[key]

    # --- JAX backend -------------------------------------------------------------------

    @functools.cached_property
    def jax_fn(self) -> Callable:
        """What the JAX backend calls: the raw function, made reverse-differentiable.

        In forward mode the function gets a ``custom_vjp`` whose backward pass contracts
        the forward-mode Jacobian, so ``jax.grad`` of a jaxified logp works (and costs one
        ``jacfwd``) even when the function refuses reverse mode.
        """
        f = self.flat_fn
        if self.grad_mode != "forward":
            return _single_or_tuple(f)
        diff = [i for i, t in enumerate(self.input_types) if _is_float(t)]

        @jax.custom_vjp
        def fn(*xs):
            return f(*xs)

        float_out = [k for k, t in enumerate(self.output_types) if _is_float(t)]

        def fwd(*xs):
            ys, jacs = _value_and_jacfwd(f, xs, diff, float_out)
            return ys, (jacs, tuple(jnp.shape(x) for x in xs))

        def bwd(res, gs):
            jacs, shapes = res
            cts = [None] * len(shapes)
            for j, i in enumerate(diff):
                total = 0.0
                for jac, k in zip(jacs, float_out):
                    total = total + jnp.tensordot(gs[k], jac[j], axes=gs[k].ndim)
                cts[i] = jnp.asarray(total, dtype=self.input_types[i].dtype).reshape(shapes[i])
            return tuple(cts)

        fn.defvjp(fwd, bwd)
        return _single_or_tuple(fn)


@jax_funcify.register(JaxOp)
def _jax_funcify_jax_op(op: JaxOp, **kwargs):
    return op.jax_fn


# --------------------------------------------------------------------------------------
# One forward pass for value and gradient: fused ops and the rewrites that use them
# --------------------------------------------------------------------------------------


class _PullbackType(Type):
    """A JAX pullback (``jax.vjp``'s second result) travelling between two nodes."""

    def filter(self, data, strict=False, allow_downcast=None):
        return data

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(type(self))


class _VJPForward(Op):
    """``jax.vjp`` of a primal JaxOp: its outputs, plus the pullback for the backward node."""

    def __init__(self, vjp_op: JaxOp):
        self.vjp_op = vjp_op
        primal = vjp_op.primal
        diff = list(vjp_op.wrt)
        self.float_out = [k for k, t in enumerate(primal.output_types) if _is_float(t)]
        self.connected = vjp_op.connected
        f, float_out = primal.flat_fn, self.float_out

        def forward(*xs):
            def g(*d):  # differentiate the float outputs; carry the others (flags, counts) as aux
                ys = f(*_insert(xs, diff, d))
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
        for storage, y in zip(outputs, ys):
            storage[0] = np.array(y)
        outputs[-1][0] = pullback

    def infer_shape(self, fgraph, node, input_shapes):
        return [*self.vjp_op.primal.infer_shape(fgraph, node, input_shapes), None]


class _VJPBackward(Op):
    """Applies the pullback of a :class:`_VJPForward` node to output cotangents."""

    def __init__(self, fwd: _VJPForward):
        self.fwd = fwd
        types = fwd.vjp_op.primal.output_types

        def backward(pullback, *gs):
            it = iter(gs)
            cts = tuple(
                jnp.asarray(next(it), dtype=types[k].dtype) if fwd.connected[k] else jnp.zeros(types[k].shape, types[k].dtype)
                for k in fwd.float_out
            )
            return pullback(cts)

        self.jitted = jax.jit(backward)
        self.name = f"vjp_backward({fwd.vjp_op.primal.name})"

    def make_node(self, pullback, *gs):
        return Apply(self, [pullback, *gs], [t() for t in self.fwd.vjp_op.output_types])

    def perform(self, node, inputs, outputs):
        for storage, g in zip(outputs, self.jitted(*inputs)):
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
                    list(zip(pnode.outputs, dnode.outputs[: len(pnode.outputs)])),
                    reason="fuse_forward_and_jacobian",
                )
            else:
                fwd, bwd = dnode.op.fused_ops()
                fwd_outs = fwd(*xs, return_list=True)
                grads = bwd(fwd_outs[-1], *dnode.inputs[n_in:], return_list=True)
                fgraph.replace_all(
                    list(zip(pnode.outputs, fwd_outs[:-1])) + list(zip(dnode.outputs, grads)),
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
optdb.register("jaxpm_fuse_forward_and_vjp", fuse_forward_and_vjp, "fast_run", "fast_compile", "cxx_only", position=48.2)


# --------------------------------------------------------------------------------------
# The user-facing wrapper
# --------------------------------------------------------------------------------------


class JaxFunction:
    """A JAX function made callable on PyTensor variables (what :func:`jax_op` returns).

    Calling it partitions the arguments into dynamic leaves (PyTensor variables, arrays)
    and static ones, finds or creates the :class:`JaxOp` for that signature, applies it,
    and rebuilds the output pytree from the Op's outputs.
    """

    def __init__(self, fn: Callable, *, grad: GradMode = "reverse", name: str | None = None, fuse_vjp: bool = False):
        if grad not in ("reverse", "forward", None):
            raise ValueError(f"grad must be 'reverse', 'forward' or None, got {grad!r}")
        self.fn = fn
        self.grad = grad
        self.fuse_vjp = fuse_vjp
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        self._ops: dict[Any, tuple[JaxOp, Any]] = {}
        functools.update_wrapper(self, fn, updated=())

    def __repr__(self):
        return f"jax_op({self.name}, grad={self.grad!r})"

    def __call__(self, *args, **kwargs):
        try:
            inspect.signature(self.fn).bind(*args, **kwargs)
        except TypeError as e:
            raise JaxOpError(f"jax_op '{self.name}' called with the wrong arguments: {e}") from None
        except ValueError:  # builtins without a signature
            pass
        leaves, treedef = jax.tree.flatten((args, kwargs))
        dynamic, static = [], []
        for leaf in leaves:
            if isinstance(leaf, Variable):
                dynamic.append(pt.as_tensor_variable(leaf))
                static.append(_DYNAMIC)
            elif isinstance(leaf, np.ndarray | jax.Array | np.generic):
                dynamic.append(pt.as_tensor_variable(np.asarray(leaf)))
                static.append(_DYNAMIC)
            else:
                static.append(leaf)
        key = (treedef, tuple(_hashable(s) for s in static), tuple(x.type for x in dynamic))
        if key not in self._ops:
            self._ops[key] = self._make_op(treedef, static, dynamic)
        op, out_treedef = self._ops[key]
        outs = op(*dynamic, return_list=True) if op.output_types else []
        return jax.tree.unflatten(out_treedef, outs)

    def _make_op(self, treedef, static, variables):
        input_types = [x.type for x in variables]
        fn, name = self.fn, self.name

        def rebuild(arrays):
            it = iter(arrays)
            leaves = [next(it) if s is _DYNAMIC else s for s in static]
            args, kwargs = jax.tree.unflatten(treedef, leaves)
            return args, kwargs

        out_info = {}

        def flat_fn(*arrays):
            args, kwargs = rebuild(arrays)
            out = fn(*args, **kwargs)
            flat, out_treedef = jax.tree.flatten(out)
            out_info.setdefault("treedef", out_treedef)
            return tuple(jnp.asarray(y) for y in flat)

        shapes, dims = _abstract_inputs(input_types)
        try:
            out_structs = jax.eval_shape(flat_fn, *shapes)
        except Exception as e:  # noqa: BLE001 - any tracing failure is reported with the function's name
            if not dims:
                raise _trace_error(name, e) from e
            # Symbolic dims failed (e.g. two unknown lengths added together): trace at the
            # inputs' current shapes, and leave the output shapes to run time.
            # Failing that (free inputs), trace with one shared symbol for every unknown
            # dim: right for functions that combine equal-length inputs elementwise.
            concrete = _current_shapes(variables)
            if concrete is not None:
                retry = [jax.ShapeDtypeStruct(c, t.dtype) for c, t in zip(concrete, input_types)]
            else:
                retry = _abstract_inputs(input_types, shared_symbol=True)[0]
            try:
                out_structs = jax.eval_shape(flat_fn, *retry)
            except Exception:  # noqa: BLE001
                raise JaxOpError(
                    f"{_trace_error(name, e)} (inputs of unknown shape: give them static shapes with pt.specify_shape)"
                ) from e
            out_structs = [jax.ShapeDtypeStruct((None,) * len(o.shape), o.dtype) for o in out_structs]
            dims = {}
        if not out_structs:
            raise JaxOpError(f"jax_op '{name}' returned no arrays; it must return an array or a pytree of arrays")
        out_types, out_dims = [], []
        for s in out_structs:
            static_shape = tuple(d if isinstance(d, int) else None for d in s.shape)
            if None in static_shape and not dims:
                out_dims.append((None,) * len(static_shape))
                out_types.append(TensorType(str(s.dtype), shape=static_shape))
                continue
            out_types.append(TensorType(str(s.dtype), shape=static_shape))
            out_dims.append(tuple(d if isinstance(d, int) else dims.get(str(d)) for d in s.shape))
        if any(d is None for od in out_dims for d in od):
            out_dims = None
        op = JaxOp(flat_fn, input_types, out_types, name=name, grad=self.grad, out_dims=out_dims, fuse_vjp=self.fuse_vjp)
        return op, out_info["treedef"]


def jax_op(fn: Callable | None = None, *, grad: GradMode = "reverse", name: str | None = None, fuse_vjp: bool = False):
    """Wrap a jittable JAX function so that it takes and returns PyTensor variables.

    Usable as ``jax_op(fn)``, ``@jax_op`` or ``@jax_op(grad="forward")``.

    Args:
        fn: the JAX function. Arguments and results may be pytrees of arrays; leaves that
            are not PyTensor variables or arrays are static (hashable values compare by
            value, others by identity).
        grad: ``"reverse"`` (VJP; supports grad of grad), ``"forward"`` (value and
            forward-mode Jacobian in one JAX call; best when the differentiable inputs are
            few and the outputs many, e.g. ODE solutions), or ``None`` (not differentiable).
        name: how the Op is shown in graphs and errors (default: ``fn.__name__``).
        fuse_vjp: in reverse mode on the C backend, compute the forward pass once and hand
            its pullback (residuals kept in JAX memory) to the backward node, instead of
            recomputing the forward pass inside the VJP. Off by default: on a CPU, carrying
            the pullback across two jitted calls measured slower than recomputing in every
            case tried (post ODE 790 vs 407 µs, a 4-parameter ODE 1.65 vs 1.21 ms, the
            post's CNN 5.2 vs 4.3 s per logp+dlogp); it may pay where the forward pass
            dominates and its residuals are small.
    """
    if fn is None:
        return functools.partial(jax_op, grad=grad, name=name, fuse_vjp=fuse_vjp)
    return JaxFunction(fn, grad=grad, name=name, fuse_vjp=fuse_vjp)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

_DYNAMIC = object()


class _ById:
    """A static value that cannot be hashed compares by identity."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other):
        return isinstance(other, _ById) and other.obj is self.obj

    def __hash__(self):
        return id(self.obj)


def _hashable(value):
    """A cache key for a static value: by value (and type: 2, 2.0 and True differ), else by id."""
    if value is _DYNAMIC:
        return value
    try:
        hash(value)
    except TypeError:
        return _ById(value)
    return (type(value), value)


def _is_float(t) -> bool:
    return isinstance(t, TensorType) and t.dtype.startswith(("float", "complex"))


def _insert(xs, idx, values):
    xs = list(xs)
    for i, v in zip(idx, values):
        xs[i] = v
    return xs


def _restricted(f, xs, diff, connected):
    """f as a function of its float inputs only, returning its connected outputs only."""

    def g(*d):
        ys = f(*_insert(xs, diff, d))
        return tuple(y for y, c in zip(ys, connected) if c)

    return g


def _value_and_jacfwd(f, xs, diff, float_out):
    """(outputs, jacobians[k][j] = d out_{float_out[k]} / d xs[diff[j]]) in one forward pass."""

    def g(*d):
        ys = f(*_insert(xs, diff, d))
        return tuple(ys[k] for k in float_out), ys

    jacs, ys = jax.jacfwd(g, argnums=tuple(range(len(diff))), has_aux=True)(*[xs[i] for i in diff])
    return ys, jacs


def _single_or_tuple(f):
    def call(*xs):
        ys = f(*xs)
        return ys[0] if len(ys) == 1 else ys

    return call


def _trace_error(name: str, e: Exception) -> JaxOpError:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return JaxOpError(f"jax_op '{name}' failed to trace: {type(e).__name__}: {msg}")


def _current_shapes(variables) -> list[tuple[int, ...]] | None:
    """The inputs' shapes now (shared data, constants); None when they depend on inputs."""
    from pytensor.compile.function import function
    from pytensor.compile.mode import Mode

    try:
        fn = function([], [x.shape for x in variables], mode=Mode(linker="py", optimizer="fast_compile"))
        return [tuple(int(d) for d in s) for s in fn()]
    except Exception:  # noqa: BLE001 - free inputs: no current shape to be had
        return None


def _abstract_inputs(input_types, shared_symbol: bool = False):
    """ShapeDtypeStructs for eval_shape; unknown dims become JAX symbolic dimensions.

    Returns the structs and a map from symbolic-dimension name to (input, axis), so that
    output dims that are exactly an input dim can be expressed in ``infer_shape``.
    """
    structs, dims, names = [], {}, []
    for i, t in enumerate(input_types):
        shape = []
        for a, s in enumerate(t.shape):
            if s is None:
                name = "n" if shared_symbol else f"d{i}_{a}"
                if name not in names:
                    names.append(name)
                shape.append(name)
                dims[name] = (i, a)
            else:
                shape.append(s)
        structs.append((shape, t.dtype))
    if names:
        from jax import export

        symbols = dict(zip(names, export.symbolic_shape(", ".join(names))))
        return (
            [jax.ShapeDtypeStruct(tuple(symbols.get(s, s) if isinstance(s, str) else s for s in shape), dtype) for shape, dtype in structs],
            dims,
        )
    return [jax.ShapeDtypeStruct(tuple(shape), dtype) for shape, dtype in structs], dims
