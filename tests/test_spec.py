"""The YAML spec: valid configs load with defaults filled in; bad ones fail with one line.

Every bad-input test asserts the three things a user sees in
``error: <config>: <key.path>: <message>``: the error type, the exact key path and a
distinctive fragment of the message.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from jaxpm.errors import ConfigError
from jaxpm.spec import apply_overrides, builtin_configs, load_spec, resolve_config
from jaxpm.spec import configs as spec_configs

# The three worked cases of the PyMC Labs post, as configs (the ODE one is SPEC.md's).
ODE = {
    "name": "ode",
    "experiment": "ode",
    "seed": 20230103,
    "priors": {
        "y0": {"dist": "Normal", "mu": 0, "sigma": 1},
        "noise": {"dist": "HalfNormal", "sigma": 1},
    },
    "ode": {
        "vector_field": "decay",
        "y0": "y0",
        "args": None,
        "t0": 0,
        "saveat": [0, 1, 2, 3],
        "dt0": 0.1,
        "solver": "Dopri5",
        "rtol": 1.0e-5,
        "atol": 1.0e-5,
        "max_steps": 4096,
        "sensitivity": "auto",
        "output": "ode",
    },
    "likelihood": {
        "llike": {"dist": "Normal", "mu": "ode", "sigma": "noise", "observed": [1, 0.367, 0.135, 0.049]},
    },
    "evaluate": {"backends": ["c", "jax"], "point": "initial", "rtol": 1.0e-6, "atol": 1.0e-8},
    "check_grad": {"points": 3},
    "sample": {"enabled": False, "sampler": "nutpie", "draws": 1000, "tune": 1000, "chains": 4, "target_accept": 0.8},
    "output": {"dir": "results"},
}

EXP = {
    "experiment": "exp",
    "priors": {"x": {"dist": "Normal", "mu": 0, "sigma": 1, "shape": 3}},
    "exp": {"input": "x", "output": "y"},
    "likelihood": {"z": {"dist": "Normal", "mu": "y", "sigma": 1, "observed": [1, 1, 1]}},
}

CNN = {
    "experiment": "cnn",
    "cnn": {"source": "digits", "n": 1000},
    "likelihood": {"label": {"dist": "Categorical", "logit_p": "logits", "observed": "labels"}},
}


def write(path: Path, data) -> Path:
    """Write a config (a dict, dumped as YAML, or raw YAML text) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def ode_file(tmp_path) -> Path:
    return write(tmp_path / "configs" / "decay.yaml", {k: v for k, v in ODE.items() if k != "name"})


# --------------------------------------------------------------------------- valid configs


def test_ode_config_loads_with_defaults(ode_file):
    spec = load_spec(ode_file)
    assert spec.name == "decay"  # the file stem
    assert spec.label == str(ode_file)
    assert spec.base_dir == ode_file.parent.resolve()
    assert spec.ode.solver == "Dopri5" and spec.ode.rtol == 1e-5
    assert spec.ode.t1 is None and spec.ode.output == "ode"
    assert list(spec.priors) == ["y0", "noise"]  # order kept
    assert spec.priors["noise"].params == {"sigma": 1}
    assert spec.evaluate.backends == ["c", "jax"] and spec.evaluate.repeats == 20
    assert spec.check_grad.enabled and spec.check_grad.rtol == 1e-4
    assert spec.sample.iterations == "auto" and spec.sample.seed is None
    # what a modeller leaves out is chosen from the model before sampling (jaxpm.sampling.auto)
    assert (spec.sample.mass_matrix, spec.sample.start) == ("auto", "auto")
    assert spec.plugin == {} and spec.deterministics == {}
    np.testing.assert_array_equal(spec.ode.save_times(), [0, 1, 2, 3])


def test_to_yaml_round_trips(ode_file, tmp_path):
    spec = load_spec(ode_file)
    text = spec.to_yaml()
    again = load_spec(write(tmp_path / "elsewhere" / "config.yaml", text))
    assert again == spec
    assert again.to_yaml() == text  # a fixed point
    written = yaml.safe_load(text)
    assert written["name"] == "decay"
    assert written["ode"]["max_steps"] == 4096 and written["evaluate"]["repeats"] == 20
    assert "cnn" not in written and "exp" not in written  # unused sections left out


