"""The ``jaxpm`` command line against SPEC.md: ``list``, ``run`` and its run folder,
``compare-backends`` and ``check-grad`` with their ``--json`` shapes, the seed numbers on
every backend, and the trust tools catching real problems (a wrong gradient, an Op whose
JAX dispatch disagrees with its ``perform``).

Everything runs in-process through ``typer.testing.CliRunner`` on ``jaxpm.cli.app``.
Expensive work (building and compiling the ODE model on three backends) is done once per
module in fixtures and shared by the assertions.
"""

from __future__ import annotations

import json
import re
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import yaml
from support import invoke, invoke_json

import jaxpm

HERE = Path(__file__).parent
CONFIGS = HERE / "configs"
PLUGINS = CONFIGS / "plugins"
BACKENDS = ["c", "numba", "jax"]

# SPEC.md, "Seed numbers" (the post's printed values), at the model's initial point.
EXP_TERMS = {"x": [-0.91893853] * 3, "z": [-0.91893853, -1.41893853, -1.41893853]}
EXP_DLOGP = {"x": [0.0, 1.0, -1.0]}
ODE_TERMS = {"y0": -0.91893853, "noise": -0.72579135, "llike": [-1.41893853, -0.98628303, -0.92805103, -0.92013903]}
ODE_DLOGP = {"y0": [1.15494948], "noise_log__": [-2.844685]}


def close(expected):
    """SPEC.md: the seed numbers hold to 1e-6 relative (zeros exactly, up to rounding)."""
    return pytest.approx(expected, rel=1e-6, abs=1e-12)


def assert_seed_numbers(evaluation: dict, terms: dict, dlogp: dict, backends=BACKENDS) -> None:
    assert list(evaluation["backends"]) == backends
    for b in backends:
        got = evaluation["backends"][b]
        for name, expected in terms.items():
            assert got["logp_terms"][name] == close(expected), (b, name)
        assert list(got["dlogp"]) == list(dlogp), b
        for name, expected in dlogp.items():
            assert got["dlogp"][name] == close(expected), (b, name)
        total = sum(float(np.sum(v)) for v in got["logp_terms"].values())
        assert got["logp"] == close(total), b


# ----------------------------------------------------------------------- jaxpm list


def test_list_json():
    items = invoke_json("list")
    assert {"experiments", "configs", "vector fields", "solvers", "samplers", "backends"} <= set(items)
    assert {"exp", "ode", "cnn"} <= set(items["experiments"])
    assert {"exp", "ode", "cnn"} <= set(items["configs"])
    assert {"decay", "lotka_volterra"} <= set(items["vector fields"])
    assert {"Dopri5", "Kvaerno5", "Tsit5"} <= set(items["solvers"])
    assert not any(s.startswith("Abstract") for s in items["solvers"])
    assert "nutpie" in items["samplers"]
    assert items["backends"] == ["c", "numba", "jax"]


def test_list_table():
    result = invoke("list")
    assert result.exit_code == 0
    words = set(re.findall(r"[A-Za-z0-9_]+", result.stdout))
    for name in ("exp", "ode", "cnn", "decay", "lotka_volterra", "Dopri5", "Kvaerno5", "numba", "jax"):
        assert name in words, name
    assert re.search(r"\bc\b", result.stdout)


# ----------------------------------------------------------------------- jaxpm run ode


@pytest.fixture(scope="module")
def ode_run(tmp_path_factory):
    """``jaxpm run ode --out OUT --json`` once for the whole module: (out root, run.json)."""
    out = tmp_path_factory.mktemp("runs")
    info = invoke_json("run", "ode", "--out", out, "--set", "check_grad.points=2")
    return out, info


@pytest.fixture(scope="module")
def ode_rerun(ode_run, tmp_path_factory):
    """The run folder's ``config.yaml`` run again, as it is, into another output root."""
    _, info = ode_run
    out2 = tmp_path_factory.mktemp("rerun")
    return out2, invoke_json("run", Path(info["run_dir"]) / "config.yaml", "--out", out2)


@pytest.fixture(scope="module")
def ode_second_run(ode_run):
    """A second, cheap run of ``ode`` into the same output root as the first."""
    out, first = ode_run
    before = (Path(first["run_dir"]) / "run.json").read_text()
    time.sleep(0.01)
    info = invoke_json("run", "ode", "--out", out, "--backend", "c", "--set", "check_grad.enabled=false")
    return before, info


