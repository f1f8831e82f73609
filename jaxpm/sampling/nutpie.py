"""nutpie with its JAX backend.

Every jaxpm model holds JAX Ops, which only JAX can compile into one program, so nutpie
compiles the logp with ``backend="jax"``, through ``nutpie.compile_pymc_model`` +
``nutpie.sample``: what ``pm.sample(nuts_sampler="nutpie")`` does, plus the start point
(``initvals``, ``jitter``, or chains around the mode), which ``pm.sample`` does not pass
on. Chains run in threads, one per core; JAX releases the GIL while it computes.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from jaxpm.sampling.base import Draws, Job, Sampler, cpu_count, n_dim, sampled_names
from jaxpm.sampling.starts import initvals

STORE_DIVERGENCES_MAX_DIM = 10_000
"""nutpie records where divergences happen (for the failed-solve count) up to this many
unconstrained dimensions."""


class Nutpie(Sampler):
    """nutpie's NUTS (Rust), its logp and gradient compiled by JAX."""

    name = "nutpie"
    mass_matrices = ("diag", "low_rank")
    backend = "jax"

    def check(self, settings) -> str | None:
        if settings.tune == 0:
            return "tune: nutpie needs at least one tuning step (its adaptation panics on 0): set sample.tune >= 1"
        return None

    def draw(self, job: Job) -> Draws:
        import nutpie
        import pymc as pm
        from pymc.backends.arviz import coords_and_dims_for_inferencedata, find_constants, find_observations

        model, s = job.model, job.settings
        if job.compiled is not None:  # compiled once: only the data change
            compiled = job.compiled.with_data(**shared_data(model))
        else:
            compiled = compile_nutpie(model, s, job.initvals)
        if job.start is not None:
            # nutpie asks its initial-point function once per chain; each call gets the next
            # start. compile_pymc_model takes one start for every chain (`initial_points`);
            # the per-chain function is nutpie.from_pyfunc's public `make_initial_point_fn`,
            # which compile_pymc_model stores as this field of the (frozen) compiled model
            # (nutpie 0.16): a copy with our function, nothing patched in place.
            compiled = dataclasses.replace(compiled, _make_initial_points=job.start.flat_start)
        cores = s.cores or min(s.chains, cpu_count())
        kwargs: dict[str, Any] = dict(
            draws=s.draws,
            tune=s.tune,
            chains=s.chains,
            cores=cores,
            target_accept=s.target_accept,
            seed=job.seed,
            progress_bar=job.progress.enabled,
            low_rank_modified_mass_matrix=s.mass_matrix == "low_rank",
        )
        if n_dim(model) <= STORE_DIVERGENCES_MAX_DIM:
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
        info = {"cores": cores, "backend": "jax", "sampling_seconds_include_compile": True}
        return Draws(idata, end - job.began, end - begin, info)


    def compile(self, model, settings, initvals):
        """The logp and its gradient jitted once (nutpie passes ``pm.Data`` in as arguments)."""
        return compile_nutpie(model, settings, initvals)


def shared_data(model) -> dict[str, Any]:
    """The current value of each shared variable the model's observed data are (``pm.Data``)."""
    from pytensor.compile.sharedvalue import SharedVariable

    values = [model.rvs_to_values[rv] for rv in model.observed_RVs]
    return {v.name: v.get_value() for v in values if isinstance(v, SharedVariable)}


def compile_nutpie(model, s, initial: dict | None = None):
    """``nutpie.compile_pymc_model`` with the JAX backend, starting at ``initial`` (free
    variable -> value; None: ``s.initvals``) over the model's initial point, jittered
    unless ``s.jitter`` is false."""
    import nutpie

    return nutpie.compile_pymc_model(
        model,
        backend="jax",
        gradient_backend="jax",
        var_names=sampled_names(model),
        initial_points=(initvals(model, s) if initial is None else initial) or None,
        jitter_rvs=None if s.jitter else set(),
    )


__all__ = ["Nutpie", "compile_nutpie", "shared_data"]