@pytest.mark.parametrize("config", [EXP, CNN, ODE], ids=["exp", "cnn", "ode"])
def test_builtin_cases_load_from_dicts(config):
    spec = load_spec(copy.deepcopy(config))
    assert spec.label == "<dict>" and spec.base_dir == Path.cwd()
    assert spec.name == config.get("name", "experiment")
    assert load_spec(yaml.safe_load(spec.to_yaml())) == spec


def test_cnn_defaults():
    cnn = load_spec(CNN).cnn
    assert (cnn.n, cnn.holdout, cnn.dtype, cnn.output, cnn.labels) == (1000, 500, "float64", "logits", "labels")
    assert cnn.layers is None
    assert cnn.weight_prior.dist == "Normal" and cnn.weight_prior.params == {"mu": 0, "sigma": 1}


def test_overrides(ode_file):
    spec = load_spec(ode_file, ["evaluate.backends=[c]", "ode.rtol=1e-8", "priors.z={dist: Normal, mu: 0, sigma: 2}"])
    assert spec.evaluate.backends == ["c"]
    assert spec.ode.rtol == 1e-8  # YAML reads 1e-8 as a string; the float field parses it
    assert list(spec.priors) == ["y0", "noise", "z"] and spec.priors["z"].params["sigma"] == 2


def test_apply_overrides_returns_a_new_dict():
    raw = {"ode": {"rtol": 1}}
    new = apply_overrides(raw, {"ode.rtol": 2, "sample.enabled": True})
    assert raw == {"ode": {"rtol": 1}}
    assert new == {"ode": {"rtol": 2}, "sample": {"enabled": True}}
    assert apply_overrides(raw, ["a.b.c=[1, {x: y}]"])["a"] == {"b": {"c": [1, {"x": "y"}]}}
    assert apply_overrides(raw, None) == raw


def test_relative_paths_resolve_against_the_config_dir(tmp_path, monkeypatch):
    config_dir = tmp_path / "project"
    write(config_dir / "data" / "obs.csv", "t,y\n0,1.0\n1,0.367\n2,0.135\n3,0.049\n")
    write(config_dir / "data" / "obs.npy", "")  # existence is all spec.py checks
    write(config_dir / "fields.py", "def decay(t, y, args):\n    return -y\n")
    config = copy.deepcopy(ODE)
    config["ode"]["vector_field"] = "fields.py:decay"
    config["ode"]["saveat"] = {"file": "data/obs.csv", "column": "t"}
    config["likelihood"]["llike"]["observed"] = {"file": "data/obs.csv", "columns": ["y"]}
    config["likelihood"]["other"] = {"dist": "Normal", "mu": 0, "sigma": 1, "observed": {"file": "./data/obs.npy"}}
    path = write(config_dir / "ode.yaml", config)
    monkeypatch.chdir(tmp_path)  # somewhere else

    spec = load_spec("project/ode.yaml")
    data = config_dir.resolve() / "data"
    assert spec.label == "project/ode.yaml"
    assert spec.likelihood["llike"].observed.file == str(data / "obs.csv")
    assert spec.likelihood["other"].observed.file == str(data / "obs.npy")
    assert spec.ode.vector_field == f"{config_dir.resolve() / 'fields.py'}:decay"
    assert spec.resolve_path("data/obs.csv") == data / "obs.csv"
    np.testing.assert_array_equal(spec.ode.save_times(), [0, 1, 2, 3])
    assert load_spec(write(tmp_path / "copy" / "ode.yaml", spec.to_yaml())) == spec
    assert path.exists()


def test_save_times_from_a_range():
    config = copy.deepcopy(ODE)
    config["ode"]["saveat"] = {"start": 0, "stop": 3, "num": 7}
    spec = load_spec(config)
    np.testing.assert_allclose(spec.ode.save_times(), np.linspace(0, 3, 7))