def test_run_exit_status_and_json_is_run_json(ode_run):
    out, info = ode_run
    run_dir = Path(info["run_dir"])
    assert info["ok"] is True
    assert info["status"] == "finished"
    assert json.loads((run_dir / "run.json").read_text()) == info


def test_run_folder_layout(ode_run):
    out, info = ode_run
    run_dir = Path(info["run_dir"])
    assert run_dir.parent == out / "ode"
    assert run_dir.is_dir()
    assert {"run.json", "config.yaml", "model.dot"} <= {p.name for p in run_dir.iterdir()}
    # the files list is exactly what is in the folder (no temporary files left over)
    assert sorted(info["files"]) == sorted(p.name for p in run_dir.iterdir())
    assert "digraph" in (run_dir / "model.dot").read_text()


def test_run_json_has_resolved_spec_and_versions(ode_run):
    out, info = ode_run
    # resolved: what `auto` chose is written in (ode.yaml's one parameter: forward mode)
    expected = jaxpm.load_spec("ode", [f"output.dir={json.dumps(str(out))}", "check_grad.points=2",
                                       "ode.sensitivity=forward"])
    assert info["spec"] == expected.model_dump(mode="json")
    assert info["auto"]["ode.sensitivity"]["value"] == "forward"
    assert info["spec"]["name"] == "ode"
    assert info["spec"]["ode"]["vector_field"] == "decay"
    assert info["spec"]["check_grad"]["points"] == 2
    for pkg in ("jaxpm", "pymc", "pytensor", "jax", "diffrax", "numpy"):
        assert info["versions"][pkg] == version(pkg), pkg
    assert info["timing"]["total_seconds"] > 0


def test_run_config_yaml_is_the_resolved_spec(ode_run):
    out, info = ode_run
    text = (Path(info["run_dir"]) / "config.yaml").read_text()
    assert yaml.safe_load(text)["name"] == "ode"
    assert jaxpm.load_spec(Path(info["run_dir"]) / "config.yaml").model_dump(mode="json") == info["spec"]


def test_run_evaluation_has_seed_numbers_on_every_backend(ode_run):
    _, info = ode_run
    ev = info["evaluation"]
    assert ev["ok"] is True
    assert ev["name"] == "ode"
    assert ev["point"] == close({"y0": 0.0, "noise_log__": 0.0})
    assert_seed_numbers(ev, ODE_TERMS, ODE_DLOGP)
    assert ev["max_abs_diff"]["logp"] <= 1e-8 and ev["max_abs_diff"]["dlogp"] <= 1e-8
    for b in BACKENDS:
        assert ev["backends"][b]["seconds_per_eval"] > 0


def test_run_check_grad_ok(ode_run):
    _, info = ode_run
    cg = info["check_grad"]
    assert cg["ok"] is True
    assert cg["points"] == 2
    assert [op["op"] for op in cg["ops"]] == ["ode_solve"]
    assert all(op["ok"] for op in cg["ops"])
    assert cg["model"]["ok"] is True


def test_config_yaml_reruns_to_identical_numbers(ode_run, ode_rerun):
    _, first = ode_run
    out2, again = ode_rerun
    assert Path(again["run_dir"]).parent == out2 / "ode"
    assert again["ok"] is True
    for b in BACKENDS:
        a, z = first["evaluation"]["backends"][b], again["evaluation"]["backends"][b]
        assert z["logp_terms"] == a["logp_terms"], b
        assert z["dlogp"] == a["dlogp"], b
        assert z["logp"] == a["logp"], b
    # same settings, apart from where the run folder went
    strip = lambda spec: {k: v for k, v in spec.items() if k != "output"}  # noqa: E731
    assert strip(again["spec"]) == strip(first["spec"])


def test_second_run_makes_a_second_folder(ode_run, ode_second_run):
    out, first = ode_run
    before, second = ode_second_run
    assert second["run_dir"] != first["run_dir"]
    folders = sorted(p.name for p in (out / "ode").iterdir())
    assert folders == [Path(first["run_dir"]).name, Path(second["run_dir"]).name]  # sorted by time
    assert (Path(first["run_dir"]) / "run.json").read_text() == before  # not overwritten
    assert list(second["evaluation"]["backends"]) == ["c"]
    assert "check_grad" not in second


