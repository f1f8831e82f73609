"""``jaxpm sweep``: a grid of variants of one config, each a full run, compared in one table.

:func:`plan` expands the grid (the config's ``sweep:`` section and ``--grid``, see
:mod:`jaxpm.spec.grid`) into points and validates every one of them, model built, before
anything runs or is written: a bad value is one :class:`~jaxpm.errors.ConfigError`
naming the point and the key. :func:`run_sweep` then runs the points as tasks on the
:class:`~jaxpm.many.executor.Executor`; each point is ``jaxpm run`` (:func:`jaxpm.runner.run`)
with its own run folder. The sweep folder ``<out>/<name>-sweep/<run-id>/`` holds::

    config.yaml        the base config with the sweep it ran (resume reads it)
    tasks/point-NNN.json   each point's record, written as the point ends
    point-NNN/<name>/<run-id>/   each point's run folder
    sweep.csv, sweep.json, sweep.png

A point's ``status`` is ``ok``; ``check_failed`` when it ran to the end but a check
failed (backends disagree, a gradient is wrong); or ``failed`` when it did not give a
result: it raised, its worker died, or its sampler produced no usable draws.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaxpm import rundir
from jaxpm.errors import ConfigError
from jaxpm.many import report
from jaxpm.many.executor import Executor, Outcome, Results, Task, worker_threads
from jaxpm.progress import Progress
from jaxpm.spec import Spec, load_spec
from jaxpm.spec.grid import merge, parse_grid
from jaxpm.spec.overrides import parse_override

COLUMNS = ["status", "error", "run_dir", "logp", "max_backend_diff", "check_grad_ok", "us_per_eval"]
"""sweep.csv's columns after ``point`` and the grid keys (SPEC.md, "Many runs")."""
SAMPLING_COLUMNS = ["sampler_seconds", "min_ess_bulk", "min_ess_tail", "ess_per_s", "max_r_hat", "divergences",
                    "failed_solves"]
"""...and these when any point samples."""


