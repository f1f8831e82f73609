"""Predictive checks and model comparison (issue 15): the groups a sampled run keeps,
their numbers, the ``predictive:`` switches, run.json's ``loo``, and ``jaxpm compare``.

The numbers are checked without sampling (a model and a few fixed draws): the pointwise
log-likelihood against ``pm.compute_log_likelihood``, the draws against the model's
distributions, the keys against the seed. The run folders come from short runs, each
made once per module and shared.
"""

from __future__ import annotations

import io
import json
import re
from functools import cache

import arviz as az
import numpy as np
import pymc as pm
import pytest
import xarray as xr
from typer.testing import CliRunner

from jaxpm.cli import app
from jaxpm.model import build_model
from jaxpm.predictive import heldout_elpd, loo, loo_info, predictive_groups, thin
from jaxpm.runner import run

SHORT = ["sample.draws=150", "sample.tune=150", "sample.chains=2"]
TINY_CNN = ["cnn.n=50", "cnn.holdout=30", "sample.draws=20", "evaluate.backends=[jax]", "evaluate.repeats=1",
            "cnn.layers=[{conv: 4, kernel: 3}, relu, {avg_pool: 2}, flatten, {dense: 10}]"]
COMPARE_KEYS = {"run_dir", "name", "rank", "elpd_loo", "se", "elpd_diff", "dse", "p_loo", "weight", "pareto_k_over_0.7"}
PNG = b"\x89PNG\r\n\x1a\n"


def _prior_as_posterior(model, chains=2, draws=10, seed=3):
    """Draws of the free variables from the prior, shaped like a sampler's posterior."""
    prior = pm.sample_prior_predictive(chains * draws, model=model, random_seed=seed).prior
    names = [v.name for v in model.free_RVs]
    return xr.Dataset(
        {n: (("chain", "draw", *prior[n].dims[2:]), prior[n].values.reshape(chains, draws, *prior[n].shape[2:]))
         for n in names},
        coords={"chain": np.arange(chains), "draw": np.arange(draws)},
    )


def _transformed_model():
    """Plain PyMC: transforms (log, interval), two observed variables, named dims."""
    with pm.Model(coords={"obs": ["a", "b", "c"]}) as model:
        mu = pm.Normal("mu", 0, 1)
        sigma = pm.HalfNormal("sigma", 1)
        p = pm.Beta("p", 2, 2)
        pm.Normal("y", mu, sigma, observed=[0.1, -0.4, 1.2], dims="obs")
        pm.Binomial("k", n=10, p=p, observed=[3, 7])
    return model


# ----------------------------------------------------------------------- the numbers


@pytest.mark.parametrize("which", ["ode", "exp", "plain"])
def test_log_likelihood_matches_pymc(which):
    """The JAX program's pointwise log-likelihood is PyMC's, to 1e-10."""
    model = _transformed_model() if which == "plain" else build_model(which)
    posterior = _prior_as_posterior(model)
    ours = predictive_groups(model, posterior, seed=1, posterior_predictive=False).groups["log_likelihood"]
    theirs = pm.compute_log_likelihood(az.InferenceData(posterior=posterior), model=model,
                                       extend_inferencedata=False, progressbar=False)
    assert set(ours.data_vars) == set(theirs.data_vars) == {v.name for v in model.observed_RVs}
    for name in theirs.data_vars:
        assert ours[name].dims == theirs[name].dims
        np.testing.assert_allclose(ours[name].values, theirs[name].values, rtol=0, atol=1e-10)
        assert np.isfinite(ours[name].values).all()


def test_posterior_predictive_draws_follow_the_likelihood():
    """exp.yaml: z ~ Normal(exp(x), 1). At fixed draws of x, z - exp(x) is standard normal."""
    model = build_model("exp")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 1000, 3))
    posterior = xr.Dataset({"x": (("chain", "draw", "x_dim_0"), x)},
                           coords={"chain": [0, 1], "draw": np.arange(1000)})
    out = predictive_groups(model, posterior, seed=7, log_likelihood=False)
    z = out.groups["posterior_predictive"]["z"].values
    assert z.shape == (2, 1000, 3) and out.backends == {"posterior_predictive": "jax"}
    noise = (z - np.exp(x)).ravel()
    assert abs(noise.mean()) < 5 / np.sqrt(noise.size)
    assert abs(noise.std() - 1) < 0.05