def test_run_ids_sort_by_creation_time(tmp_path):
    from jaxpm import rundir

    made = [rundir.new_run_dir(tmp_path, "x").name for _ in range(5)]  # within one second
    assert len(set(made)) == 5
    assert sorted(made) == made
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == made


@pytest.mark.parametrize("config", ["exp", "ode"])
def test_check_grad_with_one_point(config):
    out = invoke_json("check-grad", config, "--set", "check_grad.points=1")
    assert out["experiments"][0]["ok"] is True


# ----------------------------------------------------------------------- compare-backends


@pytest.fixture(scope="module")
def compared():
    return invoke_json("compare-backends", "exp", "ode")


def test_compare_backends_json_shape(compared):
    experiments = compared["experiments"]
    assert [e["name"] for e in experiments] == ["exp", "ode"]
    for e in experiments:
        assert {"config", "name", "ok", "point", "backends", "max_abs_diff"} <= set(e)
        assert e["ok"] is True
        assert list(e["backends"]) == BACKENDS
        for b in BACKENDS:
            got = e["backends"][b]
            assert {"logp", "logp_terms", "dlogp", "seconds_per_eval"} <= set(got)
            assert isinstance(got["logp"], float)
            assert all(isinstance(v, list) and all(isinstance(x, float) for x in v) for v in got["dlogp"].values())
            assert got["seconds_per_eval"] > 0
        assert set(e["max_abs_diff"]) == {"logp", "dlogp"}
        assert all(v <= 1e-8 for v in e["max_abs_diff"].values())


def test_compare_backends_seed_numbers(compared):
    exp, ode = compared["experiments"]
    assert_seed_numbers(exp, EXP_TERMS, EXP_DLOGP)
    assert_seed_numbers(ode, ODE_TERMS, ODE_DLOGP)


@pytest.mark.parametrize("index, config", [(0, "exp"), (1, "ode")])
def test_compare_backends_terms_and_dlogp_follow_the_model(compared, index, config):
    """logp_terms in model.logp(sum=False) order; dlogp by value variable, concatenating
    to model.compile_dlogp() at the point."""
    e = compared["experiments"][index]
    model = jaxpm.build_model(config)
    point = {k: np.asarray(v, dtype=float) for k, v in e["point"].items()}

    terms = model.logp(sum=False)
    value_to_rv = {model.rvs_to_values[rv].name: rv.name for rv in model.free_RVs + model.observed_RVs}
    expected_keys = [value_to_rv.get(t.name.removesuffix("_logprob"), t.name) for t in terms]
    values = model.compile_fn(terms)(point)
    for b in BACKENDS:
        got = e["backends"][b]
        assert list(got["logp_terms"]) == expected_keys
        for (name, v), want in zip(got["logp_terms"].items(), values, strict=False):
            assert np.asarray(v) == close(np.asarray(want)), (b, name)
        assert list(got["dlogp"]) == [v.name for v in model.value_vars]
        flat = np.concatenate([np.asarray(v, dtype=float) for v in got["dlogp"].values()])
        assert flat == close(np.asarray(model.compile_dlogp()(point)))


def test_compare_backends_backend_option_narrows():
    out = invoke_json("compare-backends", "exp", "--backend", "c", "--backend", "jax")
    (e,) = out["experiments"]
    assert list(e["backends"]) == ["c", "jax"]
    assert_seed_numbers(e, EXP_TERMS, EXP_DLOGP, backends=["c", "jax"])


# ----------------------------------------------------------------------- check-grad


def test_check_grad_exp_json():
    result = invoke("check-grad", "exp", "--json")
    assert result.exit_code == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    (e,) = out["experiments"]
    assert {"config", "name", "ok", "ops", "model"} <= set(e)
    assert e["name"] == "exp" and e["ok"] is True
    assert [op["op"] for op in e["ops"]] == ["exp"]
    for op in e["ops"]:
        assert {"op", "ok", "points", "max_abs_err", "max_rel_err"} <= set(op)
        assert op["ok"] is True and op["points"] == 3
        assert op["max_rel_err"] < 1e-4
    assert {"ok", "max_abs_err", "reference"} <= set(e["model"])
    assert e["model"]["ok"] is True and isinstance(e["model"]["reference"], str)


# ----------------------------------------------------------------------- the Python API


