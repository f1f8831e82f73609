"""Sampling, and the results a modeller keeps (``sample:`` section, ``jaxpm run``).

:func:`sample_and_save` draws from the posterior through PyMC's own front doors and
writes what the run folder keeps:

* ``nutpie``, ``pymc``, ``numpyro``, ``blackjax``: ``pm.sample(nuts_sampler=...)``.
  nutpie compiles the model with its JAX backend (every jaxpm model holds JAX Ops, which
  only JAX can compile into one program). PyMC's own NUTS runs the C backend; with more
  than one core it starts its workers with ``forkserver`` (never ``fork``: the parent has
  initialised JAX, whose thread pools do not survive a fork). numpyro and blackjax run
  their chains in parallel when JAX sees enough devices, else one after the other
  (numpyro) or vectorised (blackjax).
* ``advi``: ``pm.fit(method="advi")`` then ``approx.sample(draws)``; ``map``:
  ``pm.find_MAP`` (one draw). For models where NUTS is impractical (the CNN). Both start
  from ``sample.start`` (``initial``, or ``flax``: the CNN's flax initialisation from the
  seed); ADVI takes ``start_sigma``, ``optimizer`` and ``learning_rate``, and
  ``iterations`` is ADVI's steps or find_MAP's evaluation budget. A CNN with
  ``cnn.inference_dtype`` is sampled or fitted with its network in that dtype.

Files: ``posterior.nc`` (ArviZ InferenceData: posterior, sample_stats for MCMC,
observed_data), ``summary.csv`` (``az.summary``), ``trace.png``, ``posterior.png``;
``fit.png`` for ODE experiments (posterior median and 90% band of the solution at the
save times over the data); ``digits.png`` for the CNN (held-out digits with predicted
classes); ``loss.png`` for ADVI. Every file is written whole or not at all.

What the run.json ``sampling`` block says about failed ODE solves, exactly:

* ``divergences``: divergent transitions after tuning (all samplers);
  ``divergences_in_warmup``: during tuning (nutpie, pymc; ``null`` where the sampler
  does not keep its tuning statistics).
* ``nonfinite_logp_divergences`` / ``..._in_warmup`` (nutpie only): divergent
  transitions whose last leapfrog step reached a point where the logp was not finite.
  In an ODE model that is a failed solve (the ``<output>_failed`` potential) or a
  likelihood that overflowed; other samplers do not record where a divergence ended,
  so for them the field is ``null``. It counts transitions, not solves: a trajectory
  stops at the first non-finite logp it meets, so each counted transition met exactly
  one, and transitions that ended otherwise are not counted.
* ``failed_solves_in_draws``: the ODE re-solved at the kept draws (all of them, up to
  :data:`MAX_CHECK_DRAWS`, counted in ``draws_checked``); it is 0 unless something
  is wrong, since a failed solve has logp = -inf and cannot be accepted.

Where NUTS chains started: ``start`` is ``initial`` (the model's initial point or
``sample.initvals``, jittered unless ``jitter: false``) or ``mode``; then ``start_mode``
holds what :func:`jaxpm.starts.mode_start` found: the best logp (unconstrained, Jacobian
included), every distinct optimum with the number of restarts that reached it, how the
chains were spread, and the seconds it took.

Time and efficiency: ``wall_seconds`` is the whole sampler call (building and compiling
the logp, and the mode search, included); ``sampling_seconds`` is the sampler's own clock for nutpie (which
includes JAX compiling the logp on its first call) and pymc (tuning and draws only), and
the wall time for numpyro and blackjax (XLA compiles the whole sampler in one piece;
``sampling_seconds_include_compile`` says which). ``ess_per_second`` is the smallest bulk
ESS over every scalar in the posterior divided by ``sampling_seconds``;
``ess_per_wall_second`` divides by ``wall_seconds``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jaxpm import plots, results
from jaxpm.progress import Progress

NUTS_SAMPLERS = ("nutpie", "pymc", "numpyro", "blackjax")

PYMC_DEFAULT_CORES = 1
"""PyMC's own NUTS runs chains one after the other unless ``sample.cores`` says otherwise:
starting worker processes costs ~15 s (each imports JAX and PyMC and re-jits the Ops),
more than small models take to sample. See the module notes in the final report."""

MAX_CHECK_DRAWS = 8000
"""At most this many draws are re-solved to count failed solves (evenly thinned)."""

FIT_DRAWS = 200
"""Draws (evenly thinned) behind the band in ``fit.png``."""

CNN_PREDICTIVE_DRAWS = 20
"""Draws averaged in the CNN's posterior predictive (class probabilities)."""

MAP_LINE_SEARCH_SLACK = 25
"""``find_MAP`` may overrun scipy's ``maxfun`` by one line search; PyMC's hard cap allows that."""

MAX_SUMMARY_COMPONENTS = 1000
"""Variables with more scalars than this are left out of ``summary.csv`` (CNN weights)."""

MAX_POSTERIOR_BYTES = 512 * 2**20
"""ADVI keeps at most this many bytes of draws (the CNN: ~80 draws of 824k weights)."""

STORE_DIVERGENCES_MAX_DIM = 10_000
"""nutpie records where divergences happen (for the failed-solve count) up to this many
unconstrained dimensions."""


@dataclass
class Draws:
    """What one sampler call produced."""

    idata: Any
    wall_seconds: float
    sampling_seconds: float | None
    info: dict = field(default_factory=dict)
    loss: np.ndarray | None = None


# --------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------


