"""Command-line options and config keys that the README and SPEC.md document, each run
so that the test fails when the feature breaks:

- ``run --sample`` / ``--no-sample`` override ``sample.enabled`` both ways;
- exit status 130: a real ``jaxpm run`` process sent SIGINT while it samples;
- ``--debug`` on ``compare-backends``, ``check-grad`` and ``bench`` shows a traceback;
- ``deterministics`` (one of priors only, one of an experiment's output, one of others);
- ``ode.vector_field`` as ``package.module:function`` and as ``file.py:function`` next
  to the config;
- ``evaluate.point`` as a mapping; ``evaluate.rtol`` and ``evaluate.atol`` deciding
  whether a real disagreement between backends passes;
- ``check_grad.eps``, ``check_grad.atol`` and ``check_grad.set`` reaching the checks;
- ``observed: {file: x.npy}``; ``cnn.source: npz`` through a config file;
  ``cnn.dtype: float32`` evaluation.

Elsewhere: ``sample.cores`` and ``sample.target_accept`` in ``test_sampling.py`` (they
share its runs), ``JAXPM_HOST_DEVICES`` in ``test_import_settings.py``, ``jaxpm bench``
without a config in ``test_bench.py``.

Everything is small: the ``exp`` and ``ode`` configs on the C backend, tiny CNNs, one
chain of 50 draws where a sampler must run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats
from support import invoke, invoke_json

from jaxpm import backends as be
from jaxpm.draws import at_draws
from jaxpm.evaluation import evaluate
from jaxpm.model import build_model
from jaxpm.prepare import prepare
from jaxpm.spec import load_spec

HERE = Path(__file__).parent
CONFIGS = HERE / "configs"
PLUGINS = CONFIGS / "plugins"
PACKAGED = Path(__file__).parents[1] / "configs"
EXP = yaml.safe_load((PACKAGED / "exp.yaml").read_text())
ODE = yaml.safe_load((PACKAGED / "ode.yaml").read_text())
EXP_OBSERVED = np.array(EXP["likelihood"]["z"]["observed"], dtype=float)
TINY_CNN = {"n": 8, "holdout": 0, "layers": [{"conv": 2, "kernel": 3}, "relu", {"avg_pool": 2}, "flatten",
                                              {"dense": 10}]}
CHEAP_SAMPLING = ["--set", "sample.sampler=pymc", "--set", "sample.draws=50", "--set", "sample.tune=50",
                  "--set", "sample.chains=1", "--set", "check_grad.enabled=false", "--backend", "c"]


def write_config(path: Path, config: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def exp_logp(x, observed=EXP_OBSERVED):
    """The exp model's logp terms and gradient at ``x``, by hand: x ~ N(0, 1), z ~ N(exp(x), 1)."""
    x = np.asarray(x, dtype=float)
    terms = {"x": stats.norm.logpdf(x), "z": stats.norm.logpdf(observed, np.exp(x), 1.0)}
    dlogp = -x + (observed - np.exp(x)) * np.exp(x)
    return terms, dlogp


# ------------------------------------------------------------------ run --sample / --no-sample


def test_run_sample_flag_turns_sampling_on(tmp_path):
    assert load_spec("exp").sample.enabled is False  # the packaged config does not sample
    info = invoke_json("run", "exp", "--out", tmp_path, *CHEAP_SAMPLING, "--sample")
    assert info["spec"]["sample"]["enabled"] is True
    s = info["sampling"]
    assert s["ok"] is True and s["sampler"] == "pymc" and s["draws_total"] == 50
    assert "posterior.nc" in info["files"] and (Path(info["run_dir"]) / "posterior.nc").is_file()


def test_run_no_sample_flag_turns_sampling_off(tmp_path):
    config = write_config(tmp_path / "sampled_exp.yaml", {**EXP, "sample": {**EXP["sample"], "enabled": True}})
    assert load_spec(config).sample.enabled is True  # this config samples unless told not to
    info = invoke_json("run", config, "--out", tmp_path / "out", *CHEAP_SAMPLING, "--no-sample")
    assert info["spec"]["sample"]["enabled"] is False
    assert "sampling" not in info and "posterior.nc" not in info["files"]
    assert not (Path(info["run_dir"]) / "posterior.nc").exists()
    assert info["ok"] is True and info["evaluation"]["ok"] is True  # the rest of the run happened


# ------------------------------------------------------------------ Ctrl-C at the command line


