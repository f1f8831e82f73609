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
  rewrite (:data:`jaxpm.rewrites.fuse_forward_and_vjp`) makes the forward node's ``jax.vjp`` pullback feed
  the backward node instead of recomputing the forward pass; measured slower on a CPU in
  every case tried, so it is opt-in.
* ``grad="forward"``: the gradient node computes the value *and* the Jacobian in one
  ``jax.jacfwd`` call; the gradient is a cheap contraction with the output gradient.
  :data:`jaxpm.rewrites.fuse_forward_and_jacobian` makes the plain forward node reuse that call's value.
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
from pytensor.gradient import DisconnectedType, disconnected_type, grad_not_implemented
from pytensor.graph import Apply, Constant, Op, Variable
from pytensor.graph.type import Type
from pytensor.link.jax.dispatch import jax_funcify
from pytensor.tensor.exceptions import ShapeError
from pytensor.tensor.type import TensorType

from jaxpm.autodiff import forward_differentiable, forward_form, restricted, time_modes, value_and_jacfwd

__all__ = ["jax_op", "JaxFunction", "JaxOp", "JaxOpError", "is_float_type", "forward_differentiable"]

GradMode = Literal["auto", "reverse", "forward", None]

FORWARD_ALWAYS = 4
"""``grad="auto"``: forward mode (where the function allows it) for at most this many
differentiable input scalars: value and Jacobian in one call beat a value call plus a VJP."""

