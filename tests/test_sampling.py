"""Sampling and the run folder it leaves (jaxpm.sampling through jaxpm.runner.run).

Short runs (2 chains, 150 tuning steps + 150 draws) of the post's exp and ode configs on
every NUTS sampler; each (config, sampler) run happens once per module and is shared.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from jaxpm.runner import run

HERE = Path(__file__).parent
FAILING = HERE / "configs" / "failing_solver.yaml"
SAMPLERS = ["nutpie", "pymc", "numpyro", "blackjax"]
SHORT = ["sample.draws=150", "sample.tune=150", "sample.chains=2"]
# The predictive checks (tests/test_predictive.py) compile a vectorised program per model:
# off in this module's runs, which test the samplers, except the exp runs shared below,
# which check the predictive draws of every sampler's posterior.
PREDICTIVE_OFF = ["predictive.posterior=false", "predictive.prior=false", "predictive.log_likelihood=false"]
PREDICTIVE_ON = ["predictive.posterior=true", "predictive.prior=true", "predictive.log_likelihood=true"]
SAMPLING_KEYS = {
    "sampler", "draws", "tune", "chains", "cores", "target_accept", "seed", "ok", "wall_seconds",
    "sampling_seconds", "divergences", "max_r_hat", "min_ess_bulk", "min_ess_tail", "ess_per_second",
    "usable_draws", "files",
}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def runs(out_dir):
    """``runs(config, *overrides)``: a finished run, made once per module."""

    @cache
    def go(config, *overrides):
        base = [f"output.dir={out_dir}", "evaluate.backends=[c]", "check_grad.enabled=false", "sample.enabled=true",
                *PREDICTIVE_OFF]
        if config != "cnn":  # NUTS as it was before `auto` (tests/test_auto.py covers what auto chooses)
            base += ["sample.start=initial", "sample.mass_matrix=diag"]
        return run(str(config), [*base, *overrides])

    return go


def _posterior(result):
    import arviz as az

    return az.from_netcdf(result.run_dir / "posterior.nc")


def _exact_exp_posterior_means(observed=(1.0, 2.0, 0.0)):
    """x_i ~ N(0, 1), z_i ~ N(exp(x_i), 1): each x_i's posterior mean by quadrature."""
    grid = np.linspace(-8, 4, 200_001)
    means = []
    for z in observed:
        logp = -0.5 * grid**2 - 0.5 * (z - np.exp(grid)) ** 2
        w = np.exp(logp - logp.max())
        means.append(float((grid * w).sum() / w.sum()))
    return np.array(means)


