"""PyMC's own NUTS, ``pm.sample(nuts_sampler="pymc")``, on the C backend.

With more than one core PyMC starts its workers with ``forkserver`` (never ``fork``: the
parent has initialised JAX, whose thread pools do not survive a fork).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from jaxpm.sampling.base import Draws, Job, Sampler, sampled_names

DEFAULT_CORES = 1
"""PyMC's NUTS runs chains one after the other unless ``sample.cores`` says otherwise:
starting worker processes costs more (each imports JAX and PyMC and re-jits the Ops)
than small models take to sample."""


class PymcNuts(Sampler):
    """PyMC's NUTS (Python, the logp compiled by PyTensor's C backend)."""

    name = "pymc"
    mass_matrices = ("diag", "full")
    backend = "c"

    def draw(self, job: Job) -> Draws:
        import pymc as pm

        s = job.settings
        jitter = s.jitter and job.start is None  # chains around the mode are spread already
        cores = s.cores or DEFAULT_CORES
        adapt = "adapt_full" if s.mass_matrix == "full" else "adapt_diag"
        kwargs = pm_sample_kwargs(job)
        kwargs.update(
            nuts_sampler="pymc",
            cores=cores,
            discard_tuned_samples=False,
            init=f"jitter+{adapt}" if jitter else adapt,
        )
        info: dict[str, Any] = {"cores": cores, "backend": "c"}
        if cores > 1 and s.chains > 1:
            kwargs["mp_ctx"] = "forkserver" if sys.platform != "win32" else "spawn"
            info["mp_ctx"] = kwargs["mp_ctx"]
        idata = pm.sample(**kwargs)
        wall = time.perf_counter() - job.began
        # the sampler's own clock: tuning and draws, without compiling the logp function
        sampling = idata.posterior.attrs.get("sampling_time")
        info["sampling_seconds_include_compile"] = False
        return Draws(idata, wall, float(sampling) if sampling is not None else wall, info)


def pm_sample_kwargs(job: Job) -> dict[str, Any]:
    """What every ``pm.sample`` call of ours says: the settings' draws, tuning, chains and
    target, the seed, the variables to keep, and the start (the chains' own starts around
    the mode, or ``initvals``)."""
    s = job.settings
    return dict(
        draws=s.draws,
        tune=s.tune,
        chains=s.chains,
        target_accept=s.target_accept,
        random_seed=job.seed,
        progressbar=job.progress.enabled,
        var_names=sampled_names(job.model),
        compute_convergence_checks=False,
        return_inferencedata=True,
        model=job.model,
        initvals=job.start.points if job.start is not None else job.initvals or None,
    )


__all__ = ["PymcNuts", "DEFAULT_CORES", "pm_sample_kwargs"]
