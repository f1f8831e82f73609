"""``jaxpm.ops``: JAX functions as PyTensor Ops.

What is checked, and against what:

* the PyMC Labs post's three Ops (elementwise ``exp``, a diffrax ODE solve, a small flax
  CNN) rebuilt with :func:`jaxpm.jax_op` pass ``pytensor.gradient.verify_grad``, and their
  values/gradients match the known math (``d exp(-t) y0 / d y0 = exp(-t)``) or a direct
  JAX call;
* the post's exp and ODE PyMC models give SPEC.md's seed numbers on the C, Numba and JAX
  backends, and ``jax.grad`` of the jaxified logp (what numpyro/blackjax/nutpie-JAX do)
  works even for a forward-mode-only ODE;
* pytrees, static arguments, constants, forward vs reverse gradients, grad of grad,
  integer inputs, graph merging and the fused forward/gradient nodes, static shapes and
  ``infer_shape``, dtypes, error messages and pickling.

Compiling diffrax is the slow part, so every JAX function is wrapped once at module level
(``jax_op`` caches one Op per signature, so verify_grad and the models share compiled
code) and each model is compiled once per backend (module-scoped fixtures).
"""

from __future__ import annotations

import logging
import warnings

import cloudpickle
import diffrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import DisconnectedInputError, verify_grad
from pytensor.tensor.variable import TensorConstant

import jaxpm  # noqa: F401  (turns on jax_enable_x64 before anything is traced)
from jaxpm.ops import JaxFunction, JaxOp, JaxOpError, jax_op

pytestmark = [
    # expected: JaxOps run in Numba's object mode, and PyMC's sigma > 0 checks vanish under JAX
    pytest.mark.filterwarnings("ignore:Numba will use object mode:UserWarning"),
    pytest.mark.filterwarnings("ignore:Skipping Check:UserWarning"),
]

BACKENDS = {"c": "FAST_RUN", "numba": "NUMBA", "jax": "JAX"}
RTOL, ATOL = 1e-6, 1e-12
LOGP_1 = -0.5 * np.log(2 * np.pi)  # log N(0 | 0, 1) = -0.91893853

# --------------------------------------------------------------------------------------
# The post's three functions, wrapped once for the whole module
# --------------------------------------------------------------------------------------

TS = np.array([0.0, 1.0, 2.0, 3.0])


def _decay(t, y, args):
    return -y


def _solve(y0, adjoint):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_decay),
        diffrax.Dopri5(),
        t0=0.0,
        t1=3.0,
        dt0=0.1,
        y0=y0,
        saveat=diffrax.SaveAt(ts=jnp.asarray(TS)),
        stepsize_controller=diffrax.PIDController(rtol=1e-5, atol=1e-5),
        adjoint=adjoint,
    )
    return sol.ys


def solve_reverse(y0):
    return _solve(y0, diffrax.RecursiveCheckpointAdjoint())


def solve_forward(y0):
    return _solve(y0, diffrax.ForwardMode())


exp_op = jax_op(jnp.exp, grad="reverse")
solve_rev_op = jax_op(solve_reverse, grad="reverse")
solve_fwd_op = jax_op(solve_forward, grad="forward")
SOLVERS = {"reverse": solve_rev_op, "forward": solve_fwd_op}


class TinyCNN(nn.Module):
    """The post's CNN shrunk to something verify_grad can perturb quickly."""

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(features=2, kernel_size=(3, 3))(x)
        x = nn.relu(x)
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        return nn.Dense(3)(x)


def cnn_forward(params, images):
    return TinyCNN().apply({"params": params}, images)


cnn_op = jax_op(cnn_forward, grad="reverse")


def _fn(inputs, outputs, mode=None):
    return pytensor.function(inputs, outputs, mode=mode)


def _nodes(f):
    return f.maker.fgraph.toposort()


def _jax_nodes(f):
    """Nodes that call JAX on the C/Numba backends (JaxOps and the fused VJP pair)."""
    return [n for n in _nodes(f) if isinstance(n.op, JaxOp) or type(n.op).__name__ in ("VJPForward", "VJPBackward")]


# --------------------------------------------------------------------------------------
# 1. verify_grad on the post's three Ops
# --------------------------------------------------------------------------------------


def test_exp_verify_grad():
    rng = np.random.default_rng(20230103)
    verify_grad(exp_op, [rng.normal(size=(2, 3))], rng=rng)


def test_exp_values_match_numpy():
    x = pt.dmatrix("x", shape=(2, 3))
    xv = np.random.default_rng(1).normal(size=(2, 3))
    y = exp_op(x)
    f = _fn([x], [y, pt.grad(y.sum(), x)])
    val, grad = f(xv)
    np.testing.assert_allclose(val, np.exp(xv), rtol=1e-14)
    np.testing.assert_allclose(grad, np.exp(xv), rtol=1e-14)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("y0", [1.0, 0.5])
def test_ode_verify_grad(mode, y0):
    rng = np.random.default_rng(7)
    verify_grad(SOLVERS[mode], [np.array(y0)], rng=rng, eps=1e-6, abs_tol=1e-5, rel_tol=1e-4)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_ode_value_and_gradient_match_exact_solution(mode):
    y0 = pt.dscalar("y0")
    ys = SOLVERS[mode](y0)
    assert ys.type.shape == (4,)
    w = np.array([0.3, -1.0, 2.0, 0.7])
    # two functions, so that no fused node is compiled: these reuse verify_grad's jits
    val = _fn([y0], ys)(0.5)
    d = _fn([y0], pt.grad((ys * w).sum(), y0))(0.5)
    # y0 * exp(-t) to the solver's tolerance (rtol = atol = 1e-5 per step)
    np.testing.assert_allclose(val, 0.5 * np.exp(-TS), rtol=5e-4)
    np.testing.assert_allclose(d, w @ np.exp(-TS), rtol=5e-4)