# ------------------------------------------------------------------ where the posterior lands


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_ode_posterior(runs, sampler):
    result = runs("ode", f"sample.sampler={sampler}", *SHORT)
    s = result.info["sampling"]
    assert result.info["status"] == "finished"
    assert s["ok"] is True and s["sampler"] == sampler
    y0 = _posterior(result).posterior["y0"].values
    assert np.isfinite(y0).all()
    # the data [1, 0.367, 0.135, 0.049] are exp(-t): y0 = 1
    assert abs(y0.mean() - 1.0) < 3 * y0.std() + 0.1
    assert s["failed_solves_in_draws"] == 0 and s["draws_checked"] == 300
    assert "fit.png" in s["files"]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_exp_posterior(runs, sampler):
    result = runs("exp", f"sample.sampler={sampler}", *SHORT, *PREDICTIVE_ON)
    s = result.info["sampling"]
    assert s["ok"] is True
    idata = _posterior(result)
    post = idata.posterior
    x = post["x"].values.reshape(-1, 3)
    mean, sd = x.mean(0), x.std(0)
    # observed z = [1, 2, 0] with z ~ Normal(exp(x), 1): x[1] > x[0] > x[2]
    assert mean[1] > mean[0] > mean[2]
    exact = _exact_exp_posterior_means()
    ess = max(s["min_ess_bulk"], 20.0)
    assert np.all(np.abs(mean - exact) < 5 * sd / np.sqrt(ess) + 0.05), (mean, exact)
    # the Deterministic y = exp(x) is kept with the draws
    np.testing.assert_allclose(post["y"].values, np.exp(post["x"].values), rtol=1e-10)
    assert "fit.png" not in s["files"] and s.get("failed_solves_in_draws") is None
    # A posterior this simple mixes within the short run: over 6 seeds x 4 samplers max r_hat
    # was 1.004-1.066, min bulk ESS 78-253 and min tail ESS 44-175 of 300 draws. Chains
    # stuck or sampling different places (r_hat well above 1.1), draws barely moving (ESS of
    # a few), or ESS counted over more than the kept draws would fail here.
    n = s["chains"] * s["draws"]
    assert s["max_r_hat"] < 1.1
    assert 50 < s["min_ess_bulk"] < 2 * n and 25 < s["min_ess_tail"] < 2 * n
    assert s["divergences"] == 0  # nothing to diverge on in this geometry
    # the predictive checks work on every sampler's posterior: z ~ Normal(exp(x), 1) at each draw
    assert {"posterior_predictive", "log_likelihood", "prior_predictive"} <= set(idata.groups())
    noise = (idata.posterior_predictive["z"].values - np.exp(post["x"].values)).ravel()
    assert abs(noise.mean()) < 5 / np.sqrt(noise.size) and abs(noise.std() - 1) < 0.1
    assert result.info["loo"]["n_draws"] == 300 and {"ppc.png", "prior_ppc.png"} <= set(s["files"])


# ------------------------------------------------------------------ the run folder