FORWARD_MAX = 64
"""``grad="auto"``: reverse mode above this many differentiable input scalars; between
:data:`FORWARD_ALWAYS` and this, both are timed once at all-ones inputs and the faster kept."""


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
        jax_custom_vjp: bool = True,
        forward_fn: Callable | None = None,
        grad_reason: str = "",
    ):
        self.flat_fn = flat_fn
        # what forward mode differentiates: flat_fn, or flat_fn with its custom_vjp rules
        # replaced by their primal computation (forward_differentiable)
        self.forward_fn = forward_fn or flat_fn
        self.grad_reason = grad_reason
        self.input_types = tuple(input_types)
        self.output_types = tuple(output_types)
        self.name = name
        self.grad_mode = grad
        self.fuse_vjp = fuse_vjp
        self.jax_custom_vjp = jax_custom_vjp
        # Output shapes as (int | (input_index, axis) | None) per dim, for infer_shape.
        self.out_dims = tuple(out_dims) if out_dims is not None else None
        self.derived: dict[Any, Any] = {}  # ops made from this one (vjp, jacobian, jaxpm.rewrites pairs)
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
        inputs = [t.filter_variable(x) for x, t in zip(inputs, self.input_types, strict=False)]
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
            for storage, result in zip(outputs, results, strict=False):
                storage[0] = np.array(result)
            return
        for buffer, members in zip(results, self._packing, strict=False):
            buffer = np.array(buffer)
            for i, start, stop, shape in members:
                outputs[i][0] = buffer[start:stop].reshape(shape)

    # --- gradients ---------------------------------------------------------------------

    def connection_pattern(self, node):
        """Integer and boolean inputs carry no gradient to any output."""
        return [[is_float_type(x.type)] * len(node.outputs) for x in node.inputs]

    def L_op(self, inputs, outputs, output_grads):
        connected = tuple(
            not isinstance(g.type, DisconnectedType) and is_float_type(o.type)
            for o, g in zip(outputs, output_grads, strict=False)
        )
        if self.grad_mode is None:
            why = f"{self.name} was wrapped with grad=None"
            return [grad_not_implemented(self, i, x, why) for i, x in enumerate(inputs)]
        # Differentiate only float inputs that can vary: a constant (the CNN's 1000 images)
        # would cost a gradient nobody reads.
        wrt = tuple(i for i, x in enumerate(inputs) if is_float_type(x.type) and not isinstance(x, Constant))
        result = [pt.zeros_like(x) if is_float_type(x.type) else disconnected_type() for x in inputs]
        if not any(connected) or not wrt:
            return result
        gs = [g for g, c in zip(output_grads, connected, strict=False) if c]
        if self.grad_mode == "reverse":
            grads = self.vjp_op(connected, wrt)(*inputs, *gs, return_list=True)
            for i, g in zip(wrt, grads, strict=False):
                result[i] = g
            return result
        # forward mode: value and Jacobian in one call, gradient = contraction
        valjac = self.jacobian_op(wrt)(*inputs, return_list=True)
        jacs = valjac[len(outputs):]
        diff_inputs = list(wrt)
        float_out = [k for k, o in enumerate(outputs) if is_float_type(o.type)]
        for i, x in enumerate(inputs):
            if i not in diff_inputs:
                continue
            j = diff_inputs.index(i)
            total = None
            for k, (out, g) in enumerate(zip(outputs, output_grads, strict=False)):
                if not connected[k]:
                    continue
                jac = jacs[float_out.index(k) * len(diff_inputs) + j]
                # an elementwise product and a sum fuse into one C loop; a tensordot
                # would become BLAS calls whose overhead dominates at ODE sizes
                term = (pt.shape_padright(g, x.ndim) * jac).sum(
                    axis=tuple(range(out.ndim)), dtype=x.dtype, acc_dtype=x.dtype
                )
                total = term if total is None else total + term
            result[i] = total.astype(x.dtype)
        return result

    def vjp_op(self, connected: tuple[bool, ...], wrt: tuple[int, ...]) -> JaxOp:
        """The Op computing the cotangents of inputs ``wrt`` from (inputs, cotangents of
        the connected outputs)."""
        key = ("vjp", connected, wrt)
        if key not in self.derived:
            f, n_in = self.flat_fn, len(self.input_types)
            diff = list(wrt)
            out_dtypes = [t.dtype for t, c in zip(self.output_types, connected, strict=False) if c]

            def vjp_fn(*args):
                xs, gs = args[:n_in], args[n_in:]
                _, pullback = jax.vjp(restricted(f, xs, diff, connected), *[xs[i] for i in diff])
                return tuple(pullback(tuple(jnp.asarray(g, dtype=d) for g, d in zip(gs, out_dtypes, strict=False))))

            op = JaxOp(
                vjp_fn,
                self.input_types + tuple(t for t, c in zip(self.output_types, connected, strict=False) if c),
                [self.input_types[i] for i in diff],
                name=f"vjp({self.name})",
                grad="reverse",
                out_dims=[_dims_of(i, self.input_types[i]) for i in diff],
            )
            op.primal, op.role, op.connected, op.wrt = self, "vjp", connected, wrt
            self.derived[key] = op
        return self.derived[key]

    def jacobian_op(self, wrt: tuple[int, ...]) -> JaxOp:
        """The Op computing (*outputs, *jacobians) in one forward-mode pass.

        Jacobians are ordered output-major: d out_k / d in_j for each float output k and
        each input j in ``wrt`` (integer and boolean outputs have no Jacobian).
        """
        key = ("jac", wrt)
        if key not in self.derived:
            f = self.forward_fn
            diff = list(wrt)
            float_out = [k for k, t in enumerate(self.output_types) if is_float_type(t)]

            def valjac_fn(*xs):
                ys, jacs = value_and_jacfwd(f, xs, diff, float_out)
                return (*ys, *[jac[j] for jac in jacs for j in range(len(diff))])

            jac_types, jac_dims = [], []
            for k in float_out:
                ot = self.output_types[k]
                for i in diff:
                    it = self.input_types[i]
                    jac_types.append(TensorType(ot.dtype, shape=ot.shape + it.shape))
                    odims = self.out_dims[k] if self.out_dims else (None,) * ot.ndim
                    jac_dims.append(tuple(odims) + _dims_of(i, it))
            op = JaxOp(
                valjac_fn,
                self.input_types,
                self.output_types + tuple(jac_types),
                name=f"value_and_jacobian({self.name})",
                grad="forward",
                out_dims=(list(self.out_dims) + jac_dims) if self.out_dims else None,
            )
            op.primal, op.role = self, "jacobian"
            self.derived[key] = op
        return self.derived[key]

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
        if not self.jax_custom_vjp:
            return _single_or_tuple(self.forward_fn)
        diff = [i for i, t in enumerate(self.input_types) if is_float_type(t)]

        @jax.custom_vjp
        def fn(*xs):
            return f(*xs)

        float_out = [k for k, t in enumerate(self.output_types) if is_float_type(t)]

        def fwd(*xs):
            ys, jacs = value_and_jacfwd(self.forward_fn, xs, diff, float_out)
            return ys, (jacs, tuple(jnp.shape(x) for x in xs))

        def bwd(res, gs):
            jacs, shapes = res
            cts = [None] * len(shapes)
            for j, i in enumerate(diff):
                total = 0.0
                for jac, k in zip(jacs, float_out, strict=False):
                    total = total + jnp.tensordot(gs[k], jac[j], axes=gs[k].ndim)
                cts[i] = jnp.asarray(total, dtype=self.input_types[i].dtype).reshape(shapes[i])
            return tuple(cts)

        fn.defvjp(fwd, bwd)
        return _single_or_tuple(fn)


