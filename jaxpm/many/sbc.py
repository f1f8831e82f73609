"""``jaxpm sbc``: simulation-based calibration, many fits of prior-simulated data on Dask.

Simulation ``i`` takes the prior draw ``i`` of the parameters and the prior predictive
draw ``i`` of the observed variables, fits that dataset with the config's sampler, and
ranks each true value among L thinned posterior draws (:mod:`jaxpm.many.ranks`). When
the inference is calibrated every rank is uniform on {0..L}.

The simulator and the fit
    The simulator is the config with ``--set``; the fitting model is the same with
    ``--fit-set`` on top (a narrower prior, another sampler: what miscalibration looks
    like) and the ``sbc:`` section's ``chains``, ``tune`` and ``draws`` in ``sample:``.
    Both must have the same free and observed variables. ``auto`` sampler settings are
    resolved once, on the fitting model, and every simulation uses them (sbc.json's
    ``settings.auto``); a ``start: mode`` that ``auto`` chose becomes ``initial`` (a mode
    search per dataset compiles the logp again each time; a ``mode`` written in the
    config is kept).

Seeds
    The truths of simulation ``i`` are the predictive module's prior draw ``i`` under the
    config's seed (:mod:`jaxpm.predictive.vectorised`: key ``fold_in(fold_in(PRNGKey(seed),
    stream), i)``), drawn for all simulations at once in one JAX program before any fit
    runs; the fit's seed, and the random split of tied ranks, come from
    ``numpy.random.SeedSequence([seed, i])``. Nothing depends on the worker or the order.

Compiled once per worker
    The observed data become shared variables (:func:`share_observed`) and each worker
    keeps, with :func:`~jaxpm.many.executor.cached`, one built fitting model, what its
    sampler compiled (:func:`jaxpm.sampling.driver.compile_sampler`: nutpie's jitted logp
    and gradient, which takes the data as arguments) and a compiled log-likelihood; a
    simulation sets the data and samples. Samplers that compile per call (PyMC's JAX
    samplers, the fits) still do so; ``settings.compiled_once`` says which it was, and
    each record's seconds say what a simulation cost beyond its sampling.

Thinning
    The fit's draws (``sbc.chains`` x ``sbc.draws``) are thinned evenly within each chain
    to ``sbc.thinned`` draws (:func:`jaxpm.predictive.thin`), a fixed L for every
    simulation; each record keeps the fit's smallest bulk ESS, and sbc.json warns when
    the median is below L (ranks of correlated draws pile up at the ends).

Quantities
    Every scalar of every free variable (``theta``, or ``theta[0]``, ``theta[1, 2]``) and
    ``log_likelihood``: the log-likelihood of the simulated data, summed over the observed
    variables, at the true parameters, ranked among its values at the draws.

Failures
    A fit that raises, gives no usable draws, or data the simulator could not produce (a
    failed solve) is a ``failed`` simulation with its reason; a fit with divergences is
    ``divergent`` and keeps its ranks. More than ``sbc.max_failed`` of the simulations
    failed: not calibrated. Each quantity's ranks get the ECDF uniformity test, the
    levels adjusted by Holm over the quantities at ``sbc.level``.

The folder ``<out>/<name>-sbc/<run-id>/``::

    config.yaml            the simulator's config (with its sbc: section)
    sims/sim-NNNN.json     each simulation's record, written as it ends (resume reads them)
    sbc.json, ranks.csv, ranks.png, ecdf.png
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jaxpm import rundir
from jaxpm.errors import ConfigError, first_line
from jaxpm.many import ranks as rk
from jaxpm.many.executor import Executor, Outcome, Results, Task, cached, worker_threads
from jaxpm.progress import Progress
from jaxpm.spec import Spec, load_spec
from jaxpm.spec.sbc import Sbc

LOG_LIKELIHOOD = "log_likelihood"
"""The quantity ranked besides the parameters."""
MAX_QUANTITIES = 200
"""More scalar parameters than this is no model for SBC (the CNN has 824,458)."""


@dataclass
class SbcPlan:
    """A validated sbc run: the simulator's spec, the fitting spec, the resolved sampler
    settings and the quantities ranked."""

    base: Spec
    fit: Spec
    fit_sets: list[str]
    resolved: Any
    quantities: list[str]
    free: list[str]
    observed: list[str]

    @property
    def settings(self) -> Sbc:
        return self.base.sbc


@dataclass
class SbcResult:
    """What :func:`run_sbc` returns: the folder and the content of its ``sbc.json``."""

    folder: Path
    info: dict
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.info.get("ok"))


# ------------------------------------------------------------------ planning


def plan(config: str | Path | Spec | None, sets: list[str] | None = None, fit_sets: list[str] | None = None, *,
         sims: int | None = None, resume: Path | None = None, scheduler: str | None = None,
         workers: int | None = None, progress: Progress | None = None) -> SbcPlan:
    """Load and check everything before anything runs or is written; every error is a
    :class:`~jaxpm.errors.ConfigError`.

    With ``resume`` the folder's ``config.yaml`` and ``sbc.json`` say what runs; a config,
    ``--set``, ``--fit-set`` or ``--sims`` given too must agree with them. ``scheduler``
    and ``workers`` are checked here too (one of them at most).
    """
    from jaxpm.prepare import prepare

    progress = progress or Progress.quiet()
    if scheduler is not None and workers is not None:
        raise ConfigError("--workers", "--workers sizes the local cluster; with --scheduler the cluster has the "
                                       "workers it has: drop one of them", str(config or resume))
    if resume is not None:
        base, fit_sets = _resumed(Path(resume), config, sets, fit_sets, sims)
    else:
        if config is None:
            raise ConfigError("CONFIG", "give a config to calibrate, or --resume SBC_DIR")
        base = _base(config, sets, sims)
    fit_sets = list(fit_sets or [])
    for item in fit_sets:
        if item.partition("=")[0].strip().split(".")[0] in ("sbc", "output", "seed"):
            raise ConfigError("--fit-set", f"{item.partition('=')[0].strip()} is not the fitting model's: "
                                            "give it with --set", base.label)
    s = base.sbc
    try:
        fit = load_spec(base, [*fit_sets, f"sample.chains={s.chains}", f"sample.tune={s.tune}",
                               f"sample.draws={s.draws}", "sample.enabled=true"])
    except ConfigError as e:
        raise _fitting(e, base.label) from None
    with progress.step(f"{base.name}: building the simulator and the fitting model"):
        sim_prep = prepare(base)
        try:
            fit_prep = prepare(fit)
        except ConfigError as e:
            raise _fitting(e, base.label) from None
        free, observed = _same_variables(sim_prep.model, fit_prep.inference_model(), base.label)
        if not observed or not free:
            raise ConfigError("likelihood" if not observed else "priors",
                              "sbc simulates observed data from priors and fits them: the config needs "
                              f"{'a likelihood with observed data' if not observed else 'at least one prior'}",
                              base.label)
        quantities = [*scalar_names(sim_prep.model), LOG_LIKELIHOOD]
        if len(quantities) - 1 > MAX_QUANTITIES:
            raise ConfigError("priors", f"{len(quantities) - 1} scalar parameters to rank; sbc ranks at most "
                                        f"{MAX_QUANTITIES}", base.label)
    resolved = resolve_once(fit_prep, progress)
    if resume is not None:  # the settings the first simulations ran with (auto's timed choices may differ now)
        saved = _previous(Path(resume)).get("settings", {}).get("sampler") or {}
        if saved:
            resolved.settings = resolved.settings.model_copy(update=saved)
    return SbcPlan(base, fit, fit_sets, resolved, quantities, free, observed)


def _fitting(e: ConfigError, label: str) -> ConfigError:
    """An error of the fitting model, saying so (it comes from --fit-set)."""
    return ConfigError(e.key, f"in the fitting model (--fit-set): {e.message}", e.config or label)


def _base(config, sets, sims) -> Spec:
    """The simulator: the config with ``--set``, an ``sbc:`` section (defaults) and ``--sims``."""
    spec = load_spec(config, sets or None)
    if spec.sbc is None:
        spec = load_spec(spec, {"sbc": {}})
    if sims is not None:
        if sims < 1:
            raise ConfigError("--sims", f"expected at least 1 simulation, got {sims}", spec.label)
        spec = load_spec(spec, {"sbc.sims": sims})
    return spec


def _resumed(folder: Path, config, sets, fit_sets, sims) -> tuple[Spec, list[str]]:
    saved, info = folder / "config.yaml", folder / "sbc.json"
    if not saved.is_file() or not info.is_file():
        raise ConfigError("--resume", f"{folder} is not an sbc folder (it has no config.yaml and sbc.json); give "
                                      "the folder jaxpm sbc printed")
    base = load_spec(saved)
    try:
        old_fit = list(json.loads(info.read_text())["settings"]["fit_set"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError("--resume", f"{info} cannot be read; start a new run") from None
    if sims is not None and sims != base.sbc.sims:
        raise ConfigError("--resume", f"the run in {folder} has {base.sbc.sims} simulations, not {sims}; give "
                                      "--resume alone to continue it", str(saved))
    if fit_sets and list(fit_sets) != old_fit:
        raise ConfigError("--resume", f"the run in {folder} was fitted with --fit-set {old_fit or 'none'}; give "
                                      "--resume alone to continue it", str(saved))
    if config is not None or sets:
        if config is None:
            raise ConfigError("--resume", "--set needs the CONFIG it applies to; give --resume alone")
        given = _base(config, sets, base.sbc.sims)
        a, b = given.raw(), base.raw()
        a.pop("output", None)
        b.pop("output", None)
        if a != b:
            raise ConfigError("--resume", f"the run in {folder} was started with other settings; give --resume "
                                          "alone to continue it as it was", str(config))
    return base, old_fit


def _same_variables(sim_model, fit_model, label: str) -> tuple[list[str], list[str]]:
    """The free and observed variables, which the simulator and the fit must share (names and shapes)."""
    def shapes(rvs):
        return {rv.name: tuple(int(k) for k in rv.shape.eval()) for rv in rvs}

    for kind, a, b in (("free", sim_model.free_RVs, fit_model.free_RVs),
                       ("observed", sim_model.observed_RVs, fit_model.observed_RVs)):
        sa, sb = shapes(a), shapes(b)
        if sa != sb:
            raise ConfigError("--fit-set", f"the fitting model's {kind} variables {sb} differ from the "
                                           f"simulator's {sa}; --fit-set may change priors and settings, "
                                           "not which variables there are", label)
    return [rv.name for rv in sim_model.free_RVs], [rv.name for rv in sim_model.observed_RVs]


def scalar_names(model) -> list[str]:
    """Every scalar of the free variables: ``y0``, ``x[0]``, ``w[1, 2]``, in model order."""
    names = []
    for rv in model.free_RVs:
        shape = tuple(int(k) for k in rv.shape.eval())
        if not shape:
            names.append(rv.name)
        else:
            names += [f"{rv.name}[{', '.join(map(str, ix))}]" for ix in np.ndindex(*shape)]
    return names


def resolve_once(fit_prep, progress: Progress):
    """The fitting model's ``auto`` sampler settings, chosen once; a ``mode`` start that
    auto chose becomes ``initial`` (see the module)."""
    from jaxpm.sampling.auto import Choice
    from jaxpm.sampling.driver import resolve_settings

    with progress.step(f"{fit_prep.spec.name}: choosing the sampler settings left at auto (once)"):
        resolved = resolve_settings(fit_prep)
    if resolved.settings.start == "mode" and fit_prep.spec.sample.start == "auto":
        resolved.settings = resolved.settings.model_copy(update={"start": "initial"})
        resolved.choices["sample.start"] = Choice("initial", "sbc: a mode search per simulated dataset would compile "
                                                      "the logp again for each; chains start at the initial "
                                                      "point, jittered")
    return resolved


# ------------------------------------------------------------------ the truths


def simulate(base: Spec, sims: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """The prior draws 0..sims-1 of the free variables and of the observed variables,
    ``(params, observed, info)``, each ``name -> array (sims, *shape)``: one vectorised
    JAX program (PyMC's forward sampling where a distribution has no JAX form)."""
    import xarray as xr

    from jaxpm.predictive import predictive_groups
    from jaxpm.prepare import prepare

    prep = prepare(base)
    empty = xr.Dataset(coords={"chain": [0], "draw": [0]})
    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = predictive_groups(prep.model, empty, seed=base.seed, posterior_predictive=False,
                                log_likelihood=False, prior_draws=sims)
    params = {rv.name: np.asarray(out.groups["prior"][rv.name].values[0]) for rv in prep.model.free_RVs}
    observed = {rv.name: np.asarray(out.groups["prior_predictive"][rv.name].values[0])
                for rv in prep.model.observed_RVs}
    info = {"backend": out.backends.get("prior_predictive"), "seconds": time.perf_counter() - began,
            "notes": out.notes}
    return params, observed, info


def sim_seed(seed: int, i: int) -> int:
    """Simulation ``i``'s seed: ``SeedSequence([seed, i])``, one 32-bit word.

    >>> sim_seed(20230103, 0) == sim_seed(20230103, 0) != sim_seed(20230103, 1)
    True
    """
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def sim_key(i: int) -> str:
    return f"sim-{i:04d}"


# ------------------------------------------------------------------ on a worker


def share_observed(model) -> dict[str, Any]:
    """Make each observed variable's data a shared variable (``<name>_observed``, its static
    shape kept), so that a compiled model takes new data without being rebuilt. Returns
    observed name -> shared variable. Call it before anything is compiled from the model."""
    import pytensor
    from pytensor.compile.sharedvalue import SharedVariable

    shared = {}
    for rv in model.observed_RVs:
        value = model.rvs_to_values[rv]
        if not isinstance(value, SharedVariable):
            data = np.asarray(value.data if hasattr(value, "data") else value.eval())
            value = pytensor.shared(data, name=f"{rv.name}_observed", shape=data.shape)
            model.rvs_to_values[rv] = value
        shared[rv.name] = value
    return shared


@dataclass
class Fitter:
    """What a worker keeps for every simulation of one run: the fitting model with shared
    observed data, what its sampler compiled, and the log-likelihood compiled."""

    prep: Any
    shared: dict[str, Any]
    compiled: Any
    loglik: Any
    free: list[str]
    seconds: float

    @classmethod
    def build(cls, spec: Spec, resolved) -> Fitter:
        import pytensor
        import pytensor.tensor as pt
        from pymc import logp
        from pytensor.graph.replace import graph_replace

        from jaxpm.prepare import prepare
        from jaxpm.sampling.driver import compile_sampler

        began = time.perf_counter()
        prep = prepare(spec)
        model = prep.inference_model()
        shared = share_observed(model)
        free = list(model.free_RVs)
        total = pt.add(*[logp(rv, model.rvs_to_values[rv]).sum() for rv in model.observed_RVs])
        inputs = [rv.type() for rv in free]
        total = graph_replace(total, dict(zip(free, inputs, strict=True)), strict=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loglik = pytensor.function(inputs, total, on_unused_input="ignore")
            compiled = compile_sampler(prep, resolved)
        return cls(prep, shared, compiled, loglik, [rv.name for rv in free], time.perf_counter() - began)

    def set_data(self, observed: dict[str, np.ndarray]) -> None:
        for name, var in self.shared.items():
            var.set_value(np.asarray(observed[name], dtype=var.type.dtype))

    def log_likelihood(self, point: dict[str, np.ndarray]) -> float:
        return float(self.loglik(*[point[n] for n in self.free]))


def run_sim(spec: Spec, resolved, i: int, params: dict[str, np.ndarray], observed: dict[str, np.ndarray],
            thinned: int) -> dict:
    """Fit simulation ``i`` (on a worker) and rank its truths; a failed fit is a record
    with ``status: failed`` and its ``error``, never an exception."""
    from jaxpm.predictive import thin
    from jaxpm.sampling.diagnostics import usable_draws
    from jaxpm.sampling.driver import fit

    began = time.perf_counter()
    threads = worker_threads()
    if threads and resolved.settings.cores is None:
        resolved.settings = resolved.settings.model_copy(update={"cores": threads})
    key = ("sbc", spec.to_yaml(), resolved.settings.model_dump_json(),
           repr(sorted((k, np.asarray(v).tolist()) for k, v in resolved.initial.items())))
    built: list[bool] = []
    fitter = cached(key, lambda: built.append(True) or Fitter.build(spec, resolved))
    seed = sim_seed(spec.seed, i)
    record: dict[str, Any] = {"sim": i, "status": "failed", "seed": seed, "divergences": None, "error": None,
                              "ranks": {}, "draws": None, "min_ess_bulk": None, "sampler_seconds": None,
                              "setup_seconds": fitter.seconds if built else 0.0, "seconds": None}

    def done(**kw) -> dict:
        record.update(kw, seconds=time.perf_counter() - began)
        return rundir.json_safe(record)

    bad = [n for n, v in observed.items() if not np.all(np.isfinite(v))]
    if bad:
        return done(error=f"the simulated data are not finite ({', '.join(bad)}): the simulator failed at the "
                          "prior draw")
    fitter.set_data(observed)
    sampled = time.perf_counter()
    try:
        with warnings.catch_warnings(), _quiet_pymc():
            warnings.simplefilter("ignore")
            draws = fit(fitter.prep, resolved, seed, fitter.compiled)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - a failed fit is a result (pyo3 panics are BaseExceptions)
        return done(error=f"{resolved.settings.sampler} raised {type(e).__name__}: {first_line(e)}"[:1000],
                    sampler_seconds=time.perf_counter() - sampled)
    record.update(sampler_seconds=time.perf_counter() - sampled, divergences=draws.info.get("divergences"),
                  min_ess_bulk=draws.info.get("min_ess_bulk"))
    posterior = draws.idata.posterior
    usable, total = usable_draws(posterior)
    if usable < total:
        return done(error=f"{total - usable} of {total} draws are not finite")
    kept = thin(posterior, thinned)
    values = {n: np.asarray(kept[n].values).reshape(-1, *np.shape(params[n])) for n in fitter.free}
    L = int(next(iter(values.values())).shape[0])
    rng = np.random.default_rng([seed, i, 1])
    ranks: dict[str, int] = {}
    for n in fitter.free:
        truth = np.asarray(params[n])
        flat = values[n].reshape(L, -1)
        for j, ix in enumerate(np.ndindex(*truth.shape) if truth.shape else [()]):
            name = n if not truth.shape else f"{n}[{', '.join(map(str, ix))}]"
            ranks[name] = rk.rank(flat[:, j], float(truth[ix]), rng)
    at_draws = np.array([fitter.log_likelihood({n: values[n][k] for n in fitter.free}) for k in range(L)])
    at_truth = fitter.log_likelihood({n: np.asarray(params[n]) for n in fitter.free})
    if not np.isfinite(at_truth):
        return done(error="the log-likelihood at the true parameters is not finite")
    ranks[LOG_LIKELIHOOD] = rk.rank(at_draws, at_truth, rng)
    status = "divergent" if record["divergences"] else "ok"
    return done(status=status, ranks=ranks, draws=L)


@contextlib.contextmanager
def _quiet_pymc():
    """PyMC's log lines about short chains (every fit here is short) kept off the terminal."""
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# ------------------------------------------------------------------ the run


def run_sbc(the_plan: SbcPlan, *, out: Path | str | None = None, resume: Path | None = None,
            scheduler: str | None = None, workers: int | None = None,
            progress: Progress | None = None) -> SbcResult:
    """Run the simulations of ``the_plan`` (with ``resume``, those without a finished
    record) and write the sbc folder. Ctrl-C writes what finished and re-raises."""
    progress = progress or Progress.quiet()
    began = time.perf_counter()
    s = the_plan.settings
    label = the_plan.base.label
    if scheduler is not None and workers is not None:
        raise ConfigError("--workers", "--workers sizes the local cluster; with --scheduler the cluster has the "
                                       "workers it has: drop one of them", label)
    folder = Path(resume) if resume is not None else None
    previous = Results(folder / "sims").load() if folder is not None else {}
    tasks_all = list(range(s.sims))
    done_keys = {k for k, o in previous.items() if o.ok}
    pending = [i for i in tasks_all if sim_key(i) not in done_keys]
    outcomes = {k: previous[k] for k in done_keys}
    with progress.step(f"{the_plan.base.name}: simulating {s.sims} datasets from the prior"):
        params, observed, sim_info = simulate(the_plan.base, s.sims)
    cluster: dict[str, Any] = {}
    if folder is None:
        folder = rundir.new_run_dir(Path(out or the_plan.base.output.dir).resolve(), f"{the_plan.base.name}-sbc")
        rundir.write_text(folder / "config.yaml", the_plan.base.to_yaml())
    state = {"simulation": sim_info}
    _write(the_plan, folder, outcomes, cluster, "running", time.perf_counter() - began, state)
    if not pending:
        progress.print(f"[bold]{the_plan.base.name}[/bold]: every simulation of {folder} is finished")
        old = _previous(folder).get("cluster") or {}
        info = _write(the_plan, folder, outcomes, old, "finished", time.perf_counter() - began, state)
        return SbcResult(folder, info, outcomes)
    n_workers = None if scheduler else min(workers or _cores(), len(pending))
    try:
        with Executor(scheduler, n_workers, progress) as ex:
            cluster = ex.describe()
            progress.print(f"[bold]{the_plan.base.name}[/bold]: {len(pending)} of {s.sims} simulations to fit "
                           f"with {the_plan.resolved.settings.sampler} on {len(cluster['workers'])} workers "
                           f"({cluster['cluster']} cluster, scheduler {cluster['scheduler']}); folder {folder}")
            tasks = [Task(sim_key(i), run_sim, (the_plan.fit, the_plan.resolved, i,
                                                {n: v[i] for n, v in params.items()},
                                                {n: v[i] for n, v in observed.items()}, s.thinned))
                     for i in pending]

            def finished(o: Outcome) -> None:
                outcomes[o.key] = o
                r = sim_row(o)
                if r["status"] == "failed":  # divergent fits are counted and listed at the end
                    progress.print(f"sim {r['sim']}: [red]failed[/red] on {r['worker'] or 'an unknown worker'}: "
                                   f"{r['error']}", highlight=False)

            ex.run(tasks, Results(folder / "sims"), finished, what=f"{the_plan.base.name} sbc",
                   failed=lambda o: sim_row(o)["status"] == "failed")
            end = ex.describe()
            cluster = {**end, "workers": {**cluster["workers"], **end["workers"]}}
    except KeyboardInterrupt:
        _write(the_plan, folder, outcomes, cluster, "interrupted", time.perf_counter() - began, state)
        raise
    except ConfigError as e:
        raise e.within(label) from None
    info = _write(the_plan, folder, outcomes, cluster, "finished", time.perf_counter() - began, state)
    return SbcResult(folder, info, outcomes)


def sim_row(o: Outcome) -> dict:
    """One simulation as sbc.json lists it: ``sim, status, worker, seconds, divergences, error``
    (and its ranks, draws, seed and the seconds of sampling and setting up)."""
    value = o.value if isinstance(o.value, dict) else {}
    i = int(o.key.split("-")[1])
    status = value.get("status", "failed") if o.ok else "failed"
    error = value.get("error") if o.ok else (o.error or o.status)
    return {"sim": i, "status": status, "worker": (o.worker or {}).get("address"), "seconds": o.seconds,
            "divergences": value.get("divergences"), "error": error, "seed": value.get("seed"),
            "draws": value.get("draws"), "min_ess_bulk": value.get("min_ess_bulk"),
            "sampler_seconds": value.get("sampler_seconds"), "setup_seconds": value.get("setup_seconds"),
            "ranks": value.get("ranks") or {}}


def _previous(folder: Path) -> dict:
    try:
        return json.loads((folder / "sbc.json").read_text())
    except (OSError, ValueError):
        return {}


def _cores() -> int:
    import os

    return os.cpu_count() or 1


def uniformity(the_plan: SbcPlan, rows: list[dict]) -> tuple[dict[str, dict], int | None, np.ndarray | None]:
    """Each quantity's uniformity test: ``{name: {p_value, level, ok, n}}`` (Holm's levels),
    the common L, and the null gammas (for the plots)."""
    ranked = [r for r in rows if r["ranks"]]
    Ls = sorted({r["draws"] for r in ranked})
    if len(Ls) > 1:  # a fit that kept fewer draws than the others: compare on the smallest scale
        raise RuntimeError(f"simulations kept different numbers of draws {Ls}; the ranks cannot be compared")
    L = Ls[0] if Ls else None
    null = rk.null_gammas(len(ranked), L, seed=the_plan.base.seed) if ranked and L else None
    p = {}
    for q in the_plan.quantities:
        values = [r["ranks"][q] for r in ranked if q in r["ranks"]]
        p[q] = rk.p_value(values, L, null) if values and L else float("nan")
    levels = rk.holm(p, the_plan.settings.level)
    out = {q: {"p_value": p[q], "level": levels[q][0], "ok": levels[q][1],
               "n": sum(q in r["ranks"] for r in ranked)} for q in the_plan.quantities}
    return out, L, null


def _write(the_plan: SbcPlan, folder: Path, outcomes: dict[str, Outcome], cluster: dict, status: str,
           seconds: float, state: dict) -> dict:
    """sbc.json, ranks.csv, ranks.png and ecdf.png of what has finished so far."""
    from jaxpm.many import sbc_report

    s = the_plan.settings
    rows = [sim_row(outcomes[k]) for k in sorted(outcomes)]
    failed = [r["sim"] for r in rows if r["status"] == "failed"]
    divergent = [r["sim"] for r in rows if r["status"] == "divergent"]
    quantities, L, null = uniformity(the_plan, rows) if rows else ({}, None, None)
    too_many = len(failed) > s.max_failed * s.sims
    ok = (status == "finished" and len(rows) == s.sims and not too_many and bool(quantities)
          and all(q["ok"] for q in quantities.values()))
    timed = [r for r in rows if r["seconds"] and r["sampler_seconds"] is not None]
    per_sim = float(np.median([r["seconds"] for r in timed])) if timed else None
    beyond = [(r["seconds"] - r["setup_seconds"] - r["sampler_seconds"]) for r in timed]
    ess = [r["min_ess_bulk"] for r in rows if r["min_ess_bulk"] is not None]
    warnings_ = []
    if ess and L and float(np.median(ess)) < L:
        warnings_.append(f"the median fit's smallest bulk ESS ({np.median(ess):.0f}) is below L = {L}: thinned "
                         "draws are correlated, ranks pile at the ends; raise sbc.draws or lower sbc.thinned")
    if L is not None and L < 10:
        warnings_.append(f"each rank is among L = {L} draws: the test sees little beyond bias (a fit such as map "
                         "keeps one draw); it cannot see a posterior that is too narrow or too wide")
    if too_many:
        warnings_.append(f"{len(failed)} of {s.sims} fits failed, more than sbc.max_failed = {s.max_failed:g}")
    r = the_plan.resolved
    info = {
        "ok": ok,
        "sims": s.sims,
        "failed": len(failed),
        "divergent": len(divergent),
        "seed": the_plan.base.seed,
        "scheduler": cluster.get("scheduler"),
        "quantities": quantities,
        "simulations": [{k: v for k, v in row.items() if k != "ranks"} for row in rows],
        "name": the_plan.base.name,
        "config": the_plan.base.label,
        "sbc_dir": str(folder),
        "status": status,
        "finished": len(rows),
        "failed_sims": failed,
        "divergent_sims": divergent,
        "L": L,
        "settings": {
            **s.model_dump(),
            "fit_set": the_plan.fit_sets,
            "sampler": r.settings.model_dump(mode="json", include=_SETTINGS[_mcmc(the_plan)]),
            "auto": r.as_json(),
            "compiled_once": None,
            "thinning": f"each fit's {s.chains} x {s.draws} draws thinned evenly within chains to {s.thinned}",
            "test": "ECDF gamma statistic (Säilynoja et al. 2022), null simulated "
                    f"{rk.NULL_SIMULATIONS} times; Holm's levels over the quantities at {s.level:g}",
            "max_failed": s.max_failed,
        },
        "timings": {
            "wall_seconds": seconds,
            "simulate_seconds": state.get("simulation", {}).get("seconds"),
            "median_sim_seconds": per_sim,
            "median_sampler_seconds": float(np.median([r["sampler_seconds"] for r in timed])) if timed else None,
            "median_seconds_beyond_sampling": float(np.median(beyond)) if beyond else None,
            "share_beyond_sampling": (float(np.sum(beyond) / np.sum([r["seconds"] for r in timed]))
                                      if timed else None),
            "setup_seconds_per_worker": sorted({r["setup_seconds"] for r in rows if r["setup_seconds"]}),
        },
        "workers": cluster.get("workers") or {},
        "cluster": cluster,
        "simulation": state.get("simulation"),
        "warnings": warnings_,
        "versions": rundir.versions(),
    }
    info["settings"]["compiled_once"] = _compiles_once(the_plan)
    rundir.write_text(folder / "ranks.csv", _csv(rows, the_plan.quantities))
    files = ["config.yaml", "sbc.json", "ranks.csv"]
    ranked = [r for r in rows if r["ranks"]]
    if ranked and L:
        rundir.write_with(folder / "ranks.png", lambda p: sbc_report.histograms(ranked, quantities, L, p))
        rundir.write_with(folder / "ecdf.png", lambda p: sbc_report.ecdfs(ranked, quantities, L, null, p))
        files += ["ranks.png", "ecdf.png"]
    info["files"] = sorted(files)
    rundir.write_json(folder / "sbc.json", info)
    return info


_SETTINGS = {True: {"sampler", "draws", "tune", "chains", "mass_matrix", "start", "target_accept", "jitter"},
             False: {"sampler", "draws", "iterations", "start", "optimizer", "learning_rate"}}
"""The sampler settings sbc.json records: NUTS (True) or a fit (False)."""


def _mcmc(the_plan: SbcPlan) -> bool:
    from jaxpm.sampling.registry import SAMPLERS

    return SAMPLERS[the_plan.resolved.settings.sampler].mcmc


def _compiles_once(the_plan: SbcPlan) -> bool:
    from jaxpm.sampling.base import Sampler
    from jaxpm.sampling.registry import SAMPLERS

    sampler = SAMPLERS[the_plan.resolved.settings.sampler]
    return type(sampler).compile is not Sampler.compile and sampler.mcmc


def _csv(rows: list[dict], quantities: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["sim", *quantities])
    for r in rows:
        writer.writerow([r["sim"], *[r["ranks"].get(q, "") for q in quantities]])
    return buffer.getvalue()


__all__ = ["SbcPlan", "SbcResult", "plan", "run_sbc", "run_sim", "simulate", "share_observed", "scalar_names",
           "sim_seed", "sim_key", "sim_row", "uniformity", "resolve_once", "Fitter", "LOG_LIKELIHOOD"]