def test_save_times_unknown_column(tmp_path):
    write(tmp_path / "times.csv", "time\n0\n1\n")
    config = copy.deepcopy(ODE)
    config["ode"]["saveat"] = {"file": str(tmp_path / "times.csv"), "column": "tim"}
    spec = load_spec(config)
    with pytest.raises(ConfigError) as info:
        spec.ode.save_times()
    assert info.value.key == "ode.saveat.column" and "did you mean 'time'?" in info.value.message


def test_builtin_config_names(tmp_path, monkeypatch):
    write(tmp_path / "ode.yaml", ODE)
    write(tmp_path / "exp.yaml", EXP)
    monkeypatch.setattr(spec_configs, "CONFIG_DIR", tmp_path)
    monkeypatch.chdir(tmp_path / "..")
    assert builtin_configs() == {"exp": tmp_path / "exp.yaml", "ode": tmp_path / "ode.yaml"}
    assert resolve_config("ode") == tmp_path / "ode.yaml"
    assert load_spec("exp").name == "exp"
    with pytest.raises(ConfigError) as info:
        resolve_config("odee")
    assert (info.value.config, info.value.key) == ("odee", "")
    assert "did you mean 'ode'?" in info.value.message


def test_plugin_experiment_keeps_its_section():
    spec = load_spec({"experiment": "mypkg.models:build", "plugin": {"anything": [1, {"goes": True}]}})
    assert spec.experiment == "mypkg.models:build" and spec.plugin["anything"][1] == {"goes": True}


# --------------------------------------------------------------------------- bad input


def _set(path: str, value):
    """A mutation of the ODE config: set the dotted ``path`` to ``value``."""

    def mutate(config):
        *parents, last = path.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return mutate


def _drop(path: str):
    def mutate(config):
        *parents, last = path.split(".")
        node = config
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


BAD = [
    # (id, mutation of ODE, key, message fragment)
    ("unknown top-level key", _set("priros", {}), "priros", "unknown key 'priros'; did you mean 'priors'?"),
    ("unknown key in ode", _set("ode.solverr", "Tsit5"), "ode.solverr", "did you mean 'solver'?"),
    ("not a number", _set("ode.rtol", "abc"), "ode.rtol", "expected a number, got 'abc'"),
    ("not an integer", _set("ode.max_steps", 1.5), "ode.max_steps", "expected an integer, got 1.5"),
    ("non-positive", _set("ode.max_steps", 0), "ode.max_steps", "expected a value > 0, got 0"),
    ("bool is no number", _set("evaluate.rtol", True), "evaluate.rtol", "expected a number, got true"),
    ("unknown backend", _set("evaluate.backends", ["c", "cuda"]), "evaluate.backends[1]",
     "'cuda' is not a backend; expected one of: c, jax, numba"),
    ("backends not a list", _set("evaluate.backends", "c"), "evaluate.backends", "expected a list, got 'c'"),
    ("unknown sampler", _set("sample.sampler", "nuts"), "sample.sampler",
     "'nuts' is not a sampler; did you mean 'nutpie'?"),
    ("unknown distribution", _set("priors.y0.dist", "Normall"), "priors.y0.dist",
     "unknown distribution 'Normall'; did you mean 'Normal'?"),
    ("observed prior", _set("priors.y0.observed", [1]), "priors.y0.observed",
     "priors cannot be observed; move 'y0' to likelihood"),
    ("prior without dist", _drop("priors.noise.dist"), "priors.noise.dist", "required key 'dist' is missing"),
    ("likelihood without observed", _drop("likelihood.llike.observed"), "likelihood.llike.observed",
     "required key 'observed' is missing"),
    ("observed file missing", _set("likelihood.llike.observed", {"file": "nope.csv"}),
     "likelihood.llike.observed.file", "file not found: "),
    ("observed mapping unknown key", _set("likelihood.llike.observed", {"file": "x.csv", "colums": ["y"]}),
     "likelihood.llike.observed.colums", "did you mean 'columns'?"),
    ("unknown solver", _set("ode.solver", "Dopri55"), "ode.solver", "unknown solver 'Dopri55'; did you mean 'Dopri5'?"),
    ("missing experiment section", _drop("ode"), "ode", "missing section 'ode' for experiment 'ode'"),
    ("missing experiment", _drop("experiment"), "experiment", "required key 'experiment' is missing"),
    ("bad experiment string", _set("experiment", "pkg.mod:build:x"), "experiment",
     "expected exp, ode, cnn or 'package.module:function'"),
    ("misspelt experiment", _set("experiment", "odee"), "experiment", "unknown experiment 'odee'; did you mean 'ode'?"),
    ("saveat range without num", _set("ode.saveat", {"start": 0, "stop": 3}), "ode.saveat.num",
     "required key 'num' is missing"),
    ("saveat not increasing", _set("ode.saveat", [0, 2, 1]), "ode.saveat", "strictly increasing"),
    ("saveat item", _set("ode.saveat", [0, "one"]), "ode.saveat[1]", "expected a number, got 'one'"),
    ("bad point", _set("evaluate.point", "start"), "evaluate.point", "expected 'initial' or a mapping"),
    ("name clash", _set("deterministics.noise", "exp(y0)"), "deterministics.noise",
     "name 'noise' is already used by priors.noise"),
    ("section not a mapping", _set("sample", [1]), "sample", "expected a mapping, got a list [1]"),
    ("target_accept out of range", _set("sample.target_accept", 1.5), "sample.target_accept", "expected a value < 1"),
]