def test_prior_draws_follow_the_priors():
    """theta ~ TruncatedNormal(mu, sigma, lower=0) as in lotka_volterra.yaml, drawn in JAX
    (jaxpm registers the sampler PyTensor lacks), and the prior predictive through it."""
    from scipy import stats

    mu, sd = np.array([1, 0.05, 1, 0.05]), np.array([0.5, 0.05, 0.5, 0.05])
    with pm.Model() as model:
        theta = pm.TruncatedNormal("theta", mu=mu, sigma=sd, lower=0, shape=4)
        pm.LogNormal("y", mu=pm.math.log(theta), sigma=0.1, observed=[1.0, 0.1, 1.0, 0.1])
    out = predictive_groups(model, _prior_as_posterior(model, 1, 2), seed=5, posterior_predictive=False,
                            log_likelihood=False, prior_draws=4000)
    assert out.backends == {"prior": "jax", "prior_predictive": "jax"}
    theta = out.groups["prior"]["theta"].values.reshape(-1, 4)
    assert theta.min() >= 0
    expected = stats.truncnorm(-mu / sd, np.inf, loc=mu, scale=sd)
    np.testing.assert_allclose(theta.mean(0), expected.mean(), rtol=0.05)
    np.testing.assert_allclose(theta.std(0), expected.std(), rtol=0.05)
    y = out.groups["prior_predictive"]["y"].values.reshape(-1, 4)
    np.testing.assert_allclose(np.median(y / theta, axis=0), 1, atol=0.02)  # log-normal errors around theta


def test_draws_depend_on_the_seed_only():
    """Same seed, same draws, whatever the batch size or thinning; another seed, others."""
    model = build_model("exp")
    posterior = _prior_as_posterior(model, 2, 12)
    first = predictive_groups(model, posterior, seed=11, prior_draws=9).groups
    batched = predictive_groups(model, posterior, seed=11, prior_draws=9, batch=5).groups
    other = predictive_groups(model, posterior, seed=12, prior_draws=9).groups
    for group in ("posterior_predictive", "prior", "prior_predictive", "log_likelihood"):
        for name in first[group].data_vars:
            np.testing.assert_array_equal(first[group][name].values, batched[group][name].values)
    assert not np.array_equal(first["posterior_predictive"]["z"].values, other["posterior_predictive"]["z"].values)
    assert not np.array_equal(first["prior"]["x"].values, other["prior"]["x"].values)
    thinned = thin(posterior, 8)
    assert (thinned.sizes["chain"], thinned.sizes["draw"]) == (2, 4)
    part = predictive_groups(model, thinned, seed=11, log_likelihood=False).groups["posterior_predictive"]["z"]
    np.testing.assert_array_equal(part.values, first["posterior_predictive"]["z"].sel(draw=thinned["draw"]).values)


def test_a_distribution_without_a_jax_sampler_falls_back_to_pymc():
    with pm.Model() as model:
        lam = pm.HalfNormal("lam", 1)
        pm.Weibull("y", alpha=2, beta=lam, observed=[0.5, 1.0, 1.5])
    posterior = _prior_as_posterior(model, 1, 5)
    out = predictive_groups(model, posterior, seed=1, prior_draws=4)
    assert out.backends == {"log_likelihood": "jax", "posterior_predictive": "pymc", "prior": "pymc",
                            "prior_predictive": "pymc"}
    assert any("weibull" in note for note in out.notes)
    assert out.groups["posterior_predictive"]["y"].shape == (1, 5, 3)
    assert out.groups["prior_predictive"]["y"].shape == (1, 4, 3)
    theirs = pm.compute_log_likelihood(az.InferenceData(posterior=posterior), model=model,
                                       extend_inferencedata=False, progressbar=False)
    np.testing.assert_allclose(out.groups["log_likelihood"]["y"].values, theirs["y"].values, atol=1e-10)


