"""The ODE experiment: sensitivities, failed solves, and the real-data configs."""

import numpy as np
import pytest

from jaxpm import backends as be
from jaxpm.prepare import prepare

FORWARD_DLOGP_Y0 = 1.15494948  # the post's number: d/dy0 of the discretised solve at y0 = 0


def _evaluate(config, overrides, backends=("c", "jax")):
    prep = prepare(config, overrides)
    return prep, {b: be.evaluate(prep.model, prep.compile(b), prep.point, repeats=1) for b in backends}


@pytest.mark.parametrize("sensitivity", ["forward", "adjoint", "backsolve"])
def test_sensitivities_agree_across_backends(sensitivity):
    prep, res = _evaluate("ode", [f"ode.sensitivity={sensitivity}"])
    assert prep.ctx.built.sensitivity == sensitivity
    c, j = res["c"]["dlogp"]["y0"][0], res["jax"]["dlogp"]["y0"][0]
    assert c == pytest.approx(j, rel=1e-10)
    if sensitivity == "backsolve":  # the continuous adjoint: close to the exact 1.1557216
        assert c == pytest.approx(1.1557216, rel=1e-4)
    else:  # both differentiate the discrete solve
        assert c == pytest.approx(FORWARD_DLOGP_Y0, rel=1e-6)


def test_auto_sensitivity_measures_and_says_so():
    prep = prepare("lotka_volterra", ["check_grad.enabled=false", "ode.sensitivity=auto"])
    built = prep.ctx.built
    assert built.scalar_parameters == 6
    assert built.sensitivity in ("forward", "adjoint", "backsolve")
    (key, (value, reason)), = prep.experiment.auto_choices(built).items()
    assert (key, value) == ("ode.sensitivity", built.sensitivity)
    assert all(f"{m} " in reason and " ms" in reason for m in ("forward", "adjoint", "backsolve")), reason
    one = prepare("ode", ["ode.sensitivity=auto"]).ctx.built  # one parameter: forward, nothing timed
    assert one.sensitivity == "forward" and "1 parameter" in one.sensitivity_reason
    explicit = prepare("ode", ["ode.sensitivity=adjoint"])
    assert explicit.experiment.auto_choices(explicit.ctx.built) == {}


def test_auto_sensitivity_prefers_exact_forward_mode_unless_clearly_slower():
    from jaxpm.experiments.ode.solve import choose_sensitivity

    assert choose_sensitivity({"forward": 1.0, "adjoint": 0.9, "backsolve": 0.85})[0] == "forward"
    assert choose_sensitivity({"forward": 1.0, "adjoint": 0.5, "backsolve": 0.7})[0] == "adjoint"
    assert choose_sensitivity({"forward": float("inf"), "adjoint": 2.0, "backsolve": 1.0})[0] == "backsolve"


def test_failed_solve_is_minus_inf_not_an_exception():
    """max_steps too small: the solve fails; logp is -inf, the gradient finite, no exception."""
    prep, res = _evaluate("ode", ["ode.max_steps=2", "ode.dt0=0.01"])
    for r in res.values():
        assert r["logp"] == -np.inf
        assert r["logp_terms"]["ode_failed"] == -np.inf
        assert np.all(np.isfinite(r["dlogp"]["noise_log__"]))


@pytest.mark.parametrize("config", ["lotka_volterra", "pharmacokinetics"])
def test_real_data_configs_agree_on_every_backend(config):
    prep, res = _evaluate(config, [], backends=("c", "numba", "jax"))
    cmp = be.compare(res, rtol=1e-8, atol=1e-10)
    assert cmp["ok"], cmp["disagreements"]
    assert np.isfinite(res["c"]["logp"])

