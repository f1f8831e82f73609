"""``jaxpm bench``: the implementations it times, what its JSON and run folder hold, its
exit statuses. Nothing here asserts anything about time beyond "positive": timings are
noisy, and SPEC.md keeps performance out of timed tests.

Small on purpose: ``jaxpm bench`` without a config runs the built-in ``exp``, ``ode`` and
``cnn`` configs, here with the CNN shrunk by ``--set`` to 20 images and a 4-filter network
(the post's 824k-weight network on 1000 images costs seconds per call, minutes per bench);
``--repeats 3``, the C and JAX backends (Numba goes through the same ``compile_backend``
path), and one tiny nutpie run. Each ``jaxpm bench`` invocation runs once per module in a
fixture.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from support import invoke, invoke_json

import jaxpm  # noqa: F401  (float64 JAX before anything is traced)
from jaxpm import bench as bench_mod
from jaxpm.spec import builtin_configs

HERE = Path(__file__).parent
CONFIGS = HERE / "configs"
PLUGINS = CONFIGS / "plugins"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY_CNN = {"n": 20, "layers": [{"conv": 4, "kernel": 3}, "relu", {"avg_pool": 2}, "flatten", {"dense": 10}]}


def rows(entry: dict, kind: str | None = None) -> list[dict]:
    return [r for r in entry["implementations"] if kind is None or r["kind"] == kind]


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """``jaxpm bench --repeats 3 --backend c --backend jax --json`` once, no CONFIG: the
    built-in exp, ode and cnn configs (the CNN tiny, through ``--set``)."""
    out = tmp_path_factory.mktemp("bench")
    tiny = [a for k, v in TINY_CNN.items() for a in ("--set", f"cnn.{k}={json.dumps(v)}")]
    result = invoke_json("bench", "--repeats", "3", "--backend", "c", "--backend", "jax", "--out", out, *tiny)
    return out, result


@pytest.fixture(scope="module")
def experiments(bench_run):
    return {e["name"]: e for e in bench_run[1]["experiments"]}


# ------------------------------------------------------------------------- the figures


def test_without_a_config_bench_runs_the_builtin_trust_configs(experiments):
    assert list(experiments) == ["cnn", "exp", "ode"]
    for name, e in experiments.items():
        assert e["config"] == str(builtin_configs()[name]), name  # the packaged config itself
    cnn = [r for r in rows(experiments["cnn"]) if r["error"] is None]
    assert {(r["kind"], r["backend"]) for r in cnn} == {("jax_op", "c"), ("jax_op", "jax"), ("wrap_jax", "c"),
                                                      ("wrap_jax", "jax"), ("pure_jax", bench_mod.PURE_BACKEND)}


def test_every_implementation_is_timed_and_agrees(experiments):
    for name, e in experiments.items():
        assert e["ok"] is True and e["status"] == "finished", name
        jax_op = {r["backend"]: r for r in rows(e, "jax_op")}
        assert list(jax_op) == ["c", "jax"], name
        pure = {r["mode"]: r for r in rows(e, "pure_jax")}
        assert "reverse" in pure, name
        timed = [r for r in rows(e) if r["error"] is None]
        for r in [*jax_op.values(), *pure.values()]:
            assert r["error"] is None, (name, r)
        for r in timed:
            where = (name, r["implementation"], r["backend"])
            assert r["seconds_per_eval"] > 0 and r["first_call_seconds"] > 0, where
            assert r["us_per_eval"] == pytest.approx(r["seconds_per_eval"] * 1e6), where
            assert r["calls"] == 3, where
            assert r["agrees"] is True, where
            assert r["logp_rel_err"] <= 1e-8 and r["dlogp_rel_err"] <= 1e-8, where
        # the C backend is the reference, and itself
        assert jax_op["c"]["logp_rel_err"] == 0.0 and jax_op["c"]["dlogp_rel_err"] == 0.0


def test_ratios_are_to_the_best_pure_jax_figure(experiments):
    for name, e in experiments.items():
        pure = [r["seconds_per_eval"] for r in rows(e, "pure_jax") if r["error"] is None]
        best = min(pure)
        assert e["best_pure_jax_seconds"] == pytest.approx(best), name
        for r in rows(e):
            if r["error"] is None:
                assert r["ratio_to_best_pure_jax"] == pytest.approx(r["seconds_per_eval"] / best), (name, r)
            else:
                assert r["ratio_to_best_pure_jax"] is None
        assert min(r["ratio_to_best_pure_jax"] for r in rows(e, "pure_jax")) == pytest.approx(1.0)


def test_seed_logp_is_what_every_implementation_computes(experiments):
    """SPEC.md's seed numbers: logp at the initial point (sum of the printed terms); for the
    tiny CNN at all-zero weights, a standard normal's log density at 0 per weight plus
    log(1/10) per image (every class equally likely)."""
    from jaxpm.experiments.cnn import nets

    weights = sum(math.prod(s) for s in nets.param_shapes(nets.build_network(TINY_CNN["layers"])).values())
    expected = {"exp": 3 * -0.91893853 + (-0.91893853 - 2 * 1.41893853), "ode": -5.89814152,
                "cnn": -0.5 * np.log(2 * np.pi) * weights - TINY_CNN["n"] * np.log(10)}
    for name, e in experiments.items():
        for r in rows(e):
            if r["error"] is None:
                assert r["logp"] == pytest.approx(expected[name], rel=1e-6), (name, r["implementation"])


def test_wrap_jax_rows(experiments):
    exp_rows = {r["backend"]: r for r in rows(experiments["exp"], "wrap_jax")}
    assert list(exp_rows) == ["c", "jax"]
    for r in exp_rows.values():
        assert r["implementation"] == "pytensor.wrap_jax"
        assert r["error"] is None and r["agrees"] is True and r["seconds_per_eval"] > 0
    cnn_rows = {r["backend"]: r for r in rows(experiments["cnn"], "wrap_jax")}
    assert list(cnn_rows) == ["c", "jax"]
    assert all(r["error"] is None and r["agrees"] is True for r in cnn_rows.values()), cnn_rows
    # The ODE: wrap_jax cannot build the model's gradient. The solve returns (ys, ok), ok
    # a bool success flag; wrap_jax's VJP Op types each output's cotangent like the output,
    # and the float zeros PyTensor gives as ok's cotangent cannot become a bool: building
    # dlogp raises TypeError, on every backend alike (test_wrap_jax_without_the_success_flag
    # shows that this is the reason, and what would stop it next).
    (row,) = rows(experiments["ode"], "wrap_jax")
    assert row["backend"] == "all" and row["seconds_per_eval"] is None and row["agrees"] is None
    assert row["error"].startswith("compile: TypeError: Cannot convert Type Scalar(float64, shape=())"), row
    assert "into Type Scalar(bool, shape=())" in row["error"]
    assert "likely cause: 'ode_solve' returns bool outputs" in row["error"]


def test_forward_mode_row_only_where_the_model_has_forward_ops(experiments):
    ode = {r["mode"]: r for r in rows(experiments["ode"], "pure_jax")}
    assert set(ode) == {"reverse", "forward"}
    assert ode["forward"]["implementation"] == "pure JAX value + jacfwd"
    assert ode["forward"]["agrees"] is True and ode["forward"]["seconds_per_eval"] > 0
    for name in ("exp", "cnn"):  # reverse-mode ops only: no forward-mode figure
        assert {r["mode"] for r in rows(experiments[name], "pure_jax")} == {"reverse"}, name


# ------------------------------------------------------------------------- the run folder


def test_run_folder_holds_bench_json_and_chart(bench_run, experiments):
    out, result = bench_run
    for name, e in experiments.items():
        run_dir = Path(e["run_dir"])
        assert run_dir.parent == out / f"{name}-bench"
        assert sorted(p.name for p in run_dir.iterdir()) == ["bench.json", "bench.png"]  # no temporary files
        assert e["files"] == ["bench.json", "bench.png"]
        assert (run_dir / "bench.png").read_bytes()[:8] == PNG_MAGIC
        saved = json.loads((run_dir / "bench.json").read_text())
        # bench.json: everything the JSON says, plus machine, versions and the resolved spec
        assert {k: v for k, v in saved.items() if k in e} == e
        assert {"processor", "cpu_count", "machine"} <= set(saved["machine"])
        assert saved["machine"]["cpu_count"] == os.cpu_count()
        assert {"pymc", "pytensor", "jax", "jaxpm"} <= set(saved["versions"])
        assert saved["spec"]["name"] == name
    assert {"processor", "cpu_count"} <= set(result["machine"])
    assert result["ok"] is True


# ------------------------------------------------------------------------- table, sampling


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    """``jaxpm bench exp --sample --sampler nutpie`` with tiny draws, as a table."""
    out = tmp_path_factory.mktemp("bench-sample")
    result = invoke(
        "bench", "exp", "--backend", "jax", "--repeats", "3", "--out", out,
        "--sample", "--sampler", "nutpie", "--draws", "50", "--tune", "50", "--chains", "2",
    )
    assert result.exit_code == 0, result.stderr[-3000:]
    (run_dir,) = (out / "exp-bench").iterdir()
    return result, run_dir, json.loads((run_dir / "bench.json").read_text())


def test_table_output(sampled):
    result, run_dir, _ = sampled
    text = result.stdout
    for word in ("jax_op", "pytensor.wrap_jax", "pure JAX value_and_grad", "✓", "nutpie"):
        assert word in text, word
    assert str(run_dir) in "".join(text.split())  # the path, however the console wrapped it


def test_sampling_figures(sampled):
    _, run_dir, info = sampled
    s = info["sampling"]
    assert list(s) == ["nutpie"]
    n = s["nutpie"]
    assert n["ok"] is True, n.get("message")
    assert (n["draws"], n["tune"], n["chains"]) == (50, 50, 2)
    assert n["wall_seconds"] > 0
    assert n["ess_per_second"] == pytest.approx(n["min_ess_bulk"] / n["wall_seconds"])
    assert (run_dir / "samples" / "nutpie" / "posterior.nc").is_file()
    # the ESS is that of the draws the bench kept (2 chains x 50), x's three entries and y's
    import arviz as az

    posterior = az.from_netcdf(run_dir / "samples" / "nutpie" / "posterior.nc").posterior
    assert (posterior.sizes["chain"], posterior.sizes["draw"]) == (2, 50)
    ess = az.ess(posterior, method="bulk")
    assert n["min_ess_bulk"] == pytest.approx(min(float(np.min(ess[v].values)) for v in ess.data_vars), rel=1e-9)
    assert "samples/nutpie/posterior.nc" in info["files"]
    assert set(info["files"]) == {
        str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()
    }


# ------------------------------------------------------------------------- exit statuses


def test_bad_input_exits_2_without_a_run_folder(tmp_path):
    result = invoke("bench", "no-such-config", "--out", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no-such-config:") and len(result.stderr.strip().splitlines()) == 1
    result = invoke("bench", "exp", "--sample", "--sampler", "nuts-please", "--out", tmp_path)
    assert result.exit_code == 2
    assert "error: --sampler: unknown sampler 'nuts-please'" in result.stderr
    result = invoke("bench", "exp", "--set", "evaluate.backends=[cee]", "--out", tmp_path)
    assert result.exit_code == 2 and "evaluate.backends" in result.stderr
    assert not any(tmp_path.iterdir())


def test_a_disagreeing_implementation_exits_1(tmp_path, monkeypatch):
    """An Op whose JAX dispatch computes 3x where its ``perform`` computes 2x."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    out = invoke_json(
        "bench", CONFIGS / "mismatched_op.yaml", "--backend", "c", "--backend", "jax", "--repeats", "3",
        "--out", tmp_path, code=1,
    )
    (e,) = out["experiments"]
    assert e["ok"] is False
    by = {(r["kind"], r["backend"]): r for r in e["implementations"]}
    assert by[("jax_op", "c")]["agrees"] is True
    assert by[("jax_op", "jax")]["agrees"] is False
    assert "jax_op (jax)" in e["disagreements"]
    # no ctx.apply in this plugin: nothing for wrap_jax to replace
    assert "nothing for wrap_jax to wrap" in by[("wrap_jax", "all")]["error"]