@jax_funcify.register(JaxOp)
def _jax_funcify_jax_op(op: JaxOp, **kwargs):
    return op.jax_fn


# --------------------------------------------------------------------------------------
# The user-facing wrapper
# --------------------------------------------------------------------------------------


class JaxFunction:
    """A JAX function made callable on PyTensor variables (what :func:`jax_op` returns).

    Calling it partitions the arguments into dynamic leaves (PyTensor variables, arrays)
    and static ones, finds or creates the :class:`JaxOp` for that signature, applies it,
    and rebuilds the output pytree from the Op's outputs.
    """

    def __init__(
        self,
        fn: Callable,
        *,
        grad: GradMode = "auto",
        name: str | None = None,
        fuse_vjp: bool = False,
        jax_custom_vjp: bool = True,
    ):
        if grad not in ("auto", "reverse", "forward", None):
            raise ValueError(f"grad must be 'auto', 'reverse', 'forward' or None, got {grad!r}")
        self.fn = fn
        self.grad = grad
        self.fuse_vjp = fuse_vjp
        self.jax_custom_vjp = jax_custom_vjp
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        self._ops: dict[Any, tuple[JaxOp, Any]] = {}
        functools.update_wrapper(self, fn, updated=())

    def __repr__(self):
        return f"jax_op({self.name}, grad={self.grad!r})"

    @property
    def grad_mode(self) -> str | None:
        """How gradients are taken: ``"forward"`` or ``"reverse"`` (or None), as ``grad``
        says or, for ``grad="auto"``, as chosen for the signatures applied so far (one
        mode, or ``"mixed"``); ``"auto"`` until the function is first applied.

        >>> import jax.numpy as jnp, pytensor.tensor as pt
        >>> square = jax_op(lambda x: x**2, name="square")
        >>> square.grad_mode
        'auto'
        >>> _ = square(pt.vector("x", shape=(3,)))
        >>> square.grad_mode, square.grad_reasons()
        ('forward', ['forward: 3 differentiable input scalars (at most 4: value and Jacobian in one call)'])
        """
        modes = {op.grad_mode for op, _ in self._ops.values()}
        if not modes:
            return self.grad
        return modes.pop() if len(modes) == 1 else "mixed"

    def grad_reasons(self) -> list[str]:
        """Why each signature's Op differentiates the way it does, one line each."""
        return [op.grad_reason for op, _ in self._ops.values()]

    def variant(self, **changes) -> JaxFunction:
        """The same function wrapped with other options (``grad``, ``name``, ``fuse_vjp``,
        ``jax_custom_vjp``): a new wrapper with its own Ops.

        >>> import jax.numpy as jnp
        >>> jax_op(jnp.sin, grad="forward").variant(jax_custom_vjp=False)
        jax_op(sin, grad='forward')
        """
        options = dict(grad=self.grad, name=self.name, fuse_vjp=self.fuse_vjp, jax_custom_vjp=self.jax_custom_vjp)
        return JaxFunction(self.fn, **{**options, **changes})

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
                retry = [jax.ShapeDtypeStruct(c, t.dtype) for c, t in zip(concrete, input_types, strict=False)]
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
        mode, forward_fn, reason = _choose_grad(self.grad, flat_fn, variables, out_structs)
        op = JaxOp(
            flat_fn, input_types, out_types, name=name, grad=mode, out_dims=out_dims,
            fuse_vjp=self.fuse_vjp, jax_custom_vjp=self.jax_custom_vjp, forward_fn=forward_fn, grad_reason=reason,
        )
        return op, out_info["treedef"]