def test_api_run_exp_seed_numbers(tmp_path):
    spec = jaxpm.load_spec("exp", {"output.dir": str(tmp_path), "check_grad.enabled": False})
    model = jaxpm.build_model(spec)
    assert [v.name for v in model.value_vars] == ["x"]
    result = jaxpm.run(spec)
    assert result.ok
    assert result.run_dir.parent == tmp_path / "exp"
    assert (result.run_dir / "run.json").is_file()
    assert_seed_numbers(result.info["evaluation"], EXP_TERMS, EXP_DLOGP)


# ----------------------------------------------------------------------- trust tools


@pytest.fixture
def plugins(monkeypatch):
    """Make tests/configs/plugins importable (``experiment: "module:build"``)."""
    monkeypatch.syspath_prepend(str(PLUGINS))


def test_check_grad_catches_a_wrong_gradient(plugins):
    config = CONFIGS / "wrong_grad.yaml"
    out = invoke_json("check-grad", config, code=1)
    (e,) = out["experiments"]
    assert e["ok"] is False
    (op,) = e["ops"]
    assert op["op"] == "bad_exp" and op["ok"] is False
    assert op["max_rel_err"] > 0.1  # twice the derivative: about 0.5 relative
    assert e["model"]["ok"] is False

    table = invoke("check-grad", config)
    assert table.exit_code == 1
    row = next(line for line in table.stdout.splitlines() if "bad_exp" in line)
    assert "FAIL" in row


def test_compare_backends_catches_a_jax_dispatch_that_disagrees(plugins):
    config = CONFIGS / "mismatched_op.yaml"
    result = invoke("compare-backends", config, "--backend", "c", "--backend", "jax")
    assert result.exit_code == 1, result.stderr[-3000:]
    text = " ".join(result.stdout.split())
    assert "logp term 'z': c and jax differ" in text
    assert "FAIL" in text

    out = invoke_json("compare-backends", config, "--backend", "c", "--backend", "jax", code=1)
    (e,) = out["experiments"]
    assert e["ok"] is False
    assert e["max_abs_diff"]["logp"] > 0.5
    assert any("'z'" in d and "c and jax" in d for d in e["disagreements"])
    c, j = e["backends"]["c"], e["backends"]["jax"]
    assert c["logp_terms"]["x"] == close(j["logp_terms"]["x"])  # the prior is not the problem
    assert c["logp_terms"]["z"] != close(j["logp_terms"]["z"])


def test_plugin_experiment_from_a_file(tmp_path):
    source = (PLUGINS / "jaxpm_test_wrong_grad.py").read_text()
    (tmp_path / "my_plugin.py").write_text(source)
    config = yaml.safe_load((CONFIGS / "wrong_grad.yaml").read_text())
    config["experiment"] = "my_plugin.py:build"
    config["evaluate"]["backends"] = ["c"]
    path = tmp_path / "plugin_file.yaml"
    path.write_text(yaml.safe_dump(config))
    out = invoke_json("compare-backends", path)
    assert out["experiments"][0]["ok"] is True


# ------------------------------------------------------------- no CONFIG: the built-ins


def test_trust_tools_with_no_config_cover_the_three_builtins():
    """`jaxpm compare-backends` and `jaxpm check-grad` with no CONFIG run exp, ode and cnn
    and pass. compare-backends runs the post's 824k-weight network (one timed call);
    check-grad the same code on a 4-filter network made by --set (finite differences of
    an 824k-weight logp take minutes), one point each, so the suite stays fast."""
    cmp = invoke_json("compare-backends", "--backend", "c", "--backend", "jax", "--set", "evaluate.repeats=1")
    assert [e["name"] for e in cmp["experiments"]] == ["cnn", "exp", "ode"]
    assert all(e["ok"] for e in cmp["experiments"])
    cnn = cmp["experiments"][0]
    assert cnn["backends"]["c"]["logp"] == close(-759928.81029946)
    small = ["--set", "cnn.n=20", "--set",
             'cnn.layers=[{conv: 4, kernel: 3}, relu, {avg_pool: 2}, flatten, {dense: 10}]']
    grad = invoke_json("check-grad", "--set", "check_grad.points=1", *small)
    assert [e["name"] for e in grad["experiments"]] == ["cnn", "exp", "ode"]
    details = [(e["name"], e["ops"], e["model"], e["jax"]) for e in grad["experiments"]]
    assert all(e["ok"] for e in grad["experiments"]), details
