"""The small expression language of config values.

Distribution parameters, ``observed``, deterministics and experiment inputs may be
written as expressions over the names the model has defined so far::

    sigma: noise                      # a name
    mu: log(ode)                      # a function call
    observed: "ode[:, 0]"             # indexing
    rate: "exp(a) * b"                # arithmetic, usual precedence
    p: "sigmoid(z) * 2 - 1"
    coefs: "stack([a, b])"            # list literals as function arguments
    y: "sum(x, axis=0)"               # keyword arguments
    theta: [0.5, "2 * a"]             # a YAML list with an expression: stacked tensor
    mu: [[1, 2], [3, 4]]              # a YAML list of numbers: a float64 numpy array

Grammar (a whitelisted subset of Python expressions, parsed with :mod:`ast` and walked
here, never handed to ``eval``)::

    expr   := number | name | -expr | +expr | expr OP expr | expr[index] | call | (expr)
    OP     := + - * / // % ** @
    index  := item | item, item, ...
    item   := expr | [expr]:[expr][:expr] | None | ...
    call   := FUNCTION(arg, ..., keyword=arg, ...)
    arg    := expr | [arg, ...] | (arg, ...)

An index item may be any expression, e.g. ``mu[group]`` with an integer array ``group``.
Names resolve against the model's names first, then :data:`CONSTANTS` (``pi``, ``e``,
``inf``, ``nan``); functions are exactly those in :data:`FUNCTIONS`. Anything else
(attribute access, strings, lambdas, comprehensions, comparisons, ``if``/``else``, ...)
is a :class:`~jaxpm.errors.ConfigError` naming the key path and the fix.

Values are PyTensor variables, numpy arrays or Python numbers, and the result is whatever
PyTensor/numpy arithmetic makes of them: ``"2 * 3"`` is the int ``6``, ``"2 * x"`` a
tensor when ``x`` is one. Plain YAML numbers are returned unchanged; YAML lists of numbers
always become float64 arrays (integer-valued uses such as ``shape`` convert back).
"""

from __future__ import annotations

import ast
import inspect
import operator
from collections.abc import Callable, Mapping

import numpy as np
import pymc.math
import pytensor.tensor as pt
import pytensor.tensor.special as pts
from pytensor.tensor.elemwise import Elemwise

from jaxpm.errors import ConfigError, did_you_mean

CONSTANTS: dict[str, float] = {"pi": np.pi, "e": np.e, "inf": np.inf, "nan": np.nan}


def _softmax(x, axis=-1):
    return pts.softmax(x, axis=axis)


def _log_softmax(x, axis=-1):
    return pts.log_softmax(x, axis=axis)


FUNCTIONS: dict[str, Callable] = {
    # elementwise
    "log": pt.log, "log1p": pt.log1p, "exp": pt.exp, "expm1": pt.expm1,
    "sqrt": pt.sqrt, "square": pt.square, "abs": pt.abs, "sign": pt.sign,
    "sin": pt.sin, "cos": pt.cos, "tan": pt.tan, "arctan": pt.arctan,
    "sinh": pt.sinh, "cosh": pt.cosh, "tanh": pt.tanh,
    "sigmoid": pt.sigmoid, "invlogit": pt.sigmoid, "logit": pymc.math.logit, "softplus": pt.softplus,
    "erf": pt.erf, "erfc": pt.erfc, "gammaln": pt.gammaln,
    "floor": pt.floor, "ceil": pt.ceil, "round": pt.round,
    "maximum": pt.maximum, "minimum": pt.minimum, "clip": pt.clip, "where": pt.where,
    # reductions and normalisations
    "sum": pt.sum, "mean": pt.mean, "prod": pt.prod, "max": pt.max, "min": pt.min,
    "cumsum": pt.cumsum, "logsumexp": pt.logsumexp, "softmax": _softmax, "log_softmax": _log_softmax,
    # linear algebra and shapes
    "dot": pt.dot, "matmul": pt.matmul, "outer": pt.outer, "transpose": pt.transpose,
    "stack": pt.stack, "concatenate": pt.concatenate, "reshape": pt.reshape, "flatten": pt.flatten,
    "zeros_like": pt.zeros_like, "ones_like": pt.ones_like, "full_like": pt.full_like,
}  # fmt: skip


def _signature(fn: Callable) -> inspect.Signature:
    """A function's signature; an ``Elemwise`` op gets ``(x)`` or ``(x1, ..., xn)``."""
    if isinstance(fn, Elemwise):
        n = fn.scalar_op.nin
        names = ["x"] if n == 1 else [f"x{i}" for i in range(1, n + 1)]
        return inspect.Signature([inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in names])
    sig = inspect.signature(fn)  # without annotations, to be short in error messages
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    return sig.replace(parameters=params, return_annotation=inspect.Signature.empty)