@dataclass
class Plan:
    """A validated sweep: the base config (with the sweep it runs) and one spec per point."""

    base: Spec
    points: list[dict[str, Any]]
    specs: list[Spec]

    @property
    def keys(self) -> list[str]:
        return self.base.sweep.keys

    @property
    def sampling(self) -> bool:
        return any(s.sample.enabled for s in self.specs)

    def describe(self, i: int) -> str:
        """``ode.solver=Tsit5, sample.sampler=nutpie``: what point ``i`` sets."""
        return ", ".join(f"{k}={_text(v)}" for k, v in self.points[i].items())


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns: the folder and the content of its ``sweep.json``."""

    sweep_dir: Path
    info: dict
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.info.get("ok"))


# ------------------------------------------------------------------ planning


def plan(config: str | Path | Spec | None, sets: list[str] | None = None, grid: list[str] | None = None, *,
         resume: Path | None = None, validate: bool = True, progress: Progress | None = None) -> Plan:
    """Expand and validate a sweep; every error is a :class:`ConfigError` and nothing is written.

    ``config`` with ``sets`` (``--set``) and ``grid`` (``--grid``) says what to sweep;
    with ``resume`` the sweep folder's ``config.yaml`` does, and ``config``, ``sets`` and
    ``grid``, if given, must say the same. ``validate`` builds every point's model (what
    ``jaxpm run`` checks before it writes anything).
    """
    progress = progress or Progress.quiet()
    if resume is not None:
        base = _resumed_base(Path(resume), config, sets, grid)
    else:
        if config is None:
            raise ConfigError("CONFIG", "give a config to sweep, or --resume SWEEP_DIR")
        base = _base(config, sets, grid)
    label = base.label
    points = base.sweep.points() if base.sweep is not None else []
    if not points:
        raise ConfigError("sweep", "nothing to sweep: give --grid KEY=V1,V2,... or a sweep: section with a grid",
                          label)
    specs = []
    for i, values in enumerate(points):
        try:
            specs.append(load_spec(base, {**values, "sweep": None}))
        except ConfigError as e:
            raise _at_point(e, i, values, label) from None
    if validate:
        from jaxpm.prepare import prepare

        with progress.step(f"{base.name}: checking {len(points)} points (each model built)"):
            for i, spec in enumerate(specs):
                try:
                    prepare(spec)
                except ConfigError as e:
                    raise _at_point(e, i, points[i], label) from None
    return Plan(base, points, specs)


def _base(config, sets, grid_items) -> Spec:
    """The config with ``--set`` applied and ``--grid`` merged into its ``sweep:``."""
    base = load_spec(config, sets or None)
    try:
        grid = parse_grid(grid_items)
    except ConfigError as e:
        raise e.within(base.label) from None
    swept = set(grid) | (set(base.sweep.keys) if base.sweep else set())
    for item in sets or []:
        key, _ = parse_override(item)
        if key in swept:
            raise ConfigError(key, f"--set {key} is also swept (--grid or sweep:); drop one of them", base.label)
    try:
        merged = merge(base.sweep.model_dump(mode="json") if base.sweep else None, grid)
    except ConfigError as e:
        raise e.within(base.label) from None
    return load_spec(base, {"sweep": merged})


def _resumed_base(folder: Path, config, sets, grid) -> Spec:
    """The base config of the sweep in ``folder``; a config, --set or --grid given with it must agree."""
    saved = folder / "config.yaml"
    if not saved.is_file():
        raise ConfigError("--resume", f"{folder} is not a sweep folder (it has no config.yaml); give the folder "
                                      "jaxpm sweep printed")
    base = load_spec(saved)
    if config is None and not sets and not grid:
        return base
    if config is None:
        raise ConfigError("--resume", "--set and --grid need the CONFIG they apply to; to continue the sweep "
                                      "as it was, give --resume alone", str(folder))
    given = _base(config, sets, grid)
    where = _first_difference(_comparable(given), _comparable(base))
    if where is not None:
        raise ConfigError("--resume", f"the sweep in {folder} was started with other settings (they differ at "
                                      f"{where or 'the top'}); give --resume alone to continue it as it was",
                          str(config))
    return base


def _comparable(spec: Spec) -> dict:
    raw = spec.raw()
    raw.pop("output", None)
    return raw


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The key path where two plain-data trees first differ, or None when equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in [*a, *(k for k in b if k not in a)]:
            if k not in a or k not in b:
                return f"{path}.{k}" if path else str(k)
            found = _first_difference(a[k], b[k], f"{path}.{k}" if path else str(k))
            if found is not None:
                return found
        return None
    return None if a == b else path


def _at_point(e: ConfigError, i: int, values: dict, label: str) -> ConfigError:
    what = ", ".join(f"{k}={_text(v)}" for k, v in values.items())
    return ConfigError(e.key, f"point {i} ({what}): {e.message}", e.config or label)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# ------------------------------------------------------------------ one point, on a worker


def run_point(spec: Spec) -> dict:
    """Run one point (on a worker) and return what its row needs from run.json.

    A sampler that was not told its cores gets the cores one task may use on this worker
    (``sample.cores``, written into the point's config), so that chains do not
    oversubscribe it.
    """
    from jaxpm.runner import run

    threads = worker_threads()
    if threads and spec.sample.enabled and spec.sample.cores is None:
        spec = load_spec(spec, {"sample.cores": threads})
    return summary(run(spec).info)


def summary(info: dict) -> dict:
    """The figures of one run's ``run.json`` that a sweep row shows (keys read defensively:
    other commands add to run.json)."""
    ev = info.get("evaluation") or {}
    backends = ev.get("backends") or {}
    first = next(iter(backends.values()), {})
    diffs = ev.get("max_abs_diff") or {}
    grad = info.get("check_grad")
    s = info.get("sampling")
    out: dict[str, Any] = {
        "run_dir": info.get("run_dir"),
        "run_status": info.get("status"),
        "run_ok": bool(info.get("ok")),
        "logp": first.get("logp"),
        "max_backend_diff": max(diffs.values(), default=None) if len(backends) > 1 else None,
        "check_grad_ok": grad.get("ok") if grad else None,
        "us_per_eval": first["seconds_per_eval"] * 1e6 if first.get("seconds_per_eval") is not None else None,
        "reasons": [*ev.get("disagreements", [])],
    }
    if grad and not grad.get("ok"):
        bad = [o["op"] for o in grad.get("ops", []) if not o.get("ok")]
        out["reasons"].append("gradient check failed" + (f" (op {', '.join(bad)})" if bad else ""))
    if ev and not ev.get("ok") and not ev.get("disagreements"):
        out["reasons"].append("the backends' evaluation failed its check")
    if s is not None:
        out.update(
            sampling_ok=bool(s.get("ok")), sampling_message=s.get("message"), sampler_seconds=s.get("wall_seconds"),
            min_ess_bulk=s.get("min_ess_bulk"), min_ess_tail=s.get("min_ess_tail"),
            ess_per_s=s.get("ess_per_second"), max_r_hat=s.get("max_r_hat"), divergences=s.get("divergences"),
            failed_solves=s.get("failed_solves_in_draws"),
        )
    return rundir.json_safe(out)


# ------------------------------------------------------------------ rows


def row(plan_: Plan, i: int, outcome: Outcome | None, folder: Path) -> dict:
    """Point ``i``'s row: its values, status, error, run folder and figures (None where absent)."""
    r: dict[str, Any] = {"point": i}
    raw = plan_.specs[i].raw()
    for key, value in plan_.points[i].items():
        r[key] = _value_at(raw, key, value)
    r.update(dict.fromkeys(COLUMNS))
    if plan_.sampling:
        r.update(dict.fromkeys(SAMPLING_COLUMNS))
    r["worker"], r["seconds"] = None, None
    if outcome is None:
        r["status"] = "pending"
        return r
    value = outcome.value if isinstance(outcome.value, dict) else {}
    r["worker"] = outcome.worker.get("address")
    r["seconds"] = outcome.seconds
    r["run_dir"] = value.get("run_dir") or _latest_run(folder / point_key(i))
    for col in (c for c in (*COLUMNS, *SAMPLING_COLUMNS) if c in r and c in value):
        r[col] = value[col]
    r["status"], r["error"] = _status(outcome, value)
    return r


