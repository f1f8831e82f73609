"""Predictive draws and the pointwise log-likelihood of a PyMC model, on the JAX backend.

PyMC's ``pm.sample_posterior_predictive`` and ``pm.compute_log_likelihood`` call a
compiled function once per draw from Python, and a model with JAX ops inside compiles
through Numba in object mode or back through the C backend. Here two PyTensor graphs are
rewritten and translated for JAX as PyTensor's JAX backend does it (``jax_funcify``):

1. the prior: every free variable drawn forward from its prior;
2. at the draws: given values of the free variables, the observed variables drawn, their
   elementwise logp and the deterministics. The graphs come from the model with its
   value transforms removed, as in ``pm.compute_log_likelihood``: the free variables
   enter constrained, as samplers store them.

One jitted program runs both over every draw (:func:`jaxpm.draws.over_draws`:
``jax.vmap`` over a batch of draws, batch after batch, the batch sized by XLA's memory
estimate). A posterior row takes the free variables from a posterior draw
(``posterior_predictive``, ``log_likelihood``); a prior row draws them (``prior``,
``prior_predictive``); so an expensive model (a diffrax solve) is traced and compiled
once. Posterior and prior rows never share a batch: a vectorised adaptive solve steps
until its slowest draw is done, and prior draws can be stiff. The program is compiled at
XLA's optimisation level 0: it runs once, so compiling costs far more than running, and
level 0 halves it.

Random draws: every random variable's generator becomes an input, and each gets its own
key, ``fold_in(fold_in(fold_in(PRNGKey(seed), stream), draw), variable)``, where
``draw`` is the draw's place in the whole posterior (chain-major) or in the prior. The
draws are reproducible from the seed and do not depend on the batch size or on thinning.

A distribution or op without a JAX implementation (beyond the samplers
:mod:`jaxpm.predictive.jax_samplers` adds) sends the drawn groups to PyMC's own functions;
:attr:`Predicted.backends` says which computed each group.

>>> import pymc as pm, xarray as xr
>>> with pm.Model() as model:
...     mu = pm.Normal("mu", 0, 1)
...     y = pm.Normal("y", mu, 1, observed=[0.5, 1.5])
>>> posterior = xr.Dataset({"mu": (("chain", "draw"), [[0.0, 1.0]])},
...                        coords={"chain": [0], "draw": [0, 1]})
>>> out = predictive_groups(model, posterior, seed=1, prior_draws=3)
>>> sorted(out.groups), out.groups["log_likelihood"]["y"].shape, out.groups["prior_predictive"]["y"].shape
(['log_likelihood', 'posterior_predictive', 'prior', 'prior_predictive'], (1, 2, 2), (1, 3, 2))
>>> round(float(out.groups["log_likelihood"]["y"][0, 1, 0]), 6)  # log N(0.5 | 1, 1)
-1.043939
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jaxpm.draws import over_draws
from jaxpm.errors import first_line
from jaxpm.predictive import jax_samplers  # noqa: F401 - registers JAX samplers PyTensor lacks

POSTERIOR_STREAM = 0
"""The key stream of the posterior predictive draws."""
PRIOR_STREAM = 1
"""The key stream of the free variables' prior draws."""
PRIOR_PREDICTIVE_STREAM = 2
"""The key stream of the prior predictive draws (the observed variables at the prior draws)."""

COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}
"""XLA options of the programs here: they run once, so compiling fast matters most."""


@dataclass
class Predicted:
    """What :func:`predictive_groups` computed.

    ``groups``: InferenceData group name -> ``xarray.Dataset`` (``posterior_predictive``,
    ``log_likelihood``, ``prior``, ``prior_predictive``, as asked); ``backends``: group ->
    ``"jax"`` or ``"pymc"`` (the fallback); ``seconds``: step -> seconds, compiling
    included; ``batch``: step -> draws per vectorised batch; ``notes``: why a fallback
    happened.
    """

    groups: dict[str, Any] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    batch: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def predictive_groups(
    model,
    posterior,
    *,
    seed: int,
    posterior_predictive: bool = True,
    log_likelihood: bool = True,
    prior_draws: int = 0,
    batch: int | None = None,
) -> Predicted:
    """The predictive groups of ``model``, at the draws in ``posterior`` and from the prior.

    Parameters
    ----------
    model
        The ``pm.Model`` the draws come from.
    posterior
        An ``xarray.Dataset`` with dimensions ``chain`` and ``draw`` holding (at least)
        every free variable, constrained, as samplers store it.
    seed
        Where every random draw comes from (see the module docstring).
    posterior_predictive, log_likelihood
        Whether to compute these groups at the posterior draws.
    prior_draws
        Draws from the prior for ``prior`` and ``prior_predictive`` (0: none).
    batch
        Draws per vectorised batch (None: sized by memory, see :func:`jaxpm.draws.over_draws`).
    """
    out = Predicted()
    asked = (posterior_predictive and bool(model.observed_RVs), log_likelihood and bool(model.observed_RVs),
             prior_draws)
    job = _Job(model, posterior, seed, batch)
    try:
        job.in_jax(out, *asked)
    except NotImplementedError as e:  # an op or a distribution without a JAX implementation
        out = Predicted(notes=[f"drawn by PyMC instead of JAX: {first_line(e)}"])
        job.with_pymc(out, *asked)
    return out


