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


def test_auto_sensitivity_is_forward_for_few_parameters():
    prep = prepare("lotka_volterra", ["check_grad.enabled=false", "ode.sensitivity=auto"])
    assert prep.ctx.built.sensitivity == "forward"
    assert prep.ctx.built.scalar_parameters == 6


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

