"""The executor and ``jaxpm sweep`` on real Dask processes: a ``dask scheduler`` and two
``dask worker`` processes started here on 127.0.0.1 as a user would start them by hand
(without ``JAXPM_WORKER_THREADS``: the executor restarts them once with it set), and the
default local cluster of worker processes.

The model is ``tests/configs/sweep_plugin.yaml`` (y = 2 x, C backend only), whose plugin
can sleep, raise or kill its worker at run time. Every process started here is ended by
its fixture.
"""

from __future__ import annotations

import csv
import json
import operator
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support import BIN, hand_started_cluster
from typer.testing import CliRunner

from jaxpm.cli import app
from jaxpm.many import Executor, Results, Task, cached
from jaxpm.worker_settings import THREADS_ENV

CONFIGS = Path(__file__).parent / "configs"
PLUGIN = CONFIGS / "sweep_plugin.yaml"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A ``dask scheduler`` and two ``dask worker`` processes (one thread each) on 127.0.0.1,
    started without ``JAXPM_WORKER_THREADS`` (the executor restarts them with it): the address."""
    tmp = tmp_path_factory.mktemp("dask")
    env = {k: v for k, v in os.environ.items() if k != THREADS_ENV}
    env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "0"  # a task that kills its worker is not retried
    with hand_started_cluster(tmp, env) as address:
        yield address


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def sweep_json(*args, code: int = 0) -> dict:
    result = invoke("sweep", *args, "--json")
    assert result.exit_code == code, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_tasks_on_hand_started_workers_each_with_its_own_compile_directory(cluster, tmp_path):
    results = Results(tmp_path / "tasks")
    with Executor(scheduler=cluster) as ex:
        outcomes = ex.run([Task(f"t{i}", cached, ("stamp", time.time_ns)) for i in range(6)]
                          + [Task("bad", operator.truediv, (1, 0))], results)
        described = ex.describe()
    assert described["scheduler"] == cluster and described["cluster"] == "existing"
    assert len(described["workers"]) == 2
    by_key = {o.key: o for o in outcomes}
    assert by_key["bad"].status == "error" and by_key["bad"].error == "ZeroDivisionError: division by zero"
    assert by_key["bad"].worker["address"] in described["workers"]
    stamps: dict[str, set] = {}
    for o in outcomes:
        if o.key != "bad":
            assert o.status == "done"
            stamps.setdefault(o.worker["address"], set()).add(o.value)
    assert all(len(v) == 1 for v in stamps.values())  # built once per worker process, then cached
    dirs = {o.worker["address"]: o.worker["compiledir"] for o in outcomes}
    assert all(o.worker["own_compiledir"] for o in outcomes)  # the restart gave each its own
    assert len(set(dirs.values())) == len(dirs)
    assert set(results.load()) == {*(f"t{i}" for i in range(6)), "bad"}  # every record written
    assert [t.key for t in results.pending([Task("t0", int), Task("bad", int), Task("new", int)])] == ["bad", "new"]


def test_interrupt_keeps_what_finished_and_cancels_the_rest(cluster, tmp_path):
    results = Results(tmp_path / "tasks")
    tasks = [Task("quick", time.sleep, (0,)), *(Task(f"slow{i}", time.sleep, (3,)) for i in range(4))]

    def stop(outcome):
        raise KeyboardInterrupt

    with Executor(scheduler=cluster) as ex, pytest.raises(KeyboardInterrupt):
        ex.run(tasks, results, stop)
    saved = results.load()
    assert len(saved) == 1 and next(iter(saved.values())).status == "done"
    assert len(results.pending(tasks)) == 4


def test_sweep_on_the_cluster_writes_rows_runs_and_workers(cluster, tmp_path):
    info = sweep_json(PLUGIN, "--grid", "evaluate.repeats=3,4", "--grid", "evaluate.rtol=1e-8,1.0e-4",
                      "--scheduler", cluster, "--out", tmp_path, "--sort", "us_per_eval")
    assert info["ok"] and info["status"] == "finished" and info["points"] == 4
    assert info["scheduler"] == cluster
    assert info["keys"] == ["evaluate.repeats", "evaluate.rtol"]
    rows = info["rows"]
    assert [r["point"] for r in rows] == [0, 1, 2, 3]
    assert [(r["evaluate.repeats"], r["evaluate.rtol"]) for r in rows] == [(3, 1e-8), (3, 1e-4), (4, 1e-8), (4, 1e-4)]
    assert {r["worker"] for r in rows} <= set(info["cluster"]["workers"])
    folder = Path(info["sweep_dir"])
    assert folder.parent.name == "sweep_plugin-sweep" and folder.parent.parent == tmp_path
    for r in rows:
        assert r["status"] == "ok" and r["error"] is None
        run = json.loads((Path(r["run_dir"]) / "run.json").read_text())
        assert run["status"] == "finished" and Path(r["run_dir"]).is_relative_to(folder / f"point-{r['point']:03d}")
        assert r["logp"] == pytest.approx(run["evaluation"]["backends"]["c"]["logp"])
        assert r["us_per_eval"] > 0
    assert info["best"] == min(rows, key=lambda r: r["us_per_eval"])["point"]
    with open(folder / "sweep.csv") as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["point", "evaluate.repeats", "evaluate.rtol", "status", "error", "run_dir", "logp",
                        "max_backend_diff", "check_grad_ok", "us_per_eval"]
    assert len(table) == 5
    assert {"config.yaml", "sweep.csv", "sweep.json", "sweep.png"} <= {p.name for p in folder.iterdir()}
    assert json.loads((folder / "sweep.json").read_text())["rows"] == rows


def test_resume_runs_only_the_points_that_are_not_complete(cluster, tmp_path):
    first = sweep_json(PLUGIN, "--grid", "evaluate.repeats=3,4,5", "--scheduler", cluster, "--out", tmp_path)
    folder = Path(first["sweep_dir"])
    (folder / "tasks" / "point-001.json").unlink()  # as if interrupted before point 1 ended
    run_json = Path(first["rows"][2]["run_dir"]) / "run.json"
    run_json.write_text(run_json.read_text().replace('"status": "finished"', '"status": "interrupted"'))
    before = {p.name: p.stat().st_mtime_ns for p in (folder / "tasks").iterdir()}
    result = invoke("sweep", "--resume", folder, "--scheduler", cluster, "--json")
    assert result.exit_code == 0, result.stderr[-3000:]
    assert "2 of 3 points to run" in " ".join(result.stderr.split())
    info = json.loads(result.stdout)
    assert [r["status"] for r in info["rows"]] == ["ok", "ok", "ok"]
    after = {p.name: p.stat().st_mtime_ns for p in (folder / "tasks").iterdir()}
    assert after["point-000.json"] == before["point-000.json"]  # complete: not run again
    assert after["point-002.json"] != before["point-002.json"]
    assert info["rows"][0]["run_dir"] == first["rows"][0]["run_dir"]
    assert info["rows"][2]["run_dir"] != first["rows"][2]["run_dir"]  # a new run folder for the re-run point
    # once complete, a resume runs nothing (and needs no cluster)
    again = invoke("sweep", "--resume", folder, "--json")
    assert again.exit_code == 0 and "every point" in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (folder / "tasks").iterdir()} == after
    # the same folder with other settings is refused, and nothing runs
    result = invoke("sweep", PLUGIN, "--grid", "evaluate.repeats=3,4", "--resume", folder, "--scheduler", cluster)
    assert result.exit_code == 2 and "was started with other settings" in result.stderr


def test_a_failing_point_is_a_row_and_the_others_finish(cluster, tmp_path):
    """Last in this module: the point that kills its worker leaves the cluster a worker
    to restart."""
    info = sweep_json(PLUGIN, "--grid", "plugin.fail=none,raise,die", "--scheduler", cluster, "--out", tmp_path,
                      code=1)
    rows = {r["plugin.fail"]: r for r in info["rows"]}
    assert rows["none"]["status"] == "ok"
    assert rows["raise"]["status"] == "failed" and "this point fails on purpose" in rows["raise"]["error"]
    assert rows["raise"]["worker"] in info["cluster"]["workers"]
    assert rows["die"]["status"] == "failed" and "worker running it died" in rows["die"]["error"]
    assert info["counts"] == {"ok": 1, "check_failed": 0, "failed": 2, "pending": 0} and not info["ok"]


def test_ctrl_c_on_the_default_local_cluster_keeps_finished_points_and_exits_130(tmp_path):
    """``jaxpm sweep`` in its own process group, as in a terminal: Ctrl-C reaches the
    command and its local worker processes alike; the workers ignore it, the command
    cancels what is left, writes what finished and exits 130."""
    cmd = [BIN / "jaxpm", "sweep", PLUGIN, "--grid", "plugin.sleep=0,20", "--workers", "1", "--out", tmp_path]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 300
        while (not list(tmp_path.glob("*/*/tasks/point-000.json")) and proc.poll() is None
               and time.time() < deadline):
            time.sleep(0.3)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted: finished files were kept" in stderr and "Traceback" not in stderr
    folder = next(tmp_path.glob("*/*/sweep.json")).parent
    info = json.loads((folder / "sweep.json").read_text())
    assert info["status"] == "interrupted" and not info["ok"] and info["cluster"]["cluster"] == "local"
    assert [r["status"] for r in info["rows"]] == ["ok", "pending"]
    record = json.loads((folder / "tasks" / "point-000.json").read_text())
    assert record["worker"]["own_compiledir"] and record["worker"]["threads"] == 1
    with open(folder / "sweep.csv") as fh:
        assert len(list(csv.reader(fh))) == 2  # the header and the finished point