def _jaxpm_command() -> list[str]:
    script = Path(sys.executable).parent / "jaxpm"
    return [str(script)] if script.is_file() and os.access(script, os.X_OK) else [sys.executable, "-m", "jaxpm.cli"]


# A process started in the background of a non-interactive shell (as CI may start pytest)
# inherits SIGINT ignored, and Python then never raises KeyboardInterrupt. The child gets
# the default disposition a user's foreground `jaxpm run` has, set by a small launcher
# that then execs the command (no preexec_fn: the parent runs JAX's threads).
WITH_DEFAULT_SIGINT = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                       "os.execv(sys.argv[1], sys.argv[1:])"]


def test_sigint_while_sampling_exits_130_and_keeps_finished_files(tmp_path):
    """A real ``jaxpm run`` process, interrupted once PyMC's NUTS has started drawing (a
    chain of a million draws that would not end by itself)."""
    command = [*WITH_DEFAULT_SIGINT, *_jaxpm_command(), "run", "exp", "--out", str(tmp_path), "--backend", "c",
               "--sample", "--set", "check_grad.enabled=false", "--set", "sample.sampler=pymc",
               "--set", "sample.chains=1", "--set", "sample.tune=100", "--set", "sample.draws=1000000"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []
    drawing = threading.Event()

    def read_stderr():
        for line in proc.stderr:
            stderr.append(line)
            if line.startswith("NUTS: [x]"):  # PyMC's last line before its sampling loop
                drawing.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert drawing.wait(timeout=600), "".join(stderr)[-3000:]
        threading.Event().wait(2.0)  # well into the draws
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=300)  # not communicate(): it would read stderr too, racing the reader thread
        stdout = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    text = "".join(stderr)
    assert proc.returncode == 130, text[-3000:]
    assert "interrupted: finished files were kept" in text
    assert "Traceback" not in text and stdout == ""
    (folder,) = (tmp_path / "exp").iterdir()
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "interrupted" and "sampling" not in info
    assert info["evaluation"]["ok"] is True  # finished before the interrupt, and kept
    assert sorted(p.name for p in folder.iterdir()) == sorted(info["files"]) == ["config.yaml", "model.dot",
                                                                                  "run.json"]


# ------------------------------------------------------------------ --debug on every command


@pytest.mark.parametrize("command", ["compare-backends", "check-grad", "bench"])
def test_debug_shows_a_traceback_for_bad_input(command, tmp_path):
    args = [command, "ode", "--set", "ode.solver=Tsitt5"] + (["--out", tmp_path] if command == "bench" else [])
    plain = invoke(*args)
    debug = invoke(*args, "--debug")
    for result in (plain, debug):
        assert result.exit_code == 2 and result.stdout == ""
        last = result.stderr.splitlines()[-1]
        assert last.startswith("error: ") and ": ode.solver: unknown solver 'Tsitt5'" in last
    assert "Traceback" not in plain.stderr and len(plain.stderr.splitlines()) == 1
    assert "Traceback (most recent call last)" in debug.stderr and "ConfigError" in debug.stderr
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------ deterministics


def test_deterministics_are_built_with_their_values():
    """One of a prior only, one of the experiment's output ``y = exp(x)``, and one listed
    first that needs the other two: all three are ``pm.Deterministic``s with the values
    their expressions give."""
    model = build_model("exp", {"deterministics": {"both": "resid + twice", "twice": "2 * x", "resid": "y - x"}})
    assert [d.name for d in model.deterministics] == ["twice", "y", "resid", "both"]  # built when ready
    x = np.array([0.3, -1.2, 2.0])
    twice, resid, both = at_draws(model, [model["twice"], model["resid"], model["both"]])({"x": x})
    np.testing.assert_allclose(twice, 2 * x, rtol=1e-12)
    np.testing.assert_allclose(resid, np.exp(x) - x, rtol=1e-12)
    np.testing.assert_allclose(both, np.exp(x) - x + 2 * x, rtol=1e-12)


# ------------------------------------------------------------------ ode.vector_field from the user

FIELDS = "def fast_decay(t, y, args):\n    return -2.0 * y\n"


def _solution(spec) -> np.ndarray:
    """The ODE's solution at y0 = 0.5 (noise = 1), through the built model."""
    prep = prepare(spec)
    (ys,) = at_draws(prep.model, [prep.ctx.built.solution])({"y0": np.array(0.5), "noise": np.array(1.0)})
    return np.asarray(ys)