@pytest.mark.parametrize(("mutate", "key", "fragment"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config(tmp_path, mutate, key, fragment):
    config = copy.deepcopy(ODE)
    mutate(config)
    path = write(tmp_path / "bad.yaml", config)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    error = info.value
    assert (error.config, error.key) == (str(path), key)
    assert fragment in error.message
    assert "\n" not in str(error) and "pydantic" not in str(error).lower()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("experiment: ode\npriors:\n  y0: {dist: Normal\n", "invalid YAML at line 4"),
        ("experiment: ode\n  seed: 3\n", "invalid YAML at line 2, column 7"),
        ("- experiment: ode\n", "expected a mapping of keys at the top level, got a list"),
        ("", "the config is empty"),
        ("experiment: !!python/object:os.system ls\n", "invalid YAML"),  # safe_load only
    ],
    ids=["unclosed flow mapping", "bad indentation", "top-level list", "empty", "python tag"],
)
def test_unreadable_yaml(tmp_path, text, fragment):
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert (info.value.config, info.value.key) == (str(path), "")
    assert fragment in info.value.message


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert info.value.key == "" and "no such config file" in info.value.message


@pytest.mark.parametrize(
    ("override", "key", "fragment"),
    [
        ("foo", "foo", "--set expects KEY.PATH=VALUE, got 'foo'"),
        ("=3", "", "--set expects KEY.PATH=VALUE"),
        ("ode..rtol=3", "ode..rtol", "non-empty dotted parts"),
        ("ode.rtol=[1", "ode.rtol", "cannot parse '[1' as YAML"),
        ("ode.saveat.start=0", "ode.saveat.start", "ode.saveat is a list [0, 1, 2, 3], not a mapping"),
        ("ode.rtol=1e-8x", "ode.rtol", "expected a number, got '1e-8x'"),
    ],
)
def test_bad_override(ode_file, override, key, fragment):
    with pytest.raises(ConfigError) as info:
        load_spec(ode_file, [override])
    assert (info.value.config, info.value.key) == (str(ode_file), key)
    assert fragment in info.value.message


def test_errors_from_dicts_are_labelled():
    with pytest.raises(ConfigError) as info:
        load_spec({"experiment": "ode"})
    assert str(info.value) == "<dict>: ode: missing section 'ode' for experiment 'ode'"


def test_cnn_npz_needs_an_existing_path(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_spec({**CNN, "cnn": {"source": "npz"}})
    assert info.value.key == "cnn.path" and "required key 'path' is missing" in info.value.message
    with pytest.raises(ConfigError) as info:
        load_spec({**CNN, "cnn": {"source": "npz", "path": str(tmp_path / "x.npz")}})
    assert info.value.key == "cnn.path" and "file not found" in info.value.message
