"""The JAX NUTS samplers, numpyro and blackjax, through ``pm.sample(nuts_sampler=...)``.

The whole sampler is one XLA program: no Python per gradient. Chains run in parallel, one
per JAX CPU device (importing jaxpm asks JAX for enough of them), else one after the
other (numpyro) or vectorised (blackjax). Where ``jax.pmap`` cannot trace the model (a
diffrax implicit solver such as Kvaerno5, with JAX 0.10 and equinox 0.13, pure diffrax
included) the chains fall back to one device, with a warning in run.json.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from typing import Any

from jaxpm.errors import first_line
from jaxpm.sampling.base import Draws, Job, Sampler, cpu_count
from jaxpm.sampling.pymc_nuts import pm_sample_kwargs

PMAP_FAILURES = (
    "Closure-converted function called with different dynamic arguments",  # equinox, under pmap
    "requires varying manual axes to match",  # jax's shard_map, which pmap now is
)
"""What tracing a diffrax implicit solve under ``jax.pmap`` raises with JAX 0.10 and
equinox 0.13 (pure diffrax too: ``jax.pmap`` of a Kvaerno5 solve fails the same way)."""


def fails_under_pmap(e: BaseException) -> bool:
    return any(text in str(e) for text in PMAP_FAILURES)


class JaxNuts(Sampler):
    """NUTS written in JAX, run by ``pm.sample(nuts_sampler=self.name)``; subclasses say
    how their chains run without enough devices and how they take a full mass matrix."""

    mass_matrices = ("diag", "full")
    backend = "jax"
    without_devices = "sequential"  # chain_method when there are fewer devices than chains

    def full_mass_matrix(self) -> dict[str, Any]:
        """``nuts_kwargs`` for ``mass_matrix: full``."""
        raise NotImplementedError

    def running(self, job: Job, method: str):
        """A context around the sampler call (blackjax: a spinner and PyMC's loop fixed)."""
        return contextlib.nullcontext()

    def draw(self, job: Job) -> Draws:
        import jax
        import pymc as pm

        s = job.settings
        jitter = s.jitter and job.start is None  # chains around the mode are spread already
        devices = jax.local_device_count()
        method = "parallel" if devices >= s.chains else self.without_devices
        nk: dict[str, Any] = {"chain_method": method, "jitter": jitter}
        if s.mass_matrix == "full":
            nk["nuts_kwargs"] = self.full_mass_matrix()
        kwargs = pm_sample_kwargs(job)
        kwargs.update(nuts_sampler=self.name, nuts_sampler_kwargs=nk)
        info: dict[str, Any] = {"cores": min(devices, s.chains, cpu_count()), "devices": devices,
                                "chain_method": method, "backend": "jax"}
        with self.running(job, method):
            try:
                idata = pm.sample(**kwargs)
            except ValueError as e:
                if method != "parallel" or not fails_under_pmap(e):
                    raise
                # diffrax's implicit solvers (Kvaerno5, ...) cannot be traced under pmap with
                # this JAX: run the chains on one device instead, and say so
                warnings.warn(f"parallel chains failed ({first_line(e)[:80]}...), a known clash between "
                              f"diffrax's implicit solvers and jax.pmap; ran the chains {self.without_devices} "
                              "instead", RuntimeWarning, stacklevel=1)
                nk["chain_method"] = self.without_devices
                info.update(chain_method=self.without_devices, cores=1)
                idata = pm.sample(**kwargs)
        wall = time.perf_counter() - job.began
        # XLA compiles the whole sampler, inseparably, and PyMC's clock stops before
        # blackjax's asynchronous work is done: the wall time is the honest one
        info["sampling_seconds_include_compile"] = True
        return Draws(idata, wall, wall, info)


class Numpyro(JaxNuts):
    """numpyro's NUTS."""

    name = "numpyro"
    without_devices = "sequential"
    own_progressbar = False  # a host callback compiled into the sampler: JAX would not cache it

    def full_mass_matrix(self) -> dict[str, Any]:
        return {"dense_mass": True}


class Blackjax(JaxNuts):
    """blackjax's NUTS with window adaptation."""

    name = "blackjax"
    without_devices = "vectorized"
    own_progressbar = False  # pymc's blackjax progress bar needs blackjax < 1.6: a spinner instead

    def full_mass_matrix(self) -> dict[str, Any]:
        return {"is_mass_matrix_full": True}

    def running(self, job: Job, method: str):
        return _blackjax_compat()



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


__all__ = ["JaxNuts", "Numpyro", "Blackjax", "PMAP_FAILURES", "fails_under_pmap"]