_SIGNATURES = {name: _signature(fn) for name, fn in FUNCTIONS.items()}

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow, ast.MatMult: operator.matmul,
}  # fmt: skip
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}

_FORBIDDEN = {
    ast.Attribute: "attribute access", ast.Lambda: "lambda", ast.IfExp: "a conditional expression",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension", ast.JoinedStr: "an f-string", ast.Starred: "a starred argument",
    ast.NamedExpr: "assignment (:=)", ast.Dict: "a dict literal", ast.Set: "a set literal",
    ast.Compare: "a comparison", ast.BoolOp: "a boolean operator (and/or)", ast.BinOp: "a bitwise operator",
    ast.UnaryOp: "a logical or bitwise operator", ast.Constant: "a complex number",
}  # fmt: skip
_ALLOWED = "use names, numbers, + - * / // % ** @, indexing and calls to allowed functions"


def parse(expr: str, key: str = "") -> ast.Expression:
    """The syntax tree of ``expr``, checked against the whitelist (names are not resolved)."""
    text = expr.strip()
    if not text:
        raise ConfigError(key, "empty expression; expected a name, number or expression such as 'log(x)'")
    try:
        tree = ast.parse(text, mode="eval")
        _check(tree.body, key)
    except (RecursionError, MemoryError):
        raise ConfigError(key, "expression nested too deeply; split it into deterministics") from None
    except SyntaxError as e:
        raise ConfigError(key, f"invalid expression '{text}': {e.msg}") from None
    return tree


def _check(node: ast.AST, key: str, *, arg: bool = False, index: bool = False) -> None:
    """Raise unless ``node`` is allowed; ``arg``/``index``: it is a call argument/subscript."""
    match node:
        case ast.Constant(value=bool() | int() | float()) | ast.Name():
            return
        case ast.Constant(value=v) if v is None or v is ...:
            if not index:
                raise ConfigError(key, f"'{ast.unparse(node)}' is only allowed inside indexing, e.g. x[None, :]")
        case ast.Constant(value=str() | bytes()):
            raise ConfigError(key, f"string literals ({_source(node)}) are not allowed in expressions; {_ALLOWED}")
        case ast.UnaryOp(op=op, operand=operand) if type(op) in _UNARY:
            _check(operand, key)
        case ast.BinOp(op=op, left=left, right=right) if type(op) in _BINARY:
            _check(left, key)
            _check(right, key)
        case ast.Subscript(value=value, slice=item):
            _check(value, key)
            _check(item, key, index=True)
        case ast.Slice(lower=lower, upper=upper, step=step):  # the parser puts slices only in subscripts
            for part in (lower, upper, step):
                if part is not None:
                    _check(part, key)
        case ast.Tuple(elts=elts) if index:
            for e in elts:
                _check(e, key, index=True)
        case ast.List(elts=elts) | ast.Tuple(elts=elts) if arg:
            for e in elts:
                _check(e, key, arg=True)
        case ast.List() | ast.Tuple():
            what = f"a list or tuple ('{ast.unparse(node)}')"
            raise ConfigError(key, f"{what} is only allowed as a function argument, e.g. stack([a, b])")
        case ast.Call(func=ast.Name(id=name), args=args, keywords=keywords):
            if name not in FUNCTIONS:
                hint = did_you_mean(name, FUNCTIONS)
                if not hint.startswith("; did you mean"):
                    hint = f"; allowed: {', '.join(sorted(FUNCTIONS))}"
                raise ConfigError(key, f"'{name}' is not an allowed function{hint}")
            for a in args:
                _check(a, key, arg=True)
            for kw in keywords:
                if kw.arg is None:
                    what = f"keyword unpacking ('**{ast.unparse(kw.value)}')"
                    raise ConfigError(key, f"{what} is not allowed in expressions; {_ALLOWED}")
                _check(kw.value, key, arg=True)
        case ast.Call():
            raise ConfigError(key, f"only allowed functions can be called, by name ('{ast.unparse(node)}'); {_ALLOWED}")
        case _:
            what = _FORBIDDEN.get(type(node), "this construct")
            raise ConfigError(key, f"{what} ({_source(node)}) is not allowed in expressions; {_ALLOWED}")


