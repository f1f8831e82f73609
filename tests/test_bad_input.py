"""Every way a user can get a config wrong, through the real command line.

The contract (SPEC.md, "Exit status"): bad input exits 2 with exactly one line on stderr,
``error: <config>: <key.path>: <what is wrong and what would be right>``, no traceback
(``--debug`` shows one), and no run folder.

Each case is the packaged ``ode`` (or ``exp``) config with one thing broken, written to a
temporary file (or a small file under ``tests/configs/bad/``), and run in-process through
``typer.testing.CliRunner`` on ``jaxpm.cli.app`` with ``run CONFIG --out TMP``. A few go
through a real subprocess to prove what a user's terminal shows.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from jaxpm.cli import app

HERE = Path(__file__).parent
BAD = HERE / "configs" / "bad"
PACKAGED = Path(__file__).parents[1] / "configs"

# The packaged configs, evaluated on the C backend only: the cases below must fail long
# before anything compiles, and the one that gets that far should not wait for three.
ODE = yaml.safe_load((PACKAGED / "ode.yaml").read_text())
ODE["evaluate"]["backends"] = ["c"]
EXP = yaml.safe_load((PACKAGED / "exp.yaml").read_text())
EXP["evaluate"]["backends"] = ["c"]
CNN = yaml.safe_load((PACKAGED / "cnn.yaml").read_text())
CNN["evaluate"]["backends"] = ["c"]


@dataclass
class Case:
    """One broken config: how to make it, and what the error line must say."""

    id: str
    key: str | None  # the exact key path; None: an error about the whole file
    fragments: tuple[str, ...]  # distinctive parts of the message
    base: dict | None = None  # a config dict (deep-copied, then ``edit`` applied)
    edit: callable = None
    file: Path | None = None  # or a ready-made config file
    args: tuple[str, ...] = ()  # extra command-line arguments
    marks: tuple = field(default_factory=tuple)

    def config(self, tmp: Path) -> Path:
        if self.file is not None:
            return self.file
        data = copy.deepcopy(self.base)
        if self.edit is not None:
            self.edit(data)
        path = tmp / f"{self.id}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path


def _set(*path_and_value):
    """An edit that sets ``data[a][b]... = value``."""
    *path, value = path_and_value

    def edit(data):
        node = data
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value

    return edit


def _rename_top(old, new):
    def edit(data):
        data[new] = data.pop(old)

    return edit


def _delete(*path):
    def edit(data):
        node = data
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]

    return edit


CASES = [
    Case("yaml_syntax_error", None, ("invalid YAML at line",), file=BAD / "syntax_error.yaml"),
    Case("top_level_list", None, ("expected a mapping of keys at the top level", "a list"), file=BAD / "top_level_list.yaml"),
    Case("duplicate_key", "priors.y0", ("duplicate key 'y0' at line 5 (first at line 3)", "YAML keeps only the last one"), file=BAD / "duplicate_prior.yaml"),
    Case("duplicate_key_in_a_flow_mapping", "priors.noise.sigma", ("duplicate key 'sigma' at line 4 (first at line 4)",), file=BAD / "duplicate_deep.yaml"),
    Case("duplicate_key_in_set", "priors.z.mu", ("--set priors.z: duplicate key 'mu'",), ODE, args=("--set", "priors.z={dist: Normal, mu: 0, mu: 1}")),
    Case("unknown_top_level_key", "priros", ("unknown key 'priros'", "did you mean 'priors'"), ODE, _rename_top("priors", "priros")),
    Case("unknown_key_in_ode", "ode.rtoll", ("unknown key 'rtoll'", "did you mean 'rtol'"), ODE, _set("ode", "rtoll", 1e-5)),
    Case("wrong_type", "ode.rtol", ("expected a number", "'abc'"), ODE, _set("ode", "rtol", "abc")),
    Case("wrong_type_int", "ode.max_steps", ("expected an integer",), ODE, _set("ode", "max_steps", "lots")),
    Case("missing_required_key", "ode.saveat", ("required key 'saveat' is missing",), ODE, _delete("ode", "saveat")),
    Case("unknown_experiment", "experiment", ("unknown experiment 'odee'", "did you mean 'ode'"), ODE, _set("experiment", "odee")),
    Case("unknown_distribution", "priors.y0.dist", ("unknown distribution 'Normall'", "did you mean 'Normal'"), ODE, _set("priors", "y0", "dist", "Normall")),
    Case("unknown_distribution_in_likelihood", "likelihood.llike.dist", ("unknown distribution 'Gausian'",), ODE, _set("likelihood", "llike", "dist", "Gausian")),
    Case("unknown_solver", "ode.solver", ("unknown solver 'Tsitt5'", "did you mean 'Tsit5'"), ODE, _set("ode", "solver", "Tsitt5")),
    Case("unknown_backend_option", "evaluate.backends[0]", ("'cuda' is not a backend", "c, jax, numba"), ODE, args=("--backend", "cuda")),
    Case("unknown_sampler", "sample.sampler", ("'nutpy' is not a sampler", "did you mean 'nutpie'"), ODE, _set("sample", "sampler", "nutpy")),
    Case("unknown_vector_field", "ode.vector_field", ("unknown vector field 'decayy'", "did you mean 'decay'"), ODE, _set("ode", "vector_field", "decayy")),
    Case("unresolved_name", "likelihood.llike.sigma", ("unknown name 'nosie'", "did you mean 'noise'"), ODE, _set("likelihood", "llike", "sigma", "nosie")),
    Case("unresolved_name_in_mu", "likelihood.llike.mu", ("unknown name 'nosie'", "did you mean 'noise'"), ODE, _set("likelihood", "llike", "mu", "ode * nosie")),
    Case("forbidden_call", "likelihood.llike.mu", ("'__import__' is not an allowed function",), ODE, _set("likelihood", "llike", "mu", "__import__('os')")),
    Case("forbidden_attribute", "likelihood.llike.mu", ("attribute access",), ODE, _set("likelihood", "llike", "mu", "ode.__class__")),
    Case("missing_data_file", "likelihood.llike.observed.file", ("file not found", "no_such_data.csv"), ODE, _set("likelihood", "llike", "observed", {"file": "no_such_data.csv"})),
    Case("unknown_data_column", "likelihood.llike.observed.columns", ("no column 'yy'", "did you mean 'y'"), ODE, _set("likelihood", "llike", "observed", {"file": str(BAD / "three_rows.csv"), "columns": ["yy"]})),
    Case(
        "data_file_wrong_shape",
        "likelihood.llike.observed",
        ("shape",),
        ODE,
        _set("likelihood", "llike", "observed", {"file": str(BAD / "three_rows.csv")}),
    ),
    Case("vector_field_wrong_output_shape", "ode.vector_field", ("failed to trace",), ODE, _set("ode", "vector_field", f"{BAD / 'vector_fields.py'}:wrong_shape")),
    Case("vector_field_undefined_name", "ode.vector_field", ("failed to trace", "NameError", "rate"), ODE, _set("ode", "vector_field", f"{BAD / 'vector_fields.py'}:undefined_name")),
    Case("vector_field_no_such_function", "ode.vector_field", ("has no function 'nope'",), ODE, _set("ode", "vector_field", f"{BAD / 'vector_fields.py'}:nope")),
    Case("vector_field_file_missing", "ode.vector_field", ("file not found", "no_such_fields.py"), ODE, _set("ode", "vector_field", "no_such_fields.py:decay")),
    Case("unknown_distribution_parameter", "priors.y0.mux", ("Normal has no parameter 'mux'", "did you mean 'mu'"), ODE, _set("priors", "y0", "mux", 0)),
    Case("set_without_value", "ode.rtol", ("--set expects KEY.PATH=VALUE",), ODE, args=("--set", "ode.rtol")),
    Case("set_unparsable_value", "ode.rtol", ("cannot parse", "as YAML"), ODE, args=("--set", "ode.rtol=[1, 2")),
    Case("set_wrong_type", "ode.rtol", ("expected a number",), ODE, args=("--set", "ode.rtol=fast")),
    Case(
        "evaluate_point_unknown_variable",
        "evaluate.point.y00",
        ("not a value variable", "did you mean 'y0'"),
        ODE,
        _set("evaluate", "point", {"y00": 1.0}),
    ),
    Case("plugin_not_importable", "experiment", ("cannot import 'nosuchpkg.mod'",), ODE, _set("experiment", "nosuchpkg.mod:build")),
    Case("exp_unknown_input", "exp.input", ("unknown name 'xs'", "did you mean 'x'"), EXP, _set("exp", "input", "xs")),
    Case("unknown_advi_optimizer", "sample.optimizer", ("'adamm' is not a stochastic optimiser", "did you mean 'adam'"), CNN, _set("sample", "optimizer", "adamm")),
    Case("advi_start_sigma_zero", "sample.start_sigma", ("expected a value > 0", "got 0"), CNN, _set("sample", "start_sigma", 0)),
    Case("unknown_start", "sample.start", ("'zeros' is not a start point", "expected one of: auto, flax, initial, mode"), CNN, _set("sample", "start", "zeros")),
    Case("flax_start_for_nuts", "sample.start", ("flax is a start for the fits (advi and map)", "for nutpie set sample.start=initial or mode"), CNN, _set("sample", "sampler", "nutpie")),
    Case("flax_start_without_a_cnn", "sample.start", ("flax initialises a CNN's network", "experiment 'exp' has none"), EXP, lambda d: d["sample"].update(sampler="map", start="flax")),
    Case("mode_start_for_a_fit", "sample.start", ("mode is a start for NUTS chains", "advi starts from initial or flax"), CNN, _set("sample", "start", "mode")),
    Case("mode_start_no_restarts", "sample.restarts", ("expected a value > 0", "got 0"), EXP, lambda d: d["sample"].update(start="mode", restarts=0)),
    Case("nutpie_without_tuning", "sample.tune", ("nutpie needs at least one tuning step", "sample.tune >= 1"), EXP, lambda d: d["sample"].update(sampler="nutpie", tune=0)),
    Case("unknown_inference_dtype", "cnn.inference_dtype", ("'float16' is not a dtype",), CNN, _set("cnn", "inference_dtype", "float16")),
    Case("mass_matrix_not_offered", "sample.mass_matrix", ("pymc has no low_rank mass matrix", "it supports diag, full"), EXP, lambda d: d["sample"].update(sampler="pymc", mass_matrix="low_rank")),
    Case("unknown_mass_matrix", "sample.mass_matrix", ("'dense' is not a mass matrix",), EXP, _set("sample", "mass_matrix", "dense")),
    Case("initvals_unknown_variable", "sample.initvals.xx", ("'xx' is not a free variable", "did you mean 'x'"), EXP, lambda d: d["sample"].update(enabled=True, initvals={"xx": 1})),
    Case("initvals_wrong_shape", "sample.initvals.x", ("expected a number or a list of shape [3]",), EXP, lambda d: d["sample"].update(enabled=True, initvals={"x": [1, 2]})),
    Case("initvals_outside_support", "sample.initvals.noise", ("-1 is outside the support of noise",), ODE, lambda d: d["sample"].update(enabled=True, initvals={"noise": -1})),
    Case("duplicate_name", "likelihood.y0", ("'y0' is already used",), ODE, lambda d: d["likelihood"].update(y0=d["likelihood"].pop("llike"))),
    Case("predictive_unknown_key", "predictive.log_likelihod", ("unknown key 'log_likelihod'", "did you mean 'log_likelihood'"), ODE, _set("predictive", {"log_likelihod": False})),
    Case("predictive_switch_not_a_bool", "predictive.prior", ("expected true or false", "'sometimes'"), ODE, _set("predictive", {"prior": "sometimes"})),
    Case("predictive_no_draws", "predictive.draws", ("expected a value > 0", "got 0"), ODE, _set("predictive", {"draws": 0})),
    Case("predictive_prior_draws_bool", "predictive.prior_draws", ("expected an integer",), ODE, _set("predictive", {"prior_draws": True})),
    Case("predictive_not_a_mapping", "predictive", ("expected a mapping",), CNN, _set("predictive", "off")),
]


def _params():
    return [pytest.param(c, id=c.id, marks=c.marks) for c in CASES]


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def out_dir(tmp_path, monkeypatch):
    """An empty output root; the working directory is a temporary one too, so a stray
    ``results/`` (the default output dir) would be noticed, not pollute the repository."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return tmp_path / "out"


