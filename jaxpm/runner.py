"""``jaxpm run``: build, evaluate on each backend, check gradients, sample, write the folder.

:func:`run` strings the pieces together (:func:`jaxpm.prepare.prepare`,
:func:`jaxpm.evaluation.evaluate`, :func:`jaxpm.gradcheck.check_gradients`,
:func:`jaxpm.sampling.sample_and_save`) and writes the run folder.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jaxpm import rundir
from jaxpm.evaluation import evaluate
from jaxpm.gradcheck import check_gradients
from jaxpm.prepare import prepare
from jaxpm.progress import Progress
from jaxpm.sampling import sample_and_save
from jaxpm.sampling.driver import resolve_settings
from jaxpm.spec import load_spec


@dataclass
class RunResult:
    """What ``jaxpm.run`` returns: the run folder and the content of its ``run.json``."""

    run_dir: Path
    info: dict

    @property
    def ok(self) -> bool:
        return bool(self.info.get("ok"))


def run(config, overrides=None, *, progress: Progress | None = None, explain: bool = False) -> RunResult | dict:
    """Run an experiment end to end and write its run folder.

    Parameters
    ----------
    config
        A config path, a built-in name (``"ode"``), a mapping or a :class:`~jaxpm.spec.Spec`.
    overrides
        ``["key.path=VALUE", ...]``, as ``--set`` on the command line.
    progress
        Where progress goes (default: nowhere; the CLI passes one on stderr).
    explain
        Only say what ``auto`` would choose: return the ``auto`` block (setting ->
        ``{"value", "reason"}``) without writing a run folder.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as out:
    ...     result = run("exp", [f"output.dir={out}", "evaluate.backends=[c]", "check_grad.enabled=false"])
    ...     result.ok, result.info["status"], sorted(result.info["files"])[:2]
    (True, 'finished', ['config.yaml', 'model.dot'])
    """
    progress = progress or Progress.quiet()
    started = time.perf_counter()
    prep = prepare(config, overrides, progress)
    resolved = None
    if prep.spec.sample.enabled or explain:
        with progress.step(f"{prep.spec.name}: choosing the settings left at auto"):
            resolved = resolve_settings(prep)
    choices = _auto_choices(prep, resolved)
    if explain:
        return choices
    for key, choice in choices.items():
        progress.print(f"[dim]auto:[/dim] {key} = {_short(choice['value'])}: {choice['reason']}", highlight=False)
    prep = _with_choices(prep, resolved, choices)
    spec = prep.spec
    folder = rundir.RunFolder.create(spec.output.dir, spec.name)
    info: dict[str, Any] = {
        "name": spec.name,
        "config": spec.label,
        "run_dir": str(folder.path),
        "status": "running",
        "spec": spec.model_dump(mode="json"),
        "versions": rundir.versions(),
        "timing": {"build_seconds": prep.build_seconds},
        "experiment": _describe(prep),
        "auto": choices,
        "files": [],
    }

    def stop_clock(info):
        info["timing"]["total_seconds"] = time.perf_counter() - started

    with folder.recorded(info, "run.json", stop_clock):
        folder.save("config.yaml", lambda p: rundir.write_text(p, spec.to_yaml()))
        _write_graph(prep.model, folder)
        evaluation = evaluate(prep, progress)
        info["evaluation"] = evaluation.document
        info["ok"] = evaluation.document["ok"]
        if evaluation.arrays:  # variables too large for run.json, in full
            folder.save("evaluation.npz", lambda p: rundir.write_with(p, lambda t: np.savez(t, **evaluation.arrays)))
        if spec.check_grad.enabled:
            info["check_grad"] = check_gradients(prep, progress)
            info["ok"] = info["ok"] and info["check_grad"]["ok"]
        if spec.sample.enabled:
            info["sampling"] = sample_and_save(prep, folder.save, progress, resolved)
            info["loo"] = info["sampling"].pop("loo", None)
            info["ok"] = info["ok"] and info["sampling"]["ok"]
    return RunResult(folder.path, info)


def _auto_choices(prep, resolved) -> dict[str, dict[str, Any]]:
    """run.json's ``auto`` block: every setting ``auto`` chose, its value and the reason."""
    out = {key: {"value": value, "reason": reason}
           for key, (value, reason) in prep.experiment.auto_choices(prep.ctx.built).items()}
    if resolved is not None:
        out.update(resolved.as_json())
    return out


def _with_choices(prep, resolved, choices: dict[str, dict[str, Any]]):
    """``prep`` whose spec says what ``auto`` chose (so that config.yaml reruns this run)."""
    overrides = {key: c["value"] for key, c in choices.items() if not key.startswith("initial point")}
    spec = prep.spec
    if resolved is not None:
        spec = spec.model_copy(update={"sample": resolved.settings})
        overrides = {k: v for k, v in overrides.items() if not k.startswith("sample.")}
    if overrides:
        spec = load_spec(spec, overrides)
    return dataclasses.replace(prep, spec=spec)


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(prep) -> dict[str, Any]:
    """run.json's ``experiment`` block: the ops applied, and what the experiment says of itself."""
    out: dict[str, Any] = {"ops": [u.name for u in prep.ctx.ops]}
    facts = prep.experiment.describe(prep.ctx.built)
    if facts:
        out[prep.experiment.name] = facts
    return out


def _write_graph(model, folder: rundir.RunFolder) -> None:
    """``model.dot`` always; ``model.svg`` where Graphviz's ``dot`` is installed."""
    import pymc as pm

    dot = pm.model_to_graphviz(model).source
    folder.save("model.dot", lambda p: rundir.write_text(p, dot))
    if shutil.which("dot"):
        svg = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, check=False)
        if svg.returncode == 0:
            folder.save("model.svg", lambda p: rundir.write_bytes(p, svg.stdout))


__all__ = ["run", "RunResult"]