@pytest.fixture(scope="module")
def cnn_setup():
    rng = np.random.default_rng(3)
    images = rng.normal(size=(2, 8, 8, 1))
    shapes = jax.eval_shape(lambda: TinyCNN().init(jax.random.key(0), jnp.ones((2, 8, 8, 1))))["params"]
    params = jax.tree.map(lambda s: rng.normal(scale=0.5, size=s.shape), shapes)
    return images, params


def test_cnn_forward_matches_flax(cnn_setup):
    images, params = cnn_setup
    sym = jax.tree.map(lambda a: pt.tensor(dtype="float64", shape=a.shape), params)
    logits = cnn_op(sym, images)
    assert logits.type.shape == (2, 3)
    f = _fn(jax.tree.leaves(sym), logits)
    expected = np.asarray(jax.jit(cnn_forward)(params, images))
    np.testing.assert_allclose(f(*jax.tree.leaves(params)), expected, rtol=1e-12)


def test_cnn_verify_grad(cnn_setup):
    images, params = cnn_setup

    def logits(conv_kernel, dense_kernel):
        tree = {
            "Conv_0": {"kernel": conv_kernel, "bias": pt.constant(params["Conv_0"]["bias"])},
            "Dense_0": {"kernel": dense_kernel, "bias": pt.as_tensor(params["Dense_0"]["bias"])},
        }
        return cnn_op(tree, images)

    rng = np.random.default_rng(11)
    verify_grad(logits, [params["Conv_0"]["kernel"], params["Dense_0"]["kernel"]], rng=rng)


# --------------------------------------------------------------------------------------
# 2.-3. The post's models: seed numbers on every backend, jaxified gradients
# --------------------------------------------------------------------------------------


def build_exp_model():
    with pm.Model() as model:
        x = pm.Normal("x", 0, 1, shape=3)
        y = pm.Deterministic("y", exp_op(x))
        pm.Normal("z", mu=y, sigma=1, observed=[1, 2, 0])
    return model


def build_ode_model(solver):
    with pm.Model() as model:
        y0 = pm.Normal("y0", 0, 1)
        noise = pm.HalfNormal("noise", 1)
        ode = solver(y0)
        pm.Normal("llike", mu=ode, sigma=noise, observed=[1, 0.367, 0.135, 0.049])
    return model


MODELS = {
    "exp": build_exp_model,
    "ode_reverse": lambda: build_ode_model(solve_rev_op),
    "ode_forward": lambda: build_ode_model(solve_fwd_op),
}

SEED = {
    "exp": {
        "terms": [[LOGP_1] * 3, [-0.91893853, -1.41893853, -1.41893853]],
        "dlogp": [0.0, 1.0, -1.0],
    },
    "ode": {
        "terms": [-0.91893853, -0.72579135, [-1.41893853, -0.98628303, -0.92805103, -0.92013903]],
        "dlogp": [1.15494948, -2.844685],
    },
}
SEED["ode_reverse"] = SEED["ode_forward"] = SEED["ode"]


@pytest.fixture(scope="module")
def models():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = MODELS[name]()
        return cache[name]

    return get


@pytest.fixture(scope="module")
def compiled(models):
    """``compiled(model, backend)`` -> (function of the value vars giving [*logp terms, dlogp], point values)."""
    cache = {}

    def get(name, backend):
        if (name, backend) not in cache:
            model = models(name)
            outs = [*model.logp(sum=False), model.dlogp()]
            f = pytensor.function(model.value_vars, outs, mode=BACKENDS[backend])
            ip = model.initial_point()
            cache[name, backend] = f, [ip[v.name] for v in model.value_vars]
        return cache[name, backend]

    return get


