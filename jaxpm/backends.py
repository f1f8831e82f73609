"""logp and dlogp of a model on PyTensor's C, Numba and JAX backends, side by side.

:func:`compile_backend` compiles, for one backend, the model's logp terms and gradient;
:func:`evaluate` computes them at a point and times one logp+dlogp evaluation the way a
sampler calls it (median of repeated calls after a warm-up, JAX results blocked on).
:func:`compare` compares backends over the full arrays and names every number that is
not finite; :func:`document` writes a result as JSON, large arrays as a :func:`summary`.
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
    """One backend's logp, terms, gradient and seconds per logp+dlogp evaluation.

    Terms and gradients are NumPy arrays (``logp_terms`` by model variable, ``dlogp`` by
    value variable, each gradient flat); :func:`document` turns them into JSON.
    """
    args = [np.asarray(point[name]) for name in compiled.value_names]
    outs = [np.asarray(o) for o in compiled.terms_and_grads(*args)]
    names = term_names(model)
    terms, grads = outs[: len(names)], outs[len(names) :]
    first, per_eval = seconds_per_eval(compiled.logp_dlogp, args, repeats)
    return {
        "logp": float(sum(float(np.sum(t)) for t in terms)),
        "logp_terms": {n: np.asarray(t, dtype=float) for n, t in zip(names, terms, strict=True)},
        "dlogp": {n: np.ravel(g).astype(float) for n, g in zip(compiled.value_names, grads, strict=True)},
        "seconds_per_eval": per_eval,
        "first_call_seconds": first,
        "compile_seconds": compiled.compile_seconds,
    }


def nonfinite(results: dict[str, dict]) -> list[str]:
    """Every logp term and gradient that is not a finite number, on each backend, named.

    A logp of -inf at the evaluation point (a failed solve, a point outside the support)
    is as much a failure as a NaN: there is nothing to check there.
    """
    problems = []
    for backend, r in results.items():
        before = len(problems)
        for kind, items in (("logp term", "logp_terms"), ("dlogp of", "dlogp")):
            for name, values in r[items].items():
                values = np.asarray(values, dtype=float)
                bad = ~np.isfinite(values)
                if not bad.any():
                    continue
                first = int(np.flatnonzero(bad.ravel())[0])
                value = float(values.ravel()[first])
                where = ""
                if values.size > 1:
                    where = f" at {int(bad.sum())} of {values.size} entries (first: index {first})"
                problems.append(f"{backend}: {kind} '{name}' is {value}{where}")
        if len(problems) == before and not np.isfinite(r["logp"]):
            problems.append(f"{backend}: logp is {r['logp']}")
    return problems


def compare(results: dict[str, dict], rtol: float, atol: float) -> dict:
    """Largest differences between backends, which term disagrees (if any), and which
    numbers are not finite.

    Every backend is compared with the first one, entry by entry over the full arrays;
    entries that are not finite are reported by :func:`nonfinite` and never count as
    agreement. ``compared`` is false with one backend: then only finiteness is checked.
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
                both = np.isfinite(x) & np.isfinite(y)
                diff = np.where(both, np.abs(x - y), 0.0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    rel = np.where(both & (diff > 0), diff / np.fmax(np.abs(x), np.abs(y)), 0.0)
                worst[kind] = max(worst[kind], float(np.max(diff, initial=0.0)))
                worst_rel[kind] = max(worst_rel[kind], float(np.max(rel, initial=0.0)))
                if np.any(diff > atol + rtol * np.abs(np.where(both, x, 0.0))):
                    disagreements.append(
                        f"{kind} {'term ' if kind == 'logp' else 'of '}'{name}': {backends[0]} and {b} "
                        f"differ by {float(np.max(diff)):.3g}"
                    )
    problems = nonfinite(results)
    return {
        "ok": not disagreements and not problems,
        "compared": len(backends) > 1,
        "max_abs_diff": worst,
        "max_rel_diff": worst_rel,
        "disagreements": disagreements,
        "nonfinite": problems,
    }


MAX_LISTED = 1000
"""Variables with more entries than this are kept in JSON as a :func:`summary`."""


def summary(values: np.ndarray) -> dict:
    """What JSON keeps of a large array: size, min, max, mean, L2 norm, the first 10 entries.

    >>> summary(np.arange(2000.0))["first"][:3], summary(np.arange(2000.0))["size"]
    ([0.0, 1.0, 2.0], 2000)
    """
    flat = np.ravel(np.asarray(values, dtype=float))
    with np.errstate(invalid="ignore", over="ignore"):
        return {
            "size": int(flat.size),
            "min": float(np.min(flat)),
            "max": float(np.max(flat)),
            "mean": float(np.mean(flat)),
            "l2": float(np.sqrt(np.sum(flat * flat))),
            "first": flat[:10].tolist(),
        }


def listed(values) -> float | list | dict:
    """An array for JSON: a number, a (nested) list, or a :func:`summary` above :data:`MAX_LISTED` entries."""
    values = np.asarray(values, dtype=float)
    return summary(values) if values.size > MAX_LISTED else plain(values)


def document(result: dict) -> dict:
    """One backend's :func:`evaluate` result as JSON (large arrays summarised)."""
    return {
        **result,
        "logp_terms": {n: listed(v) for n, v in result["logp_terms"].items()},
        "dlogp": {n: listed(v) for n, v in result["dlogp"].items()},
    }


def large_arrays(results: dict[str, dict]) -> dict[str, np.ndarray]:
    """The arrays :func:`document` summarised, for ``evaluation.npz``: ``<backend>/<value
    variable>`` for gradients, ``<backend>/logp_terms/<term>`` for logp terms."""
    out = {}
    for backend, r in results.items():
        for name, values in r["dlogp"].items():
            if np.size(values) > MAX_LISTED:
                out[f"{backend}/{name}"] = np.asarray(values)
        for name, values in r["logp_terms"].items():
            if np.size(values) > MAX_LISTED:
                out[f"{backend}/logp_terms/{name}"] = np.asarray(values)
    return out