def jax_op(
    fn: Callable | None = None,
    *,
    grad: GradMode = "auto",
    name: str | None = None,
    fuse_vjp: bool = False,
    jax_custom_vjp: bool = True,
):
    """Wrap a jittable JAX function so that it takes and returns PyTensor variables.

    Usable as ``jax_op(fn)``, ``@jax_op`` or ``@jax_op(grad="forward")``.

    Parameters
    ----------
    fn
        The JAX function. Arguments and results may be pytrees of arrays; leaves that are
        not PyTensor variables or arrays are static (hashable values compare by value,
        others by identity).
    grad
        ``"auto"`` (the default: chosen per signature, see below), ``"reverse"`` (a VJP;
        supports grad of grad), ``"forward"`` (value and forward-mode Jacobian in one JAX
        call; best when the differentiable inputs are few and the outputs many, e.g. ODE
        solutions), or ``None`` (not differentiable). ``"auto"`` takes forward mode for
        at most :data:`FORWARD_ALWAYS` differentiable input scalars, reverse mode above
        :data:`FORWARD_MAX`, and between the two times both once; ``jax_op(fn).grad_mode``
        says what it chose. Forward mode works even through functions that refuse it
        (``jax.custom_vjp``, e.g. diffrax's default ``RecursiveCheckpointAdjoint``): their
        custom rules are replaced by the primal computation (:func:`forward_differentiable`).
    name
        How the Op is shown in graphs and errors (default: ``fn.__name__``).
    fuse_vjp
        In reverse mode on the C backend, compute the forward pass once and hand its
        pullback (residuals kept in JAX memory) to the backward node, instead of
        recomputing the forward pass inside the VJP. Off by default: on a CPU, carrying
        the pullback across two jitted calls measured slower than recomputing in every
        case tried (see benchmarks/README.md); it may pay where the forward pass dominates
        and its residuals are small.
    jax_custom_vjp
        In forward mode, give the function a ``jax.custom_vjp`` on the JAX backend, so
        that ``jax.grad`` of a jaxified logp works even when the function refuses reverse
        mode (``diffrax.ForwardMode``). Turn it off to push tangents through the JAX
        backend's graph (``jax.jacfwd`` of a jaxified logp), which a ``custom_vjp`` refuses.

    Returns
    -------
    JaxFunction
        Callable on PyTensor variables (and arrays), returning PyTensor variables in the
        structure ``fn`` returns.

    Examples
    --------
    >>> import jax.numpy as jnp, numpy as np, pytensor, pytensor.tensor as pt
    >>> @jax_op
    ... def scaled_exp(x, scale):
    ...     return {"y": scale * jnp.exp(x)}
    >>> x = pt.vector("x", shape=(2,))
    >>> y = scaled_exp(x, 2.0)["y"]
    >>> f = pytensor.function([x], [y, pytensor.grad(y.sum(), x)])
    >>> [np.round(v, 4).tolist() for v in f(np.array([0.0, 1.0]))]
    [[2.0, 5.4366], [2.0, 5.4366]]
    """
    options = dict(grad=grad, name=name, fuse_vjp=fuse_vjp, jax_custom_vjp=jax_custom_vjp)
    if fn is None:
        return functools.partial(jax_op, **options)
    return JaxFunction(fn, **options)


