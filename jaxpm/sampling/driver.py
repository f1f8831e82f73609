"""Sampling, and the results a modeller keeps: one driver for every sampler.

:func:`sample_and_save` draws from the posterior as the ``sample:`` section says and
writes what the run folder keeps. It never names a sampler: it asks the registry for the
:class:`~jaxpm.sampling.base.Sampler`, gives it a :class:`~jaxpm.sampling.base.Job`, and
reads what the sampler says of itself (``mcmc``).

Where chains start: ``start`` is ``initial`` (the model's initial point or
``sample.initvals``, jittered unless ``jitter: false``) or ``mode``, where ``start_mode``
in run.json holds what :func:`jaxpm.sampling.starts.mode_start` found: the best logp
(unconstrained, Jacobian included), every distinct optimum with the number of restarts
that reached it, how the chains were spread, and the seconds it took. A fit starts at
the initial point or at an experiment's own start (the CNN's ``flax``).

Files: ``posterior.nc`` (ArviZ InferenceData), ``summary.csv`` (``az.summary``),
``trace.png``, ``posterior.png``, ``loss.png`` for ADVI (:mod:`jaxpm.sampling.files`),
the predictive groups in ``posterior.nc``, ``ppc.png``, ``prior_ppc.png`` and run.json's
``loo`` as ``predictive:`` says (:mod:`jaxpm.sampling.predictive_checks`), and whatever
the experiment adds (:meth:`~jaxpm.experiments.base.Experiment.after_sampling`).
Every file is written whole or not at all.

Time: ``wall_seconds`` is the whole sampler call (building and compiling the logp, and
the mode search, included); ``sampling_seconds`` is the sampler's own clock where it has
one (``sampling_seconds_include_compile`` says whether it includes compiling). For what
the counts of divergences and failed solves mean, see :mod:`jaxpm.sampling.diagnostics`.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxpm.errors import first_line
from jaxpm.experiments.base import Fitted
from jaxpm.progress import Progress
from jaxpm.rundir import write_with
from jaxpm.sampling import diagnostics, files, predictive_checks
from jaxpm.sampling.auto import Resolved, resolve
from jaxpm.sampling.base import Draws, Job, Sampler
from jaxpm.sampling.registry import SAMPLERS
from jaxpm.sampling.starts import ModeStart, initvals, mode_start

Save = Callable[[str, Callable[[Path], Any]], None]


def sample_and_save(prep, save: Save, progress: Progress | None = None, resolved: Resolved | None = None) -> dict:
    """Sample ``prep.model`` as ``prep.spec.sample`` says, write the files through
    ``save(name, writer)``, return the run.json ``sampling`` block.

    ``prep`` is a :class:`jaxpm.prepare.Prepared` (its spec, model, build context and
    experiment, and the model the sampler runs on). ``resolved`` is what
    :func:`jaxpm.sampling.auto.resolve` made of the settings (None: resolved here). A
    sampler that fails is a result (``ok: false`` with a message), never an exception;
    Ctrl-C is re-raised.
    """
    progress = progress or Progress.quiet()
    spec = prep.spec
    if resolved is None:
        resolved = resolve_settings(prep)
    s = resolved.settings
    sampler = SAMPLERS[s.sampler]
    seed = s.seed if s.seed is not None else spec.seed
    out: dict[str, Any] = {
        "sampler": s.sampler,
        "draws": s.draws,
        "tune": s.tune if sampler.mcmc else None,
        "chains": s.chains if sampler.mcmc else 1,
        "cores": None,
        "target_accept": s.target_accept if sampler.mcmc else None,
        "mass_matrix": s.mass_matrix if sampler.mcmc else None,
        "jitter": s.jitter if sampler.mcmc else None,
        "initvals": sorted(s.initvals) if sampler.mcmc else None,
        "start": s.start,
        "seed": seed,
        "auto": resolved.as_json(),
        "ok": False,
        "message": None,
        "wall_seconds": None,
        "sampling_seconds": None,
        "setup_seconds": None,
        "draws_total": 0,
        "usable_draws": 0,
        **diagnostics.diagnostics(None, sampler.mcmc, None),
    }
    if s.sampler == "advi":
        out["iterations"] = s.iterations
    written: list[str] = []
    sampler_warnings: list[str] = []

    def keep(name: str, writer: Callable[[Path], Any]) -> None:
        save(name, writer)
        written.append(name)

    progress.print(f"[bold]{spec.name}[/bold]: sampling with {sampler.describe(s)}")
    try:
        with _interrupts_propagate() as interrupted, _recorded_warnings(sampler_warnings, progress), \
                contextlib.redirect_stdout(sys.stderr):
            draws = _draw(prep, s, sampler, seed, progress, resolved.initial)
        if interrupted():
            raise KeyboardInterrupt
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - any sampler failure is a result, not a crash
        # (BaseException: a panic in nutpie's Rust core arrives as pyo3's PanicException)
        out.update(ok=False, message=f"{s.sampler} raised {type(e).__name__}: {_what_failed(e)}",
                   files=written, warnings=sampler_warnings)
        progress.print(f"[red]sampling failed[/red]: {out['message']}")
        return out
    out.update(draws.info)
    idata = draws.idata = files.tidy(draws.idata, prep.model)

    usable, total = diagnostics.usable_draws(idata.posterior)
    out["draws_total"] = total
    out["usable_draws"] = usable
    out["ok"] = usable > 0
    if not out["ok"]:
        out["message"] = (
            f"no usable draws: {'every chain is empty' if total == 0 else f'all {total} draws are non-finite'}"
        )
    out["wall_seconds"] = draws.wall_seconds
    out["sampling_seconds"] = draws.sampling_seconds
    out["setup_seconds"] = (
        None if draws.sampling_seconds is None else max(0.0, draws.wall_seconds - draws.sampling_seconds)
    )
    out.update(diagnostics.diagnostics(idata, sampler.mcmc, draws))
    fitted = Fitted(prep.ctx, prep.section, idata, out, keep, sampler.name, sampler.mcmc, progress)
    if usable:
        sampler_warnings.extend(predictive_checks.add_groups(prep, fitted, seed, progress))

    with progress.step(f"{spec.name}: writing posterior.nc and summary.csv"):
        keep("posterior.nc", lambda p: write_with(p, files.kept(idata).to_netcdf))
        if usable:
            table, skipped = files.summary(idata, s.sampler, sampler.mcmc)
            keep("summary.csv", lambda p: write_with(p, table.to_csv))
            if skipped:
                out["summary_skipped"] = skipped
    if usable:
        with progress.step(f"{spec.name}: plotting"):
            sampler_warnings.extend(files.figures(idata, draws.loss, keep))
            sampler_warnings.extend(predictive_checks.figures(prep, fitted))
        sampler_warnings.extend(_after_sampling(prep, fitted, progress))
    out["warnings"] = sampler_warnings + diagnostics.advice(out)
    out["files"] = written
    progress.print(diagnostics.one_line(out, sampler.mcmc))
    return out


def resolve_settings(prep) -> Resolved:
    """The ``sample:`` settings of ``prep`` with every ``auto`` chosen (see :mod:`jaxpm.sampling.auto`)."""
    s = prep.spec.sample
    return resolve(prep.inference_model(), s, experiment=prep.experiment, section=prep.section,
                   seed=s.seed if s.seed is not None else prep.spec.seed)


def compile_sampler(prep, resolved: Resolved) -> Any:
    """What the resolved sampler compiles once for ``prep``'s model and reuses in every
    :func:`fit` (:meth:`~jaxpm.sampling.base.Sampler.compile`; None: it compiles per call)."""
    s = resolved.settings
    sampler = SAMPLERS[s.sampler]
    if not sampler.mcmc:
        return None
    model = prep.inference_model()
    return sampler.compile(model, s, {**resolved.initial, **initvals(model, s)})


def fit(prep, resolved: Resolved, seed: int, compiled: Any = None, progress: Progress | None = None) -> Draws:
    """One sampler call as :func:`sample_and_save` makes it (same start, same settings),
    and nothing written: the draws (``idata`` tidied to the model's variables) and the
    sampler's own figures in ``info``, with the ``diagnostics`` of the draws. ``compiled``
    is :func:`compile_sampler`'s result for this model (its shared data may have changed
    since). The sampler's errors are raised; Python warnings are left to the caller."""
    progress = progress or Progress.quiet()
    s = resolved.settings
    sampler = SAMPLERS[s.sampler]
    with contextlib.redirect_stdout(sys.stderr):
        draws = _draw(prep, s, sampler, seed, progress, resolved.initial, compiled)
    draws.idata = files.tidy(draws.idata, prep.inference_model())
    draws.info.update(diagnostics.diagnostics(draws.idata, sampler.mcmc, draws))
    return draws