def _status(outcome: Outcome, value: dict) -> tuple[str, str | None]:
    if outcome.status == "lost":
        return "failed", outcome.error
    if outcome.status != "done":
        return "failed", outcome.error
    if value.get("run_status") != "finished":
        return "failed", f"the run ended {value.get('run_status')}"
    if value.get("sampling_ok") is False:
        return "failed", value.get("sampling_message") or "sampling failed"
    if not value.get("run_ok"):
        return "check_failed", "; ".join(value.get("reasons") or []) or "a check failed (see run.json)"
    return "ok", None


def _value_at(raw: dict, key: str, given: Any) -> Any:
    """The value at ``key`` as the validated config has it (``1e-8`` the number), else as given."""
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return given
        node = node[part]
    return node


def _latest_run(point_dir: Path) -> str | None:
    runs = sorted(p for p in point_dir.glob("*/*") if p.is_dir())
    return str(runs[-1]) if runs else None


def point_key(i: int) -> str:
    return f"point-{i:03d}"


def _complete(outcome: Outcome | None) -> bool:
    """A point whose record is done and whose run folder finished (run.json says so)."""
    if outcome is None or not outcome.ok or not isinstance(outcome.value, dict):
        return False
    run_json = Path(str(outcome.value.get("run_dir"))) / "run.json"
    try:
        return json.loads(run_json.read_text()).get("status") == "finished"
    except (OSError, ValueError):
        return False


# ------------------------------------------------------------------ the sweep


