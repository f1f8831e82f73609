"""``auto``: the sampler settings chosen from the model, each with its reason; the user's win.

What is chosen for which model (jaxpm.sampling.auto.resolve, no sampling), the initial
point moved where PyMC's is atypical, the run.json ``auto`` block and the config.yaml that
reruns what ran, ``jaxpm run --explain``, and numpyro's progress shown without its
compiled-in bar.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
import yaml
from typer.testing import CliRunner

from jaxpm.cli import app
from jaxpm.prepare import prepare
from jaxpm.sampling.auto import FIT_ABOVE, resolve
from jaxpm.sampling.starts import typical_point

DATA = Path(__file__).parents[1] / "configs" / "data"


def _resolve(config, *overrides):
    prep = prepare(config, ["sample.enabled=true", *overrides])
    s = prep.spec.sample
    return prep, resolve(prep.inference_model(), s, experiment=prep.experiment, section=prep.section,
                         seed=prep.spec.seed)


def test_lotka_volterra_as_a_user_writes_it_gets_what_the_tuned_config_carries():
    _, r = _resolve("lotka_volterra", "sample.sampler=auto", "sample.mass_matrix=auto", "sample.start=auto",
                    "sample.initvals={}", "sample.target_accept=auto")
    s = r.settings
    assert (s.sampler, s.mass_matrix, s.start) == ("numpyro", "full", "mode")
    assert "8 parameters" in r.choices["sample.mass_matrix"].reason
    assert s.target_accept == 0.9 and "ode_solve" in r.choices["sample.target_accept"].reason
    assert "ode_solve" in r.choices["sample.start"].reason
    # PyMC starts the predation rates at lower + 1 = 1, twenty times their prior mean
    theta = r.initial["theta"]
    assert theta[0] == 1.0 and theta[2] == 1.0 and 0.03 < theta[1] < 0.09 and 0.03 < theta[3] < 0.09
    assert "outside the prior's central 99%" in r.choices["initial point: theta"].reason


def test_a_solver_jax_pmap_cannot_trace_gets_nutpie():
    _, r = _resolve("pharmacokinetics", "sample.sampler=auto", "ode.sensitivity=forward")
    assert r.settings.sampler == "nutpie" and r.settings.mass_matrix == "low_rank"
    assert "jax.pmap" in r.choices["sample.sampler"].reason


def test_settings_the_user_writes_win():
    _, r = _resolve("ode", "sample.sampler=auto", "sample.mass_matrix=full", "sample.start=initial",
                    "sample.initvals={y0: 0.5}", "sample.target_accept=0.85")
    assert r.settings.mass_matrix == "full" and r.settings.start == "initial" and r.settings.target_accept == 0.85
    assert r.settings.sampler in ("numpyro", "pymc", "blackjax")  # one that has a full mass matrix
    assert set(r.choices) == {"sample.sampler"}
    _, r = _resolve("ode", "sample.sampler=pymc")
    assert r.settings.sampler == "pymc" and r.settings.mass_matrix == "full" and "sample.sampler" not in r.choices


def test_exp_has_no_solver_so_chains_start_at_the_initial_point():
    _, r = _resolve("exp", "sample.sampler=auto")
    assert r.settings.start == "initial" and "no solver" in r.choices["sample.start"].reason
    assert r.settings.target_accept == 0.8 and "PyMC's default" in r.choices["sample.target_accept"].reason
    assert r.initial == {}  # PyMC's Normal(0, 1) start is typical


def test_the_cnn_gets_a_fit_from_its_own_start():
    _, r = _resolve("cnn", "sample.sampler=auto", "sample.start=auto", "sample.iterations=auto",
                    "cnn.n=20", "cnn.holdout=0")
    assert r.settings.sampler == "advi" and r.settings.start == "flax"
    assert f"more than {FIT_ABOVE:,}" in r.choices["sample.sampler"].reason
    n = r.settings.iterations
    assert isinstance(n, int) and 40 <= n <= 20000 and "ms per logp+dlogp" in r.choices["sample.iterations"].reason


def test_typical_point_moves_only_atypical_starts():
    with pm.Model() as model:
        pm.TruncatedNormal("rate", mu=0.05, sigma=0.05, lower=0)  # PyMC: lower + 1
        pm.Normal("z", 0, 1)
        pm.HalfNormal("s", 1)
    starts, reasons = typical_point(model, seed=1)
    assert set(starts) == {"rate"} and 0.03 < float(starts["rate"]) < 0.09
    assert "PyMC's start 1 lies outside" in reasons["rate"]


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_explain_says_what_auto_would_choose_and_writes_nothing(tmp_path):
    result = invoke("run", "exp", "--explain", "--json", "--out", tmp_path, "--set", "sample.sampler=auto")
    assert result.exit_code == 0, result.stderr
    choices = json.loads(result.stdout)["auto"]
    assert choices["sample.start"]["value"] == "initial" and choices["sample.sampler"]["reason"]
    assert not any(tmp_path.iterdir())


def test_a_run_records_its_choices_and_its_config_reruns_them(tmp_path):
    result = invoke("run", "exp", "--json", "--out", tmp_path, "--backend", "c", "--set", "check_grad.enabled=false",
                    "--sample", "--set", "sample.sampler=auto", "--set", "sample.draws=50", "--set", "sample.tune=50",
                    "--set", "sample.chains=2")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    chosen = info["auto"]["sample.sampler"]["value"]
    assert info["sampling"]["sampler"] == chosen and info["sampling"]["auto"]["sample.sampler"]["value"] == chosen
    assert "auto: sample.sampler = " in result.stderr  # said before sampling starts
    config = yaml.safe_load((Path(info["run_dir"]) / "config.yaml").read_text())
    assert config["sample"]["sampler"] == chosen and config["sample"]["start"] == "initial"
    assert config["sample"]["mass_matrix"] == info["sampling"]["mass_matrix"] != "auto"


def test_numpyro_shows_progress_without_its_compiled_in_bar(tmp_path):
    result = invoke("run", "exp", "--json", "--out", tmp_path, "--backend", "c", "--set", "check_grad.enabled=false",
                    "--sample", "--set", "sample.sampler=numpyro", "--set", "sample.draws=50",
                    "--set", "sample.tune=50", "--set", "sample.chains=2")
    assert result.exit_code == 0, result.stderr
    assert "sampling with numpyro (its own bar would stop JAX caching it)" in result.stderr
    assert np.isfinite(json.loads(result.stdout)["sampling"]["min_ess_bulk"])


@pytest.mark.parametrize("name", ["lotka_volterra"])
def test_a_user_written_ode_config_samples_with_the_defaults(name, tmp_path):
    """The Lotka-Volterra model with nothing but ``sample: {enabled: true}`` (few draws):
    auto's choices run end to end and land in the main mode."""
    raw = yaml.safe_load((Path(__file__).parents[1] / "configs" / f"{name}.yaml").read_text())
    raw["sample"] = {"enabled": True, "draws": 150, "tune": 150, "chains": 2}
    raw.pop("check_grad")
    raw["ode"].pop("sensitivity")
    raw["ode"]["saveat"]["file"] = str(DATA / "hudson_lynx_hare.csv")
    raw["likelihood"]["pelts"]["observed"]["file"] = str(DATA / "hudson_lynx_hare.csv")
    raw["evaluate"] = {"backends": ["c"]}
    raw["check_grad"] = {"enabled": False}
    raw["predictive"] = {"prior": False, "posterior": False, "log_likelihood": False}  # tested elsewhere
    config = tmp_path / "lv.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = invoke("run", config, "--json", "--out", tmp_path)
    assert result.exit_code == 0, result.stderr[-3000:]
    s = json.loads(result.stdout)["sampling"]
    assert (s["sampler"], s["mass_matrix"], s["start"]) == ("numpyro", "full", "mode")
    assert s["divergences"] == 0 and s["max_r_hat"] < 1.05
    assert s["start_mode"]["modes"][0]["logp"] == pytest.approx(s["start_mode"]["logp"])