def _draw(prep, s, sampler: Sampler, seed: int, progress: Progress, typical: dict, compiled: Any = None) -> Draws:
    """One sampler call on the model the sampler runs on, from where the settings say.
    ``progress`` shows the sampler's own progress bar where it has one that does not stop
    JAX from caching the compiled sampler (:attr:`~jaxpm.sampling.base.Sampler.own_progressbar`),
    else a spinner with the elapsed time around the whole call."""
    model = prep.inference_model()
    began = time.perf_counter()
    initial = {**typical, **initvals(model, s)} if sampler.mcmc else {}
    start: Any = None
    if sampler.mcmc:
        start = _mode_start(model, s, seed, progress, initial) if s.start == "mode" else None
    elif s.start != "initial":
        start = prep.experiment.fit_start(s.start, prep.ctx.built, seed)
    if s.progressbar and sampler.own_progressbar or not progress.enabled:
        spinner = contextlib.nullcontext()
    else:
        why = "sample.progressbar is off" if not s.progressbar else "its own bar would stop JAX caching it"
        spinner = progress.step(f"sampling with {s.sampler} ({why})")
        progress = Progress.quiet()
    job = Job(model, s, seed, progress, start, began, initial, compiled)
    with spinner:
        draws = sampler.draw(job)
    if sampler.mcmc:
        draws.info.update(_start_info(start))
    return draws