def evaluate(value, names: Mapping[str, object], key: str = "") -> object:
    """The value a YAML value stands for, with ``names`` resolving the expressions in it.

    Numbers and None come back unchanged; a string is an expression; a mapping is
    evaluated value by value (key path ``key.k``); a (nested) list of numbers is a float64
    array, and a list with an expression in it is the ``pt.stack`` of its elements.
    """
    match value:
        case None | bool() | int() | float():
            return value
        case str():
            return _evaluate_expression(value.strip(), names, key)
        case Mapping():
            return {k: evaluate(v, names, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
        case list() | tuple() if all(isinstance(leaf, int | float) for leaf in _leaves(value)):
            try:
                return np.asarray(value, dtype=float)
            except ValueError:
                raise ConfigError(key, f"ragged list {value}; every row needs the same length") from None
        case list() | tuple():
            items = [evaluate(v, names, f"{key}[{i}]") for i, v in enumerate(value)]
            try:
                return pt.stack(items)
            except Exception as e:  # noqa: BLE001 - shapes that do not stack
                message = f"cannot stack the elements of {value}: {_one_line(e)}; give them equal shapes"
                raise ConfigError(key, message) from None
        case _:
            got = f"{type(value).__name__} {value!r}"
            raise ConfigError(key, f"expected a number, expression, list or mapping, got {got}")


def names_in(value) -> set[str]:
    """The names a YAML value refers to (not functions or constants), e.g. to order nodes.

    An expression that does not parse refers to nothing: evaluating it reports the error
    with its key path.
    """
    match value:
        case str():
            try:
                tree = parse(value)
            except ConfigError:
                return set()
            callees = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
            return {
                node.id
                for node in ast.walk(tree)
                if isinstance(node, ast.Name) and id(node) not in callees and node.id not in CONSTANTS
            }
        case Mapping():
            return set().union(*map(names_in, value.values()))
        case list() | tuple():
            return set().union(*map(names_in, value))
        case _:
            return set()


def _source(node: ast.AST) -> str:
    """``node`` as source text in quotes (string literals bring their own)."""
    text = ast.unparse(node)
    return text if text.endswith(("'", '"')) else f"'{text}'"


def _leaves(value):
    for v in value:
        if isinstance(v, list | tuple):
            yield from _leaves(v)
        else:
            yield v


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _evaluate_expression(text: str, names: Mapping[str, object], key: str) -> object:
    tree = parse(text, key)

    def ev(node: ast.AST):
        match node:
            case ast.Constant(value=v):
                return v
            case ast.Name(id=name):
                return _lookup(name, names, key, text)
            case ast.UnaryOp(op=op, operand=x):
                return _UNARY[type(op)](ev(x))
            case ast.BinOp(op=op, left=a, right=b):
                x, y = ev(a), ev(b)
                if isinstance(op, ast.Pow) and isinstance(x, int) and isinstance(y, int):
                    try:  # fails fast where an exact int power (9**9**9) would take forever
                        float(x) ** y
                    except OverflowError:
                        raise ConfigError(key, f"'{ast.unparse(node)}' is too large a number in '{text}'") from None
                return _BINARY[type(op)](x, y)
            case ast.Subscript(value=x, slice=item):
                return ev(x)[ev(item)]
            case ast.Slice(lower=lower, upper=upper, step=step):
                return slice(*(None if p is None else ev(p) for p in (lower, upper, step)))
            case ast.Tuple(elts=elts):
                return tuple(map(ev, elts))
            case ast.List(elts=elts):
                return list(map(ev, elts))
            case ast.Call(func=ast.Name(id=name), args=args, keywords=keywords):
                kwargs = {kw.arg: ev(kw.value) for kw in keywords}
                return _call(name, [ev(a) for a in args], kwargs, key, text)
        raise AssertionError(f"unchecked node {ast.dump(node)}")  # parse() lets no other node through

    try:
        return ev(tree.body)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - shape mismatches, bad indices, overflow: bad input
        raise ConfigError(key, f"cannot evaluate '{text}': {_one_line(e)}") from None


def _lookup(name: str, names: Mapping[str, object], key: str, text: str) -> object:
    if name in names:
        return names[name]
    if name in CONSTANTS:
        return CONSTANTS[name]
    if name in FUNCTIONS:
        raise ConfigError(key, f"'{name}' is a function, not a value, in '{text}'; call it, e.g. {name}(x)")
    hint = did_you_mean(name, [*names, *CONSTANTS])
    raise ConfigError(key, f"unknown name '{name}' in expression '{text}'{hint}")


def _call(name: str, args: list, kwargs: dict, key: str, text: str) -> object:
    sig = _SIGNATURES[name]
    try:
        bound = sig.bind(*args, **kwargs)
    except TypeError as e:
        raise ConfigError(key, f"wrong arguments to {name}{sig} in '{text}': {e}") from None
    try:
        return FUNCTIONS[name](*bound.args, **bound.kwargs)
    except Exception as e:  # noqa: BLE001 - PyTensor's own message names the problem
        raise ConfigError(key, f"{name}() failed in '{text}': {_one_line(e)}") from None