def _check_seed(results, seed):
    *terms, dlogp = (np.asarray(r) for r in results)
    assert len(terms) == len(seed["terms"])
    for got, want in zip(terms, seed["terms"], strict=False):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dlogp, seed["dlogp"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("name", list(MODELS))
def test_seed_numbers(compiled, name, backend):
    f, point = compiled(name, backend)
    _check_seed(f(*point), SEED[name])


@pytest.mark.parametrize("name", ["exp", "ode_forward"])
def test_seed_numbers_through_pymc_compile_api(models, name):
    model = models(name)
    ip = model.initial_point()
    terms = model.compile_logp(sum=False, mode="FAST_RUN")(ip)
    dlogp = model.compile_dlogp(mode="FAST_RUN")(ip)
    _check_seed([*terms, dlogp], SEED[name])


def test_ode_initial_point_and_value_vars(models):
    model = models("ode_forward")
    assert [v.name for v in model.value_vars] == ["y0", "noise_log__"]
    assert model.initial_point() == {"y0": 0.0, "noise_log__": 0.0}


@pytest.mark.parametrize("name", ["exp", "ode_forward"])
def test_jaxified_logp_reverse_mode_matches_c_backend(models, compiled, name):
    from pymc.sampling.jax import get_jaxified_logp

    model = models(name)
    f, point = compiled(name, "c")
    *_, dlogp_c = f(*point)
    # (PyMC's flag is inverted: the default negative_logp=True returns +logp)
    logp_fn = get_jaxified_logp(model)
    logp, grads = jax.jit(jax.value_and_grad(logp_fn))([jnp.asarray(p) for p in point])
    seed_logp = sum(np.sum(t) for t in SEED[name]["terms"])
    np.testing.assert_allclose(logp, seed_logp, rtol=RTOL)
    got = np.concatenate([np.ravel(g) for g in grads])
    np.testing.assert_allclose(got, dlogp_c, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got, SEED[name]["dlogp"], rtol=RTOL, atol=ATOL)


def _forward_only(x, n):
    """x * 0.9**n by a while_loop with a traced trip count: JAX refuses reverse mode."""
    return jax.lax.fori_loop(0, n, lambda i, y: 0.9 * y, x)


def test_forward_mode_op_is_reverse_differentiable_on_jax_backend():
    """The custom_vjp that makes the forward-mode ODE above work with jax.grad."""
    with pytest.raises(ValueError, match="Reverse-mode differentiation does not work"):
        jax.jit(jax.grad(_forward_only))(1.0, 3)  # n traced: a while_loop
    wrapped = jax_op(_forward_only, grad="forward")
    x, n = pt.dvector("x", shape=(2,)), pt.lscalar("n")
    cost = (wrapped(x, n) * np.array([1.0, 2.0])).sum()
    from pytensor.link.jax.dispatch import jax_funcify

    fgraph = pytensor.graph.FunctionGraph([x, n], [cost], clone=True)
    jax_cost = jax_funcify(fgraph)
    grad = jax.jit(jax.grad(lambda xv: jax_cost(xv, jnp.asarray(3))[0]))(jnp.array([1.0, 5.0]))
    np.testing.assert_allclose(grad, 0.9**3 * np.array([1.0, 2.0]), rtol=1e-12)
    # and PyTensor's own gradient agrees on every backend
    for mode in BACKENDS.values():
        g = _fn([x, n], pt.grad(cost, x), mode=mode)(np.array([1.0, 5.0]), 3)
        np.testing.assert_allclose(np.asarray(g), 0.9**3 * np.array([1.0, 2.0]), rtol=1e-12)


# --------------------------------------------------------------------------------------
# 4. Pytrees, static arguments, constants, gradients
# --------------------------------------------------------------------------------------


def tree_fn(tree, scale):
    a = tree["a"]
    b, (c, d) = tree["b"]
    return {"sum": (a + b) * scale, "pair": (a * c, [jnp.sum(d**2), jnp.outer(a, d)])}


def test_pytree_inputs_and_outputs():
    a = pt.dvector("a", shape=(3,))
    b = pt.dvector("b", shape=(3,))
    c = pt.dscalar("c")
    d = pt.dvector("d", shape=(2,))
    out = jax_op(tree_fn, grad="reverse")({"a": a, "b": [b, (c, d)]}, 2.0)
    assert isinstance(out, dict) and set(out) == {"sum", "pair"}
    assert isinstance(out["pair"], tuple) and isinstance(out["pair"][1], list)
    leaves = jax.tree.leaves(out)
    assert len(leaves) == 4
    assert out["sum"].type.shape == (3,)
    assert out["pair"][0].type.shape == (3,)
    assert out["pair"][1][0].type.shape == ()
    assert out["pair"][1][1].type.shape == (3, 2)
    # one Op with all four dynamic leaves as inputs (the float 2.0 is static)
    assert len({v.owner for v in leaves}) == 1 and len(leaves[0].owner.inputs) == 4

    rng = np.random.default_rng(0)
    vals = dict(a=rng.normal(size=3), b=rng.normal(size=3), c=rng.normal(), d=rng.normal(size=2))
    f = _fn([a, b, c, d], leaves)
    got = jax.tree.unflatten(jax.tree.structure(out), f(*vals.values()))
    want = jax.jit(tree_fn, static_argnums=1)({"a": vals["a"], "b": [vals["b"], (vals["c"], vals["d"])]}, 2.0)
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-14), got, want)
    np.testing.assert_allclose(got["sum"], (vals["a"] + vals["b"]) * 2.0)
    np.testing.assert_allclose(got["pair"][1][1], np.outer(vals["a"], vals["d"]))


def test_several_outputs_tuple():
    @jax_op
    def stats(x):
        return jnp.mean(x), jnp.std(x), jnp.sort(x)

    x = pt.dvector("x", shape=(5,))
    m, s, srt = stats(x)
    xv = np.array([3.0, -1.0, 2.5, 0.0, 7.0])
    got = _fn([x], [m, s, srt])(xv)
    np.testing.assert_allclose(got[0], xv.mean())
    np.testing.assert_allclose(got[1], xv.std())
    np.testing.assert_array_equal(got[2], np.sort(xv))


def affine(x, scale, kind="lin"):
    y = x * scale
    return jnp.sin(y) if kind == "sin" else y


def test_static_arguments_change_result_and_op():
    wrapped = jax_op(affine, grad="reverse")
    x = pt.dvector("x", shape=(3,))
    a = wrapped(x, 2.0)
    b = wrapped(x, 3.0)
    c = wrapped(x, 2.0, kind="sin")
    a_again = wrapped(x, 2.0)
    ops = [v.owner.op for v in (a, b, c)]
    assert len({id(op) for op in ops}) == 3
    assert a_again.owner.op is a.owner.op
    # static values are baked in, not inputs
    assert all(len(v.owner.inputs) == 1 for v in (a, b, c))
    xv = np.array([0.1, -0.7, 1.3])
    ga, gb, gc = _fn([x], [a, b, c])(xv)
    np.testing.assert_allclose(ga, 2 * xv)
    np.testing.assert_allclose(gb, 3 * xv)
    np.testing.assert_allclose(gc, np.sin(2 * xv))


def test_static_int_and_float_give_different_ops():
    scale = jax_op(lambda counts, k: counts * k, name="scale", grad="reverse")
    counts = pt.lvector("counts", shape=(3,))
    as_int = scale(counts, 2)
    as_float = scale(counts, 2.0)
    assert as_int.dtype == "int64"
    assert as_float.dtype == "float64"  # jnp: int64 array * 2.0 -> float64
    assert as_float.owner.op is not as_int.owner.op


