"""``jaxpm sbc``: the rank and uniformity arithmetic, and whole runs on real Dask processes.

The runs use ``tests/configs/sweep_plugin.yaml`` (x ~ Normal(0, 1) of shape 2, z ~ Normal(2 x, 1),
no JAX op; its plugin never fails unless told to) with nutpie and tiny fits, on a ``dask
scheduler`` and two ``dask worker`` processes started here as a user would start them,
and once on the default local cluster with one worker: the ranks must be the same.
Every process started here is ended by its fixture.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from support import BIN, hand_started_cluster
from typer.testing import CliRunner

from jaxpm.cli import app
from jaxpm.many import ranks as rk
from jaxpm.many.sbc import scalar_names, sim_seed
from jaxpm.worker_settings import THREADS_ENV

PLUGIN = Path(__file__).parent / "configs" / "sweep_plugin.yaml"
SMALL = ["--set", "sample.sampler=nutpie", "--set", "sbc.chains=2", "--set", "sbc.tune=100",
         "--set", "sbc.draws=30", "--set", "sbc.thinned=20"]
SIMS = 8
SPEC_KEYS = {"ok", "sims", "failed", "divergent", "seed", "scheduler", "quantities", "simulations", "settings",
             "timings", "workers"}


# ------------------------------------------------------------------ the arithmetic


def test_rank_against_a_hand_checked_case():
    draws = np.array([0.3, -1.2, 2.5, 0.9, 0.1, 1.7])
    # below 1.0: -1.2, 0.1, 0.3, 0.9 -> 4; below -5 none; above everything -> 6
    assert [rk.rank(draws, t, None) for t in (1.0, -5.0, 9.0)] == [4, 0, 6]
    # a tie with two equal draws goes anywhere from 1 to 3 (one draw below)
    tied = {rk.rank(np.array([0.0, 1.0, 1.0, 2.0]), 1.0, np.random.default_rng(s)) for s in range(40)}
    assert tied == {1, 2, 3}
    # the ECDF counts below each point, by hand: ranks 0, 1, 1, 3 on {0..3}
    assert rk.ecdf_counts(np.array([0, 1, 1, 3]), 3, np.array([1, 2, 3])).tolist() == [1, 3, 3]


def test_uniform_ranks_pass_and_non_uniform_ranks_fail():
    rng = np.random.default_rng(7)
    L, n = 20, 100
    null = rk.null_gammas(n, L, seed=3)
    uniform = [rk.p_value(rng.integers(0, L + 1, n), L, null) for _ in range(40)]
    assert np.mean(np.array(uniform) < 0.05) <= 0.15  # about 5% reject
    too_wide = rng.integers(0, 3, n) * (L // 2)  # ranks at 0, L/2, L: a posterior too narrow
    piled = np.concatenate([np.zeros(n // 3, dtype=int), rng.integers(0, L + 1, n - n // 3)])
    assert rk.p_value(too_wide, L, null) < 0.001
    assert rk.p_value(piled, L, null) < 0.001
    # the band agrees with the test: a curve outside it at some point has p below 1 - prob
    z, lower, upper = rk.ecdf_band(n, L, null, 0.95)
    ecdf = rk.ecdf_counts(piled, L, rk.points(n, L)) / n
    assert ((ecdf < lower) | (ecdf > upper)).any()
    levels = rk.holm({"a": 0.001, "b": 0.5}, 0.05)
    assert levels == {"a": (0.025, False), "b": (0.05, True)}


def test_seeds_and_names_depend_on_the_index_only():
    assert sim_seed(1, 3) == sim_seed(1, 3) != sim_seed(2, 3)
    from jaxpm.model import build_model

    assert scalar_names(build_model(PLUGIN)) == ["x[0]", "x[1]"]


# ------------------------------------------------------------------ whole runs


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A ``dask scheduler`` and two ``dask worker`` processes (one thread each, started
    with ``JAXPM_WORKER_THREADS=1`` as the README says) on 127.0.0.1: the address."""
    tmp = tmp_path_factory.mktemp("dask")
    env = {**os.environ, THREADS_ENV: "1"}
    with hand_started_cluster(tmp, env) as address:
        yield address


