"""``compare-backends``: logp terms, dlogp and timing on each configured backend, compared.

:func:`evaluate_backends` returns the ``compare-backends --json`` document of one config
(``run.json`` keeps the same under ``evaluation``).
"""

from __future__ import annotations

from jaxpm import backends as be
from jaxpm.progress import Progress
from jaxpm.rundir import plain


def evaluate_backends(prep, progress: Progress | None = None) -> dict:
    """logp terms, dlogp and timing on each configured backend, plus their comparison."""
    progress = progress or Progress.quiet()
    spec = prep.spec
    per_backend = {}
    for backend in spec.evaluate.backends:
        with progress.step(f"{spec.name}: compiling and timing logp+dlogp on {backend}"):
            per_backend[backend] = be.evaluate(prep.model, prep.compile(backend), prep.point, spec.evaluate.repeats)
    comparison = be.compare(per_backend, spec.evaluate.rtol, spec.evaluate.atol)
    return {
        "config": spec.label,
        "name": spec.name,
        "ok": comparison["ok"],
        "point": {k: plain(v) for k, v in prep.point.items()},
        "backends": per_backend,
        **{k: v for k, v in comparison.items() if k != "ok"},
    }


__all__ = ["evaluate_backends"]