def test_loo_pools_observed_variables_and_counts_bad_pareto_k():
    rng = np.random.default_rng(1)
    ll = rng.normal(-1, 0.05, size=(2, 200, 4))
    ll[..., 3] = rng.standard_cauchy(size=(2, 200)) * 40 - 50  # one observation no draw predicts alike
    idata = az.InferenceData(
        posterior=xr.Dataset({"a": (("chain", "draw"), rng.normal(size=(2, 200)))}),
        log_likelihood=xr.Dataset({"y": (("chain", "draw", "y_dim_0"), ll[..., :3]),
                                   "w": (("chain", "draw"), ll[..., 3])}))
    info = loo_info(loo(idata))
    assert info["n_observations"] == 4 and info["n_draws"] == 400
    assert info["pareto_k_over_0.7"] == 1
    one = az.InferenceData(log_likelihood=xr.Dataset({"y": (("chain", "draw", "y_dim_0"), ll[:1, :1, :3])}))
    with pytest.raises(ValueError, match="needs posterior draws"):
        loo(one)


def test_heldout_elpd_is_the_log_mean_density():
    ll = np.log(np.array([[[0.2, 0.9], [0.4, 0.7]]]))
    e = heldout_elpd(ll)
    np.testing.assert_allclose(e["loo_i"].values, np.log([0.3, 0.8]))
    assert float(e["elpd_loo"]) == pytest.approx(np.log(0.3) + np.log(0.8))
    assert "pareto_k" not in e and np.isnan(e["p_loo"])


# ----------------------------------------------------------------------- run folders

# The exp runs below, each made once: what they switch off, and their likelihood.
EXP_NO_LL = ("exp", *SHORT, "predictive.prior=false", "predictive.log_likelihood=false")
# sigma 0.05: each observation has its own parameter, pinned by it; leaving one out moves
# that parameter's posterior far, which PSIS cannot follow (Pareto k above 0.7)
EXP_NO_PP = ("exp", *SHORT, "predictive.posterior=false", "predictive.draws=50", "predictive.prior_draws=30",
             "likelihood.z.sigma=0.05")