def sbc(*args, code: int | None = 0):
    result = CliRunner().invoke(app, ["sbc", *[str(a) for a in args]])
    if code is not None:
        assert result.exit_code == code, (result.stdout[-2000:], result.stderr[-3000:])
    return result


def sbc_json(*args, code: int | None = 0) -> dict:
    return json.loads(sbc(*args, "--json", code=code).stdout)


def ranks_of(folder: str | Path) -> list[dict]:
    with open(Path(folder) / "ranks.csv") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def one_local(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    return sbc_json(PLUGIN, "--sims", SIMS, *SMALL, "--workers", 1, "--out", out)


@pytest.fixture(scope="module")
def two_by_hand(cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("hand")
    return sbc_json(PLUGIN, "--sims", SIMS, *SMALL, "--scheduler", cluster, "--out", out)


def test_ranks_do_not_depend_on_the_workers(one_local, two_by_hand):
    assert ranks_of(one_local["sbc_dir"]) == ranks_of(two_by_hand["sbc_dir"])
    assert len(ranks_of(one_local["sbc_dir"])) == SIMS
    assert list(ranks_of(one_local["sbc_dir"])[0]) == ["sim", "x[0]", "x[1]", "log_likelihood"]
    assert len(one_local["workers"]) == 1
    names = {w["name"] for w in two_by_hand["workers"].values()}
    assert names == {"hand-0", "hand-1"}
    ran_on = {s["worker"] for s in two_by_hand["simulations"]}
    assert ran_on <= set(two_by_hand["workers"]) and len(ran_on) == 2  # both hand-started workers fitted


def test_sbc_json_and_folder_follow_the_spec(two_by_hand):
    info = two_by_hand
    assert SPEC_KEYS <= set(info)
    assert info["sims"] == SIMS and info["scheduler"].startswith("tcp://127.0.0.1:")
    assert set(info["quantities"]) == {"x[0]", "x[1]", "log_likelihood"}
    for q in info["quantities"].values():
        assert set(q) >= {"p_value", "level", "ok"} and 0 < q["p_value"] <= 1
    for s in info["simulations"]:
        assert set(s) >= {"sim", "status", "worker", "seconds", "divergences", "error"}
    assert info["L"] == 20 and info["settings"]["sampler"]["sampler"] == "nutpie"
    assert info["settings"]["compiled_once"] is True
    # compiled once per worker: only the first simulation on each worker set up
    assert sum(bool(s["setup_seconds"]) for s in info["simulations"]) <= 2
    folder = Path(info["sbc_dir"])
    assert {"config.yaml", "sbc.json", "ranks.csv", "ranks.png", "ecdf.png"} <= {p.name for p in folder.iterdir()}
    assert len(list((folder / "sims").glob("sim-*.json"))) == SIMS


def test_resume_runs_only_the_missing_simulations(two_by_hand, cluster, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(two_by_hand["sbc_dir"], folder)
    for i in (2, 5):
        (folder / "sims" / f"sim-000{i}.json").unlink()
    kept = {p.name: p.read_bytes() for p in (folder / "sims").glob("*.json")}
    result = sbc("--resume", folder, "--scheduler", cluster)
    assert f"2 of {SIMS} simulations to fit" in " ".join(result.stderr.split())
    assert {p.name: p.read_bytes() for p in (folder / "sims").glob("*.json") if p.name in kept} == kept
    assert ranks_of(folder) == ranks_of(two_by_hand["sbc_dir"])
    # and a bad resume is bad input
    bad = sbc("--resume", folder, "--sims", 3, code=2)
    assert bad.stderr.count("\n") == 1 and "--resume" in bad.stderr


def test_failing_fits_are_recorded_and_counted(cluster, tmp_path):
    # a log-normal likelihood cannot fit simulated data with a negative value: those fits fail
    info = sbc_json(PLUGIN, "--sims", 6, *SMALL, "--fit-set", "likelihood.z.dist=LogNormal", "--scheduler", cluster,
                    "--out", tmp_path, code=1)
    failed = [s for s in info["simulations"] if s["status"] == "failed"]
    assert failed and info["failed"] == len(failed) == len(info["failed_sims"])
    assert all("nutpie raised" in s["error"] for s in failed)
    assert len(info["simulations"]) == 6 and not info["ok"]
    rows = ranks_of(info["sbc_dir"])
    assert [r["sim"] for r in rows] == [str(i) for i in range(6)]
    assert all(rows[s["sim"]]["x[0]"] == "" for s in failed)


def test_a_prior_narrower_than_the_simulator_is_detected(cluster, tmp_path):
    info = sbc_json(PLUGIN, "--sims", 12, *SMALL, "--fit-set", "priors.x.sigma=0.1", "--scheduler", cluster,
                    "--out", tmp_path, code=1)
    assert not info["ok"] and info["failed"] == 0
    bad = [q for q in info["quantities"].values() if not q["ok"]]
    assert bad and all(q["p_value"] < q["level"] for q in bad)
    assert info["settings"]["fit_set"] == ["priors.x.sigma=0.1"]


@pytest.mark.parametrize("args, key", [
    (["--sims", "0"], "--sims"),
    (["--set", "sbc.thinned=0"], "sbc.thinned"),
    (["--set", "sbc.simz=3"], "sbc.simz"),
    (["--fit-set", "priors.x.shape=3"], "--fit-set"),
    (["--fit-set", "priors.w={dist: Normal, mu: 0, sigma: 1}"], "free variables"),
    (["--set", "likelihood={}"], "likelihood"),
    (["--resume", "nowhere"], "--resume"),
    (["--fit-set", "sbc.sims=3"], "--fit-set"),
    (["--fit-set", "sample.sampler=nope"], "sample.sampler"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "--workers"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, key):
    result = sbc(PLUGIN, *args, "--out", tmp_path, code=2)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert key in result.stderr
    assert not list(tmp_path.iterdir())


def test_ctrl_c_keeps_finished_simulations_exits_130_and_resume_completes(cluster, two_by_hand, tmp_path):
    """``jaxpm sbc`` in its own process group, as in a terminal: Ctrl-C after the first
    records exits 130 and keeps them; ``--resume`` fits only what is missing and leaves the
    kept records alone. (Ctrl-C on the default local cluster, whose worker processes ignore
    it, is the executor's and is tested with ``jaxpm sweep``.) Simulation i is the same
    in a run of 30 as in a run of 8."""
    sims = 30
    cmd = [BIN / "jaxpm", "sbc", PLUGIN, "--sims", sims, *SMALL, "--scheduler", cluster, "--out", tmp_path]
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.time() + 300
        while (len(list(tmp_path.glob("*/*/sims/sim-*.json"))) < 2 and proc.poll() is None
               and time.time() < deadline):
            time.sleep(0.1)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted: finished files were kept" in stderr and "Traceback" not in stderr
    folder = next(tmp_path.glob("*/*/sbc.json")).parent
    info = json.loads((folder / "sbc.json").read_text())
    assert info["status"] == "interrupted" and not info["ok"] and 2 <= info["finished"] < sims
    kept = {p.name: p.read_bytes() for p in (folder / "sims").glob("*.json")}
    result = sbc("--resume", folder, "--scheduler", cluster, code=None)
    assert f"{sims - len(kept)} of {sims} simulations to fit" in " ".join(result.stderr.split())
    assert {p.name: p.read_bytes() for p in (folder / "sims").glob("*.json") if p.name in kept} == kept
    resumed = json.loads((folder / "sbc.json").read_text())
    assert resumed["status"] == "finished" and resumed["finished"] == sims
    assert ranks_of(folder)[:SIMS] == ranks_of(two_by_hand["sbc_dir"])