def _no_run_folder(out_dir: Path) -> None:
    written = sorted(str(p) for p in out_dir.rglob("*")) if out_dir.exists() else []
    stray = sorted(str(p) for p in Path.cwd().rglob("*"))
    assert written == [], f"bad input wrote {written}"
    assert stray == [], f"bad input wrote {stray} into the working directory"


def _assert_error_line(stderr: str, config: str, case: Case) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got:\n{stderr}"
    line = lines[0]
    assert "Traceback" not in stderr
    prefix = f"error: {config}: "
    assert line.startswith(prefix), line
    rest = line[len(prefix) :]
    if case.key is not None:
        key, sep, message = rest.partition(": ")
        assert sep and key == case.key, f"expected key {case.key!r} in {line!r}"
    else:
        message = rest
    for fragment in case.fragments:
        assert fragment in message, f"{fragment!r} not in {line!r}"
    return line


@pytest.mark.parametrize("case", _params())
def test_bad_config_exits_2_with_one_line(case, runner, tmp_path, out_dir):
    config = case.config(tmp_path)
    result = runner.invoke(app, ["run", str(config), "--out", str(out_dir), *case.args])
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.exception)
    assert result.stdout == ""
    _assert_error_line(result.stderr, str(config), case)
    _no_run_folder(out_dir)