def sample_and_save(
    prep,
    run_dir: Path,
    save: Callable[[str, Callable[[Path], Any]], None],
    progress: Progress,
) -> dict:
    """Sample ``prep.model`` as ``prep.spec.sample`` says, write the files, return the
    run.json ``sampling`` block (see the module docstring for what each count means)."""
    spec, model = prep.spec, prep.model
    s = spec.sample
    seed = s.seed if s.seed is not None else spec.seed
    out: dict[str, Any] = {
        "sampler": s.sampler,
        "draws": s.draws,
        "tune": s.tune if s.sampler in NUTS_SAMPLERS else None,
        "chains": s.chains if s.sampler in NUTS_SAMPLERS else 1,
        "cores": None,
        "target_accept": s.target_accept if s.sampler in NUTS_SAMPLERS else None,
        "mass_matrix": s.mass_matrix if s.sampler in NUTS_SAMPLERS else None,
        "jitter": s.jitter if s.sampler in NUTS_SAMPLERS else None,
        "initvals": sorted(s.initvals) if s.sampler in NUTS_SAMPLERS else None,
        "seed": seed,
        "ok": False,
        "message": None,
        "wall_seconds": None,
        "sampling_seconds": None,
        "setup_seconds": None,
        "draws_total": 0,
        "usable_draws": 0,
        **_diagnostics(None, s.sampler, None),
    }
    if "ode" in prep.ctx.info:
        out.update(failed_solves_in_draws=None, draws_checked=0)
    if s.sampler == "advi":
        out["iterations"] = s.iterations
    files: list[str] = []
    sampler_warnings: list[str] = []

    def keep(name: str, writer: Callable[[Path], Any]) -> None:
        save(name, writer)
        files.append(name)

    progress.print(f"[bold]{spec.name}[/bold]: sampling with {_describe(s)}")
    try:
        with _interrupts_propagate() as interrupted, _recorded_warnings(sampler_warnings, progress), \
                contextlib.redirect_stdout(sys.stderr):
            draws = _draw(model, s, seed, progress, prep)
        if interrupted():
            raise KeyboardInterrupt
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - any sampler failure is a result, not a crash
        # (BaseException: a panic in nutpie's Rust core arrives as pyo3's PanicException)
        out.update(ok=False, message=f"{s.sampler} raised {type(e).__name__}: {_what_failed(e)}",
                   files=files, warnings=sampler_warnings)
        progress.print(f"[red]sampling failed[/red]: {out['message']}")
        return out
    out.update(draws.info)
    idata = draws.idata = _tidy(draws.idata, model)

    usable, total = _usable_draws(idata.posterior)
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
    out.update(_diagnostics(idata, s.sampler, draws))

    with progress.step(f"{spec.name}: writing posterior.nc and summary.csv"):
        keep("posterior.nc", lambda p: results.write_with(p, _kept(idata).to_netcdf))
        if usable:
            summary, skipped = _summary(idata, s.sampler)
            keep("summary.csv", lambda p: results.write_with(p, summary.to_csv))
            if skipped:
                out["summary_skipped"] = skipped
    if usable:
        extra_warnings = _figures(prep, idata, draws, out, keep, progress)
        sampler_warnings.extend(extra_warnings)
    out["warnings"] = sampler_warnings + _advice(out)
    out["files"] = files
    progress.print(_one_line(out))
    return out


# --------------------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------------------


def _describe(s) -> str:
    if s.sampler == "advi":
        return f"ADVI, {s.iterations} iterations, then {s.draws} draws"
    if s.sampler == "map":
        return f"find_MAP (one point, at most {s.iterations} evaluations)"
    extra = "" if s.mass_matrix == "diag" else f", {s.mass_matrix} mass matrix"
    extra += ", starting around the mode" if s.start == "mode" else ""
    return f"{s.sampler}, {s.chains} chains x ({s.tune} tune + {s.draws} draws){extra}"


def _draw(model, s, seed: int, progress: Progress, prep=None) -> Draws:
    """One sampler call. ``progress`` shows the sampler's own progress bar, or, with
    ``sample.progressbar: false``, a spinner around the whole call."""
    if prep is not None:
        model = _inference_model(prep, model)
    began = time.perf_counter()
    found = _mode_start(model, s, seed, progress) if s.sampler in NUTS_SAMPLERS else None
    if s.progressbar or not progress.enabled:
        spinner = contextlib.nullcontext()
    else:
        spinner = progress.step(f"sampling with {s.sampler} (sample.progressbar is off)")
        progress = Progress.quiet()
    with spinner:
        if s.sampler in NUTS_SAMPLERS:
            return _nuts(model, s, seed, progress, found, began)
        start = _start_point(prep, s, seed) if prep is not None else None
        if s.sampler == "advi":
            return _advi(model, s, seed, progress, start)
        if s.sampler == "map":
            return _map(model, s, seed, progress, start)
    raise ValueError(f"unknown sampler {s.sampler!r}")  # the spec rejects it first