def test_numpy_array_argument_becomes_constant_input():
    wrapped = jax_op(affine, grad="reverse")
    x = pt.dvector("x", shape=(3,))
    w1, w2 = np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.5, 4.0])
    y1, y2 = wrapped(x, w1), wrapped(x, w2)
    node = y1.owner
    assert len(node.inputs) == 2
    assert isinstance(node.inputs[1], TensorConstant)
    np.testing.assert_array_equal(node.inputs[1].data, w1)
    # same types -> same Op (jit once), the value travels as an input
    assert y2.owner.op is node.op
    xv = np.array([0.3, 0.2, -0.1])
    g1, g2, gx = _fn([x], [y1, y2, pt.grad(y2.sum(), x)])(xv)
    np.testing.assert_allclose(g1, xv * w1)
    np.testing.assert_allclose(g2, xv * w2)
    np.testing.assert_allclose(gx, w2)


def multi(x, A, s):
    """Three inputs (vector, matrix, scalar), three outputs (scalar, vector, matrix)."""
    v = jnp.tanh(A @ x[:2]) * s
    return {"scalar": jnp.sum(x**2) * s, "vector": jnp.concatenate([v, x * s**2]), "matrix": jnp.outer(v, x) + A[:, :1]}


MULTI = {"reverse": jax_op(multi, grad="reverse"), "forward": jax_op(multi, grad="forward")}


def _multi_cost(out, w_vec, w_mat, xp=pt):
    return out["scalar"] + xp.sum(w_vec * out["vector"]) + xp.sum(w_mat * out["matrix"])


@pytest.fixture(scope="module")
def multi_point():
    rng = np.random.default_rng(5)
    return dict(
        x=rng.normal(size=3),
        A=rng.normal(size=(2, 2)),
        s=np.array(0.7),
        w_vec=rng.normal(size=5),
        w_mat=rng.normal(size=(2, 3)),
    )


def test_forward_and_reverse_gradients_agree(multi_point):
    p = multi_point
    x, A, s = pt.dvector("x", shape=(3,)), pt.dmatrix("A", shape=(2, 2)), pt.dscalar("s")
    results = {}
    for mode, wrapped in MULTI.items():
        out = wrapped(x, A, s)
        assert out["vector"].type.shape == (5,) and out["matrix"].type.shape == (2, 3)
        cost = _multi_cost(out, p["w_vec"], p["w_mat"])
        results[mode] = _fn([x, A, s], [cost, *pt.grad(cost, [x, A, s])])(p["x"], p["A"], p["s"])
    ref_cost = lambda x, A, s: _multi_cost(multi(x, A, s), p["w_vec"], p["w_mat"], xp=jnp)  # noqa: E731
    ref_value, ref_grads = jax.jit(jax.value_and_grad(ref_cost, argnums=(0, 1, 2)))(p["x"], p["A"], p["s"])
    want = [ref_value, *ref_grads]
    for mode in MULTI:
        for got, w in zip(results[mode], want, strict=False):
            np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-14)
    for r, f in zip(results["reverse"], results["forward"], strict=False):
        np.testing.assert_allclose(r, f, rtol=1e-12, atol=1e-14)


def test_forward_and_reverse_gradients_agree_on_jax_backend(multi_point):
    p = multi_point
    x, A, s = pt.dvector("x", shape=(3,)), pt.dmatrix("A", shape=(2, 2)), pt.dscalar("s")
    res = []
    for wrapped in MULTI.values():
        cost = _multi_cost(wrapped(x, A, s), p["w_vec"], p["w_mat"])
        res.append(_fn([x, A, s], pt.grad(cost, [x, A, s]), mode="JAX")(p["x"], p["A"], p["s"]))
    for r, f in zip(*res, strict=False):
        np.testing.assert_allclose(np.asarray(r), np.asarray(f), rtol=1e-12, atol=1e-14)