# --------------------------------------------------------------------------------------
# Choosing how to differentiate
# --------------------------------------------------------------------------------------


def _choose_grad(grad, flat_fn, variables, out_structs) -> tuple[GradMode, Callable | None, str]:
    """``(mode, function forward mode differentiates, reason)`` for one signature."""
    types = [x.type for x in variables]
    diff = [i for i, (x, t) in enumerate(zip(variables, types, strict=True))
            if is_float_type(t) and not isinstance(x, Constant)]
    float_out = [k for k, o in enumerate(out_structs) if jnp.issubdtype(o.dtype, jnp.inexact)]
    n_in = sum(math.inf if None in types[i].shape else math.prod(types[i].shape) for i in diff)
    if grad is None:
        return None, None, "none: wrapped with grad=None"
    if grad == "reverse" or (grad == "auto" and (not diff or not float_out)):
        return "reverse", None, "reverse: " + ("as asked" if grad == "reverse" else "nothing to differentiate")
    if grad == "auto" and n_in > FORWARD_MAX:
        return "reverse", None, f"reverse: {_count(n_in)} differentiable input scalars (more than {FORWARD_MAX})"
    structs = [jax.ShapeDtypeStruct(t.shape, t.dtype) for t in types] if math.isfinite(n_in) else None
    forward_fn, how = forward_form(flat_fn, structs, diff, float_out)
    if forward_fn is None:
        if grad == "forward":
            return "forward", flat_fn, "forward: as asked (it could not be traced in forward mode ahead of time)"
        return "reverse", None, f"reverse: forward mode fails ({how})"
    if grad == "forward":
        return "forward", forward_fn, f"forward: as asked{how}"
    if n_in <= FORWARD_ALWAYS:
        scalars = "1 differentiable input scalar" if n_in == 1 else f"{_count(n_in)} differentiable input scalars"
        why = f"at most {FORWARD_ALWAYS}: value and Jacobian in one call"
        return "forward", forward_fn, f"forward: {scalars} ({why}){how}"
    fwd_s, rev_s = time_modes(flat_fn, forward_fn, structs, diff, float_out)
    if fwd_s <= rev_s:
        return "forward", forward_fn, f"forward: timed {fwd_s * 1e6:.0f} us against reverse {rev_s * 1e6:.0f} us{how}"
    return "reverse", None, f"reverse: timed {rev_s * 1e6:.0f} us against forward {fwd_s * 1e6:.0f} us"


def _count(n: float) -> str:
    return "an unknown number of" if not math.isfinite(n) else str(int(n))


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


def _dims_of(i: int, t: TensorType) -> tuple:
    """Input ``i``'s dims for ``out_dims``: static sizes, or ``(i, axis)`` where unknown."""
    return tuple((i, a) if s is None else s for a, s in enumerate(t.shape))


def is_float_type(t) -> bool:
    """Whether a PyTensor type is a float (or complex) tensor: the types gradients flow through."""
    return isinstance(t, TensorType) and t.dtype.startswith(("float", "complex"))


def _single_or_tuple(f):
    def call(*xs):
        ys = f(*xs)
        return ys[0] if len(ys) == 1 else ys

    return call


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else ""


def _trace_error(name: str, e: Exception) -> JaxOpError:
    msg = _first_line(e)
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

        symbols = dict(zip(names, export.symbolic_shape(", ".join(names)), strict=False))
        return (
            [
                jax.ShapeDtypeStruct(tuple(symbols.get(s, s) if isinstance(s, str) else s for s in shape), dtype)
                for shape, dtype in structs
            ],
            dims,
        )
    return [jax.ShapeDtypeStruct(tuple(shape), dtype) for shape, dtype in structs], dims