def _nuts(model, s, seed: int, progress: Progress, found, began: float) -> Draws:
    """NUTS through PyMC's front door, ``pm.sample(nuts_sampler=...)``; nutpie through its
    own PyMC front door (:func:`_nutpie`), since ``pm.sample`` passes it no start point.

    ``s.mass_matrix``, ``s.jitter`` and ``s.initvals`` become each sampler's own settings:
    PyMC's ``init`` ("jitter+adapt_diag", "adapt_full", ...), numpyro's ``dense_mass`` and
    blackjax's ``is_mass_matrix_full`` (full), nutpie's ``low_rank_modified_mass_matrix``.
    ``found`` (:func:`_mode_start`) replaces the start point and jitter: one start per
    chain around the mode. The wall clock runs from ``began`` (the mode search included).
    """
    import pymc as pm

    if s.sampler == "nutpie":
        return _nutpie(model, s, seed, progress, found, began)
    jitter = s.jitter and found is None  # chains around the mode are spread already
    var_names = [v.name for v in (*model.free_RVs, *model.deterministics)]
    kwargs: dict[str, Any] = dict(
        draws=s.draws,
        tune=s.tune,
        chains=s.chains,
        target_accept=s.target_accept,
        random_seed=seed,
        progressbar=progress.enabled,
        var_names=var_names,
        compute_convergence_checks=False,
        return_inferencedata=True,
        model=model,
        initvals=found.points if found else initvals(model, s) or None,
    )
    info: dict[str, Any] = _start_info(found)
    spinner = contextlib.nullcontext()
    patch = contextlib.nullcontext()
    if s.sampler == "pymc":
        cores = s.cores or PYMC_DEFAULT_CORES
        adapt = "adapt_full" if s.mass_matrix == "full" else "adapt_diag"
        kwargs.update(nuts_sampler="pymc", cores=cores, discard_tuned_samples=False,
                      init=f"jitter+{adapt}" if jitter else adapt)
        info.update(cores=cores, backend="c")
        if cores > 1 and s.chains > 1:
            kwargs["mp_ctx"] = "forkserver" if sys.platform != "win32" else "spawn"
            info["mp_ctx"] = kwargs["mp_ctx"]
    else:  # numpyro, blackjax
        import jax

        devices = jax.local_device_count()
        if devices >= s.chains:
            method = "parallel"
        else:
            method = "sequential" if s.sampler == "numpyro" else "vectorized"
        nk: dict[str, Any] = {"chain_method": method, "jitter": jitter}
        if s.mass_matrix == "full":
            nk["nuts_kwargs"] = {"dense_mass": True} if s.sampler == "numpyro" else {"is_mass_matrix_full": True}
        kwargs.update(nuts_sampler=s.sampler, nuts_sampler_kwargs=nk)
        info.update(cores=min(devices, s.chains, _cpu_count()), devices=devices, chain_method=method, backend="jax")
        if s.sampler == "blackjax":
            kwargs["progressbar"] = False  # pymc's blackjax progress bar needs blackjax < 1.6
            spinner = progress.step(f"sampling with blackjax ({method} chains)")
            patch = _blackjax_compat()
    with spinner, patch:
        try:
            idata = pm.sample(**kwargs)
        except ValueError as e:
            if info.get("chain_method") != "parallel" or not _fails_under_pmap(e):
                raise
            # diffrax's implicit solvers (Kvaerno5, ...) cannot be traced under pmap with
            # this JAX: run the chains on one device instead, and say so
            fallback = "sequential" if s.sampler == "numpyro" else "vectorized"
            warnings.warn(f"parallel chains failed ({_first_line(e)[:80]}...), a known clash between "
                          f"diffrax's implicit solvers and jax.pmap; ran the chains {fallback} instead",
                          RuntimeWarning, stacklevel=1)
            kwargs["nuts_sampler_kwargs"]["chain_method"] = fallback
            info.update(chain_method=fallback, cores=1)
            idata = pm.sample(**kwargs)
    wall = time.perf_counter() - began
    if s.sampler == "pymc":
        # the sampler's own clock: tuning and draws, without compiling the logp function
        sampling = idata.posterior.attrs.get("sampling_time")
        sampling = float(sampling) if sampling is not None else wall
        info["sampling_seconds_include_compile"] = False
    else:
        # numpyro/blackjax: XLA compiles the whole sampler, inseparably, and PyMC's clock
        # stops before blackjax's asynchronous work is done: the wall time is the honest one
        sampling = wall
        info["sampling_seconds_include_compile"] = True
    return Draws(idata, wall, sampling, info)


PMAP_FAILURES = (
    "Closure-converted function called with different dynamic arguments",  # equinox, under pmap
    "requires varying manual axes to match",  # jax's shard_map, which pmap now is
)
"""What tracing a diffrax implicit solve under ``jax.pmap`` raises with JAX 0.10 and
equinox 0.13 (pure diffrax too: ``jax.pmap`` of a Kvaerno5 solve fails the same way)."""


def _fails_under_pmap(e: BaseException) -> bool:
    return any(text in str(e) for text in PMAP_FAILURES)


def _mode_start(model, s, seed: int, progress: Progress):
    """``sample.start: mode``: :func:`jaxpm.starts.mode_start`, reported; else None."""
    if s.start != "mode":
        return None
    from jaxpm.starts import mode_start

    with progress.step(f"finding the posterior mode from {s.restarts} starts (sample.start: mode)"):
        found = mode_start(model, s, seed)
    modes = found.info["modes"]
    several = (f"; {len(modes)} modes: " + ", ".join(f"logp {m['logp']:.1f} ({m['restarts']}x)" for m in modes[:4])
               if len(modes) > 1 else "")
    progress.print(f"chains start around the mode (logp {found.logp:.2f}, spread: {found.info['spread']}){several}")
    return found


def _start_info(found) -> dict[str, Any]:
    """run.json: how the chains started (``start``, and ``start_mode`` for ``mode``)."""
    if found is None:
        return {"start": "initial"}
    return {"start": "mode", "start_mode": {"logp": found.logp, **found.info}}