def scalar_fn(x, y):
    return jnp.sum(jnp.sin(x) * y**2) + jnp.prod(x) * jnp.exp(y[0])


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_grad_of_grad_matches_jax_hessian(mode):
    """Hessian-vector product w.r.t. both inputs: grad of (grad . v)."""
    wrapped = jax_op(scalar_fn, grad=mode)
    x, y = pt.dvector("x", shape=(3,)), pt.dvector("y", shape=(3,))
    g = pt.concatenate(pt.grad(wrapped(x, y), [x, y]))
    v = np.array([0.5, -1.0, 0.25, 2.0, 0.1, -0.3])
    hvp = pt.concatenate(pt.grad((g * v).sum(), [x, y]))
    xv, yv = np.array([0.3, -0.5, 0.7]), np.array([1.1, -0.4, 2.0])
    got_g, got_hvp = _fn([x, y], [g, hvp])(xv, yv)
    flat = lambda z: scalar_fn(z[:3], z[3:])  # noqa: E731
    z = np.concatenate([xv, yv])
    np.testing.assert_allclose(got_g, jax.jit(jax.grad(flat))(z), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got_hvp, jax.jit(jax.hessian(flat))(z) @ v, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_hessian_via_pytensor_hessian(mode):
    wrapped = jax_op(scalar_fn, grad=mode)
    x, y = pt.dvector("x", shape=(3,)), pt.dvector("y", shape=(3,))
    H = pytensor.gradient.hessian(wrapped(x, y), x)
    xv, yv = np.array([0.3, -0.5, 0.7]), np.array([1.1, -0.4, 2.0])
    np.testing.assert_allclose(_fn([x, y], H)(xv, yv), jax.jit(jax.hessian(scalar_fn))(xv, yv), rtol=1e-12, atol=1e-14)


def powers(x, n):
    return {"y": x**n, "n2": n * 2}


@pytest.mark.parametrize("backend", ["c", "jax"])
@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_integer_inputs_pass_through(mode, backend):
    wrapped = jax_op(powers, grad=mode)
    x, n = pt.dvector("x", shape=(3,)), pt.lvector("n", shape=(3,))
    out = wrapped(x, n)
    assert out["n2"].dtype == "int64" and out["y"].dtype == "float64"
    cost = out["y"].sum()
    gx = pt.grad(cost, x)
    f = _fn([x, n], [out["y"], out["n2"], gx], mode=BACKENDS[backend])
    xv, nv = np.array([1.5, 2.0, 0.5]), np.array([1, 2, 3])
    y, n2, g = (np.asarray(r) for r in f(xv, nv))
    np.testing.assert_allclose(y, xv**nv)
    np.testing.assert_array_equal(n2, 2 * nv)
    assert n2.dtype == np.int64
    np.testing.assert_allclose(g, nv * xv ** (nv - 1))
    # an integer input is not differentiable: it is disconnected, not silently zero
    with pytest.raises(DisconnectedInputError):
        pt.grad(cost, n)


def test_integer_input_gradient_does_not_warn():
    wrapped = jax_op(powers, name="powers_nowarn", grad="reverse")
    x, n = pt.dvector("x", shape=(3,)), pt.lvector("n", shape=(3,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pt.grad(wrapped(x, n)["y"].sum(), x)
    assert [str(w.message) for w in caught if "connection_pattern" in str(w.message)] == []


# --------------------------------------------------------------------------------------
# 5. Graph merging and the fused nodes
# --------------------------------------------------------------------------------------


def test_same_function_same_inputs_merges_to_one_node():
    traces = []

    def f(x):
        traces.append(1)
        return jnp.sin(x) * 2

    wrapped = jax_op(f, grad="reverse")
    x = pt.dvector("x", shape=(4,))
    a, b = wrapped(x), wrapped(x)
    assert a.owner.op is b.owner.op
    fn = _fn([x], a + b)
    assert sum(isinstance(n.op, JaxOp) for n in fn.maker.fgraph.apply_nodes) == 1
    xv = np.linspace(0, 1, 4)
    np.testing.assert_allclose(fn(xv), 4 * np.sin(xv))

    # a rebuilt graph with fresh variables of the same type reuses the Op, and JAX's jit
    x2 = pt.dvector("x2", shape=(4,))
    c = wrapped(x2)
    assert c.owner.op is a.owner.op
    n_traces = len(traces)
    assert 1 <= n_traces <= 2  # eval_shape when the Op was made (+ jit, unless JAX reused that trace)
    np.testing.assert_allclose(_fn([x2], c)(xv + 1), 2 * np.sin(xv + 1))
    assert len(traces) == n_traces  # no new trace: jitted once per signature
    assert len(wrapped._ops) == 1
    # a different input type is a different Op
    assert wrapped(pt.dvector("x3", shape=(5,))).owner.op is not a.owner.op


def test_forward_mode_c_graph_has_a_single_jax_call(compiled):
    f, _ = compiled("ode_forward", "c")
    jax_nodes = _jax_nodes(f)
    assert len(jax_nodes) == 1
    (node,) = jax_nodes
    assert isinstance(node.op, JaxOp) and node.op.name == "value_and_jacobian(solve_forward)"


def test_reverse_mode_c_graph_recomputes_by_default(compiled):
    """fuse_vjp is opt-in: by default the graph keeps the primal and its VJP node."""
    f, _ = compiled("ode_reverse", "c")
    assert sorted(n.op.name for n in _jax_nodes(f)) == ["solve_reverse", "vjp(solve_reverse)"]


def test_fuse_vjp_true_uses_one_forward_pass():
    wrapped = jax_op(lambda x: jnp.sin(x) * jnp.ones((2, 1)), name="sin_fused", fuse_vjp=True, grad="reverse")
    x = pt.dvector("x", shape=(3,))
    y = wrapped(x)
    f = _fn([x], [y, pt.grad((y**2).sum(), x)])
    names = sorted(type(n.op).__name__ for n in _jax_nodes(f))
    assert names == ["VJPBackward", "VJPForward"]
    assert not any(isinstance(n.op, JaxOp) for n in _nodes(f))  # no separate primal or vjp node
    xv = np.array([0.1, 0.2, 0.3])
    val, g = f(xv)
    np.testing.assert_allclose(val, np.broadcast_to(np.sin(xv), (2, 3)))
    np.testing.assert_allclose(g, 2 * 2 * np.sin(xv) * np.cos(xv))


def test_constant_inputs_are_not_differentiated():
    """A constant input (data) gets no cotangent: the VJP op differentiates x only."""
    wrapped = jax_op(lambda x, data: jnp.sum(x * data), name="dot_data", grad="reverse")
    x = pt.dvector("x", shape=(3,))
    y = wrapped(x, np.arange(3.0))
    g = pt.grad(y, x)
    vjp_nodes = [n for n in _nodes(_fn([x], g)) if isinstance(n.op, JaxOp) and n.op.role == "vjp"]
    assert len(vjp_nodes) == 1 and len(vjp_nodes[0].outputs) == 1
    np.testing.assert_allclose(_fn([x], g)(np.ones(3)), np.arange(3.0))


def test_reverse_mode_numba_graph_keeps_primal_and_vjp(compiled):
    """The pullback is a Python object Numba cannot carry: no fusion there."""
    f, _ = compiled("ode_reverse", "numba")
    names = sorted(n.op.name for n in _jax_nodes(f))
    assert names == ["solve_reverse", "vjp(solve_reverse)"]


def test_fuse_vjp_false_keeps_separate_nodes():
    wrapped = jax_op(lambda x: jnp.sin(x), name="sin_nofuse", fuse_vjp=False, grad="reverse")
    x = pt.dvector("x", shape=(3,))
    y = wrapped(x)
    f = _fn([x], [y, pt.grad(y.sum(), x)])
    assert sorted(n.op.name for n in _jax_nodes(f)) == ["sin_nofuse", "vjp(sin_nofuse)"]
    xv = np.array([0.1, 0.2, 0.3])
    val, g = f(xv)
    np.testing.assert_allclose(val, np.sin(xv))
    np.testing.assert_allclose(g, np.cos(xv))


# --------------------------------------------------------------------------------------
# 6. Static shapes and infer_shape
# --------------------------------------------------------------------------------------


def test_output_static_shapes_from_eval_shape():
    calls = []

    def f(x, M):
        calls.append(1)
        return {"row": M @ x, "outer": jnp.outer(x, x), "total": jnp.sum(M)}

    x, M = pt.dvector("x", shape=(3,)), pt.dmatrix("M", shape=(2, 3))
    out = jax_op(f, grad="reverse")(x, M)
    assert out["row"].type.shape == (2,)
    assert out["outer"].type.shape == (3, 3)
    assert out["total"].type.shape == ()
    assert len(calls) == 1  # one abstract trace, nothing run


def test_infer_shape_with_unknown_dimension_does_not_run_jax():
    cumsum = jax_op(jnp.cumsum, name="cumsum", grad="reverse")
    x = pt.dvector("x")
    assert x.type.shape == (None,)
    y = cumsum(x)
    assert y.type.shape == (None,)
    fshape = _fn([x], y.shape)
    assert not any(isinstance(n.op, JaxOp) for n in _nodes(fshape))
    np.testing.assert_array_equal(fshape(np.ones(3)), [3])
    np.testing.assert_array_equal(fshape(np.ones(7)), [7])

    # the gradient node's shape follows the input too
    g = pt.grad(y.sum(), x)
    gshape = _fn([x], g.shape)
    assert not any(isinstance(n.op, JaxOp) for n in _nodes(gshape))
    np.testing.assert_array_equal(gshape(np.ones(5)), [5])

    # and the value itself is right for two lengths
    fval = _fn([x], y)
    np.testing.assert_allclose(fval(np.arange(3.0)), np.cumsum(np.arange(3.0)))
    np.testing.assert_allclose(fval(np.arange(6.0)), np.cumsum(np.arange(6.0)))


def test_infer_shape_matrix_with_unknown_rows():
    @jax_op
    def f(X, w):
        return X @ w, jnp.cumsum(X, axis=0)

    X, w = pt.dmatrix("X", shape=(None, 3)), pt.dvector("w", shape=(3,))
    a, b = f(X, w)
    assert a.type.shape == (None,) and b.type.shape == (None, 3)
    fshape = _fn([X, w], [a.shape, b.shape])
    assert not any(isinstance(n.op, JaxOp) for n in _nodes(fshape))
    s1, s2 = fshape(np.ones((4, 3)), np.ones(3))
    np.testing.assert_array_equal(s1, [4])
    np.testing.assert_array_equal(s2, [4, 3])


def test_unexpressible_output_shape_compiles_without_rewrite_errors():
    double = jax_op(lambda x: jnp.concatenate([x, x]), name="double", grad="reverse")
    x = pt.dvector("x")
    y = double(x)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("pytensor")
    logger.addHandler(handler)
    try:
        f = _fn([x], [y, y.shape])
    finally:
        logger.removeHandler(handler)
    val, shape = f(np.arange(2.0))
    np.testing.assert_allclose(val, [0, 1, 0, 1])
    np.testing.assert_array_equal(shape, [4])
    assert [r.getMessage() for r in records if r.levelno >= logging.ERROR] == []


def test_reverse_value_and_grad_with_unknown_length_input_on_c_backend():
    cumsum = jax_op(jnp.cumsum, name="cumsum_rev", grad="reverse")
    x = pt.dvector("x")  # shape (None,), like any pm.Data
    y = cumsum(x)
    f = _fn([x], [y, pt.grad(y.sum(), x)])
    val, g = f(np.ones(3))
    np.testing.assert_allclose(val, [1, 2, 3])
    np.testing.assert_allclose(g, [3, 2, 1])


def test_pymc_model_with_data_container_input_compiles_dlogp():
    curve = jax_op(lambda a, t: a * jnp.exp(-t), name="curve", grad="reverse")
    with pm.Model() as model:
        t = pm.Data("t", TS)
        a = pm.Normal("a")
        pm.Normal("obs", mu=curve(a, t), sigma=1, observed=[1, 0.4, 0.1, 0.05])
    dlogp = model.compile_dlogp()({"a": np.array(0.0)})
    np.testing.assert_allclose(dlogp, np.sum(np.array([1, 0.4, 0.1, 0.05]) * np.exp(-TS)), rtol=1e-12)


def test_two_unknown_length_inputs():
    add = jax_op(lambda x, y: x + y, name="add", grad="reverse")
    x, y = pt.dvector("x"), pt.dvector("y")
    out = add(x, y)
    np.testing.assert_allclose(_fn([x, y], out)(np.ones(3), np.arange(3.0)), [1, 2, 3])


# --------------------------------------------------------------------------------------
# 7. dtypes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_preserved(dtype, mode):
    @jax_op(grad=mode)
    def f(x, y):
        return {"s": jnp.sum(x * y), "v": jnp.sin(x) * y}

    x, y = pt.tensor("x", dtype=dtype, shape=(3,)), pt.tensor("y", dtype=dtype, shape=(3,))
    out = f(x, y)
    cost = out["s"] + (out["v"] ** 2).sum()
    gx, gy = pt.grad(cost, [x, y])
    assert {out["s"].dtype, out["v"].dtype, gx.dtype, gy.dtype} == {dtype}
    xv = np.array([0.1, 0.5, -0.3], dtype=dtype)
    yv = np.array([1.0, 2.0, 0.5], dtype=dtype)
    res = _fn([x, y], [out["s"], out["v"], gx, gy])(xv, yv)
    assert [r.dtype for r in res] == [np.dtype(dtype)] * 4
    x64, y64 = xv.astype(float), yv.astype(float)
    tol = 1e-5 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(res[2], y64 + 2 * np.sin(x64) * y64**2 * np.cos(x64), rtol=tol)
    np.testing.assert_allclose(res[3], x64 + 2 * np.sin(x64) ** 2 * y64, rtol=tol)


def _float32_graph(mode):
    @jax_op(grad=mode)
    def f(x, y):
        return {"s": jnp.sum(x * y), "v": jnp.sin(x) * y}

    x, y = pt.fvector("x", shape=(3,)), pt.fvector("y", shape=(3,))
    out = f(x, y)
    gx, gy = pt.grad(out["s"] + (out["v"] ** 2).sum(), [x, y])
    compiled_fn = _fn([x, y], [out["s"], out["v"], gx, gy], mode="JAX")
    args = np.array([0.1, 0.5, -0.3], "float32"), np.array([1.0, 2.0, 0.5], "float32")
    return [np.asarray(r) for r in compiled_fn(*args)]


def test_float32_on_jax_backend_reverse():
    assert [r.dtype for r in _float32_graph("reverse")] == [np.dtype("float32")] * 4


def test_float32_on_jax_backend_forward_outputs():
    assert [r.dtype for r in _float32_graph("forward")[:2]] == [np.dtype("float32")] * 2


def test_float32_on_jax_backend_forward_gradients():
    assert [r.dtype for r in _float32_graph("forward")[2:]] == [np.dtype("float32")] * 2


# --------------------------------------------------------------------------------------
# 8. Error messages
# --------------------------------------------------------------------------------------


def says_hello(x):
    return "hello"


def returns_none(x):
    return None


def needs_two(x, y):
    return x + y


def mismatched(x):
    return x + jnp.ones(4)


def test_error_returning_a_string():
    with pytest.raises(JaxOpError, match="says_hello") as info:
        jax_op(says_hello)(pt.dvector("x", shape=(3,)))
    assert "hello" in str(info.value) and "not a valid JAX array type" in str(info.value)


def test_error_returning_none():
    with pytest.raises(JaxOpError, match="returns_none") as info:
        jax_op(returns_none)(pt.dvector("x", shape=(3,)))
    assert "returned no arrays" in str(info.value)


@pytest.mark.parametrize(
    "args, cause", [(1, "missing a required argument: 'y'"), (3, "too many positional arguments")]
)
def test_error_wrong_number_of_arguments(args, cause):
    x = pt.dvector("x", shape=(3,))
    with pytest.raises(JaxOpError, match="needs_two") as info:
        jax_op(needs_two)(*[x] * args)
    assert cause in str(info.value)
    assert isinstance(info.value, TypeError)


def test_error_failing_to_trace():
    with pytest.raises(JaxOpError, match="mismatched") as info:
        jax_op(mismatched)(pt.dvector("x", shape=(3,)))
    msg = str(info.value)
    assert "failed to trace" in msg and "incompatible shapes" in msg and "(3,)" in msg and "(4,)" in msg


def test_error_custom_name_and_op_arity():
    wrapped = jax_op(mismatched, name="my_model_part")
    with pytest.raises(JaxOpError, match="my_model_part"):
        wrapped(pt.dvector("x", shape=(3,)))
    op = jax_op(needs_two)(pt.dvector("a", shape=(2,)), pt.dvector("b", shape=(2,))).owner.op
    with pytest.raises(JaxOpError, match="needs_two: expected 2 inputs, got 1"):
        op(pt.dvector("a", shape=(2,)))


def test_invalid_grad_mode():
    with pytest.raises(ValueError, match="grad must be"):
        jax_op(needs_two, grad="sideways")


def test_grad_none_is_not_differentiable():
    wrapped = jax_op(jnp.sin, grad=None, name="sin_nograd")
    x = pt.dvector("x", shape=(2,))
    y = wrapped(x)
    np.testing.assert_allclose(_fn([x], y)(np.array([0.0, 1.0])), np.sin([0.0, 1.0]))
    with pytest.raises(Exception, match="sin_nograd"):
        pt.grad(y.sum(), x)


def test_jax_op_decorator_forms():
    @jax_op
    def a(x):
        return x

    @jax_op(grad="forward", name="bee")
    def b(x):
        return x

    assert isinstance(a, JaxFunction) and a.grad == "auto" and a.name == "a"
    assert isinstance(b, JaxFunction) and b.grad == "forward" and b.name == "bee"
    assert a.__wrapped__.__name__ == "a"


# --------------------------------------------------------------------------------------
# 9. Pickling
# --------------------------------------------------------------------------------------


def test_pickled_op_still_computes(compiled):
    f, _ = compiled("exp", "numba")
    op = next(n.op for n in _nodes(f) if isinstance(n.op, JaxOp) and n.op.role == "primal")
    op.jitted  # noqa: B018  (make sure a compiled function is attached before pickling)
    clone = cloudpickle.loads(cloudpickle.dumps(op))
    assert clone is not op and isinstance(clone, JaxOp)
    assert "jitted" not in clone.__dict__  # compiled JAX code is not pickled, it is re-jitted
    assert clone.input_types == op.input_types and clone.output_types == op.output_types
    x = pt.dvector("x", shape=(3,))
    y = clone(x)
    xv = np.array([0.0, 1.0, -2.0])
    val, g = _fn([x], [y, pt.grad(y.sum(), x)])(xv)
    np.testing.assert_allclose(val, np.exp(xv))
    np.testing.assert_allclose(g, np.exp(xv))


@pytest.mark.parametrize("name", ["exp", "ode_forward"])  # exp: the fused reverse-mode pair
def test_pickled_compiled_c_function_still_computes(compiled, name):
    f, point = compiled(name, "c")
    clone = cloudpickle.loads(cloudpickle.dumps(f))
    _check_seed(clone(*point), SEED[name])


def test_pickled_nuts_step_method(models):
    """PyMC pickles step methods (with their compiled logp/dlogp) for worker processes."""
    model = models("exp")
    step = pm.NUTS(model=model)
    clone = cloudpickle.loads(cloudpickle.dumps(step))
    func = clone._logp_dlogp_func
    func.set_extra_values({})
    logp, dlogp = func(np.zeros(3))
    np.testing.assert_allclose(logp, 3 * LOGP_1 + sum(SEED["exp"]["terms"][1]), rtol=RTOL)
    np.testing.assert_allclose(dlogp, SEED["exp"]["dlogp"], rtol=RTOL, atol=ATOL)


def test_forward_grad_on_the_jax_backend_takes_python_number_constants():
    """A scalar constant reaches the jaxified function as a Python float (no ``.shape``);
    the forward-mode custom_vjp must still differentiate (this broke nutpie's JAX backend)."""
    import jax
    import pymc as pm
    import pytensor.tensor as pt
    from pymc.sampling.jax import get_jaxified_logp

    op = jax_op(lambda x, c: c * jnp.sin(x), grad="forward")
    with pm.Model() as model:
        x = pm.Normal("x", shape=3)
        pm.Potential("pot", pt.sum(op(x, pt.constant(2.0))))
    logp = get_jaxified_logp(model)  # +logp (PyMC's default negative_logp=True is a misnomer)
    point = np.array([0.1, -0.4, 1.3])
    grad = np.asarray(jax.grad(lambda v: logp([v]))(jnp.asarray(point)))
    np.testing.assert_allclose(grad, -point + 2.0 * np.cos(point), rtol=1e-12)


# --------------------------------------------------------------------------- grad="auto"


def _post_solve(y0):
    """The post's ODE exactly as its readers write it: diffrax's default adjoint
    (RecursiveCheckpointAdjoint, a custom_vjp that refuses forward mode)."""
    return diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, args: -y), diffrax.Dopri5(), t0=0, t1=3, dt0=0.1, y0=y0,
        saveat=diffrax.SaveAt(ts=[0.0, 1.0, 2.0, 3.0]),
        stepsize_controller=diffrax.PIDController(rtol=1e-5, atol=1e-5),
    ).ys


def test_auto_takes_forward_mode_through_a_custom_vjp_and_keeps_the_seed_numbers():
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jacfwd(_post_solve)(1.0)  # what JAX says without jaxpm's rewrite
    op = jax_op(_post_solve)
    assert op.grad_mode == "auto"
    with pm.Model() as model:
        y0 = pm.Normal("y0", 0, 1)
        noise = pm.HalfNormal("noise", 1)
        pm.Normal("llike", op(y0), noise, observed=[1, 0.367, 0.135, 0.049])
    assert op.grad_mode == "forward"
    (reason,) = op.grad_reasons()
    assert "1 differentiable input scalar" in reason and "custom_vjp" in reason
    f = model.compile_fn([model.logp(), *pytensor.grad(model.logp(), model.value_vars)], inputs=model.value_vars,
                         point_fn=False)
    lp, *grads = f(np.asarray(0.0), np.asarray(0.0))
    assert lp == pytest.approx(-5.89814152, rel=1e-6)
    np.testing.assert_allclose(np.ravel(grads), [1.15494948, -2.844685], rtol=1e-6)
    names = sorted(n.op.name for n in f.maker.fgraph.apply_nodes if isinstance(n.op, JaxOp))
    assert names == ["value_and_jacobian(_post_solve)"]  # one JAX call for logp and dlogp


def test_forward_differentiable_keeps_values_and_gives_forward_derivatives():
    from jaxpm.ops import forward_differentiable

    g = forward_differentiable(_post_solve)
    np.testing.assert_allclose(g(1.5), _post_solve(1.5), rtol=1e-12)
    np.testing.assert_allclose(jax.jacfwd(g)(1.5), jax.jacrev(_post_solve)(1.5), rtol=1e-6)


def test_auto_takes_reverse_mode_for_many_inputs_and_times_the_middle():
    big = jax_op(lambda x: jnp.sum(jnp.sin(x)), name="many_inputs")
    big(pt.dvector("x", shape=(100,)))
    assert big.grad_mode == "reverse" and "more than 64" in big.grad_reasons()[0]
    middle = jax_op(lambda x: jnp.sin(x) * 2.0, name="middle")
    middle(pt.dvector("x", shape=(10,)))
    (reason,) = middle.grad_reasons()
    assert middle.grad_mode in ("forward", "reverse") and "timed" in reason and " us against " in reason
    # constants are not differentiated, so they do not count
    with_data = jax_op(lambda x, data: x * data, name="with_data")
    with_data(pt.dvector("x", shape=(2,)), np.ones((500, 2)))
    assert with_data.grad_mode == "forward"