# ------------------------------------------------------------------------- the wrappers


@pytest.mark.parametrize("sensitivity", ["adjoint", "forward"])
def test_wrap_jax_without_the_success_flag(sensitivity):
    """Why the ODE's wrap_jax row is n/a, pinned down on the solve itself: without its bool
    success flag, wrap_jax differentiates a reverse-mode solve (``sensitivity: adjoint``)
    and gets the derivative right; a ``diffrax.ForwardMode`` solve (what ``auto`` picks for the
    post's ODE) it still cannot, since it differentiates in reverse mode, which JAX refuses
    through diffrax's while loop."""
    import functools

    import pytensor
    import pytensor.tensor as pt

    from jaxpm.experiments.ode.solve import solve
    from jaxpm.experiments.ode.vector_fields import decay

    settings = dict(vector_field=decay, solver="Dopri5", t0=0.0, t1=3.0, ts=(0.0, 1.0, 2.0, 3.0), dt0=0.1,
                    rtol=1e-5, atol=1e-5, max_steps=4096, sensitivity=sensitivity)
    solve_only = functools.partial(solve, **settings)

    def ys_only(y0):
        return solve_only(y0, None)[0]

    y0 = pt.dscalar("y0")
    weights = np.array([1.0, -2.0, 3.0, 0.5])
    ys = pytensor.wrap_jax(ys_only)(y0)
    wrapped = pytensor.function([y0], [ys, pt.grad((ys * weights).sum(), y0)])
    if sensitivity == "forward":
        with pytest.raises(ValueError, match="Reverse-mode differentiation does not work for lax.while_loop"):
            wrapped(0.7)
        return
    values, grad = wrapped(0.7)  # y = y0 exp(-t), to the solver's tolerance
    np.testing.assert_allclose(values, 0.7 * np.exp(-np.array(settings["ts"])), rtol=1e-4)
    np.testing.assert_allclose(grad, np.sum(weights * np.exp(-np.array(settings["ts"]))), rtol=1e-4)


def test_other_wrappers_build_other_models_and_leave_jaxpm_alone():
    """bench builds its reference models through build_model's public ``wrapper``: the
    wrap_jax model holds no JaxOp, the raw model's forward-mode op has no custom_vjp on
    the JAX backend, and a plain build afterwards is jaxpm's own again."""
    from pytensor.graph.traversal import applys_between

    from jaxpm.model import build
    from jaxpm.ops import JaxOp

    def jax_ops(model):
        return list({n.op for n in applys_between(model.value_vars, [model.logp()]) if isinstance(n.op, JaxOp)})

    notes: list[str] = []
    wrapped, _ = build("exp", wrapper=bench_mod.wrap_jax_wrapper(notes))
    assert jax_ops(wrapped) == [] and notes == []
    raw, _ = build("ode", wrapper=bench_mod.raw_jax_wrapper)
    (op,) = jax_ops(raw)
    assert op.grad_mode == "forward" and op.jax_custom_vjp is False
    plain, _ = build("ode")
    (op,) = jax_ops(plain)
    assert op.grad_mode == "forward" and op.jax_custom_vjp is True