def test_run_folder(runs):
    result = runs("ode", "sample.sampler=nutpie", *SHORT)
    folder = result.run_dir
    s = result.info["sampling"]
    idata = _posterior(result)
    assert {"posterior", "sample_stats", "observed_data"} <= set(idata.groups())
    assert set(idata.posterior.data_vars) == {"y0", "noise"}  # no transformed values
    assert idata.posterior.sizes["chain"] == 2 and idata.posterior.sizes["draw"] == 150
    np.testing.assert_allclose(idata.observed_data["llike"].values, [1, 0.367, 0.135, 0.049])
    assert "diverging" in idata.sample_stats

    import pandas as pd

    summary = pd.read_csv(folder / "summary.csv", index_col=0)
    assert set(summary.index) == {"y0", "noise"}
    assert {"mean", "sd", "ess_bulk", "ess_tail", "r_hat"} <= set(summary.columns)

    for name in ("posterior.nc", "summary.csv", "trace.png", "posterior.png", "fit.png"):
        assert (folder / name).stat().st_size > 0, name
        assert name in s["files"] and name in result.info["files"]
    for name in ("trace.png", "posterior.png", "fit.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temp files left

    on_disk = json.loads((folder / "run.json").read_text())["sampling"]
    assert SAMPLING_KEYS <= set(on_disk)
    assert on_disk["sampler"] == "nutpie" and on_disk["draws"] == 150 and on_disk["tune"] == 150
    assert on_disk["chains"] == 2 and on_disk["target_accept"] == 0.9  # auto: a solver in the logp
    assert on_disk["auto"]["sample.target_accept"]["value"] == 0.9
    assert on_disk["seed"] == result.info["spec"]["seed"]
    assert on_disk["ok"] is True and on_disk["usable_draws"] == 300
    assert 0 < on_disk["sampling_seconds"] <= on_disk["wall_seconds"]
    assert isinstance(on_disk["divergences_in_warmup"], int)
    assert on_disk["nonfinite_logp_divergences"] == 0  # the post's ODE never fails to solve
    # The diagnostics are those of the kept draws in posterior.nc (not of the warm-up, nor
    # of the transformed noise_log__), and summary.csv says the same. This short run does
    # not converge (noise's posterior sits near 0.001, far from the start: max r_hat 1.01-1.26
    # and min bulk ESS 7-65 over 9 seeds), so convergence itself is test_exp_posterior's.
    import arviz as az

    rhat, bulk = az.rhat(idata.posterior), az.ess(idata.posterior, method="bulk")
    tail = az.ess(idata.posterior, method="tail")
    assert on_disk["max_r_hat"] == pytest.approx(max(float(rhat[v]) for v in ("y0", "noise")), rel=1e-9)
    assert on_disk["min_ess_bulk"] == pytest.approx(min(float(bulk[v]) for v in ("y0", "noise")), rel=1e-9)
    assert on_disk["min_ess_tail"] == pytest.approx(min(float(tail[v]) for v in ("y0", "noise")), rel=1e-9)
    assert on_disk["max_r_hat"] == pytest.approx(summary["r_hat"].max(), rel=1e-9)
    assert on_disk["min_ess_bulk"] == pytest.approx(summary["ess_bulk"].min(), rel=1e-9)
    assert on_disk["divergences"] == int(idata.sample_stats["diverging"].sum())
    assert on_disk["ess_per_second"] == pytest.approx(on_disk["min_ess_bulk"] / on_disk["sampling_seconds"])
    assert on_disk["failed_solves_in_draws"] == 0


# ------------------------------------------------------------------ reproducibility


@pytest.mark.parametrize("sampler", ["nutpie", "pymc"])
def test_same_seed_same_draws(runs, sampler):
    first = _posterior(runs("exp", f"sample.sampler={sampler}", *SHORT, *PREDICTIVE_ON)).posterior
    again = _posterior(runs("exp", f"sample.sampler={sampler}", *SHORT, "sample.seed=20230103")).posterior
    np.testing.assert_array_equal(first["x"].values, again["x"].values)


def test_other_seed_other_draws(runs):
    first = _posterior(runs("exp", "sample.sampler=pymc", *SHORT, *PREDICTIVE_ON)).posterior
    other = _posterior(runs("exp", "sample.sampler=pymc", *SHORT, "sample.seed=7")).posterior
    assert not np.array_equal(first["x"].values, other["x"].values)


# ------------------------------------------------------------------ target_accept, cores


ACCEPTANCE = {"pymc": "acceptance_rate", "nutpie": "mean_tree_accept"}


@pytest.mark.parametrize("sampler", ["pymc", "nutpie"])
def test_target_accept_reaches_the_sampler(runs, sampler):
    """A higher target_accept makes the step size adaptation settle on a smaller step with
    a higher acceptance (pymc, and numpyro and blackjax through the same pm.sample call;
    nutpie through its own). Over 3 seeds at 0.95 against 0.8: the tuned step 0.61-0.78
    times as long, the draws' mean acceptance 0.94-0.98 against 0.85-0.92."""
    default = runs("exp", f"sample.sampler={sampler}", *SHORT)
    strict = runs("exp", f"sample.sampler={sampler}", *SHORT, "sample.target_accept=0.95")
    assert default.info["sampling"]["target_accept"] == 0.8
    on_disk = json.loads((strict.run_dir / "run.json").read_text())["sampling"]
    assert on_disk["target_accept"] == 0.95 and on_disk["ok"] is True
    lo, hi = (_posterior(r).sample_stats for r in (default, strict))
    step_lo, step_hi = (float(st["step_size_bar"].values[:, -1].mean()) for st in (lo, hi))
    assert step_hi < 0.9 * step_lo, (step_lo, step_hi)
    accept_lo, accept_hi = (float(st[ACCEPTANCE[sampler]].mean()) for st in (lo, hi))
    assert accept_hi > max(accept_lo, 0.9), (accept_lo, accept_hi)


def test_pymc_samples_on_the_cores_asked_for(runs, caplog):
    """``sample.cores: 2``: PyMC runs the two chains in two worker processes (forkserver,
    the model's JAX ops pickled to them) and, seeded alike, draws what one process draws."""
    import logging

    caplog.set_level(logging.INFO, logger="pymc")
    result = runs("exp", "sample.sampler=pymc", *SHORT, "sample.cores=2")
    s = json.loads((result.run_dir / "run.json").read_text())["sampling"]
    assert s["ok"] is True and s["cores"] == 2 and s["mp_ctx"] == "forkserver"
    assert "Multiprocess sampling (2 chains in 2 jobs)" in caplog.text  # PyMC's own word
    one_core = runs("exp", "sample.sampler=pymc", *SHORT)
    assert one_core.info["sampling"]["cores"] == 1
    np.testing.assert_array_equal(_posterior(result).posterior["x"].values,
                                  _posterior(one_core).posterior["x"].values)


# ------------------------------------------------------------------ failures


@pytest.mark.parametrize("sampler", ["nutpie", "pymc"])
def test_failing_solver_is_rejected_and_reported(runs, sampler):
    result = runs(FAILING, f"sample.sampler={sampler}")
    s = result.info["sampling"]
    assert result.info["status"] == "finished"
    assert s["ok"] is True
    post = _posterior(result).posterior
    k = post["k"].values
    assert np.isfinite(k).all() and s["usable_draws"] == s["draws_total"] == 400
    assert abs(k.mean() + 1.0) < 0.1  # the data are exp(-t)
    assert s["failed_solves_in_draws"] == 0 and s["draws_checked"] == 400
    assert s["divergences_in_warmup"] > 0
    if sampler == "nutpie":  # nutpie records where divergences end: failed solves seen
        assert s["nonfinite_logp_divergences_in_warmup"] > 0
        assert s["nonfinite_logp_divergences"] <= s["divergences"]
    else:
        assert s["nonfinite_logp_divergences_in_warmup"] is None


def test_no_usable_draws_is_a_failed_check(runs):
    # max_steps: 1 -> every solve fails -> logp is -inf everywhere: nutpie cannot start
    result = runs(FAILING, "sample.sampler=nutpie", "ode.max_steps=1")
    s = result.info["sampling"]
    assert result.info["status"] == "finished"
    assert s["ok"] is False and result.ok is False
    assert "nutpie raised" in s["message"] and s["message"].strip()
    assert not (result.run_dir / "posterior.nc").exists()
    on_disk = json.loads((result.run_dir / "run.json").read_text())
    assert on_disk["ok"] is False and on_disk["sampling"]["ok"] is False


@pytest.mark.parametrize("sampler", ["nutpie", "pymc"])
def test_ctrl_c_during_sampling_interrupts_the_run(out_dir, monkeypatch, sampler):
    from jaxpm.sampling import SAMPLERS

    chosen = SAMPLERS[sampler]
    original = chosen.draw

    def draw_then_ctrl_c(job):  # Ctrl-C two seconds into the sampler's call, again until it stops
        done = threading.Event()

        def press():
            while not done.wait(2.0):
                os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=press, daemon=True).start()
        try:
            return original(job)
        finally:
            done.set()

    monkeypatch.setattr(chosen, "draw", draw_then_ctrl_c)
    out = out_dir / f"interrupted-{sampler}"
    with pytest.raises(KeyboardInterrupt):
        run("exp", [f"output.dir={out}", "evaluate.backends=[c]", "check_grad.enabled=false",
                    "sample.enabled=true", f"sample.sampler={sampler}", "sample.chains=1",
                    "sample.draws=200000", "sample.tune=100"])
    (folder,) = (out / "exp").iterdir()
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "interrupted"
    assert not (folder / "posterior.nc").exists()
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------ advi, map, output streams


