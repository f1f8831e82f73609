"""The interface every sampler implements, and what one sampler call returns.

A :class:`Sampler` is a kernel behind one door: the driver
(:func:`jaxpm.sampling.driver.sample_and_save`) builds a :class:`Job` (the model, the
``sample:`` settings, the seed, where chains or the fit start) and calls
:meth:`Sampler.draw`; it never asks which sampler it holds, only what the sampler says
of itself (``mcmc``, ``mass_matrices``, ``backend``). Adding a sampler is one module with
a subclass and one entry in :data:`jaxpm.sampling.registry.SAMPLERS`.

A sampler that draws with PyMC's own NUTS would look like this (the real one is
:class:`jaxpm.sampling.pymc_nuts.PymcNuts`)::

    class MyNuts(Sampler):
        name = "mynuts"
        mass_matrices = ("diag",)
        backend = "c"

        def draw(self, job: Job) -> Draws:
            import pymc as pm
            began = time.perf_counter()
            idata = pm.sample(draws=job.settings.draws, tune=job.settings.tune,
                              chains=job.settings.chains, random_seed=job.seed, model=job.model)
            return Draws(idata, time.perf_counter() - began, None)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from jaxpm.progress import Progress


@dataclass
class Draws:
    """What one sampler call produced.

    ``wall_seconds`` is the whole call (compiling and any start search included);
    ``sampling_seconds`` the sampler's own clock where it has one (None: not known);
    ``info`` goes into run.json's ``sampling`` block; ``loss`` is a fit's loss history.
    """

    idata: Any
    wall_seconds: float
    sampling_seconds: float | None
    info: dict = field(default_factory=dict)
    loss: np.ndarray | None = None


@dataclass
class Job:
    """One sampler call: the model, the ``sample:`` settings, the seed, and the start.

    ``start`` is, for MCMC, a :class:`~jaxpm.sampling.starts.ModeStart` (chains around the
    posterior mode) or None (the initial point, ``settings.initvals``, jittered unless
    ``settings.jitter`` is false); for a fit, where its parameters start (value variable
    -> array) or None (the model's initial point). ``began`` is when the driver's clock
    started (the start search included), ``progress`` where the sampler shows its bar.
    ``compiled`` is what :meth:`Sampler.compile` built for this model earlier (None: the
    sampler compiles what it needs in this call).
    """

    model: Any
    settings: Any
    seed: int
    progress: Progress
    start: Any = None
    began: float = 0.0
    initvals: dict[str, np.ndarray] = field(default_factory=dict)
    compiled: Any = None


class Sampler:
    """One way of drawing from (or approximating) the posterior.

    Class attributes, read by the spec, ``jaxpm list``, ``jaxpm bench`` and the driver:

    ``name``
        the value of ``sample.sampler``;
    ``mcmc``
        True for NUTS chains (``tune``, ``chains``, ``target_accept``, ``start: mode`` and
        r_hat/ESS apply); False for a fit that returns draws of an approximation;
    ``mass_matrices``
        the values of ``sample.mass_matrix`` it adapts;
    ``backend``
        which PyTensor backend evaluates the logp while it runs (``jax`` or ``c``);
    ``own_progressbar``
        whether its own progress bar may be shown (False where the bar would be compiled
        into the sampler and keep JAX's cache from keeping it: jaxpm shows a spinner).
    """

    name: ClassVar[str] = ""
    mcmc: ClassVar[bool] = True
    mass_matrices: ClassVar[tuple[str, ...]] = ("diag",)
    backend: ClassVar[str] = "jax"
    own_progressbar: ClassVar[bool] = True

    def check(self, settings: Any) -> str | None:
        """Why ``settings`` cannot run on this sampler, as ``"key: message"``; None when they can."""
        return None

    def compile(self, model: Any, settings: Any, initvals: dict[str, np.ndarray]) -> Any:
        """What this sampler can compile once for ``model`` and reuse in every later
        :meth:`draw` of it (``job.compiled``), its shared data (``pm.Data``) read afresh
        at each draw; None when it has nothing to reuse and compiles in each call.
        ``jaxpm sbc`` fits hundreds of datasets this way, one model compiled per worker."""
        return None

    def describe(self, settings: Any) -> str:
        """One line for the terminal: what is about to run."""
        s = settings
        extra = "" if s.mass_matrix == "diag" else f", {s.mass_matrix} mass matrix"
        extra += ", starting around the mode" if s.start == "mode" else ""
        return f"{self.name}, {s.chains} chains x ({s.tune} tune + {s.draws} draws){extra}"

    def draw(self, job: Job) -> Draws:
        """Run the sampler; raise on failure (the driver records it as a failed result)."""
        raise NotImplementedError


def n_dim(model, constrained: bool = False) -> int:
    """Scalars per draw: of the unconstrained value variables, or (``constrained``) of
    the free variables plus deterministics (what a stored draw holds)."""
    point = model.initial_point()
    total = int(sum(np.size(v) for v in point.values()))
    if not constrained:
        return total
    for det in model.deterministics:
        total += math.prod(s if s is not None else 1 for s in det.type.shape)
    return int(total)


def cpu_count() -> int:
    """The cores this process may use (what nutpie counts when ``cores`` is not given)."""
    count = getattr(os, "process_cpu_count", os.cpu_count)
    return count() or 1


def sampled_names(model) -> list[str]:
    """The variables a posterior keeps: free variables and deterministics, in model order."""
    return [v.name for v in (*model.free_RVs, *model.deterministics)]


__all__ = ["Sampler", "Draws", "Job", "n_dim", "cpu_count", "sampled_names"]