EXP_OTHER_DATA = ("exp", *SHORT, "predictive.prior=false", "likelihood.z.observed=[1, 2.5, 0]")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``runs(config, *overrides)``: a finished sampled run, made once per module, with what
    it printed on the terminal as ``terminal[run_dir]``."""
    from rich.console import Console

    from jaxpm.progress import Progress

    out = tmp_path_factory.mktemp("runs")

    @cache
    def go(config, *overrides):
        base = [f"output.dir={out}", "evaluate.backends=[c]", "check_grad.enabled=false", "sample.enabled=true"]
        console = Console(record=True, width=400, file=io.StringIO())
        result = run(config, [*base, *overrides], progress=Progress(console))
        TERMINAL[result.run_dir] = console.export_text()
        return result

    return go


TERMINAL: dict = {}


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_sampled_run_keeps_every_group_loo_and_figures(runs):
    result = runs("ode", *SHORT)
    folder = result.run_dir
    idata = az.from_netcdf(folder / "posterior.nc")
    assert {"posterior", "observed_data", "posterior_predictive", "log_likelihood", "prior",
            "prior_predictive"} <= set(idata.groups())
    assert idata.posterior_predictive["llike"].shape == (2, 150, 4)
    assert idata.log_likelihood["llike"].shape == (2, 150, 4)
    assert idata.prior_predictive["llike"].shape == (1, 300, 4)  # prior draws: as many as the posterior's
    assert set(idata.prior.data_vars) == {"y0", "noise"}
    np.testing.assert_allclose(idata.observed_data["llike"].values, [1, 0.367, 0.135, 0.049])
    # the stored log-likelihood is PyMC's at the stored draws
    theirs = pm.compute_log_likelihood(idata, model=build_model("ode"), extend_inferencedata=False,
                                       progressbar=False)
    np.testing.assert_allclose(idata.log_likelihood["llike"].values, theirs["llike"].values, atol=1e-10)

    on_disk = json.loads((folder / "run.json").read_text())
    loo_block = on_disk["loo"]
    assert set(loo_block) == {"elpd_loo", "se", "p_loo", "pareto_k_over_0.7", "n_observations", "n_draws", "scale"}
    assert loo_block["n_observations"] == 4 and loo_block["n_draws"] == 300
    assert loo_block["elpd_loo"] == pytest.approx(float(az.loo(idata)["elpd_loo"]))
    predictive = on_disk["sampling"]["predictive"]
    assert predictive["backends"] == {g: "jax" for g in ("posterior_predictive", "log_likelihood", "prior",
                                                         "prior_predictive")}
    assert predictive["draws"] == 300 and predictive["prior_draws"] == 300
    for name in ("ppc.png", "prior_ppc.png"):
        assert (folder / name).read_bytes()[:8] == PNG
        assert name in on_disk["files"]


def test_predictive_switches(runs):
    result = runs(*EXP_NO_LL)
    idata = az.from_netcdf(result.run_dir / "posterior.nc")
    assert "posterior_predictive" in idata.groups()
    assert not {"log_likelihood", "prior", "prior_predictive"} & set(idata.groups())
    assert result.info["loo"] is None
    assert (result.run_dir / "ppc.png").exists() and not (result.run_dir / "prior_ppc.png").exists()

    result = runs(*EXP_NO_PP)
    idata = az.from_netcdf(result.run_dir / "posterior.nc")
    assert "posterior_predictive" not in idata.groups()
    assert idata.log_likelihood["z"].shape == (2, 25, 3)  # 50 draws, thinned within each chain
    assert idata.prior_predictive["z"].shape == (1, 30, 3)
    assert result.info["loo"]["n_draws"] == 50
    assert not (result.run_dir / "ppc.png").exists() and (result.run_dir / "prior_ppc.png").exists()


def test_pareto_k_above_07_is_a_warning_on_the_terminal(runs):
    result = runs(*EXP_NO_PP)
    bad = result.info["loo"]["pareto_k_over_0.7"]
    assert bad > 0
    assert f"warning: PSIS-LOO: {bad} of 3 observations have Pareto k > 0.7" in TERMINAL[result.run_dir]
    assert any("Pareto k > 0.7" in w for w in result.info["sampling"]["warnings"])
    ode = runs("ode", *SHORT)  # a short run: some k may be high; the warning is there exactly when one is
    assert ("warning: PSIS-LOO" in TERMINAL[ode.run_dir]) == (ode.info["loo"]["pareto_k_over_0.7"] > 0)


def test_compare_ranks_the_worse_model_lower(runs, tmp_path):
    good = runs("ode", *SHORT).run_dir
    worse = runs("ode", *SHORT, "likelihood.llike.mu=y0").run_dir  # a constant: ignores the decay
    out = tmp_path / "cmp"
    result = invoke("compare", worse, good, "--json", "--out", out)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"runs", "scale"} and doc["scale"] == "log"
    assert [set(r) for r in doc["runs"]] == [COMPARE_KEYS, COMPARE_KEYS]
    best, second = doc["runs"]
    assert (best["run_dir"], best["rank"], second["run_dir"], second["rank"]) == (str(good), 0, str(worse), 1)
    assert best["elpd_loo"] > second["elpd_loo"] and second["elpd_diff"] > 0 and best["elpd_diff"] == 0
    assert best["weight"] + second["weight"] == pytest.approx(1)
    assert best["elpd_loo"] == pytest.approx(json.loads((good / "run.json").read_text())["loo"]["elpd_loo"])
    assert json.loads((out / "compare.json").read_text()) == doc
    assert (out / "compare.png").read_bytes()[:8] == PNG

    table = invoke("compare", worse, good)
    assert table.exit_code == 0
    assert "PSIS-LOO model comparison" in table.stdout and "elpd_loo" in table.stdout
    assert re.findall(r"^│\s+(\d) │", table.stdout, flags=re.M) == ["0", "1"]  # best first
    assert f"{good}" in table.stdout.replace("\n", "")


def _one_error_line(result, path, key, *fragments):
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {path}: {key}: " if key else f"error: {path}: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


def test_compare_refuses_runs_on_different_data(runs, tmp_path):
    first, other = runs(*EXP_NO_PP).run_dir, runs(*EXP_OTHER_DATA).run_dir
    result = invoke("compare", first, other, "--out", tmp_path / "cmp")
    _one_error_line(result, other, "observed_data.z", "1 of 3 values differ", "same data")
    assert not (tmp_path / "cmp").exists()  # nothing half-written
    result = invoke("compare", runs("ode", *SHORT).run_dir, first)
    _one_error_line(result, first, "observed_data.llike", "not both")


def test_compare_without_a_log_likelihood_says_how_to_get_one(runs):
    without = runs(*EXP_NO_LL).run_dir
    result = invoke("compare", runs(*EXP_NO_PP).run_dir, without)
    _one_error_line(result, without, "log_likelihood", "no pointwise log-likelihood",
                    f"jaxpm run {without / 'config.yaml'} --set predictive.log_likelihood=true")


def test_compare_bad_folders(runs, tmp_path):
    good = runs("ode", *SHORT).run_dir
    _one_error_line(invoke("compare", good, tmp_path), tmp_path, "", "not a run folder (no run.json)")
    _one_error_line(invoke("compare", good, tmp_path / "nope"), tmp_path / "nope", "", "no such folder")
    _one_error_line(invoke("compare", good), "compare", "", "at least two run folders")
    unsampled = run("exp", [f"output.dir={tmp_path}", "evaluate.backends=[c]", "check_grad.enabled=false"]).run_dir
    _one_error_line(invoke("compare", good, unsampled), unsampled, "posterior.nc", "not sampled", "--sample")
    one_point = runs("exp", "sample.sampler=map").run_dir
    _one_error_line(invoke("compare", runs(*EXP_NO_PP).run_dir, one_point), one_point, "log_likelihood",
                    "PSIS-LOO needs posterior draws; this run has 1")


# ----------------------------------------------------------------------- the CNN's held-out digits


def test_cnn_fits_keep_the_heldout_predictive_and_compare_on_it(runs):
    advi = runs("cnn", *TINY_CNN, "sample.iterations=100")
    bad_map = runs("cnn", *TINY_CNN, "sample.sampler=map", "sample.iterations=2")  # barely moved from flax's start
    for result in (advi, bad_map):
        s = result.info["sampling"]
        idata = az.from_netcdf(result.run_dir / "posterior.nc")
        n_draws = idata.posterior.sizes["draw"]
        assert {"heldout_observed_data", "heldout_log_likelihood", "heldout_predictive", "log_likelihood",
                "posterior_predictive", "prior_predictive"} <= set(idata.groups())
        labels = idata.heldout_observed_data["label"].values
        probs = idata.heldout_predictive["class_probability"].values
        ll = idata.heldout_log_likelihood["label"].values
        assert labels.shape == (30,) and probs.shape == (1, n_draws, 30, 10) and ll.shape == (1, n_draws, 30)
        np.testing.assert_allclose(probs.sum(-1), 1, rtol=1e-6)
        np.testing.assert_allclose(ll, np.log(np.take_along_axis(probs, labels[None, None, :, None], -1)[..., 0]),
                                   rtol=1e-6)
        assert s["predictive"]["heldout"]["n_observations"] == 30
        # the prior keeps no weight array of more than 1000 numbers (Dense_0_kernel: 676 x 10)
        assert s["predictive"]["prior_left_out"] == ["Dense_0_kernel"]
        assert "Dense_0_kernel" not in idata.prior and "Conv_0_kernel" in idata.prior
        assert "heldout_accuracy" in s and {"digits.png", "ppc.png", "prior_ppc.png"} <= set(s["files"])
    assert advi.info["loo"]["n_draws"] == 20
    assert bad_map.info["loo"] is None  # one draw: nothing for PSIS to reweight
    assert bad_map.info["sampling"]["predictive"]["loo_skipped"] == "PSIS-LOO needs posterior draws; this run has 1"
    result = invoke("compare", bad_map.run_dir, advi.run_dir, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [r["run_dir"] for r in doc["runs"]] == [str(advi.run_dir), str(bad_map.run_dir)]
    assert all(r["pareto_k_over_0.7"] is None for r in doc["runs"])  # exact held-out elpd: no PSIS
    assert doc["runs"][0]["elpd_loo"] == pytest.approx(advi.info["sampling"]["predictive"]["heldout"]["elpd"])