def test_map(runs):
    result = runs("exp", "sample.sampler=map")
    s = result.info["sampling"]
    assert s["ok"] is True and s["draws_total"] == 1
    import pandas as pd

    summary = pd.read_csv(result.run_dir / "summary.csv", index_col=0)
    # the mode of x[0]: d/dx [-x^2/2 - (1 - e^x)^2/2] = 0 at x = 0
    assert summary.loc["x[0]", "map"] == pytest.approx(0.0, abs=1e-3)
    assert summary.loc["x[1]", "map"] > 0 > summary.loc["x[2]", "map"]
    assert np.isfinite(s["map_logp"])


def test_progress_never_writes_to_stdout(out_dir, capfd):
    """Progress bars (pm.fit's goes to stdout by default) must not spoil ``--json``."""
    from jaxpm.progress import Progress

    result = run("exp", [f"output.dir={out_dir / 'progress'}", "evaluate.backends=[c]",
                         "check_grad.enabled=false", "sample.enabled=true", "sample.sampler=advi",
                         "sample.iterations=200", "sample.draws=50"], progress=Progress.stderr())
    captured = capfd.readouterr()
    assert result.info["sampling"]["ok"] is True
    assert captured.out == ""
    assert "sampling with ADVI" in captured.err
    assert {"loss.png", "trace.png", "posterior.png"} <= set(result.info["sampling"]["files"])