def _nutpie(model, s, seed: int, progress: Progress, found, began: float) -> Draws:
    """nutpie with its JAX backend (every jaxpm model holds JAX Ops, which only JAX can
    compile into one program), through ``nutpie.compile_pymc_model`` + ``nutpie.sample``:
    what ``pm.sample(nuts_sampler="nutpie")`` does, plus the start point (``initvals``,
    ``jitter``), which ``pm.sample`` does not pass on. Chains run in threads, one per core;
    JAX releases the GIL while it computes, so two chains keep two cores busy."""
    import nutpie
    import pymc as pm
    from pymc.backends.arviz import coords_and_dims_for_inferencedata, find_constants, find_observations

    compiled = compile_nutpie(model, s)
    if found is not None:
        # nutpie asks its initial-point function once per chain; each call gets the next start
        compiled = dataclasses.replace(compiled, _make_initial_points=found.flat_start)
    cores = s.cores or min(s.chains, _cpu_count())
    kwargs: dict[str, Any] = dict(
        draws=s.draws,
        tune=s.tune,
        chains=s.chains,
        cores=cores,
        target_accept=s.target_accept,
        seed=seed,
        progress_bar=progress.enabled,
        low_rank_modified_mass_matrix=s.mass_matrix == "low_rank",
    )
    if _n_dim(model) <= STORE_DIVERGENCES_MAX_DIM:
        kwargs["store_divergences"] = True
    begin = time.perf_counter()
    idata = nutpie.sample(compiled, **kwargs)
    end = time.perf_counter()
    coords, dims = coords_and_dims_for_inferencedata(model)
    for group, data in (("observed_data", find_observations(model)), ("constant_data", find_constants(model))):
        if data:
            idata.add_groups({group: pm.backends.arviz.dict_to_dataset(
                data, library=pm, coords=coords, dims=dims, default_dims=[])})
    idata.posterior.attrs["sampling_time"] = end - begin
    # nutpie's clock includes JAX compiling the logp on its first call
    info = {**_start_info(found), "cores": cores, "backend": "jax", "sampling_seconds_include_compile": True}
    return Draws(idata, end - began, end - begin, info)


def compile_nutpie(model, s):
    """``nutpie.compile_pymc_model`` with the JAX backend, starting where ``s`` says:
    ``s.initvals`` over the model's initial point, jittered unless ``s.jitter`` is false."""
    import nutpie

    var_names = [v.name for v in (*model.free_RVs, *model.deterministics)]
    return nutpie.compile_pymc_model(
        model,
        backend="jax",
        gradient_backend="jax",
        var_names=var_names,
        initial_points=initvals(model, s) or None,
        jitter_rvs=None if s.jitter else set(),
    )


def initvals(model, s) -> dict[str, np.ndarray]:
    """``sample.initvals`` as arrays of each free variable's shape; a name that is not a
    free variable, or a value of the wrong shape or outside its support, is a ConfigError."""
    from jaxpm.errors import ConfigError, did_you_mean

    free = {rv.name: rv for rv in model.free_RVs}
    out = {}
    point = model.initial_point()
    for name, value in s.initvals.items():
        key = f"sample.initvals.{name}"
        if name not in free:
            raise ConfigError(key, f"{name!r} is not a free variable of the model{did_you_mean(name, list(free))}")
        rv = free[name]
        value_var = model.rvs_to_values[rv]
        shape = np.shape(point[value_var.name])
        try:
            array = np.broadcast_to(np.asarray(value, dtype=rv.dtype), shape).copy()
        except (TypeError, ValueError):
            raise ConfigError(key, f"expected a number or a list of shape {list(shape)}, got {value!r}") from None
        transform = model.rvs_to_transforms.get(rv)
        inner = transform.forward(array, *rv.owner.inputs).eval() if transform is not None else array
        if not np.all(np.isfinite(inner)):
            raise ConfigError(key, f"{value!r} is outside the support of {name}")
        out[name] = array
    return out


