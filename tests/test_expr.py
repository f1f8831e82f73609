"""The expression language: what evaluates to what, and what is refused, with which message.

Numeric results are checked by evaluating the PyTensor graphs with ``.eval()``. Every
rejection asserts the three things a user sees: a ConfigError, its key path and a
distinctive fragment of the message.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
import pytest
from pytensor.graph import Variable

from jaxpm.errors import ConfigError
from jaxpm.expr import CONSTANTS, FUNCTIONS, evaluate, names_in, parse

X = np.arange(12.0).reshape(4, 3)
Z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
M = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
KEY = "likelihood.llike.sigma"


def tensor(a) -> Variable:
    return pt.as_tensor_variable(np.asarray(a, dtype="float64"))


@pytest.fixture
def names() -> dict:
    return {
        "x": tensor(X),
        "z": tensor(Z),
        "a": tensor(0.5),
        "b": tensor(2.0),
        "noise": tensor(0.3),
        "v": tensor([1.0, -1.0, 2.0]),
        "M": tensor(M),
        "arr": np.array([1.0, 2.0, 3.0]),
        "idx": np.array([0, 0, 3]),
    }


def value(expr, names):
    out = evaluate(expr, names, KEY)
    return out.eval() if isinstance(out, Variable) else out


# --- what evaluates to what -------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("1 + 2 * 3 ** 2", 19),
        ("(1 + 2) * 3", 9),
        ("-2 ** 2", -4),
        ("2 ** -1", 0.5),
        ("7 // 2 % 2", 1),
        ("10 - 4 - 3", 3),
        ("2 ** 3 ** 2", 512),
        ("+3 - -2", 5),
        ("1.5e1 / 3", 5.0),
    ],
)
def test_arithmetic_follows_python_precedence(expr, expected, names):
    assert value(expr, names) == expected


def test_arithmetic_on_tensors(names):
    np.testing.assert_allclose(value("exp(a) * b", names), np.exp(0.5) * 2.0)
    np.testing.assert_allclose(value("sigmoid(a) * 2 - 1", names), 2 / (1 + np.exp(-0.5)) - 1)
    np.testing.assert_allclose(value("2 * x + 1", names), 2 * X + 1)
    np.testing.assert_allclose(value("v @ M", names), np.array([1.0, -1.0, 2.0]) @ M)
    np.testing.assert_allclose(value("x / (1 + noise) ** 2", names), X / 1.3**2)


def test_numpy_values_stay_numpy(names):
    out = evaluate("2 * arr", names, KEY)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [2.0, 4.0, 6.0])


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("x[:, 0]", X[:, 0]),
        ("x[-1]", X[-1]),
        ("x[1:3]", X[1:3]),
        ("x[None, :]", X[None, :]),
        ("x[..., -1]", X[..., -1]),
        ("x[::2, 1:]", X[::2, 1:]),
        ("x[-2, -1]", X[-2, -1]),
        ("x[idx]", X[[0, 0, 3]]),
        ("x[1 + 1]", X[2]),
        ("stack([a, b])[1]", 2.0),
    ],
)
def test_indexing(expr, expected, names):
    out = value(expr, names)
    assert np.shape(out) == np.shape(expected)
    np.testing.assert_allclose(out, expected)


def test_function_calls_with_keyword_arguments(names):
    np.testing.assert_allclose(value("sum(x, axis=0)", names), X.sum(axis=0))
    np.testing.assert_allclose(value("sum(x)", names), X.sum())
    assert value("mean(x, axis=1, keepdims=True)", names).shape == (4, 1)
    soft = value("softmax(z, axis=-1)", names)
    np.testing.assert_allclose(soft.sum(axis=-1), [1.0, 1.0])
    np.testing.assert_allclose(soft[1], [1 / 3] * 3)
    np.testing.assert_allclose(value("softmax(z)", names), soft)  # axis=-1 by default
    np.testing.assert_allclose(value("exp(log_softmax(z))", names), soft)
    np.testing.assert_allclose(value("logsumexp(z, axis=1)", names), np.log(np.exp(Z).sum(axis=1)))
    np.testing.assert_allclose(value("reshape(x, (3, 4))", names), X.reshape(3, 4))
    np.testing.assert_allclose(value("clip(v, -0.5, 1.5)", names), [1.0, -0.5, 1.5])
    np.testing.assert_allclose(value("concatenate([v, arr], axis=0)", names), [1, -1, 2, 1, 2, 3])
    np.testing.assert_allclose(value("exp(x=a)", names), np.exp(0.5))  # elementwise ops name their input x


@pytest.mark.parametrize(
    "name, reference",
    [
        ("log", np.log),
        ("exp", np.exp),
        ("sqrt", np.sqrt),
        ("square", np.square),
        ("abs", np.abs),
        ("tanh", np.tanh),
        ("arctan", np.arctan),
        ("sigmoid", lambda p: 1 / (1 + np.exp(-p))),
        ("invlogit", lambda p: 1 / (1 + np.exp(-p))),
        ("logit", lambda p: np.log(p / (1 - p))),
        ("softplus", lambda p: np.log1p(np.exp(p))),
        ("log1p", np.log1p),
        ("cumsum", np.cumsum),
        ("floor", np.floor),
    ],
)
def test_elementwise_functions_match_numpy(name, reference):
    p = np.array([0.1, 0.5, 0.75])
    np.testing.assert_allclose(value(f"{name}(p)", {"p": tensor(p)}), reference(p), rtol=1e-12)


def test_function_table_is_the_whitelist():
    for name in ("log", "exp", "sigmoid", "logit", "invlogit", "softmax", "stack", "sum", "where", "gammaln"):
        assert name in FUNCTIONS
    for name in ("eval", "exec", "open", "__import__", "getattr"):
        assert name not in FUNCTIONS
    assert FUNCTIONS["invlogit"] is FUNCTIONS["sigmoid"]


def test_constants(names):
    assert value("pi", names) == pytest.approx(np.pi)
    assert value("2 * pi", names) == pytest.approx(2 * np.pi)
    assert value("e", names) == pytest.approx(np.e)
    assert np.isinf(value("-inf", names))
    assert value("e", {"e": 3.0}) == 3.0  # the model's names come first
    assert set(CONSTANTS) == {"pi", "e", "inf", "nan"}


@pytest.mark.parametrize("plain", [3, 2.5, True, None])
def test_yaml_scalars_come_back_unchanged(plain, names):
    assert evaluate(plain, names, KEY) is plain


def test_lists_of_numbers_become_float_arrays(names):
    out = evaluate([1, 2, 3], names, KEY)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_array_equal(out, [1.0, 2.0, 3.0])
    nested = evaluate([[1, 2.5], [3, 4]], names, KEY)
    assert nested.dtype == np.float64 and nested.shape == (2, 2)
    assert evaluate((0.5, 1.5), names, KEY).tolist() == [0.5, 1.5]


def test_lists_with_expressions_are_stacked(names):
    out = evaluate([0.5, "2 * b", "a"], names, KEY)
    assert isinstance(out, Variable)
    np.testing.assert_allclose(out.eval(), [0.5, 4.0, 0.5])
    grid = evaluate([[1, "a"], ["b", 4]], names, KEY)
    assert grid.ndim == 2
    np.testing.assert_allclose(grid.eval(), [[1.0, 0.5], [2.0, 4.0]])
    rows = evaluate(["v", [0, 0, 0]], names, KEY)
    np.testing.assert_allclose(rows.eval(), [[1.0, -1.0, 2.0], [0.0, 0.0, 0.0]])


def test_dicts_are_evaluated_value_by_value(names):
    out = evaluate({"k": "b * 2", "rates": [1, 2], "n": 3, "inner": {"m": "a"}}, names, "ode.args")
    assert set(out) == {"k", "rates", "n", "inner"}
    assert out["k"].eval() == 4.0
    np.testing.assert_array_equal(out["rates"], [1.0, 2.0])
    assert out["n"] == 3
    assert out["inner"]["m"].eval() == 0.5


def test_whitespace_around_an_expression_is_ignored(names):
    assert value("  b * 2 \n", names) == 4.0


def test_parse_returns_the_checked_tree():
    tree = parse("log(x)[0] + 1")
    assert tree.body.__class__.__name__ == "BinOp"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("exp(a) * b + pi", {"a", "b"}),
        ("sum(x, axis=k)", {"x", "k"}),
        ("stack([a, b])[i]", {"a", "b", "i"}),
        ("noise", {"noise"}),
        ("log(2)", set()),
        ("e * inf", set()),
        ("exp(exp)", {"exp"}),  # a name that is also a function, used as a value
        (["a", 1, ["b", {"c": "d + 1"}]], {"a", "b", "d"}),
        ({"k": "x[0]", "n": 2}, {"x"}),
        (3.5, set()),
        (None, set()),
        ("log(", set()),  # evaluating it reports the error, with its key
    ],
)
def test_names_in(value, expected):
    assert names_in(value) == expected


# --- what is refused ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, fragment",
    [
        ("nosie * 2", "unknown name 'nosie' in expression 'nosie * 2'; did you mean 'noise'?"),
        ("exp(nosie)", "unknown name 'nosie'"),
        ("x.__class__", "attribute access ('x.__class__') is not allowed in expressions"),
        ("x.shape", "attribute access ('x.shape') is not allowed"),
        ("x.sum()", "only allowed functions can be called, by name"),
        ("__import__('os')", "'__import__' is not an allowed function; allowed: abs, arctan,"),
        ("open('f')", "'open' is not an allowed function; allowed:"),
        ("eval('1')", "'eval' is not an allowed function"),
        ("lgo(x)", "'lgo' is not an allowed function; did you mean 'log'?"),
        ("lambda: 1", "lambda ('lambda: 1') is not allowed"),
        ("[v for v in x]", "a comprehension ('[v for v in x]') is not allowed"),
        ("sum(v for v in x)", "a comprehension"),
        ("'abc'", "string literals ('abc') are not allowed"),
        ("x['a']", "string literals ('a') are not allowed"),
        ("f'{x}'", "an f-string"),
        ("log(", "invalid expression 'log(': '(' was never closed"),
        ("x +", "invalid expression 'x +': invalid syntax"),
        ("exp(a, b)", "wrong arguments to exp(x) in 'exp(a, b)': too many positional arguments"),
        ("clip(v)", "wrong arguments to clip(x1, x2, x3)"),
        ("sum(x, axis=0, foo=1)", "unexpected keyword argument 'foo'"),
        ("a < b", "a comparison ('a < b') is not allowed"),
        ("a if b else x", "a conditional expression"),
        ("a and b", "a boolean operator"),
        ("not a", "a logical or bitwise operator"),
        ("a & b", "a bitwise operator ('a & b')"),
        ("(y := 1)", "assignment (:=)"),
        ("{'k': 1}", "a dict literal"),
        ("{a, b}", "a set literal"),
        ("stack(*x)", "a starred argument ('*x')"),
        ("sum(**x)", "keyword unpacking ('**x')"),
        ("[a, b]", "a list or tuple ('[a, b]') is only allowed as a function argument"),
        ("a, b", "is only allowed as a function argument, e.g. stack([a, b])"),
        ("None", "'None' is only allowed inside indexing"),
        ("exp", "'exp' is a function, not a value"),
        ("1j", "a complex number"),
        ("", "empty expression"),
        ("x + v[:2]", "cannot evaluate 'x + v[:2]'"),
        ("sum(x, axis=5)", "sum() failed in 'sum(x, axis=5)'"),
        ("x[1, 2, 3]", "cannot evaluate 'x[1, 2, 3]': too many indices"),
        ("9 ** 9 ** 9", "'9 ** 9 ** 9' is too large a number"),
        ("-" * 100_000 + "1", "nested too deeply"),
        ("+".join(["a"] * 20_000), "nested too deeply"),
    ],
)
def test_rejected_expressions(expr, fragment, names):
    with pytest.raises(ConfigError) as info:
        evaluate(expr, names, KEY)
    assert info.value.key == KEY
    assert fragment in info.value.message
    assert "\n" not in info.value.message


@pytest.mark.parametrize("expr", ["x.__class__", "__import__('os').system('true')", "lambda: 0", "'s'", "a < b"])
def test_forbidden_constructs_fail_at_parse_time(expr):
    with pytest.raises(ConfigError) as info:
        parse(expr, "deterministics.d")
    assert info.value.key == "deterministics.d"


def test_error_key_paths_inside_dicts_and_lists(names):
    with pytest.raises(ConfigError) as info:
        evaluate({"mu": {"loc": "nosie"}}, names, "priors.y")
    assert info.value.key == "priors.y.mu.loc"
    with pytest.raises(ConfigError) as info:
        evaluate([1, "a", "x.T"], names, "ode.y0")
    assert info.value.key == "ode.y0[2]"
    assert "attribute access ('x.T')" in info.value.message


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ([[1, 2], [3]], "ragged list [[1, 2], [3]]; every row needs the same length"),
        (["v", [1, 2]], "cannot stack the elements of ['v', [1, 2]]"),
        ({1, 2}, "expected a number, expression, list or mapping, got set"),
    ],
)
def test_rejected_yaml_values(bad, fragment, names):
    with pytest.raises(ConfigError) as info:
        evaluate(bad, names, "priors.p.mu")
    assert info.value.key == "priors.p.mu"
    assert fragment in info.value.message


def test_unknown_name_without_a_close_match_lists_the_names():
    with pytest.raises(ConfigError) as info:
        evaluate("zzz + 1", {"alpha": 1.0}, KEY)
    assert info.value.message == "unknown name 'zzz' in expression 'zzz + 1'; expected one of: alpha, e, inf, nan, pi"
