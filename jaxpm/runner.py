"""``jaxpm run``: build, evaluate on each backend, check gradients, sample, write the folder.

:func:`run` strings the pieces together (:func:`jaxpm.prepare.prepare`,
:func:`jaxpm.evaluation.evaluate_backends`, :func:`jaxpm.gradcheck.check_gradients`,
:func:`jaxpm.sampling.sample_and_save`) and writes the run folder.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jaxpm import rundir
from jaxpm.evaluation import evaluate_backends
from jaxpm.gradcheck import check_gradients
from jaxpm.prepare import prepare
from jaxpm.progress import Progress
from jaxpm.sampling import sample_and_save


@dataclass
class RunResult:
    """What ``jaxpm.run`` returns: the run folder and the content of its ``run.json``."""

    run_dir: Path
    info: dict

    @property
    def ok(self) -> bool:
        return bool(self.info.get("ok"))


def run(config, overrides=None, *, progress: Progress | None = None) -> RunResult:
    """Run an experiment end to end and write its run folder.

    Parameters
    ----------
    config
        A config path, a built-in name (``"ode"``), a mapping or a :class:`~jaxpm.spec.Spec`.
    overrides
        ``["key.path=VALUE", ...]``, as ``--set`` on the command line.
    progress
        Where progress goes (default: nowhere; the CLI passes one on stderr).

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
        "files": [],
    }

    def stop_clock(info):
        info["timing"]["total_seconds"] = time.perf_counter() - started

    with folder.recorded(info, "run.json", stop_clock):
        folder.save("config.yaml", lambda p: rundir.write_text(p, spec.to_yaml()))
        _write_graph(prep.model, folder)
        info["evaluation"] = evaluate_backends(prep, progress)
        info["ok"] = info["evaluation"]["ok"]
        if spec.check_grad.enabled:
            info["check_grad"] = check_gradients(prep, progress)
            info["ok"] = info["ok"] and info["check_grad"]["ok"]
        if spec.sample.enabled:
            info["sampling"] = sample_and_save(prep, folder.save, progress)
            info["loo"] = info["sampling"].pop("loo", None)
            info["ok"] = info["ok"] and info["sampling"]["ok"]
    return RunResult(folder.path, info)


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