def _advi(model, s, seed: int, progress: Progress, start: dict | None = None) -> Draws:
    """Mean-field ADVI through ``pm.fit``: ``s.iterations`` steps of ``s.optimizer``, then
    ``s.draws`` draws from the fitted normals (fewer if they would not fit in
    :data:`MAX_POSTERIOR_BYTES`).

    ``start`` (value variable -> array) is where the normals' means begin, and
    ``s.start_sigma`` their first standard deviation (one number for every scalar, in the
    unconstrained space). PyMC's defaults, the initial point and softplus(0) = 0.69, suit
    small models; a network needs both changed: at all-zero weights its hidden layers get
    no gradient (see :func:`jaxpm.nets.init_params`), and noise of 0.69 on each of 824k
    weights makes the logits overflow (the fit stops at NaN on its first steps).
    """
    import pymc as pm

    kwargs: dict[str, Any] = {"obj_optimizer": _advi_optimizer(s)}
    if start is not None:
        kwargs["start"] = start
    if s.start_sigma is not None:
        kwargs["start_sigma"] = {v.name: s.start_sigma for v in model.value_vars}
    begin = time.perf_counter()
    approx = pm.fit(n=s.iterations, method="advi", random_seed=seed, progressbar=progress.enabled, model=model,
                    **kwargs)
    fitted = time.perf_counter() - begin
    n_dim = _n_dim(model, constrained=True)
    kept = max(1, min(s.draws, MAX_POSTERIOR_BYTES // max(1, 8 * n_dim)))
    with model:
        idata = approx.sample(kept, random_seed=seed)
    wall = time.perf_counter() - begin
    loss = np.asarray(approx.hist, dtype=float)
    tail = loss[-max(1, len(loss) // 10):]
    info = {
        "draws_stored": kept,
        "start": s.start,
        "optimizer": s.optimizer,
        "learning_rate": s.learning_rate,
        "start_sigma": s.start_sigma,
        "loss_initial": float(loss[0]) if len(loss) else None,
        "loss_final": float(np.nanmean(tail)) if len(tail) else None,
    }
    if kept < s.draws:
        info["draws_note"] = (
            f"{kept} of {s.draws} draws kept: {n_dim} scalars per draw, posterior.nc limited "
            f"to {MAX_POSTERIOR_BYTES // 2**20} MB"
        )
    return Draws(idata, wall, fitted, info, loss=loss)


def _advi_optimizer(s):
    """``pm.<s.optimizer>(learning_rate=s.learning_rate)``; without a learning rate, the
    optimiser's own default (PyMC's ADVI default is ``adagrad_window``, rate 0.001)."""
    import pymc as pm

    make = getattr(pm, s.optimizer)
    return make() if s.learning_rate is None else make(learning_rate=s.learning_rate)


def _map(model, s, seed: int, progress: Progress, start: dict | None = None) -> Draws:
    """``pm.find_MAP`` (L-BFGS-B through scipy) from ``start`` (None: the model's initial
    point), for at most ``s.iterations`` logp+gradient evaluations: one draw, the mode.

    scipy is told the budget (``maxfun``) so that it stops at its best point so far;
    PyMC's own cap (``maxeval``) would stop mid line search, at whatever point it was
    trying. ``map_evaluations`` and ``map_message`` in run.json say how it ended.
    """
    import arviz as az
    import pymc as pm
    from pymc.backends.arviz import find_observations

    begin = time.perf_counter()
    point, raw = pm.find_MAP(
        start=start,
        progressbar=progress.enabled,
        seed=seed,
        model=model,
        include_transformed=True,
        return_raw=True,
        maxeval=s.iterations + MAP_LINE_SEARCH_SLACK,
        options={"maxfun": s.iterations, "maxiter": s.iterations},
    )
    wall = time.perf_counter() - begin
    names = [v.name for v in (*model.free_RVs, *model.deterministics)]
    posterior = {n: np.asarray(point[n])[None, None] for n in names if n in point}
    idata = az.from_dict(posterior=posterior, observed_data=find_observations(model))
    info: dict[str, Any] = {"start": s.start, "max_evaluations": s.iterations}
    if raw is not None:  # None when PyMC's cap stopped it
        info.update(map_evaluations=int(raw.nfev), map_message=str(raw.message))
    try:
        logp = model.compile_logp()({v.name: point[v.name] for v in model.value_vars})
        info["map_logp"] = float(logp)
    except Exception:  # noqa: BLE001 - a diagnostic only
        pass
    return Draws(idata, wall, wall, info)


def _inference_model(prep, model):
    """The model the sampler or fit runs on: ``model``, except for a CNN whose
    ``cnn.inference_dtype`` differs from ``cnn.dtype``, which is rebuilt with the network
    computing in that dtype (float32 is about twice as fast on a CPU). Evaluation and
    gradient checks keep ``cnn.dtype``; the variables, their names and the data are the same."""
    section = prep.spec.cnn
    if section is None or "cnn" not in prep.ctx.info or section.inference_dtype in (None, section.dtype):
        return model
    from jaxpm.model import build

    spec = prep.spec.model_copy(update={"cnn": section.model_copy(update={"dtype": section.inference_dtype})})
    return build(spec)[0]


def _start_point(prep, s, seed: int) -> dict | None:
    """Where a fit starts (``sample.start``): None for the model's initial point, or for
    ``flax`` the CNN's weights as :func:`jaxpm.nets.init_params` makes them from ``seed``."""
    if s.start == "initial":
        return None
    from jaxpm import nets

    info = prep.ctx.info["cnn"]
    return nets.init_params(info["module"], (1, *np.shape(info["images"])[1:]), seed)


@contextlib.contextmanager
def _blackjax_compat():
    """Let ``pm.sample(nuts_sampler="blackjax")`` run with blackjax >= 1.6.

    PyMC (up to at least 5.28 / 6.2) passes ``progress_bar`` into
    ``blackjax.window_adaptation``, which blackjax 1.6 forwards to the NUTS kernel
    (TypeError), and then calls ``blackjax.progress_bar.gen_scan_fn``, which 1.6 removed
    (pymc-devs/pymc#8367, fix pending in #8373). While it is broken, PyMC's inference loop
    is replaced for the duration of the call by the same loop without the progress bar.
    """
    import blackjax
    import pymc.sampling.jax as pmjax

    if hasattr(blackjax.progress_bar, "gen_scan_fn"):  # an old blackjax: PyMC's loop works
        yield
        return
    original = pmjax._blackjax_inference_loop
    pmjax._blackjax_inference_loop = _blackjax_inference_loop
    try:
        yield
    finally:
        pmjax._blackjax_inference_loop = original


def _blackjax_inference_loop(seed, init_position, logp_fn, draws, tune, target_accept, **adaptation_kwargs):
    """PyMC's ``_blackjax_inference_loop`` (5.28), minus the progress bar."""
    import blackjax
    import jax
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    adaptation_kwargs.pop("progress_bar", None)
    algorithm_name = adaptation_kwargs.pop("algorithm", "nuts")
    algorithm = {"nuts": blackjax.nuts, "hmc": blackjax.hmc}[algorithm_name]
    adapt = blackjax.window_adaptation(
        algorithm=algorithm,
        logdensity_fn=logp_fn,
        target_acceptance_rate=target_accept,
        adaptation_info_fn=get_filter_adapt_info_fn(),
        **adaptation_kwargs,
    )
    (last_state, tuned_params), _ = adapt.run(seed, init_position, num_steps=tune)
    kernel = algorithm(logp_fn, **tuned_params).step

    def one_step(state, rng_key):
        state, info = kernel(rng_key, state)
        stats = {
            "diverging": info.is_divergent,
            "energy": info.energy,
            "tree_depth": info.num_trajectory_expansions,
            "n_steps": info.num_integration_steps,
            "acceptance_rate": info.acceptance_rate,
            "lp": state.logdensity,
        }
        return state, (state.position, stats)

    keys = jax.random.split(seed, draws)
    _, (samples, stats) = jax.lax.scan(one_step, last_state, keys)
    return samples, stats


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
                line = f"{w.category.__name__}: {_first_line(w.message)}"[:300]
                if line not in into:
                    into.append(line)
    for line in into:
        progress.print(f"warning: {line}", markup=False, highlight=False)


# --------------------------------------------------------------------------------------
# diagnostics
# --------------------------------------------------------------------------------------


def _usable_draws(posterior) -> tuple[int, int]:
    """(draws whose every variable is finite, all draws)."""
    n_chain = posterior.sizes.get("chain", 0)
    n_draw = posterior.sizes.get("draw", 0)
    finite = np.ones((n_chain, n_draw), dtype=bool)
    for var in posterior.data_vars.values():
        values = np.asarray(var.values)
        if values.dtype.kind in "fc":
            finite &= np.isfinite(values.reshape(n_chain, n_draw, -1)).all(axis=-1)
    return int(finite.sum()), n_chain * n_draw


def _diagnostics(idata, sampler: str, draws: Draws | None) -> dict:
    """Divergences, r_hat, ESS and ESS per second (all ``None`` where they do not apply)."""
    out: dict[str, Any] = {
        "divergences": None,
        "divergences_in_warmup": None,
        "nonfinite_logp_divergences": None,
        "nonfinite_logp_divergences_in_warmup": None,
        "max_r_hat": None,
        "min_ess_bulk": None,
        "min_ess_tail": None,
        "ess_per_second": None,
        "ess_per_wall_second": None,
    }
    if idata is None or sampler not in NUTS_SAMPLERS:
        return out
    stats = idata.get("sample_stats")
    warm = idata.get("warmup_sample_stats")
    out["divergences"] = _count(stats, "diverging")
    out["divergences_in_warmup"] = _count(warm, "diverging")
    out["nonfinite_logp_divergences"] = _nonfinite_divergences(stats)
    out["nonfinite_logp_divergences_in_warmup"] = _nonfinite_divergences(warm)
    post = idata.posterior
    if post.sizes.get("draw", 0) >= 4:
        import arviz as az

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["max_r_hat"] = _reduce(az.rhat(post), np.nanmax)
            out["min_ess_bulk"] = _reduce(az.ess(post, method="bulk"), np.nanmin)
            out["min_ess_tail"] = _reduce(az.ess(post, method="tail"), np.nanmin)
    ess = out["min_ess_bulk"]
    if ess is not None:
        if draws.sampling_seconds:
            out["ess_per_second"] = ess / draws.sampling_seconds
        if draws.wall_seconds:
            out["ess_per_wall_second"] = ess / draws.wall_seconds
    return out


def _count(stats, name: str) -> int | None:
    if stats is None or name not in stats:
        return None
    return int(np.asarray(stats[name].values).sum())


def _nonfinite_divergences(stats) -> int | None:
    """Divergent transitions whose end point nutpie could not record: the logp there was
    not finite (nutpie stores ``divergence_end`` only for finite end points)."""
    if stats is None or "divergence_end" not in stats or "diverging" not in stats:
        return None
    diverging = np.asarray(stats["diverging"].values, dtype=bool)
    ends = np.asarray(stats["divergence_end"].values)
    ends = ends.reshape(*diverging.shape, -1)
    return int((diverging & np.isnan(ends).any(axis=-1)).sum())


def _reduce(dataset, how) -> float | None:
    values = [np.asarray(v.values, dtype=float).ravel() for v in dataset.data_vars.values()]
    values = np.concatenate(values) if values else np.array([])
    values = values[np.isfinite(values)]
    return float(how(values)) if values.size else None


def _advice(out: dict) -> list[str]:
    notes = []
    if out.get("usable_draws") is not None and 0 < out["usable_draws"] < out.get("draws_total", 0):
        notes.append(f"{out['draws_total'] - out['usable_draws']} draws have non-finite values")
    if out.get("max_r_hat") is not None and out["max_r_hat"] > 1.01:
        notes.append(f"max r_hat {out['max_r_hat']:.3f} > 1.01: chains disagree; sample longer or reparameterise")
    if out.get("divergences"):
        notes.append(f"{out['divergences']} divergent transitions after tuning; raise target_accept or reparameterise")
    if out.get("failed_solves_in_draws"):
        notes.append(f"the ODE solve fails at {out['failed_solves_in_draws']} kept draws")
    return notes


def _one_line(out: dict) -> str:
    if out["sampler"] not in NUTS_SAMPLERS:
        n = out["usable_draws"]
        return f"sampling done in {out['wall_seconds']:.1f} s ({n} draw{'' if n == 1 else 's'} kept)"
    parts = [f"sampled in {out['wall_seconds']:.1f} s"]
    if out.get("divergences") is not None:
        parts.append(f"{out['divergences']} divergences")
    if out.get("max_r_hat") is not None:
        parts.append(f"max r_hat {out['max_r_hat']:.3f}")
    if out.get("min_ess_bulk") is not None:
        parts.append(f"min bulk ESS {out['min_ess_bulk']:.0f}")
    if out.get("ess_per_second") is not None:
        parts.append(f"{out['ess_per_second']:.0f} ESS/s")
    return ", ".join(parts)


# --------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------


def _tidy(idata, model):
    """Drop what the samplers add beyond the model's variables: nutpie keeps the
    transformed values (``noise_log__``) whatever ``var_names`` says."""
    import arviz as az

    wanted = {v.name for v in (*model.free_RVs, *model.deterministics)}
    groups = {}
    for g in idata.groups():
        ds = idata[g]
        if g in ("posterior", "warmup_posterior"):
            ds = ds[[n for n in ds.data_vars if n in wanted]]
        groups[g] = ds
    return az.InferenceData(**groups)


def _kept(idata):
    """The groups posterior.nc keeps: posterior, sample_stats, observed_data, constant_data."""
    import arviz as az

    groups = {g: idata[g] for g in ("posterior", "sample_stats", "observed_data", "constant_data") if g in idata.groups()}
    return az.InferenceData(**groups)


def _summary(idata, sampler: str):
    """``az.summary`` of the variables with at most :data:`MAX_SUMMARY_COMPONENTS` scalars."""
    import arviz as az
    import pandas as pd

    post = idata.posterior
    names, skipped = [], []
    for name, var in post.data_vars.items():
        size = int(np.prod([n for d, n in var.sizes.items() if d not in ("chain", "draw")], dtype=int))
        (names if size <= MAX_SUMMARY_COMPONENTS else skipped).append(name)
    if sampler == "map":
        rows = {}
        for name in names:
            values = np.asarray(post[name].values)[0, 0]
            if values.ndim == 0:
                rows[name] = float(values)
            else:
                for idx in np.ndindex(values.shape):
                    rows[f"{name}[{', '.join(map(str, idx))}]"] = float(values[idx])
        return pd.DataFrame({"map": pd.Series(rows, dtype=float)}), skipped
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kind = "all" if sampler in NUTS_SAMPLERS else "stats"
        table = az.summary(idata, var_names=names or None, kind=kind, round_to="none") if names else pd.DataFrame()
    return table, skipped


def _figures(prep, idata, draws: Draws, out: dict, keep, progress: Progress) -> list[str]:
    """trace/posterior plots, the ODE fit, the CNN's digits, ADVI's loss. A figure that
    cannot be drawn is reported in the returned list, never fails the run."""
    problems: list[str] = []
    spec = prep.spec

    def attempt(what: str, fn):
        try:
            fn()
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001
            problems.append(f"{what} not written: {type(e).__name__}: {_first_line(e)}")

    with progress.step(f"{spec.name}: plotting"):
        view, _ = plots.plot_dataset(idata.posterior)
        if out["sampler"] != "map":  # one point: nothing to trace or smooth
            attempt("trace.png", lambda: keep("trace.png", lambda p: results.write_with(p, lambda t: plots.trace(view, t))))
            attempt("posterior.png", lambda: keep(
                "posterior.png", lambda p: results.write_with(p, lambda t: plots.posterior(view, t))))
        if draws.loss is not None and len(draws.loss):
            attempt("loss.png", lambda: keep("loss.png", lambda p: results.write_with(p, lambda t: plots.loss(draws.loss, t))))
    if "ode" in prep.ctx.info:
        with progress.step(f"{spec.name}: re-solving the ODE at the draws"):
            attempt("fit.png", lambda: _ode_results(prep, idata, out, keep))
    if "cnn" in prep.ctx.info:
        with progress.step(f"{spec.name}: CNN accuracy"):
            attempt("digits.png", lambda: _cnn_results(prep, idata, out, keep))
    return problems


# --------------------------------------------------------------------------------------
# ODE: failed solves at the draws, fitted curves
# --------------------------------------------------------------------------------------


def draw_function(model, outputs):
    """A compiled function from the free variables' (constrained) values, by name, to
    ``outputs`` (graph variables that may depend on the model's random variables)."""
    import pytensor
    from pytensor.graph.replace import graph_replace

    rvs = list(model.free_RVs)
    inputs = [rv.type(name=rv.name) for rv in rvs]
    replaced = graph_replace(list(outputs), dict(zip(rvs, inputs)), strict=False)
    fn = pytensor.function(inputs, replaced, mode="FAST_RUN", on_unused_input="ignore")
    names = [rv.name for rv in rvs]

    def call(point: dict):
        return fn(*[point[n] for n in names])

    return call


def _draw_points(posterior, names: list[str], limit: int) -> list[dict]:
    """Up to ``limit`` draws (evenly thinned over chains x draws) as {name: value}."""
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    total = n_chain * n_draw
    idx = np.unique(np.linspace(0, total - 1, min(limit, total)).round().astype(int)) if total else []
    arrays = {n: np.asarray(posterior[n].values).reshape(total, *posterior[n].shape[2:]) for n in names}
    return [{n: arrays[n][i] for n in names} for i in idx]


def _ode_results(prep, idata, out: dict, keep) -> None:
    model, ctx = prep.model, prep.ctx
    info = ctx.info["ode"]
    name = info["output"]
    fn = draw_function(model, [ctx.names[name], info["ok"]])
    names = [rv.name for rv in model.free_RVs]
    points = _draw_points(idata.posterior, names, MAX_CHECK_DRAWS)
    fit_every = max(1, math.ceil(len(points) / FIT_DRAWS))
    failed, curves = 0, []
    for i, point in enumerate(points):
        ys, ok = fn(point)
        failed += not bool(ok)
        if i % fit_every == 0 and bool(ok):
            curves.append(np.asarray(ys))
    out["failed_solves_in_draws"] = failed
    out["draws_checked"] = len(points)
    if not curves:
        return
    curves = np.stack(curves)
    times = np.asarray(info["save_times"], dtype=float)
    obs_name, observed, labels = _matching_observed(prep, curves.shape[1:])
    keep("fit.png", lambda p: results.write_with(p, lambda t: plots.ode_fit(
        times, curves, t, observed=observed, output=name, observed_name=obs_name, labels=labels)))


def _matching_observed(prep, shape) -> tuple[str | None, np.ndarray | None, list[str] | None]:
    """The likelihood whose observed data lines up with the ODE solution: same size,
    one row per save time. Also the data's column names when they name the components."""
    from pymc.backends.arviz import find_observations
    from jaxpm.spec import ObservedFile

    size = int(np.prod(shape))
    for obs_name, data in find_observations(prep.model).items():
        data = np.asarray(data)
        if data.size == size and data.ndim >= 1 and data.shape[0] == shape[0]:
            labels = None
            lik = prep.spec.likelihood.get(obs_name)
            n_comp = size // shape[0]
            if lik is not None and isinstance(lik.observed, ObservedFile) and lik.observed.columns \
                    and len(lik.observed.columns) == n_comp and n_comp > 1:
                labels = list(lik.observed.columns)
            return obs_name, data, labels
    return None, None, None


# --------------------------------------------------------------------------------------
# CNN: accuracy and predicted digits
# --------------------------------------------------------------------------------------


def _cnn_results(prep, idata, out: dict, keep) -> None:
    """``train_accuracy`` and ``heldout_accuracy`` (the ``cnn.holdout`` images after the
    training ones) of the posterior predictive: class probabilities averaged over up to
    :data:`CNN_PREDICTIVE_DRAWS` draws, the network computing in the inference dtype.
    ``digits.png`` shows the first held-out digits (training digits without a holdout)."""
    import jax

    from jaxpm import images as images_mod
    from jaxpm import nets
    from jaxpm.experiments import cnn as cnn_exp

    info = prep.ctx.info["cnn"]
    section = prep.spec.cnn
    module, x_train, y_train = info["module"], np.asarray(info["images"]), np.asarray(info["labels"])
    names = list(nets.param_shapes(module, (1, *x_train.shape[1:])))
    points = _draw_points(idata.posterior, names, CNN_PREDICTIVE_DRAWS)
    dtype = section.inference_dtype or section.dtype

    @jax.jit
    def probs(params, x):
        return jax.nn.softmax(cnn_exp.logits(params, x, module=module, dtype=dtype), axis=-1)

    def predictive(x: np.ndarray) -> np.ndarray:
        total = np.zeros((len(x), 0))
        for point in points:
            p = np.concatenate([np.asarray(probs(point, x[i:i + 500])) for i in range(0, len(x), 500)])
            total = p if total.size == 0 else total + p
        return total / len(points)

    p_train = predictive(x_train)
    out["predictive_draws"] = len(points)
    out["train_accuracy"] = float(np.mean(p_train.argmax(-1) == y_train))
    out["train_images"] = int(len(y_train))
    shown = (x_train, y_train, p_train, "training")
    if section.holdout > 0:
        x_hold, y_hold = images_mod.load_images(
            section.source,
            section.holdout,
            offset=section.n,
            data_dir=section.data_dir and str(prep.ctx.path(section.data_dir)),
            path=section.path and str(prep.ctx.path(section.path)),
            split=section.split,
            dtype=dtype,
        )
        x_hold, y_hold = np.asarray(x_hold), np.asarray(y_hold)
        p_hold = predictive(x_hold)
        out["heldout_accuracy"] = float(np.mean(p_hold.argmax(-1) == y_hold))
        out["heldout_images"] = int(len(y_hold))
        shown = (x_hold, y_hold, p_hold, "held-out")
    else:
        out["heldout_accuracy"] = None
        out["heldout_images"] = 0
    x, y, p, which = shown
    acc = out["heldout_accuracy"] if which == "held-out" else out["train_accuracy"]
    title = (f"{which} digits: predicted class (true class if wrong), probability; "
             f"accuracy {acc:.3f}; {out['sampler']}, {len(points)} draws averaged")
    keep("digits.png", lambda f: results.write_with(f, lambda t: plots.digits(
        x, p.argmax(-1), t, labels=y, confidence=p.max(-1), title=title)))


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _n_dim(model, constrained: bool = False) -> int:
    """Scalars per draw: of the unconstrained value variables, or (``constrained``) of
    the free variables plus deterministics (what a stored draw holds)."""
    point = model.initial_point()
    if not constrained:
        return int(sum(np.size(v) for v in point.values()))
    total = sum(np.size(v) for v in point.values())
    for det in model.deterministics:
        shape = det.type.shape
        total += math.prod(s if s is not None else 1 for s in shape)
    return int(total)


def _cpu_count() -> int:
    """What nutpie counts when ``cores`` is not given."""
    import os

    count = getattr(os, "process_cpu_count", os.cpu_count)
    return count() or 1


def _what_failed(e: BaseException) -> str:
    """The exception's first line, plus the cause nutpie's Rust errors put further down."""
    text = str(e).strip()
    message = _first_line(e)
    lines = [ln.strip() for ln in text.splitlines()]
    if "Caused by:" in lines:
        cause = next((ln for ln in lines[lines.index("Caused by:") + 1:] if ln), "")
        if cause:
            message += f" (caused by: {cause[:300]})"
    return message


def _first_line(e) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__ if isinstance(e, BaseException) else ""