def run_sweep(the_plan: Plan, *, out: Path | str | None = None, resume: Path | None = None,
              scheduler: str | None = None, workers: int | None = None, sort: str = "point",
              progress: Progress | None = None) -> SweepResult:
    """Run the points of ``the_plan`` (only those not complete, with ``resume``) and write
    the sweep folder. Ctrl-C writes what finished and re-raises KeyboardInterrupt."""
    progress = progress or Progress.quiet()
    report.check_sort(sort, the_plan.keys, the_plan.sampling, the_plan.base.label)
    began = time.perf_counter()
    previous = Results(Path(resume) / "tasks").load() if resume is not None else {}
    complete = {point_key(i) for i in range(len(the_plan.points)) if _complete(previous.get(point_key(i)))}
    pending = [i for i in range(len(the_plan.points)) if point_key(i) not in complete]
    if scheduler is not None and workers is not None:
        raise ConfigError("--workers", "--workers sizes the local cluster; with --scheduler the cluster has the "
                                       "workers it has: drop one of them", the_plan.base.label)
    n_workers = None if scheduler else min(workers or _cores(), max(1, len(pending)))
    outcomes = {k: previous[k] for k in complete}
    cluster: dict[str, Any] = {}
    folder: Path | None = Path(resume) if resume is not None else None
    if not pending and folder is not None:  # resumed, and nothing left to run
        progress.print(f"[bold]{the_plan.base.name}[/bold]: every point of {folder} is complete")
        old = _previous_cluster(folder)
        return SweepResult(folder, _write(the_plan, folder, outcomes, old, "finished", sort,
                                          time.perf_counter() - began), outcomes)
    try:
        with _named(the_plan.base.label), Executor(scheduler, n_workers, progress) as ex:
            cluster = ex.describe()
            if folder is None:
                folder = rundir.new_run_dir(Path(out or the_plan.base.output.dir).resolve(),
                                            f"{the_plan.base.name}-sweep")
                rundir.write_text(folder / "config.yaml", the_plan.base.to_yaml())
            progress.print(f"[bold]{the_plan.base.name}[/bold]: {len(pending)} of {len(the_plan.points)} points to "
                           f"run on {len(cluster['workers'])} workers ({cluster['cluster']} cluster, "
                           f"scheduler {cluster['scheduler']}); folder {folder}")
            tasks = [Task(point_key(i), run_point, (_at(the_plan.specs[i], folder / point_key(i)),)) for i in pending]

            def finished(o: Outcome) -> None:
                outcomes[o.key] = o
                i = int(o.key.split("-")[1])
                r = row(the_plan, i, o, folder)
                colour = {"ok": "green", "check_failed": "yellow"}.get(r["status"], "red")
                progress.print(f"point {i} ({the_plan.describe(i)}): [{colour}]{r['status']}[/{colour}] in "
                               f"{o.seconds or 0:.1f} s on {r['worker'] or 'an unknown worker'}"
                               + (f": {r['error']}" if r["error"] else ""), highlight=False)

            ex.run(tasks, Results(folder / "tasks"), finished, what=f"{the_plan.base.name} sweep",
                   failed=lambda o: row(the_plan, int(o.key.split("-")[1]), o, folder)["status"] != "ok")
            end = ex.describe()  # workers that died during the run stay listed
            cluster = {**end, "workers": {**cluster["workers"], **end["workers"]}}
    except KeyboardInterrupt:
        if folder is not None:  # keep what finished
            _write(the_plan, folder, outcomes, cluster, "interrupted", sort, time.perf_counter() - began)
        raise
    info = _write(the_plan, folder, outcomes, cluster, "finished", sort, time.perf_counter() - began)
    return SweepResult(folder, info, outcomes)


def _previous_cluster(folder: Path) -> dict:
    """The cluster a finished sweep recorded (its sweep.json), or nothing."""
    try:
        return json.loads((folder / "sweep.json").read_text()).get("cluster") or {}
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def _named(label: str):
    """A ConfigError from the cluster (``--scheduler``) names the config, as every bad input does."""
    try:
        yield
    except ConfigError as e:
        raise e.within(label) from None


def _at(spec: Spec, point_dir: Path) -> Spec:
    """``spec`` writing its run folder under ``point_dir``."""
    return load_spec(spec, {"output.dir": str(point_dir)})


def _cores() -> int:
    import os

    return os.cpu_count() or 1


def _write(the_plan: Plan, folder: Path, outcomes: dict[str, Outcome], cluster: dict, status: str, sort: str,
           seconds: float) -> dict:
    """sweep.json, sweep.csv and sweep.png of what has finished so far."""
    rows = [row(the_plan, i, outcomes.get(point_key(i)), folder) for i in range(len(the_plan.points))]
    best = report.best(rows, sort, the_plan.sampling)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "check_failed", "failed", "pending")}
    info = {
        "name": the_plan.base.name,
        "config": the_plan.base.label,
        "sweep_dir": str(folder),
        "status": status,
        "ok": status == "finished" and counts["ok"] == len(rows),
        "points": len(rows),
        "counts": counts,
        "keys": the_plan.keys,
        "grid": the_plan.base.sweep.grid,
        "zip": the_plan.base.sweep.zip,
        "scheduler": cluster.get("scheduler"),
        "cluster": cluster,
        "sort": sort,
        "best": best,
        "wall_seconds": seconds,
        "versions": rundir.versions(),
        "rows": rows,
    }
    csv_columns = ["point", *the_plan.keys, *COLUMNS, *(SAMPLING_COLUMNS if the_plan.sampling else [])]
    done = [r for r in rows if r["status"] != "pending"]
    rundir.write_text(folder / "sweep.csv", _csv(done, csv_columns))
    if done:
        rundir.write_with(folder / "sweep.png",
                          lambda p: report.figure(rows, the_plan.keys, the_plan.sampling, best, p))
    info["files"] = sorted(["config.yaml", "sweep.csv", "sweep.json", *(["sweep.png"] if done else [])])
    rundir.write_json(folder / "sweep.json", info)
    return info


def _csv(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: _cell(r.get(c)) for c in columns})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value)
    return rundir.json_safe(value)


__all__ = ["Plan", "SweepResult", "plan", "run_sweep", "run_point", "summary", "row", "point_key", "COLUMNS",
           "SAMPLING_COLUMNS"]
