"""``jaxpm run``: build, evaluate on each backend, check gradients, sample, write the folder.

:func:`prepare` does the part every command shares (load the spec with the command-line
overrides, build the model); :func:`evaluate_backends` is what ``compare-backends``
runs; :func:`run` strings everything together and writes the run folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaxpm import backends as be
from jaxpm import results
from jaxpm.errors import ConfigError
from jaxpm.progress import Progress
from jaxpm.spec import Spec, load_spec


@dataclass
class Prepared:
    """A loaded spec and its built model (shared by run, check-grad, compare-backends)."""

    spec: Spec
    model: Any
    ctx: Any
    build_seconds: float
    point: dict = field(default_factory=dict)
    compiled: dict[str, be.Compiled] = field(default_factory=dict)


def overrides_from(
    sets: list[str] | None = None,
    backends: list[str] | None = None,
    out: str | Path | None = None,
    sample: bool | None = None,
) -> list[str]:
    """Command-line options as ``KEY.PATH=VALUE`` overrides (``--backend`` etc. are
    shorthands for ``--set``); values are JSON, which YAML reads as it is."""
    overrides = list(sets or [])
    if backends:
        overrides.append(f"evaluate.backends={json.dumps(list(backends))}")
    if out is not None:
        overrides.append(f"output.dir={json.dumps(str(out))}")
    if sample is not None:
        overrides.append(f"sample.enabled={json.dumps(bool(sample))}")
    return overrides


def prepare(config, overrides=None, progress: Progress | None = None) -> Prepared:
    """Load the spec (a path, built-in name, mapping or Spec) and build its model."""
    from jaxpm.model import build

    progress = progress or Progress.quiet()
    spec = config if isinstance(config, Spec) else load_spec(config, overrides or None)
    with progress.step(f"{spec.name}: building the model"):
        start = time.perf_counter()
        model, ctx = build(spec)
        try:
            point = be.evaluation_point(model, spec)
            if spec.sample.enabled and spec.sample.initvals:
                from jaxpm.sampling import initvals

                initvals(model, spec.sample)  # a bad start fails here, before anything is written
        except ConfigError as e:
            raise e.within(spec.label) from None
    return Prepared(spec, model, ctx, time.perf_counter() - start, point)


def evaluate_backends(prep: Prepared, progress: Progress | None = None) -> dict:
    """logp terms, dlogp and timing on each configured backend, plus their comparison."""
    progress = progress or Progress.quiet()
    spec, model = prep.spec, prep.model
    point = prep.point
    per_backend = {}
    for backend in spec.evaluate.backends:
        with progress.step(f"{spec.name}: compiling and timing logp+dlogp on {backend}"):
            if backend not in prep.compiled:
                prep.compiled[backend] = be.compile_backend(model, backend)
            per_backend[backend] = be.evaluate(model, prep.compiled[backend], point, spec.evaluate.repeats)
    comparison = be.compare(per_backend, spec.evaluate.rtol, spec.evaluate.atol)
    return {
        "config": spec.label,
        "name": spec.name,
        "ok": comparison["ok"],
        "point": {k: _plain(v) for k, v in point.items()},
        "backends": per_backend,
        **{k: v for k, v in comparison.items() if k != "ok"},
    }


def _plain(v):
    import numpy as np

    v = np.asarray(v, dtype=float)
    return float(v) if v.ndim == 0 else v.tolist()


@dataclass
class RunResult:
    """What ``jaxpm.run`` returns: the run folder and the content of its ``run.json``."""

    run_dir: Path
    info: dict

    @property
    def ok(self) -> bool:
        return bool(self.info.get("ok"))


def run(config, overrides=None, *, progress: Progress | None = None) -> RunResult:
    """Run an experiment end to end and write its run folder (``jaxpm.run``)."""
    progress = progress or Progress.quiet()
    started = time.perf_counter()
    prep = prepare(config, overrides, progress)
    spec = prep.spec
    run_dir = results.new_run_dir(Path(spec.output.dir), spec.name)
    info: dict[str, Any] = {
        "name": spec.name,
        "config": spec.label,
        "run_dir": str(run_dir),
        "status": "running",
        "spec": spec.model_dump(mode="json"),
        "versions": results.versions(),
        "timing": {"build_seconds": prep.build_seconds},
        "experiment": _experiment_info(prep.ctx),
        "files": [],
    }
    files: list[str] = []

    def save(name: str, writer):
        writer(run_dir / name)
        files.append(name)

    def stop_clock(info):
        info["timing"]["total_seconds"] = time.perf_counter() - started

    with results.recorded(info, run_dir / "run.json", files, stop_clock):
        save("config.yaml", lambda p: results.write_text(p, spec.to_yaml()))
        _write_graph(prep.model, run_dir, files)
        info["evaluation"] = evaluate_backends(prep, progress)
        info["ok"] = info["evaluation"]["ok"]
        if spec.check_grad.enabled:
            from jaxpm.gradcheck import check_gradients

            info["check_grad"] = check_gradients(prep, progress)
            info["ok"] = info["ok"] and info["check_grad"]["ok"]
        if spec.sample.enabled:
            from jaxpm.sampling import sample_and_save

            info["sampling"] = sample_and_save(prep, run_dir, save, progress)
            info["ok"] = info["ok"] and info["sampling"]["ok"]
    return RunResult(run_dir, info)


def _experiment_info(ctx) -> dict:
    """The JSON-friendly part of what the experiment reported about itself."""
    out = {"ops": [u.name for u in ctx.ops]}
    for name, info in ctx.info.items():
        out[name] = {k: v for k, v in info.items() if isinstance(v, str | int | float | list | bool)}
    return out


def _write_graph(model, run_dir: Path, files: list[str]) -> None:
    """``model.dot`` always; ``model.svg`` where Graphviz's ``dot`` is installed."""
    import shutil
    import subprocess

    import pymc as pm

    dot = pm.model_to_graphviz(model).source
    results.write_text(run_dir / "model.dot", dot)
    files.append("model.dot")
    if shutil.which("dot"):
        svg = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, check=False)
        if svg.returncode == 0:
            results.write_bytes(run_dir / "model.svg", svg.stdout)
            files.append("model.svg")


__all__ = ["run", "prepare", "evaluate_backends", "overrides_from", "RunResult", "ConfigError"]