TINY_CNN = [
    "cnn.n=50",
    "cnn.holdout=20",
    "cnn.layers=[{conv: 4, kernel: 3}, relu, {avg_pool: 2}, flatten, {dense: 10}]",
    "sample.sampler=advi",
    "sample.iterations=200",
    "sample.draws=30",
]


def test_cnn_accuracy_and_digits(runs):
    result = runs("cnn", *TINY_CNN)
    s = result.info["sampling"]
    assert s["ok"] is True
    assert s["train_images"] == 50 and s["heldout_images"] == 20
    # 200 ADVI steps from flax's start learn 50 digits: over 7 seeds, training accuracy 1.0
    # and held-out 0.90-1.00 of 20 (chance: 0.1), the loss down to 0.55 of its start. A
    # predictive that ignores the fit, mixes up images and labels, or a fit that does not
    # move would fail here.
    assert s["train_accuracy"] >= 0.9 and s["heldout_accuracy"] >= 0.7, s
    assert s["loss_final"] < 0.7 * s["loss_initial"]
    assert s["predictive_draws"] == 20
    assert "digits.png" in s["files"] and (result.run_dir / "digits.png").stat().st_size > 0
    # the weight arrays are too big for the summary table and the trace plot
    assert "Dense_0_kernel" in s["summary_skipped"]
    assert {"trace.png", "posterior.png", "loss.png"} <= set(s["files"])


# ------------------------------------------------------------------ the CNN's fits, for real

SMALL_CNN = [
    "cnn.n=100",
    "cnn.holdout=50",
    "cnn.layers=[{conv: 8, kernel: 3}, relu, {avg_pool: 2}, flatten, {dense: 10}]",
    "sample.draws=10",
]


