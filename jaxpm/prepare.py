"""``prepare``: a config made into a built model and the pieces every command shares.

``run``, ``check-grad``, ``compare-backends``, ``bench`` and the many-run commands all
start here: load the spec (with the command line's overrides), build the model, find the
evaluation point, check ``sample.initvals`` (so a bad start fails before anything is
written). Compiled backends are kept on the :class:`Prepared` so that each is compiled
once per process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jaxpm import backends as be
from jaxpm.errors import ConfigError
from jaxpm.experiments import Experiment
from jaxpm.experiments.context import Context, call_jax_op
from jaxpm.model import build
from jaxpm.progress import Progress
from jaxpm.sampling.starts import initvals
from jaxpm.spec import Spec, load_spec


@dataclass
class Prepared:
    """A loaded spec and its built model (shared by run, check-grad, compare-backends, bench).

    ``ctx`` is the model's build context (the ops applied, what the experiment built),
    ``point`` the evaluation point (value variable -> array), ``compiled`` the backends
    compiled so far.
    """

    spec: Spec
    model: Any
    ctx: Context
    build_seconds: float
    point: dict = field(default_factory=dict)
    compiled: dict[str, be.Compiled] = field(default_factory=dict)
    wrapper: Callable[..., Any] = call_jax_op
    _inference: Any = field(default=None, repr=False)

    @property
    def experiment(self) -> Experiment:
        """The experiment the model was built with."""
        return self.ctx.experiment

    @property
    def section(self) -> Any:
        """The experiment's section of the spec."""
        return self.spec.section

    def compile(self, backend: str) -> be.Compiled:
        """The model compiled for ``backend`` (once)."""
        if backend not in self.compiled:
            self.compiled[backend] = be.compile_backend(self.model, backend)
        return self.compiled[backend]

    def inference_model(self):
        """The model samplers and fits run on: the evaluated one, unless the experiment
        asks for another (the CNN's ``inference_dtype``), built once."""
        overrides = self.experiment.inference_overrides(self.section)
        if not overrides:
            return self.model
        if self._inference is None:
            self._inference = build(load_spec(self.spec, overrides), wrapper=self.wrapper)[0]
        return self._inference

    def with_overrides(self, overrides: dict[str, Any], progress: Progress | None = None) -> Prepared:
        """The same config with ``overrides`` applied, prepared afresh (``check_grad.set``)."""
        return prepare(load_spec(self.spec, overrides), progress=progress, wrapper=self.wrapper)


def prepare(config, overrides=None, progress: Progress | None = None, *,
            wrapper: Callable[..., Any] = call_jax_op) -> Prepared:
    """Load the spec (a path, built-in name, mapping or Spec) and build its model.

    ``wrapper`` is how each JAX function enters the model (see :func:`jaxpm.model.build_model`).
    """
    progress = progress or Progress.quiet()
    spec = config if isinstance(config, Spec) else load_spec(config, overrides or None)
    with progress.step(f"{spec.name}: building the model"):
        start = time.perf_counter()
        model, ctx = build(spec, wrapper=wrapper)
        try:
            point = be.evaluation_point(model, spec)
            if spec.sample.enabled and spec.sample.initvals:
                initvals(model, spec.sample)  # a bad start fails here, before anything is written
        except ConfigError as e:
            raise e.within(spec.label) from None
    return Prepared(spec, model, ctx, time.perf_counter() - start, point, wrapper=wrapper)


__all__ = ["Prepared", "prepare"]
