"""Ranks and their uniformity: the arithmetic of simulation-based calibration (pure NumPy/SciPy).

A simulation draws a true value from the prior, simulates data, fits it and keeps L
posterior draws; the true value's *rank* is how many of the L draws lie below it (ties
split at random), a number from 0 to L (:func:`rank`). When the inference is calibrated
each rank is uniform on {0, ..., L} (Talts et al. 2018).

The uniformity test is the ECDF test of Säilynoja, Bürkner and Vehtari (2022), as
Modrák et al. (2023) use it for SBC. With N ranks and the points ``z_j = j / (L + 1)``
(``j = 1..L``, at most :data:`MAX_POINTS` of them, evenly chosen), the ECDF count
``c_j = #{rank < j}`` is Binomial(N, z_j) under uniformity; the statistic ``gamma`` is the
smallest two-sided tail probability ``2 min(P(X <= c_j), P(X >= c_j))`` over the points
(:func:`gamma`). Its null distribution is simulated once per (N, L) from uniform ranks
(:func:`null_gammas`, seeded), which gives the p-value (:func:`p_value`) and the
simultaneous band of the ECDF plot (:func:`ecdf_band`): the ECDF leaves the 1 - alpha band
exactly when the p-value is below alpha. Several quantities are tested at a family-wise
level with Holm's step-down procedure (:func:`holm`).

>>> rng = np.random.default_rng(0)
>>> null = null_gammas(200, 20, seed=1)
>>> p_value(rng.integers(0, 21, 200), 20, null) > 0.05     # uniform ranks pass
True
>>> p_value(np.minimum(rng.integers(0, 21, 200), 10), 20, null) < 0.001   # half the mass at 10: fail
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

MAX_POINTS = 100
"""The ECDF is compared at most at this many points (the test's K)."""

NULL_SIMULATIONS = 4000
"""Uniform rank samples drawn for the statistic's null distribution (p-values to about 1/4000)."""


def rank(draws: np.ndarray, true: float, rng: np.random.Generator) -> int:
    """The rank of ``true`` among ``draws``: how many are below it, ties split at random.

    >>> rank(np.array([0.1, 0.5, 0.9, 1.3]), 0.7, np.random.default_rng(0))
    2
    >>> rank(np.array([0.1, 0.5, 0.9]), 5.0, np.random.default_rng(0)), rank(np.array([0.1, 0.5]), -1.0, None)
    (3, 0)
    >>> sorted({rank(np.array([1.0, 1.0, 2.0]), 1.0, np.random.default_rng(s)) for s in range(20)})
    [0, 1, 2]
    """
    draws = np.asarray(draws, dtype=float).ravel()
    below = int(np.sum(draws < true))
    ties = int(np.sum(draws == true))
    if ties and rng is not None:
        below += int(rng.integers(0, ties + 1))
    return below


def points(n_ranks: int, L: int) -> np.ndarray:
    """The ``j`` (1..L) at which the ECDF is compared: all, or :data:`MAX_POINTS` (or ``n_ranks``,
    if fewer) evenly spread.

    >>> points(50, 4).tolist(), len(points(50, 1000))
    ([1, 2, 3, 4], 50)
    """
    k = min(L, MAX_POINTS, max(1, n_ranks))
    return np.unique(np.linspace(1, L, k).round().astype(int)) if L >= 1 else np.array([], dtype=int)


def _tails(counts: np.ndarray, n: int, z: np.ndarray) -> np.ndarray:
    """``2 min(P(X <= c), P(X >= c))`` for X ~ Binomial(n, z), elementwise (capped at 1)."""
    lower = stats.binom.cdf(counts, n, z)
    upper = stats.binom.sf(counts - 1, n, z)
    return np.minimum(1.0, 2 * np.minimum(lower, upper))


def ecdf_counts(ranks: np.ndarray, L: int, at: np.ndarray) -> np.ndarray:
    """``#{rank < j}`` for each ``j`` in ``at`` (last axis of ``ranks`` is the sample).

    >>> ecdf_counts(np.array([0, 1, 1, 3]), 3, np.array([1, 2, 3])).tolist()
    [1, 3, 3]
    """
    ranks = np.asarray(ranks)
    hist = np.apply_along_axis(np.bincount, -1, ranks, minlength=L + 1) if ranks.ndim > 1 else \
        np.bincount(ranks, minlength=L + 1)
    below = np.cumsum(hist, axis=-1)  # below[..., j] = #{rank <= j}
    return below[..., at - 1]


def gamma(ranks: Sequence[int] | np.ndarray, L: int) -> float:
    """The test statistic: the smallest two-sided binomial tail probability of the ECDF
    over :func:`points` (small: far from uniform).

    >>> round(gamma(np.arange(11), 10), 3)    # perfectly even ranks
    1.0
    >>> gamma(np.zeros(20, dtype=int), 10) < 1e-10
    True
    """
    ranks = np.asarray(ranks, dtype=int)
    at = points(len(ranks), L)
    if not len(at):
        return 1.0
    return float(_tails(ecdf_counts(ranks, L, at), len(ranks), at / (L + 1)).min())


def null_gammas(n_ranks: int, L: int, seed: int = 0, simulations: int = NULL_SIMULATIONS) -> np.ndarray:
    """``gamma`` of ``simulations`` samples of ``n_ranks`` uniform ranks on {0..L} (sorted)."""
    rng = np.random.default_rng(seed)
    at = points(n_ranks, L)
    if not len(at) or n_ranks == 0:
        return np.ones(simulations)
    out = np.empty(simulations)
    chunk = max(1, 2_000_000 // max(1, n_ranks))
    for start in range(0, simulations, chunk):
        m = min(chunk, simulations - start)
        sims = rng.integers(0, L + 1, size=(m, n_ranks))
        # counts below each point: a cumulative histogram per simulated sample
        hist = np.zeros((m, L + 1), dtype=np.int64)
        np.add.at(hist, (np.repeat(np.arange(m), n_ranks), sims.ravel()), 1)
        counts = np.cumsum(hist, axis=1)[:, at - 1]
        out[start:start + m] = _tails(counts, n_ranks, at / (L + 1)).min(axis=1)
    return np.sort(out)


def p_value(ranks: Sequence[int] | np.ndarray, L: int, null: np.ndarray | None = None, seed: int = 0) -> float:
    """P(gamma <= observed) under uniform ranks: the test's p-value (``null`` from
    :func:`null_gammas` for the same number of ranks and L; simulated here when None)."""
    ranks = np.asarray(ranks, dtype=int)
    if len(ranks) == 0:
        return float("nan")
    null = null_gammas(len(ranks), L, seed) if null is None else np.sort(null)
    observed = gamma(ranks, L)
    # (k + 1) / (M + 1): never exactly 0, a valid p-value for a simulated null
    k = int(np.searchsorted(null, observed * (1 + 1e-12), side="right"))
    return (k + 1) / (len(null) + 1)


def holm(p_values: dict[str, float], alpha: float) -> dict[str, tuple[float, bool]]:
    """Holm's step-down test of several p-values at family-wise level ``alpha``:
    name -> (the level its p-value was compared with, passed). A NaN p-value fails.

    >>> holm({"a": 0.001, "b": 0.02, "c": 0.5}, 0.05)
    {'a': (0.016666666666666666, False), 'b': (0.025, False), 'c': (0.05, True)}
    >>> holm({"a": 0.02, "b": 0.021, "c": 0.022}, 0.05)    # the first is kept, so all are
    {'a': (0.016666666666666666, True), 'b': (0.025, True), 'c': (0.05, True)}
    """
    order = sorted(p_values, key=lambda k: (np.nan_to_num(p_values[k], nan=-1.0), k))
    m = len(order)
    out: dict[str, tuple[float, bool]] = {}
    rejecting = True
    for i, name in enumerate(order):
        level = alpha / (m - i)
        p = p_values[name]
        if rejecting and (np.isnan(p) or p <= level):
            out[name] = (level, False)
        else:
            rejecting = False
            out[name] = (level, not np.isnan(p))
    return {k: out[k] for k in p_values}


def ecdf_band(n_ranks: int, L: int, null: np.ndarray, prob: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The simultaneous ``prob`` band of the ECDF: ``(z, lower, upper)``, the points and the
    band's ECDF values there (fractions), from the ``1 - prob`` quantile of the null
    ``gamma``: an ECDF inside it at every point has ``p_value > 1 - prob``."""
    at = points(n_ranks, L)
    z = at / (L + 1)
    g = float(np.quantile(null, 1 - prob)) if len(null) else 1 - prob
    lower = stats.binom.ppf(g / 2, n_ranks, z)
    upper = stats.binom.isf(g / 2, n_ranks, z)
    return z, lower / n_ranks, upper / n_ranks


def histogram_band(n_ranks: int, bins: int, prob: float = 0.99) -> tuple[float, float]:
    """The central ``prob`` interval of one bin's count when ``n_ranks`` uniform ranks fall
    in ``bins`` equal bins (the band of the rank histogram).

    >>> histogram_band(100, 10, 0.99)
    (3.0, 18.0)
    """
    lo, hi = stats.binom.interval(prob, n_ranks, 1 / bins)
    return float(lo), float(hi)


__all__ = ["rank", "points", "ecdf_counts", "gamma", "null_gammas", "p_value", "holm", "ecdf_band",
           "histogram_band", "MAX_POINTS", "NULL_SIMULATIONS"]
