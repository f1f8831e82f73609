"""``compare-backends``: logp terms, dlogp and timing on each configured backend, compared.

:func:`evaluate_backends` returns the ``compare-backends --json`` document of one config
(``run.json`` keeps the same under ``evaluation``). Variables with more than
:data:`~jaxpm.backends.MAX_LISTED` entries are summarised in it; :func:`evaluate` also
returns their full arrays, which a run folder keeps in ``evaluation.npz``. Comparisons
always use the full arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jaxpm import backends as be
from jaxpm.progress import Progress


@dataclass
class Evaluation:
    """The ``compare-backends`` document of one config, and the large arrays it summarises
    (``<backend>/<variable>`` -> array, for ``evaluation.npz``)."""

    document: dict
    arrays: dict[str, np.ndarray]


def evaluate(prep, progress: Progress | None = None) -> Evaluation:
    """logp terms, dlogp and timing on each configured backend, plus their comparison."""
    progress = progress or Progress.quiet()
    spec = prep.spec
    per_backend = {}
    for backend in spec.evaluate.backends:
        with progress.step(f"{spec.name}: compiling and timing logp+dlogp on {backend}"):
            per_backend[backend] = be.evaluate(prep.model, prep.compile(backend), prep.point, spec.evaluate.repeats)
    comparison = be.compare(per_backend, spec.evaluate.rtol, spec.evaluate.atol)
    document = {
        "config": spec.label,
        "name": spec.name,
        "ok": comparison["ok"],
        "point": {k: be.listed(v) for k, v in prep.point.items()},
        "backends": {b: be.document(r) for b, r in per_backend.items()},
        "rtol": spec.evaluate.rtol,
        "atol": spec.evaluate.atol,
        **{k: v for k, v in comparison.items() if k != "ok"},
    }
    return Evaluation(document, be.large_arrays(per_backend))


def evaluate_backends(prep, progress: Progress | None = None) -> dict:
    """The ``compare-backends --json`` document of one config (see :func:`evaluate`)."""
    return evaluate(prep, progress).document


__all__ = ["Evaluation", "evaluate", "evaluate_backends"]