def test_there_are_enough_cases():
    assert len({c.id for c in CASES}) == len(CASES) >= 16


def test_unknown_builtin_config_name(runner, out_dir):
    result = runner.invoke(app, ["run", "odee", "--out", str(out_dir)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["error: odee: no such config file or built-in config; did you mean 'ode'?"]
    _no_run_folder(out_dir)


@pytest.mark.parametrize("command", ["compare-backends", "check-grad"])
def test_other_commands_report_bad_input_the_same_way(command, runner, tmp_path, out_dir):
    case = next(c for c in CASES if c.id == "unresolved_name")
    config = case.config(tmp_path)
    result = runner.invoke(app, [command, str(config)])
    assert result.exit_code == 2, (result.stderr, result.exception)
    assert result.stdout == ""
    _assert_error_line(result.stderr, str(config), case)
    _no_run_folder(out_dir)


def test_debug_shows_a_traceback(runner, tmp_path, out_dir):
    case = next(c for c in CASES if c.id == "unknown_solver")
    config = case.config(tmp_path)
    result = runner.invoke(app, ["run", str(config), "--out", str(out_dir), "--debug"])
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "ConfigError" in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"error: {config}: ode.solver: unknown solver 'Tsitt5'")
    _no_run_folder(out_dir)


# ----------------------------------------------------------------------- a real process


def _jaxpm_command() -> list[str]:
    """The installed console script next to the interpreter, else ``python -m jaxpm.cli``."""
    script = Path(sys.executable).parent / "jaxpm"
    return [str(script)] if script.is_file() and os.access(script, os.X_OK) else [sys.executable, "-m", "jaxpm.cli"]


@pytest.mark.parametrize("case_id", ["unknown_key_in_ode", "unresolved_name"])
def test_real_process_prints_one_line_and_no_traceback(case_id, tmp_path, out_dir):
    case = next(c for c in CASES if c.id == case_id)
    config = case.config(tmp_path)
    proc = subprocess.run(
        [*_jaxpm_command(), "run", str(config), "--out", str(out_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path.cwd(),
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    _assert_error_line(proc.stderr, str(config), case)
    _no_run_folder(out_dir)
