"""The trust tools never call a NaN a pass, and raise no false alarm on a correct model.

- A derivative rule that returns NaN, or one off by a factor 1.7, fails ``check-grad`` with
  the op and the variable named, and valid JSON.
- A logp that is NaN everywhere fails ``compare-backends`` (also with one backend) and
  ``check-grad`` (no point can be checked).
- The Lotka-Volterra and pharmacokinetic models written as a user would (their own
  solver tolerance, no ``check_grad`` section) pass ``check-grad``.
- Large variables are summarised in JSON and kept whole in ``evaluation.npz``; the
  comparison uses every entry.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from jaxpm import backends as be
from jaxpm.cli import app

HERE = Path(__file__).parent
CONFIGS = HERE / "configs"
PLUGINS = CONFIGS / "plugins"
DATA = Path(__file__).parents[1] / "configs" / "data"
BROKEN = CONFIGS / "broken_jvp.yaml"
NAN_LOGP = "likelihood.llike.mu=log(-1 - abs(ode))"


def invoke_json(*args, code: int) -> dict:
    result = CliRunner().invoke(app, [*map(str, args), "--json"])
    assert result.exit_code == code, (result.exit_code, result.stderr[-2000:], result.exception)
    return json.loads(result.stdout)


@pytest.fixture
def plugins(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))


# ------------------------------------------------------------------ wrong derivative rules


def test_a_nan_derivative_rule_fails_check_grad_naming_op_and_variable(plugins):
    (e,) = invoke_json("check-grad", BROKEN, code=1)["experiments"]
    assert e["ok"] is False and e["points"] == 3
    (op,) = e["ops"]
    assert op["op"] == "ode_solve" and op["ok"] is False
    assert any("ode_solve" in p and "args (k)" in p and "not finite" in p for p in op["problems"]), op["problems"]
    assert e["model"]["ok"] is False
    assert any("d/d k_log__ is nan" in p for p in e["model"]["problems"]), e["model"]["problems"]
    assert e["jax"]["ok"] is False


def test_a_derivative_rule_off_by_a_factor_fails_check_grad(plugins):
    (e,) = invoke_json("check-grad", BROKEN, "--set", "ode.vector_field=jaxpm_test_fields:decay_wrong_jvp",
                       code=1)["experiments"]
    assert e["ops"][0]["ok"] is False and e["model"]["ok"] is False
    # at the checks' tight solver tolerance the finite differences are exact enough to see it
    assert e["set"] == {"ode.rtol": 1e-10, "ode.atol": 1e-10, "ode.max_steps": 100000}
    assert e["model"]["max_rel_err"] > 1e-3
    assert e["jax"]["ok"] is True  # C and JAX agree: both are wrong the same way


# ------------------------------------------------------------------ a NaN logp


def test_a_nan_logp_fails_compare_backends():
    (e,) = invoke_json("compare-backends", "ode", "--backend", "c", "--backend", "jax", "--set", NAN_LOGP,
                       code=1)["experiments"]
    assert e["ok"] is False and e["compared"] is True
    assert e["backends"]["c"]["logp"] == "nan"  # JSON has no NaN: the string
    assert "c: logp term 'llike' is nan at 4 of 4 entries (first: index 0)" in e["nonfinite"]
    assert any(p.startswith("jax: dlogp of 'y0' is nan") for p in e["nonfinite"])
    # the table shows the NaNs (a cell "[nan, nan]" is not taken for rich markup and dropped)
    from rich.console import Console

    from jaxpm import tables

    console = Console(record=True, width=200)
    tables.evaluation(e, console)
    text = console.export_text()
    assert text.count("[nan, nan, nan, nan]") == 2 and text.count("[nan]") == 4
    assert "(of the finite entries) -> FAIL" in text


def test_one_backend_is_still_checked_for_finite_numbers():
    (e,) = invoke_json("compare-backends", "ode", "--backend", "c", "--set", NAN_LOGP, code=1)["experiments"]
    assert e["ok"] is False and e["compared"] is False and e["disagreements"] == []
    (ok,) = invoke_json("compare-backends", "ode", "--backend", "c", code=0)["experiments"]
    assert ok["ok"] is True and ok["compared"] is False and ok["nonfinite"] == []


def test_a_nan_logp_fails_check_grad_with_no_point_checked():
    (e,) = invoke_json("check-grad", "ode", "--set", NAN_LOGP, "--set", "check_grad.points=2", code=1)["experiments"]
    assert e["ok"] is False and e["points"] == 0 and e["points_drawn"] == 20
    assert "no point could be checked" in e["problems"][0]
    assert e["model"]["ok"] is False and e["model"]["points"] == 0


def test_nan_on_both_backends_is_not_agreement():
    nan = {"logp": np.nan, "logp_terms": {"x": np.array([np.nan, 1.0])}, "dlogp": {"x": np.array([np.nan, 0.0])}}
    result = be.compare({"c": nan, "jax": nan}, rtol=1e-6, atol=1e-8)
    assert result["ok"] is False
    assert result["nonfinite"][0] == "c: logp term 'x' is nan at 1 of 2 entries (first: index 0)"


# ------------------------------------------------------------------ no false alarms


def _as_a_user_writes(name: str, tmp_path: Path) -> Path:
    """The packaged config without its expert settings: no check_grad section, its own
    solver tolerance, the data paths absolute."""
    raw = yaml.safe_load((Path(__file__).parents[1] / "configs" / f"{name}.yaml").read_text())
    raw.pop("check_grad", None)
    raw["ode"]["rtol"] = raw["ode"]["atol"] = 1e-6
    raw["ode"].pop("sensitivity", None)
    raw["ode"]["saveat"]["file"] = str(DATA / Path(raw["ode"]["saveat"]["file"]).name)
    for lik in raw["likelihood"].values():
        lik["observed"]["file"] = str(DATA / Path(lik["observed"]["file"]).name)
    raw["evaluate"] = {"backends": ["c"]}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize("name", ["lotka_volterra", "pharmacokinetics"])
def test_user_written_ode_models_pass_check_grad(name, tmp_path):
    (e,) = invoke_json("check-grad", _as_a_user_writes(name, tmp_path), code=0)["experiments"]
    assert e["ok"] is True and e["points"] == 3
    assert e["set"]["ode.rtol"] == 1e-10  # checked where AD and finite differences can agree
    assert all(o["ok"] for o in e["ops"]) and e["model"]["ok"] and e["jax"]["ok"]


def test_check_grad_set_wins_over_the_experiments_defaults():
    (e,) = invoke_json("check-grad", "ode", "--set", "check_grad.set={ode.rtol: 1.0e-7}",
                       "--set", "check_grad.points=1", code=0)["experiments"]
    assert e["set"] == {"ode.rtol": 1e-7, "ode.atol": 1e-10, "ode.max_steps": 100000}


# ------------------------------------------------------------------ large variables


def test_large_variables_are_summarised_and_compared_in_full():
    big = np.arange(5000.0)
    other = big.copy()
    other[4321] += 1.0  # beyond the first ten entries a summary shows
    a = {"logp": 0.0, "logp_terms": {"w": np.zeros(3)}, "dlogp": {"w": big}}
    b = {"logp": 0.0, "logp_terms": {"w": np.zeros(3)}, "dlogp": {"w": other}}
    result = be.compare({"c": a, "jax": b}, rtol=1e-6, atol=1e-8)
    assert result["ok"] is False and result["max_abs_diff"]["dlogp"] == 1.0
    shown = be.document(a)["dlogp"]["w"]
    assert shown == {"size": 5000, "min": 0.0, "max": 4999.0, "mean": 2499.5,
                     "l2": pytest.approx(float(np.linalg.norm(big))), "first": list(range(10))}
    assert be.document(a)["logp_terms"]["w"] == [0.0, 0.0, 0.0]
    assert set(be.large_arrays({"c": a})) == {"c/w"}


SMALL_CNN = ["cnn.n=20", "cnn.holdout=0",
             "cnn.layers=[{conv: 4, kernel: 3}, relu, {avg_pool: 2}, flatten, {dense: 10}]"]


def test_a_cnn_run_keeps_gradients_in_evaluation_npz(tmp_path):
    args = ["run", "cnn", "--out", tmp_path, "--backend", "c", "--backend", "jax", "--no-sample",
            "--set", "check_grad.enabled=false"]
    for s in SMALL_CNN:
        args += ["--set", s]
    info = invoke_json(*args, code=0)
    run_dir = Path(info["run_dir"])
    assert "evaluation.npz" in info["files"]
    assert (run_dir / "run.json").stat().st_size < 200_000
    kernel = info["evaluation"]["backends"]["c"]["dlogp"]["Dense_0_kernel"]
    assert kernel["size"] == 14 * 14 * 4 * 10 and len(kernel["first"]) == 10
    with np.load(run_dir / "evaluation.npz") as arrays:
        full = arrays["c/Dense_0_kernel"]
        assert full.shape == (7840,) and np.allclose(full[:10], kernel["first"])
        assert np.isclose(np.linalg.norm(full), kernel["l2"])
        np.testing.assert_allclose(arrays["jax/Dense_0_kernel"], full, rtol=1e-6, atol=1e-8)
        # only what run.json summarises: Dense_0_kernel's gradient and logp term, per backend
        assert sorted(arrays.files) == ["c/Dense_0_kernel", "c/logp_terms/Dense_0_kernel",
                                        "jax/Dense_0_kernel", "jax/logp_terms/Dense_0_kernel"]
    assert info["evaluation"]["backends"]["c"]["dlogp"]["Conv_0_bias"] == pytest.approx(
        info["evaluation"]["backends"]["jax"]["dlogp"]["Conv_0_bias"])  # small ones stay lists