def _mode_start(model, s, seed: int, progress: Progress, initial: dict) -> ModeStart:
    """``sample.start: mode``: :func:`jaxpm.sampling.starts.mode_start`, reported."""
    with progress.step(f"finding the posterior mode from {s.restarts} starts (sample.start: mode)"):
        found = mode_start(model, s, seed, initial)
    modes = found.info["modes"]
    several = (f"; {len(modes)} modes: " + ", ".join(f"logp {m['logp']:.1f} ({m['restarts']}x)" for m in modes[:4])
               if len(modes) > 1 else "")
    progress.print(f"chains start around the mode (logp {found.logp:.2f}, spread: {found.info['spread']}){several}")
    return found


def _start_info(found: ModeStart | None) -> dict[str, Any]:
    """run.json: how the chains started (``start``, and ``start_mode`` for ``mode``)."""
    if found is None:
        return {"start": "initial"}
    return {"start": "mode", "start_mode": {"logp": found.logp, **found.info}}


def _after_sampling(prep, fitted: Fitted, progress: Progress) -> list[str]:
    """The experiment's own results; a failure there is a warning, never a failed run."""
    try:
        with progress.step(f"{prep.spec.name}: {prep.experiment.name or 'experiment'} results at the draws"):
            prep.experiment.after_sampling(fitted)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001
        return [f"{prep.experiment.name or 'experiment'} results not written: {type(e).__name__}: {first_line(e)}"]
    return []


@contextlib.contextmanager
def _interrupts_propagate():
    """Make Ctrl-C during sampling end the run.

    nutpie, PyMC's NUTS, ``pm.fit`` and ``find_MAP`` catch KeyboardInterrupt and return
    what they have; the runner must see it (status ``interrupted``). A SIGINT handler
    notes the interrupt (and raises as before, so the sampler stops); the caller raises
    KeyboardInterrupt again after the sampler returns. Yields ``interrupted() -> bool``.
    """
    hit: list[bool] = []
    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if not callable(previous):  # not the main thread, or SIGINT ignored/default: leave it
        yield lambda: False
        return

    def handler(signum, frame):
        hit.append(True)
        previous(signum, frame)

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(hit)
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _recorded_warnings(into: list[str], progress: Progress):
    """Collect the sampler's Python warnings (one line each, no repeats) for run.json,
    and show them with the progress output."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            yield
        finally:
            for w in caught:
                line = f"{w.category.__name__}: {first_line(str(w.message))}"[:300]
                if line not in into:
                    into.append(line)
    for line in into:
        progress.print(f"warning: {line}", markup=False, highlight=False)


def _what_failed(e: BaseException) -> str:
    """The exception's first line, plus the cause nutpie's Rust errors put further down."""
    text = str(e).strip()
    message = first_line(e)
    lines = [ln.strip() for ln in text.splitlines()]
    if "Caused by:" in lines:
        cause = next((ln for ln in lines[lines.index("Caused by:") + 1:] if ln), "")
        if cause:
            message += f" (caused by: {cause[:300]})"
    return message


__all__ = ["sample_and_save", "resolve_settings", "compile_sampler", "fit"]
