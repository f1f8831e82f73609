"""``sample.start: mode`` (jaxpm.starts): the mode search, the Laplace spread, the runs."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest

from jaxpm.sampling import Sample
from jaxpm.sampling.starts import mode_start

SIGMA = 0.5
WEIGHTS = (0.3, 0.7)  # the mode at +3 is the main one, by log(0.7 / 0.3) = 0.847


@pytest.fixture(scope="module")
def two_modes():
    """x: a mixture with modes at -3 and +3 (no transform); s: LogNormal(0, 0.5), whose
    unconstrained log s is Normal(0, 0.5) (a log transform to undo)."""
    with pm.Model() as model:
        pm.NormalMixture("x", w=np.array(WEIGHTS), mu=np.array([-3.0, 3.0]), sigma=SIGMA)
        pm.LogNormal("s", 0.0, SIGMA)
    return model


def _sample(**kw):
    return Sample(enabled=True, sampler="numpyro", start="mode", initvals={"x": 0.0}, **kw)


def test_finds_both_modes_and_starts_at_the_main_one(two_modes):
    found = mode_start(two_modes, _sample(chains=4), seed=1)
    modes = found.info["modes"]
    assert len(modes) == 2 and sum(m["restarts"] for m in modes) == 16
    assert modes[0]["logp"] - modes[1]["logp"] == pytest.approx(np.log(WEIGHTS[1] / WEIGHTS[0]), abs=1e-5)
    np.testing.assert_allclose(found.mode, [3.0, 0.0], atol=1e-5)  # unconstrained: x, log s
    assert found.logp == modes[0]["logp"]


def test_chains_start_at_laplace_draws(two_modes):
    found = mode_start(two_modes, _sample(chains=6), seed=2)
    assert found.info["spread"] == "laplace"
    # both directions are (to exp(-72)) normal with sd 0.5: the finite-difference Hessian says so
    np.testing.assert_allclose(found.laplace_sd, [SIGMA, SIGMA], rtol=1e-4)
    flat = np.array(found.flat)
    assert flat.shape == (6, 2) and len({tuple(x) for x in flat}) == 6
    assert np.all(np.abs(flat - found.mode) < 6 * SIGMA)
    # the constrained points pm.sample takes: s = exp(log s)
    for x, point in zip(flat, found.points, strict=False):
        assert point["x"] == pytest.approx(x[0]) and point["s"] == pytest.approx(np.exp(x[1]))
    # nutpie asks once per chain with a random seed: each call gets the next start
    handed = [found.flat_start(seed) for seed in (7, 7, 13, 2**64 - 1, 5, 0)]
    assert all(a is b for a, b in zip(handed, found.flat, strict=True))


def test_without_jitter_every_chain_starts_at_the_mode(two_modes):
    found = mode_start(two_modes, _sample(chains=3, jitter=False), seed=3)
    assert found.info["spread"].startswith("none") and found.laplace_sd is None
    for x in found.flat:
        np.testing.assert_array_equal(x, found.mode)


def test_no_finite_logp_anywhere_is_an_error():
    with pm.Model() as model:
        x = pm.Normal("x")
        pm.Potential("impossible", pt.log(-1.0 - x**2))  # NaN everywhere
    with pytest.raises(RuntimeError, match="no finite logp from 4 jittered starts"):
        mode_start(model, Sample(enabled=True, sampler="numpyro", start="mode", restarts=4), seed=0)


def test_lotka_volterra_has_minor_modes_and_the_search_finds_the_main_one():
    """The reason the config starts at the mode: from jittered starts around the prior
    means, L-BFGS ends in poor fits more often than in the main mode."""
    from jaxpm.prepare import prepare

    prep = prepare("lotka_volterra")
    found = mode_start(prep.model, prep.spec.sample, seed=prep.spec.seed)
    modes = found.info["modes"]
    assert len(modes) >= 2 and modes[0]["logp"] - modes[-1]["logp"] > 20
    theta = np.array([p["theta"] for p in found.points])
    # Carpenter's Stan case study: theta = (0.55, 0.028, 0.80, 0.024) at the posterior mean
    np.testing.assert_allclose(theta.mean(0), [0.55, 0.028, 0.80, 0.024], rtol=0.15)
    assert found.info["spread"] == "laplace" and len(found.points) == prep.spec.sample.chains


@pytest.mark.parametrize("sampler", ["numpyro", "nutpie", "pymc"])
def test_runs_start_at_the_mode_and_say_so(tmp_path, sampler):
    from jaxpm.runner import run

    result = run("exp", [f"output.dir={tmp_path}", "evaluate.backends=[c]", "sample.enabled=true",
                         f"sample.sampler={sampler}", "sample.start=mode", "sample.draws=100",
                         "sample.tune=100", "sample.chains=2", "sample.progressbar=false"])
    s = result.info["sampling"]
    assert s["ok"] is True and s["start"] == "mode"
    assert s["start_mode"]["spread"] == "laplace" and s["start_mode"]["finite"] == s["start_mode"]["converged"] == 16
    assert s["wall_seconds"] >= s["start_mode"]["seconds"]