def test_cnn_advi_as_configured_learns_the_digits(runs):
    """The packaged cnn.yaml's fit (ADVI from flax's initialisation, Adam, small first
    sigmas, a float32 network) on 100 digits: well above chance (0.1) on 50 unseen ones."""
    result = runs("cnn", *SMALL_CNN, "sample.iterations=40")
    s = result.info["sampling"]
    assert s["ok"] is True and s["sampler"] == "advi" and s["iterations"] == 40
    assert (s["start"], s["optimizer"], s["learning_rate"], s["start_sigma"]) == ("flax", "adam", 0.01, 0.01)
    assert s["loss_final"] < 0.95 * s["loss_initial"]
    assert s["train_accuracy"] >= 0.9 and s["heldout_accuracy"] >= 0.7, s
    on_disk = json.loads((result.run_dir / "run.json").read_text())["sampling"]
    assert on_disk["train_images"] == 100 and on_disk["heldout_images"] == 50
    assert on_disk["heldout_accuracy"] == s["heldout_accuracy"]
    assert (result.run_dir / "digits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # evaluation stays in cnn.dtype (float64): the seed numbers do not move
    assert result.info["spec"]["cnn"]["dtype"] == "float64"
    assert result.info["spec"]["cnn"]["inference_dtype"] == "float32"


@pytest.mark.parametrize("start, learns", [("initial", False), ("flax", True)])
def test_cnn_map_needs_a_random_start(runs, start, learns):
    """From all-zero weights the hidden layer gets no gradient: find_MAP stops at once with
    only the last bias moved (the class frequencies). From flax's initialisation it learns."""
    result = runs("cnn", *SMALL_CNN, "sample.sampler=map", f"sample.start={start}", "sample.iterations=30")
    s = result.info["sampling"]
    assert s["ok"] is True and s["start"] == start and s["max_evaluations"] == 30
    assert s["map_evaluations"] <= 30 + 25
    kernel = _posterior(result).posterior["Conv_0_kernel"].values
    if learns:
        assert s["heldout_accuracy"] >= 0.7, s
        assert np.abs(kernel).max() > 0
    else:
        assert s["heldout_accuracy"] <= 0.3, s
        assert np.all(kernel == 0)


# ------------------------------------------------------------------ mass matrix, start, chains


@pytest.mark.parametrize("sampler, mass_matrix", [("nutpie", "low_rank"), ("pymc", "full"), ("numpyro", "full")])
def test_mass_matrix_choice_lands_the_posterior(runs, sampler, mass_matrix):
    result = runs("exp", f"sample.sampler={sampler}", f"sample.mass_matrix={mass_matrix}", *SHORT)
    s = result.info["sampling"]
    assert s["ok"] is True
    x = _posterior(result).posterior["x"].values.reshape(-1, 3)
    se = x.std(axis=0) / np.sqrt(s["min_ess_bulk"])
    np.testing.assert_array_less(np.abs(x.mean(axis=0) - _exact_exp_posterior_means()), 5 * se + 0.05)


@pytest.mark.parametrize("jitter", [False, True])
def test_nutpie_starts_at_initvals(jitter):
    from jaxpm.prepare import prepare
    from jaxpm.sampling.nutpie import compile_nutpie

    prep = prepare("exp", ["sample.enabled=true", "sample.initvals={x: [0.5, 0.6, 0.7]}", f"sample.jitter={jitter}"])
    starts = [compile_nutpie(prep.model, prep.spec.sample)._make_initial_points(seed) for seed in (1, 2)]
    for start in starts:  # x has no transform: the unconstrained start is x itself
        if jitter:
            assert np.all(np.abs(start - [0.5, 0.6, 0.7]) <= 1) and not np.allclose(start, [0.5, 0.6, 0.7])
        else:
            np.testing.assert_array_equal(start, [0.5, 0.6, 0.7])


def test_numpyro_runs_chains_in_parallel_on_host_devices(runs):
    import jax

    assert jax.local_device_count() >= 4  # importing jaxpm asked for them
    s = runs("exp", "sample.sampler=numpyro", *SHORT, *PREDICTIVE_ON).info["sampling"]
    assert s["chain_method"] == "parallel" and s["cores"] == 2


@pytest.mark.parametrize("sampler, fallback", [("numpyro", "sequential"), ("blackjax", "vectorized")])
def test_implicit_solver_chains_fall_back_from_pmap(runs, sampler, fallback):
    """jax.pmap cannot trace a diffrax implicit solve (Kvaerno5) with this JAX and equinox:
    the chains run on one device instead, and run.json says so."""
    result = runs("ode", f"sample.sampler={sampler}", "ode.solver=Kvaerno5", *SHORT)
    s = result.info["sampling"]
    assert s["ok"] is True and s["chain_method"] == fallback and s["cores"] == 1
    assert any("parallel chains failed" in w and "jax.pmap" in w for w in s["warnings"])
    y0 = _posterior(result).posterior["y0"].values
    assert abs(y0.mean() - 1.0) < 3 * y0.std() + 0.1