def thin(posterior, limit: int | None):
    """At most ``limit`` draws of ``posterior``, evenly thinned within each chain (all when
    ``limit`` is None or not smaller). Coordinates keep the original draw numbers.

    >>> import xarray as xr
    >>> post = xr.Dataset({"a": (("chain", "draw"), np.arange(20.0).reshape(2, 10))})
    >>> thin(post, 6)["a"].values.tolist()
    [[0.0, 4.0, 9.0], [10.0, 14.0, 19.0]]
    """
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    if limit is None or limit >= n_chain * n_draw:
        return posterior
    per_chain = max(1, limit // n_chain)
    keep = np.unique(np.linspace(0, n_draw - 1, per_chain).round().astype(int))
    return posterior.isel(draw=keep)


# ----------------------------------------------------------------------------- the job


class _Job:
    """The groups :func:`predictive_groups` was asked for, computed in JAX or by PyMC."""

    def __init__(self, model, posterior, seed: int, batch: int | None):
        from pymc.model.transform.conditioning import remove_value_transforms

        self.model, self.posterior, self.seed, self.batch = model, posterior, seed, batch
        self.umodel = remove_value_transforms(model)
        self.free = list(self.umodel.free_RVs)
        self.observed = list(self.umodel.observed_RVs)
        self.inputs = [self.umodel.rvs_to_values[rv] for rv in self.free]

    def in_jax(self, out: Predicted, predictive: bool, log_likelihood: bool, prior_draws: int) -> None:
        """One program over the posterior draws and the prior draws (see the module docstring)."""
        import jax.numpy as jnp
        import xarray as xr

        began = time.perf_counter()
        values, keys, n_post = [], [], 0
        if predictive or log_likelihood:
            n_post = self.posterior.sizes["chain"] * self.posterior.sizes["draw"]
            values.append([_flat(self.posterior[rv.name].values, rv.type.dtype) for rv in self.free])
            keys.append(key_rows(self.seed, POSTERIOR_STREAM, _draw_index(self.posterior)))
        if prior_draws:  # placeholders, replaced inside the program by draws from the prior
            values.append([np.zeros((prior_draws, *shape), rv.type.dtype)
                           for rv, shape in zip(self.free, self.free_shapes(), strict=True)])
            keys.append(key_rows(self.seed, PRIOR_PREDICTIVE_STREAM, np.arange(prior_draws)))
        draw = bool(self.observed) and (predictive or bool(prior_draws))
        dets = list(self.umodel.deterministics) if prior_draws else []
        at = forward_program(self.inputs, self.at_draws(draw, log_likelihood, dets))
        rows = [np.concatenate(parts) for parts in zip(*values, strict=True)]
        segments = [len(k) for k in keys]
        if prior_draws:
            from_prior = forward_program([], self.free)
            free_keys = key_rows(self.seed, PRIOR_STREAM, np.maximum(0, np.arange(sum(segments)) - n_post))
            is_prior = np.arange(sum(segments)) >= n_post

            def program(given, key_row, free_key_row, prior_row):
                # every row draws from the prior (vectorised, both sides of a select are
                # computed); prior rows use those draws, posterior rows their own values
                drawn = from_prior([], free_key_row)
                given = [jnp.where(prior_row, d.astype(v.dtype), v) for d, v in zip(drawn, given, strict=True)]
                return [*at(given, key_row), *given]

            args = (rows, np.concatenate(keys), free_keys, is_prior)
        else:
            program, args = at, (rows, np.concatenate(keys))
        results, used = over_draws(program, *args, batch=self.batch, segments=segments,
                                   compiler_options=COMPILER_OPTIONS)
        out.seconds["jax"], out.batch["jax"] = time.perf_counter() - began, used
        names = [rv.name for rv in self.observed]
        drawn, logp, det_values, free_values = _split(
            results, [len(names) * draw, len(names) * log_likelihood, len(dets), len(self.free) * bool(prior_draws)])
        post, prior = slice(0, n_post), slice(n_post, None)
        shape = (self.posterior.sizes["chain"], self.posterior.sizes["draw"])
        if predictive:
            self._add(out, "posterior_predictive", names, [d[post].reshape(*shape, *d.shape[1:]) for d in drawn])
        if log_likelihood:
            self._add(out, "log_likelihood", names, [v[post].reshape(*shape, *v.shape[1:]) for v in logp])
        if prior_draws:
            like = xr.Dataset(coords={"chain": [0], "draw": np.arange(prior_draws)})
            names_prior = [v.name for v in (*self.free, *dets)]
            self._add(out, "prior", names_prior, [v[prior][None] for v in (*free_values, *det_values)], like)
            if draw:
                self._add(out, "prior_predictive", names, [d[prior][None] for d in drawn], like)

    def free_shapes(self) -> list[tuple[int, ...]]:
        """Each free variable's shape (static where PyTensor knows it, else evaluated)."""
        return [tuple(rv.type.shape) if None not in rv.type.shape else tuple(int(k) for k in rv.shape.eval())
                for rv in self.free]

    def at_draws(self, draw: bool, logp: bool, dets: list) -> list:
        """The outputs of the program at the draws, in terms of :attr:`inputs`: the observed
        variables drawn, their elementwise logp, the deterministics."""
        from pytensor.graph.replace import graph_replace

        replace = dict(zip(self.free, self.inputs, strict=True))
        drawn = graph_replace(self.observed, replace, strict=False) if draw else []
        logps = self.umodel.logp(vars=self.observed, sum=False) if logp else []
        det = graph_replace(dets, replace, strict=False) if dets else []
        return [*drawn, *logps, *det]

    def with_pymc(self, out: Predicted, predictive: bool, log_likelihood: bool, prior_draws: int) -> None:
        """The fallback: the log-likelihood in JAX when it can be (it draws nothing), the
        drawn groups from PyMC's own functions."""
        import arviz as az
        import pymc as pm

        began = time.perf_counter()
        if log_likelihood:
            try:
                self.in_jax(out, False, True, 0)
            except NotImplementedError as e:
                out.notes.append(f"log-likelihood by PyMC instead of JAX: {first_line(e)}")
                out.groups["log_likelihood"] = pm.compute_log_likelihood(
                    az.InferenceData(posterior=self.posterior), model=self.model, extend_inferencedata=False,
                    progressbar=False)
                out.backends["log_likelihood"] = "pymc"
        names = [rv.name for rv in self.model.observed_RVs]
        if predictive:
            idata = pm.sample_posterior_predictive(az.InferenceData(posterior=self.posterior), model=self.model,
                                                   var_names=names, random_seed=self.seed, progressbar=False)
            out.groups["posterior_predictive"] = idata.posterior_predictive
            out.backends["posterior_predictive"] = "pymc"
        if prior_draws:
            idata = pm.sample_prior_predictive(prior_draws, model=self.model, random_seed=self.seed)
            out.groups["prior"] = idata.prior
            out.backends["prior"] = "pymc"
            if names:
                out.groups["prior_predictive"] = idata.prior_predictive
                out.backends["prior_predictive"] = "pymc"
        out.seconds["pymc"] = time.perf_counter() - began

    def _add(self, out: Predicted, group: str, names: list[str], arrays: list[np.ndarray], like=None) -> None:
        out.groups[group] = _dataset(self.model, dict(zip(names, arrays, strict=True)),
                                     self.posterior if like is None else like)
        out.backends[group] = "jax"


# ----------------------------------------------------------------------------- the JAX program


def forward_program(inputs: Sequence[Any], outputs: Sequence[Any]) -> Callable[..., list]:
    """A PyTensor graph as a JAX function of one draw: ``program(input_values, key_row)``.

    ``inputs`` are graph variables each draw gives a value for; ``key_row`` is the draw's
    row of :func:`key_rows`, from which the program derives the draw's key. Every random
    generator the ``outputs`` use becomes an input too, fed ``{"jax_state": fold_in(key,
    j)}`` for the ``j``-th (PyTensor's JAX form of a generator); other shared variables
    (``pm.Data``) become constants. The graph gets the JAX backend's rewrites, then ``jax_funcify``.
    Raises NotImplementedError (now or when traced) when an op or distribution has no JAX
    implementation.
    """
    import jax
    import pytensor.tensor as pt
    from pytensor.compile.mode import JAX
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph import FunctionGraph
    from pytensor.graph.replace import clone_replace
    from pytensor.graph.traversal import graph_inputs
    from pytensor.link.jax.dispatch import jax_funcify
    from pytensor.tensor.random.type import RandomType

    shared = [v for v in graph_inputs(list(outputs)) if isinstance(v, SharedVariable)]
    generators = [v for v in shared if isinstance(v.type, RandomType)]
    streams = [g.type() for g in generators]
    replace = {**dict(zip(generators, streams, strict=True)),
               **{v: pt.constant(v.get_value(borrow=True)) for v in shared if v not in generators}}
    graph = clone_replace(list(outputs), replace=replace) if replace else list(outputs)
    fgraph = FunctionGraph(inputs=[*inputs, *streams], outputs=graph, clone=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping .* Op")  # JAX drops PyMC's parameter checks
        JAX.optimizer.rewrite(fgraph)
        fn = jax_funcify(fgraph)

    def program(values: Sequence[Any], key_row):
        key = row_key(key_row)
        states = [{"jax_state": jax.random.fold_in(key, j)} for j in range(len(streams))]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping .* Op")
            return list(fn(*values, *states))

    return program


def key_rows(seed: int, stream: int, index) -> np.ndarray:
    """What a program needs to derive each draw's key: rows ``[k0, k1, stream, i]`` (uint32)
    with ``[k0, k1] = PRNGKey(seed)``, one per ``i`` in ``index``; see :func:`row_key`.
    Built with NumPy: no JAX work outside the jitted programs.

    >>> key_rows(2**32 + 5, 1, [7, 8]).tolist()
    [[1, 5, 1, 7], [1, 5, 1, 8]]
    """
    index = np.asarray(index, dtype=np.uint32)
    seed_key = [(seed >> 32) & 0xFFFFFFFF, seed & 0xFFFFFFFF]  # jax.random.PRNGKey(seed), threefry
    rows = np.empty((len(index), 4), dtype=np.uint32)
    rows[:, :2], rows[:, 2], rows[:, 3] = seed_key, stream, index
    return rows


def row_key(row):
    """A draw's key from its :func:`key_rows` row: ``fold_in(fold_in(PRNGKey(seed), stream), i)``.

    >>> import jax
    >>> key = row_key(key_rows(20230103, 2, [5])[0])
    >>> bool((key == jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(20230103), 2), 5)).all())
    True
    """
    import jax

    return jax.random.fold_in(jax.random.fold_in(row[:2], row[2]), row[3])


# ----------------------------------------------------------------------------- helpers


def _flat(values: np.ndarray, dtype: str) -> np.ndarray:
    """(chain, draw, *shape) -> (chain * draw, *shape) in the variable's dtype."""
    values = np.asarray(values)
    return values.reshape(-1, *values.shape[2:]).astype(dtype, copy=False)


def _split(items: list, sizes: list[int]) -> list[list]:
    """``items`` cut into consecutive pieces of ``sizes``."""
    out, start = [], 0
    for size in sizes:
        out.append(items[start:start + size])
        start += size
    return out


def _draw_index(posterior) -> np.ndarray:
    """Each draw's place in the whole posterior, chain-major, from the coordinates when they
    are draw numbers (thinned posteriors keep theirs)."""
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    draw = np.asarray(posterior["draw"].values) if "draw" in posterior.coords else np.arange(n_draw)
    if not np.issubdtype(draw.dtype, np.integer):
        draw = np.arange(n_draw)
    span = int(draw.max()) + 1 if draw.size else 1
    return (np.arange(n_chain)[:, None] * span + draw[None, :]).ravel()


def _dataset(model, data: dict[str, np.ndarray], like):
    """An InferenceData group: ``data`` (each (chain, draw, *shape)) with the chain and draw
    coordinates of ``like`` and the model's dims (PyMC's names: ``<var>_dim_<i>`` otherwise)."""
    import arviz as az
    from pymc.backends.arviz import coords_and_dims_for_inferencedata

    coords, dims = coords_and_dims_for_inferencedata(model)
    coords = {**coords, "chain": like["chain"].values, "draw": like["draw"].values}
    dims = {k: v for k, v in dims.items() if k in data}
    return az.dict_to_dataset(data, coords=coords, dims=dims)


__all__ = ["Predicted", "predictive_groups", "thin", "forward_program", "key_rows", "row_key", "POSTERIOR_STREAM",
           "PRIOR_STREAM", "PRIOR_PREDICTIVE_STREAM", "COMPILER_OPTIONS"]
