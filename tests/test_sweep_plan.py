"""``jaxpm sweep`` without a cluster: the grid (product and zip), ``--grid`` values, every
point validated before anything runs (exit 2, nothing written), the sort order and the
best point, the table and the JSON shape, and a worker's PyTensor compile-directory slot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from jaxpm.cli import app
from jaxpm.errors import ConfigError
from jaxpm.many import Executor, report
from jaxpm.many.sweep import COLUMNS, SAMPLING_COLUMNS, plan
from jaxpm.spec.grid import Sweep, merge, parse_grid
from jaxpm.worker_settings import take_slot

CONFIGS = Path(__file__).parent / "configs"
PLUGIN = CONFIGS / "sweep_plugin.yaml"


# ----------------------------------------------------------------------- the grid


def test_grid_is_the_product_last_key_fastest():
    s = Sweep.model_validate({"grid": {"ode.solver": ["Tsit5", "Dopri5", "Kvaerno5"],
                                       "sample.sampler": ["nutpie", "numpyro"]}})
    points = s.points()
    assert len(points) == 6
    assert points[:3] == [{"ode.solver": "Tsit5", "sample.sampler": "nutpie"},
                          {"ode.solver": "Tsit5", "sample.sampler": "numpyro"},
                          {"ode.solver": "Dopri5", "sample.sampler": "nutpie"}]
    assert {(p["ode.solver"], p["sample.sampler"]) for p in points} == {
        (a, b) for a in ("Tsit5", "Dopri5", "Kvaerno5") for b in ("nutpie", "numpyro")}


def test_zip_keys_vary_together_as_one_more_axis():
    s = Sweep.model_validate({"grid": {"sample.sampler": ["nutpie", "numpyro"]},
                              "zip": {"ode.rtol": [1e-5, 1e-8, 1e-10], "ode.atol": [1e-6, 1e-9, 1e-11]}})
    points = s.points()
    assert len(points) == 6  # 2 x 3, not 2 x 3 x 3
    assert [(p["ode.rtol"], p["ode.atol"]) for p in points[:3]] == [(1e-5, 1e-6), (1e-8, 1e-9), (1e-10, 1e-11)]
    assert s.keys == ["sample.sampler", "ode.rtol", "ode.atol"]
    assert Sweep.model_validate({"zip": {"a.b": [1, 1], "c.d": [3, 4]}}).points() == [
        {"a.b": 1, "c.d": 3}, {"a.b": 1, "c.d": 4}]  # a zipped key may repeat a value; rows may not


@pytest.mark.parametrize("section, message", [
    ({"zip": {"a.b": [1, 2], "c.d": [1]}}, "need the same length"),
    ({"zip": {"a.b": [1, 1], "c.d": [2, 2]}}, "row 1 of the zipped values repeats row 0"),
    ({"grid": {"a.b": []}}, "at least one value"),
    ({"grid": {"a.b": [1, 1]}}, "listed twice"),
    ({"grid": {"a.b": [1]}, "zip": {"a.b": [2]}}, "in both grid and zip"),
    ({"grid": {"ode": [{}], "ode.solver": ["Tsit5"]}}, "overlap"),
    ({"grid": {"output.dir": ["a", "b"]}}, "cannot be swept"),
    ({"grid": {"a.b": "x"}}, "list of values"),
    ({"grids": {}}, "unknown key"),
])
def test_bad_sweep_sections(section, message):
    with pytest.raises(Exception, match=message):
        Sweep.model_validate(section)


def test_grid_values_are_yaml_like_set():
    grid = parse_grid(["ode.solver=Tsit5, Dopri5", "evaluate.backends=[c],[c, jax]", "ode.rtol=1e-8,1.0e-8",
                       "sample.enabled=true,false"])
    assert grid["ode.solver"] == ["Tsit5", "Dopri5"]
    assert grid["evaluate.backends"] == [["c"], ["c", "jax"]]
    assert grid["ode.rtol"] == ["1e-8", 1e-8]  # YAML 1.1: no dot, a string (a numeric key takes it as 1e-8)
    assert grid["sample.enabled"] == [True, False]
    for bad, message in [("ode.solver", "KEY.PATH=V1,V2"), ("ode.solver=", "at least one value"),
                         ("ode.solver=[a", "cannot read"), ("ode.solver=a,a", "listed twice")]:
        with pytest.raises(ConfigError, match=message):
            parse_grid([bad])
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid(["a.b=1", "a.b=2"])


def test_command_line_grid_replaces_a_config_key_but_not_a_zipped_one():
    assert merge({"grid": {"a.b": [1, 2]}, "zip": {}}, {"a.b": [3], "c.d": [4]}) == {
        "grid": {"a.b": [3], "c.d": [4]}, "zip": {}}
    with pytest.raises(ConfigError, match="sweep.zip"):
        merge({"grid": {}, "zip": {"a.b": [1, 2]}}, {"a.b": [3]})


def test_plan_takes_the_config_sweep_section_and_shows_values_as_run():
    p = plan("exp", ["sweep={grid: {evaluate.rtol: [1e-8, 1.0e-6]}}"], ["evaluate.repeats=3,5"], validate=False)
    assert p.keys == ["evaluate.rtol", "evaluate.repeats"]
    assert len(p.points) == 4 and len(p.specs) == 4
    assert [s.evaluate.rtol for s in p.specs] == [1e-8, 1e-8, 1e-6, 1e-6]  # '1e-8' the number, as the run has it
    assert all(s.sweep is None for s in p.specs)  # each point is one run
    assert p.describe(1) == "evaluate.rtol=1e-8, evaluate.repeats=5"


# ----------------------------------------------------------------------- validation first


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("args, expected", [
    # a bad value in one point: exit 2 naming the point and the key
    (["--grid", "ode.solver=Tsit5,Dopri55"],
     "error: ode: ode.solver: point 1 (ode.solver=Dopri55): unknown solver 'Dopri55'; did you mean 'Dopri5'?"),
    # found only by building the model (an expression), still before anything runs
    (["--grid", "likelihood.llike.mu=ode,nosie"], "likelihood.llike.mu: point 1 (likelihood.llike.mu=nosie): "),
    (["--grid", "ode.solvr=Tsit5"], "ode.solvr: point 0 (ode.solvr=Tsit5): unknown key 'solvr'"),
    (["--grid", "ode.solver=Tsit5", "--set", "ode.solver=Dopri5"], "--set ode.solver is also swept"),
    ([], "nothing to sweep"),
    (["--grid", "ode.solver=Tsit5", "--sort", "ess"], "--sort: no column 'ess'"),
    (["--grid", "ode.solver=Tsit5", "--workers", "1", "--scheduler", "tcp://127.0.0.1:1"], "--workers"),
])
def test_bad_points_exit_2_before_anything_runs(tmp_path, args, expected):
    out = tmp_path / "out"
    result = invoke("sweep", "ode", "--out", out, "--set", "evaluate.backends=[c]", *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and expected in lines[-1], lines
    assert "Traceback" not in result.stderr
    assert not out.exists()  # nothing written


def test_an_unreachable_scheduler_is_bad_input():
    with pytest.raises(ConfigError, match="--scheduler: cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'"):
        with Executor(scheduler="tcp://127.0.0.1:9", timeout=1):
            pass  # (run_sweep starts the executor before it creates the sweep folder)


# ----------------------------------------------------------------------- sort, best, table, json


def _rows():
    base = dict.fromkeys([*COLUMNS, *SAMPLING_COLUMNS])
    return [
        {**base, "point": 0, "ode.solver": "Tsit5", "status": "ok", "us_per_eval": 70.0, "ess_per_s": 120.0},
        {**base, "point": 1, "ode.solver": "Dopri5", "status": "ok", "us_per_eval": 60.0, "ess_per_s": 150.0},
        {**base, "point": 2, "ode.solver": "Kvaerno5", "status": "failed", "error": "boom"},
        {**base, "point": 3, "ode.solver": "Bosh3", "status": "check_failed", "us_per_eval": 10.0,
         "ess_per_s": 900.0, "error": "gradient check failed"},
    ]


def test_sort_orders_by_direction_and_best_is_an_ok_row():
    rows = _rows()
    assert [r["point"] for r in report.sort_rows(rows, "ess_per_s")] == [3, 1, 0, 2]  # higher first, missing last
    assert [r["point"] for r in report.sort_rows(rows, "us_per_eval")] == [3, 1, 0, 2]  # lower first
    assert [r["point"] for r in report.sort_rows(rows, "ode.solver")] == [3, 1, 2, 0]
    assert report.best(rows, "ess_per_s", sampling=True) == 1  # point 3 is faster but not ok
    assert report.best(rows, "point", sampling=False) == 1
    assert report.best([r for r in rows if r["status"] != "ok"], "point", sampling=True) is None


def test_table_sorted_with_best_marked_and_reasons():
    info = {"name": "ode", "points": 4, "keys": ["ode.solver"], "sort": "ess_per_s", "best": 1, "rows": _rows(),
            "counts": {"ok": 2, "check_failed": 1, "failed": 1, "pending": 0}, "wall_seconds": 12.0,
            "sweep_dir": "/x/ode-sweep/1"}
    console = Console(record=True, width=200)
    report.table(info, console)
    text = console.export_text()
    body = [line for line in text.splitlines() if line.startswith("│")]
    assert [line.split("│")[2].strip() for line in body] == ["3", "1", "0", "2"]
    assert "★" in body[1] and "★" not in body[0]
    assert "point 2 failed: boom" in text and "point 3 check_failed: gradient check failed" in text
    assert "2 ok, 1 check_failed, 1 failed in 12 s; sweep folder: /x/ode-sweep/1" in text


def test_sort_columns_depend_on_sampling():
    assert "ess_per_s" in report.columns(["ode.solver"], sampling=True)
    assert "ess_per_s" not in report.columns(["ode.solver"], sampling=False)
    assert report.columns(["a.b"], sampling=False)[:2] == ["point", "a.b"]


# ----------------------------------------------------------------------- a worker's compile directory


def test_each_live_worker_takes_its_own_compile_directory_slot(tmp_path):
    first, lock = take_slot(tmp_path)
    second, lock2 = take_slot(tmp_path)
    assert (first.name, second.name) == ("0", "1")  # slot 0 is held: the next worker gets 1
    lock.release()
    again, lock3 = take_slot(tmp_path)
    assert again.name == "0"  # a slot is reused (warm) once its worker is gone
    lock2.release()
    lock3.release()


def test_sweep_json_and_csv_columns_follow_the_spec():
    assert COLUMNS == ["status", "error", "run_dir", "logp", "max_backend_diff", "check_grad_ok", "us_per_eval"]
    assert SAMPLING_COLUMNS == ["sampler_seconds", "min_ess_bulk", "min_ess_tail", "ess_per_s", "max_r_hat",
                                "divergences", "failed_solves"]
    json.dumps(_rows())  # rows are plain JSON
