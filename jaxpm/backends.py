"""logp and dlogp of a model on PyTensor's C, Numba and JAX backends, side by side.

:func:`evaluate` compiles, for one backend, the model's logp terms and gradient, and
times one logp+dlogp evaluation the way a sampler calls it (median of repeated calls
after a warm-up, JAX results blocked on). :func:`compare` runs every configured backend
and reports the largest differences, in the ``compare-backends --json`` form of the spec.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from jaxpm.errors import ConfigError, did_you_mean
from jaxpm.rundir import plain

BACKENDS = {"c": "FAST_RUN", "numba": "NUMBA", "jax": "JAX"}
"""jaxpm backend name -> PyTensor compilation mode."""


def term_names(model) -> list[str]:
    """Names of ``model.logp(sum=False)``'s terms, in its order."""
    return [v.name for v in model.basic_RVs] + [p.name for p in model.potentials]


def evaluation_point(model, spec) -> dict[str, np.ndarray]:
    """The configured point: the model's initial point, with ``evaluate.point`` overrides."""
    point = model.initial_point(random_seed=spec.seed)
    given = spec.evaluate.point
    if given == "initial":
        return point
    for name, value in given.items():
        if name not in point:
            raise ConfigError(f"evaluate.point.{name}", f"not a value variable{did_you_mean(name, point)}")
        value = np.asarray(value, dtype=point[name].dtype)
        if value.shape != point[name].shape:
            try:
                value = np.broadcast_to(value, point[name].shape).copy()
            except ValueError:
                raise ConfigError(
                    f"evaluate.point.{name}", f"expected shape {point[name].shape}, got {value.shape}"
                ) from None
        point[name] = value
    return point


@dataclass
class Compiled:
    """The functions one backend needs: terms + gradient, and logp+dlogp for timing."""

    backend: str
    terms_and_grads: callable
    logp_dlogp: callable
    compile_seconds: float
    value_names: list[str] = field(default_factory=list)


def compile_backend(model, backend: str) -> Compiled:
    """The model's logp terms and gradient, and logp+dlogp, compiled for ``backend``."""
    import pymc as pm
    import pytensor

    mode = BACKENDS[backend]
    value_vars = model.value_vars
    terms = model.logp(sum=False)
    total = model.logp()
    grads = pytensor.grad(total, value_vars)
    start = time.perf_counter()
    with model, warnings.catch_warnings():
        # Numba runs JAX ops through object mode; that is expected, not worth a warning.
        warnings.filterwarnings("ignore", message="Numba will use object mode")
        terms_and_grads = pm.compile([*value_vars], [*terms, *grads], mode=mode, on_unused_input="ignore")
        logp_dlogp = pm.compile([*value_vars], [total, *grads], mode=mode, on_unused_input="ignore")
    logp_dlogp.trust_input = True
    return Compiled(backend, terms_and_grads, logp_dlogp, time.perf_counter() - start, [v.name for v in value_vars])


def seconds_per_eval(fn, args, repeats: int) -> tuple[float, float]:
    """(first call, median of ``repeats`` calls after a warm-up), blocking on results."""
    start = time.perf_counter()
    _block(fn(*args))
    first = time.perf_counter() - start
    for _ in range(min(3, repeats)):
        _block(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _block(fn(*args))
        times.append(time.perf_counter() - start)
    return first, float(np.median(times))


def _block(outs):
    for o in outs:
        np.asarray(o)


def evaluate(model, compiled: Compiled, point: dict, repeats: int = 20) -> dict:
    """One backend's logp, terms, gradient and seconds per logp+dlogp evaluation."""
    args = [np.asarray(point[name]) for name in compiled.value_names]
    outs = [np.asarray(o) for o in compiled.terms_and_grads(*args)]
    names = term_names(model)
    terms, grads = outs[: len(names)], outs[len(names) :]
    first, per_eval = seconds_per_eval(compiled.logp_dlogp, args, repeats)
    return {
        "logp": float(sum(float(np.sum(t)) for t in terms)),
        "logp_terms": {n: plain(t) for n, t in zip(names, terms, strict=False)},
        "dlogp": {n: np.ravel(g).astype(float).tolist() for n, g in zip(compiled.value_names, grads, strict=False)},
        "seconds_per_eval": per_eval,
        "first_call_seconds": first,
        "compile_seconds": compiled.compile_seconds,
    }


def compare(results: dict[str, dict], rtol: float, atol: float) -> dict:
    """Largest differences between backends, and which term disagrees first (if any).

    Every backend is compared with the first one; two infinities of the same sign agree.
    """
    backends = list(results)
    ref = results[backends[0]]
    worst = {"logp": 0.0, "dlogp": 0.0}
    worst_rel = {"logp": 0.0, "dlogp": 0.0}
    disagreements = []
    for b in backends[1:]:
        for kind, items in (("logp", "logp_terms"), ("dlogp", "dlogp")):
            for name, a in ref[items].items():
                x, y = np.asarray(a, dtype=float), np.asarray(results[b][items][name], dtype=float)
                same = (x == y) | (np.isnan(x) & np.isnan(y))
                diff = np.where(same, 0.0, np.nan_to_num(np.abs(x - y), nan=np.inf))
                with np.errstate(invalid="ignore", divide="ignore"):
                    rel = np.where(same, 0.0, diff / np.fmax(np.abs(x), np.abs(y)))
                worst[kind] = max(worst[kind], float(np.max(diff, initial=0.0)))
                worst_rel[kind] = max(worst_rel[kind], float(np.max(rel, initial=0.0)))
                if np.any(diff > atol + rtol * np.abs(x)):
                    disagreements.append(
                        f"{kind} {'term ' if kind == 'logp' else 'of '}'{name}': {backends[0]} and {b} "
                        f"differ by {float(np.max(diff)):.3g}"
                    )
    return {
        "ok": not disagreements,
        "max_abs_diff": worst,
        "max_rel_diff": worst_rel,
        "disagreements": disagreements,
    }