def test_vector_field_from_a_module(tmp_path, monkeypatch):
    (tmp_path / "jaxpm_test_user_fields.py").write_text(FIELDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    ys = _solution(load_spec("ode", ["ode.vector_field=jaxpm_test_user_fields:fast_decay"]))
    # dy/dt = -2 y (not the built-in decay's -y), to the solver's tolerance
    np.testing.assert_allclose(ys, 0.5 * np.exp(-2.0 * np.array(ODE["ode"]["saveat"])), rtol=1e-3, atol=1e-5)


def test_vector_field_from_a_file_next_to_the_config(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "my_fields.py").write_text(FIELDS)
    config = write_config(project / "decay.yaml",
                          {**ODE, "ode": {**ODE["ode"], "vector_field": "my_fields.py:fast_decay"}})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the file is found next to the config, not in the working directory
    ys = _solution(load_spec(os.path.relpath(config)))
    np.testing.assert_allclose(ys, 0.5 * np.exp(-2.0 * np.array(ODE["ode"]["saveat"])), rtol=1e-3, atol=1e-5)


# ------------------------------------------------------------------ evaluate.point, rtol, atol


def test_evaluate_point_as_a_mapping():
    x = [0.5, -1.0, 2.0]
    (e,) = invoke_json("compare-backends", "exp", "--backend", "c", "--set", f"evaluate.point={{x: {x}}}",
                       "--set", "evaluate.repeats=1")["experiments"]
    assert e["ok"] is True and e["point"] == {"x": x}
    terms, dlogp = exp_logp(x)
    got = e["backends"]["c"]
    for name, want in terms.items():
        np.testing.assert_allclose(got["logp_terms"][name], want, rtol=1e-10)
    np.testing.assert_allclose(got["dlogp"]["x"], dlogp, rtol=1e-10)


@pytest.fixture(scope="module")
def mismatched():
    """The plugin whose Op computes 2x on C and 3x on JAX, at a point where no entry of
    either backend is zero (so that a relative tolerance alone can admit it), compiled once."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(PLUGINS))
        prep = prepare(CONFIGS / "mismatched_op.yaml", ["evaluate.point={x: [0.3, 0.4]}", "evaluate.repeats=1"])
        document = evaluate(prep).document
    c, j = document["backends"]["c"], document["backends"]["jax"]
    ref = np.concatenate([*map(np.ravel, c["logp_terms"].values()), *map(np.ravel, c["dlogp"].values())])
    other = np.concatenate([*map(np.ravel, j["logp_terms"].values()), *map(np.ravel, j["dlogp"].values())])
    diff = np.abs(ref - other)
    assert document["ok"] is False and np.all(ref != 0) and diff.max() > 0.1  # a real disagreement
    # the smallest tolerances under which the backends agree: diff <= atol + rtol * |c|
    return prep, float(np.max(diff / np.abs(ref))), float(np.max(diff))


def _ok_at(prep, **tolerances) -> dict:
    spec = load_spec(prep.spec, {f"evaluate.{k}": v for k, v in tolerances.items()})
    return evaluate(dataclasses.replace(prep, spec=spec)).document


@pytest.mark.parametrize("key", ["rtol", "atol"])
def test_evaluate_tolerances_decide_agreement(mismatched, key):
    prep, rtol_needed, atol_needed = mismatched
    needed = {"rtol": rtol_needed, "atol": atol_needed}[key]
    other = "atol" if key == "rtol" else "rtol"
    inside = _ok_at(prep, **{key: 1.01 * needed, other: 0.0})
    outside = _ok_at(prep, **{key: 0.99 * needed, other: 0.0})
    assert inside["ok"] is True and inside["disagreements"] == [] and inside[key] == 1.01 * needed
    assert outside["ok"] is False and any("c and jax differ" in d for d in outside["disagreements"])


# ------------------------------------------------------------------ check_grad.eps, atol, set


def test_check_grad_eps_and_atol_reach_the_checks():
    """A fixed step of 0.5 makes central differences of exp() wrong by ~4% (the sweep of
    small steps is gone): both finite-difference checks fail; an atol above that error
    lets them pass again."""
    (coarse,) = invoke_json("check-grad", "exp", "--set", "check_grad.eps=0.5", code=1)["experiments"]
    assert coarse["ops"][0]["ok"] is False and coarse["model"]["ok"] is False
    assert coarse["jax"]["ok"] is True  # no finite differences there: the gradient itself is right
    error = max(coarse["ops"][0]["max_abs_err"], coarse["model"]["max_abs_err"])
    assert error > 1e-2
    (lenient,) = invoke_json("check-grad", "exp", "--set", "check_grad.eps=0.5",
                             "--set", f"check_grad.atol={2 * error}", code=0)["experiments"]
    assert lenient["ops"][0]["ok"] is True and lenient["model"]["ok"] is True
    assert lenient["model"]["atol"] == lenient["ops"][0]["atol"] == 2 * error
    assert lenient["model"]["max_abs_err"] == pytest.approx(coarse["model"]["max_abs_err"], rel=1e-6)


def test_check_grad_set_builds_the_checked_model():
    """``check_grad.set`` changes the model the checks run on, not the one evaluated: with
    one solver step allowed every solve fails, so no point can be checked."""
    (e,) = invoke_json("check-grad", "ode", "--set", "check_grad.points=1",
                       "--set", "check_grad.set={ode.max_steps: 1}", code=1)["experiments"]
    assert e["set"]["ode.max_steps"] == 1 and e["set"]["ode.rtol"] == 1e-10  # the experiment's own still apply
    assert e["points"] == 0 and "no point could be checked" in e["problems"][0]


# ------------------------------------------------------------------ data files


def test_observed_from_an_npy_file(tmp_path):
    observed = np.array([0.5, 1.5, -1.0])
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    np.save(project / "data" / "z.npy", observed)
    config = write_config(project / "exp.yaml", {
        **EXP, "likelihood": {"z": {**EXP["likelihood"]["z"], "observed": {"file": "data/z.npy"}}}})
    (e,) = invoke_json("compare-backends", config, "--backend", "c", "--set", "evaluate.repeats=1")["experiments"]
    terms, dlogp = exp_logp([0.0, 0.0, 0.0], observed)  # at the initial point
    np.testing.assert_allclose(e["backends"]["c"]["logp_terms"]["z"], terms["z"], rtol=1e-10)
    np.testing.assert_allclose(e["backends"]["c"]["dlogp"]["x"], dlogp, rtol=1e-10, atol=1e-12)


def test_cnn_images_from_an_npz_file(tmp_path):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=12)
    project = tmp_path / "project"
    project.mkdir()
    np.savez(project / "my_digits.npz", images=images, labels=labels)
    config = write_config(project / "cnn.yaml", {
        "experiment": "cnn",
        "cnn": {"source": "npz", "path": "my_digits.npz", **TINY_CNN},
        "likelihood": {"label": {"dist": "Categorical", "logit_p": "logits", "observed": "labels"}},
        "evaluate": {"backends": ["c"], "repeats": 1},
        "check_grad": {"enabled": False},
    })
    prep = prepare(config)
    n = TINY_CNN["n"]
    np.testing.assert_allclose(prep.ctx.built.images[..., 0], images[:n] / 255.0, rtol=1e-12)
    np.testing.assert_array_equal(prep.ctx.built.labels, labels[:n])
    from pymc.backends.arviz import find_observations

    np.testing.assert_array_equal(find_observations(prep.model)["label"], labels[:n])
    document = evaluate(prep).document
    assert document["ok"] is True
    # all-zero weights: every class equally likely for each of the n images
    assert document["backends"]["c"]["logp_terms"]["label"] == pytest.approx([-np.log(10)] * n, rel=1e-12)


def test_cnn_float32_evaluation():
    """``cnn.dtype: float32``: the network computes in float32, and logp and its gradient
    are float64's up to float32 rounding, at random weights (C backend; the network is the
    same JAX function on every backend)."""
    tiny = [f"cnn.{k}={json.dumps(v)}" for k, v in TINY_CNN.items()] + ["check_grad.enabled=false"]
    p64 = prepare("cnn", tiny)
    p32 = prepare("cnn", [*tiny, "cnn.dtype=float32"])
    assert p32.ctx.names["logits"].dtype == "float32" and p64.ctx.names["logits"].dtype == "float64"
    assert p32.ctx.built.images.dtype == np.float32
    point = p64.experiment.fit_start("flax", p64.ctx.built, seed=1)  # Normal priors: no transforms
    r64 = be.evaluate(p64.model, p64.compile("c"), point, repeats=1)
    r32 = be.evaluate(p32.model, p32.compile("c"), point, repeats=1)
    assert r32["logp"] != r64["logp"] and r32["logp"] == pytest.approx(r64["logp"], rel=1e-5)
    g32 = np.concatenate(list(r32["dlogp"].values()))
    g64 = np.concatenate(list(r64["dlogp"].values()))
    assert np.abs(g32 - g64).max() <= 1e-4 * np.abs(g64).max()
    assert be.compare({"c": r32}, rtol=1e-6, atol=1e-8)["ok"]  # every number finite
