"""``cnn:`` a Bayesian flax CNN on images: one prior per layer parameter, logits out.

::

    cnn:
      source: digits        # digits (offline, scikit-learn's 8x8 digits at 28x28) | mnist | npz
      n: 1000               # training images
      holdout: 500          # images after those, for held-out accuracy
      weight_prior: {dist: Normal, mu: 0, sigma: 1}
    likelihood:
      label: {dist: Categorical, logit_p: logits, observed: labels}

Each parameter of the network gets a prior named ``<layer>_<param>`` (``Conv_0_kernel``,
``Dense_1_bias``, ... as in the post), with the parameter's shape. The network's output
is named ``output`` (``logits``) and the labels ``labels``, so that the likelihood can
refer to them. With ``dtype: float32`` the network computes in float32 (the priors stay
float64), about twice as fast on a CPU. ``inference_dtype`` does the same for sampling
and fits only, so that evaluation and gradient checks keep ``dtype``.

Inference. NUTS over the post's 824k weights is not practical on a CPU (seconds per
gradient: see the README's Performance section). What is, and what ``configs/cnn.yaml``
does with ``--sample``::

    cnn:
      inference_dtype: float32
    sample:
      sampler: advi         # or map: pm.find_MAP, at most `iterations` evaluations
      iterations: 40        # full-batch steps
      draws: 20
      start: flax           # flax's random initialisation (from the seed), not all zeros
      start_sigma: 0.01     # PyMC's 0.69 per weight overflows the logits
      optimizer: adam
      learning_rate: 0.01

All-zero weights (PyMC's initial point) are a dead start: no gradient reaches the hidden
layers (see :func:`jaxpm.experiments.cnn.nets.init_params`). The run's ``sampling`` block reports
``train_accuracy`` and ``heldout_accuracy`` (the ``holdout`` images after the first
``n``), and ``digits.png`` shows held-out digits with their predicted classes.

The predictive checks (``ppc.png``, ``prior_ppc.png``) show the class counts of the
training labels against those of the predictive draws. The held-out digits are also the
yardstick for comparing CNN runs (``jaxpm compare``):
``posterior.nc`` keeps their labels (``heldout_observed_data``), each draw's
log-likelihood of them (``heldout_log_likelihood``) and class probabilities
(``heldout_predictive``), computed in one vectorised JAX program over the draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxpm import rundir
from jaxpm.draws import over_draws, thinned
from jaxpm.experiments.base import Experiment, Fitted, HeldOut
from jaxpm.experiments.cnn import images, nets, plots
from jaxpm.experiments.cnn.section import CnnSection
from jaxpm.ops import jax_op

PREDICTIVE_DRAWS = 20
"""Draws averaged in the posterior predictive (class probabilities)."""


def logits(params, x, *, module, dtype):
    """The network's logits for images ``x`` (static: the flax module and compute dtype)."""
    params = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    return nets.apply_fn(module)(params, jnp.asarray(x, dtype))


cnn_logits = jax_op(logits, name="cnn", grad="reverse")


@dataclass
class CnnBuilt:
    """The built network: the flax module, the training images and labels, the logits' name."""

    module: Any
    images: np.ndarray
    labels: np.ndarray
    output: str


class CnnExperiment(Experiment):
    """A Bayesian flax CNN (see the module docstring)."""

    name = "cnn"
    section = CnnSection
    fit_starts = {"flax": "initialises a CNN's network"}

    def outputs(self, section: CnnSection) -> list[str]:
        return [section.output, section.labels]

    def build(self, section: CnnSection, ctx) -> CnnBuilt:
        x, y = _images(section, ctx.path, section.n, 0, section.dtype)
        module = nets.build_network(section.layers)
        prior = section.weight_prior
        params = {}
        for name, shape in nets.param_shapes(module, (1, *x.shape[1:])).items():
            var = ctx.distribution(name, prior.dist, {**prior.params, "shape": list(shape)}, "cnn.weight_prior")
            params[name] = ctx.add(name, var, key="cnn.weight_prior")
        out = ctx.apply(cnn_logits, params, x, module=module, dtype=section.dtype, key="cnn.layers")
        ctx.add(section.output, out, key="cnn.output")
        ctx.add_data(section.labels, y, key="cnn.labels")
        return CnnBuilt(module, x, y, section.output)

    def describe(self, built: CnnBuilt) -> dict[str, Any]:
        return {"output": built.output}

    def inference_overrides(self, section: CnnSection) -> dict[str, Any]:
        """With ``inference_dtype``, samplers and fits run a network computing in that dtype."""
        if section.inference_dtype in (None, section.dtype):
            return {}
        return {"cnn.dtype": section.inference_dtype}

    def fit_start(self, start: str, built: CnnBuilt, seed: int) -> dict[str, Any]:
        """``flax``: the weights as flax initialises them from ``seed`` (:func:`nets.init_params`)."""
        if start != "flax":
            return super().fit_start(start, built, seed)
        return nets.init_params(built.module, (1, *np.shape(built.images)[1:]), seed)

    def after_sampling(self, fitted: Fitted) -> None:
        """``train_accuracy`` and ``heldout_accuracy`` (the ``cnn.holdout`` images after the
        training ones) of the posterior predictive: class probabilities averaged over up to
        :data:`PREDICTIVE_DRAWS` draws, the network computing in the inference dtype.
        ``digits.png`` shows the first held-out digits (training digits without a holdout)."""
        import jax

        built: CnnBuilt = fitted.built
        section: CnnSection = fitted.section
        info = fitted.info
        module, x_train, y_train = built.module, np.asarray(built.images), np.asarray(built.labels)
        names = list(nets.param_shapes(module, (1, *x_train.shape[1:])))
        points = thinned(fitted.idata.posterior, names, PREDICTIVE_DRAWS)
        dtype = section.inference_dtype or section.dtype

        @jax.jit
        def probs(params, x):
            return jax.nn.softmax(logits(params, x, module=module, dtype=dtype), axis=-1)

        def predictive(x: np.ndarray) -> np.ndarray:
            total = np.zeros((len(x), 0))
            for point in points:
                p = np.concatenate([np.asarray(probs(point, x[i:i + 500])) for i in range(0, len(x), 500)])
                total = p if total.size == 0 else total + p
            return total / len(points)

        p_train = predictive(x_train)
        info["predictive_draws"] = len(points)
        info["train_accuracy"] = float(np.mean(p_train.argmax(-1) == y_train))
        info["train_images"] = int(len(y_train))
        shown = (x_train, y_train, p_train, "training")
        if section.holdout > 0:
            x_hold, y_hold = _images(section, fitted.ctx.path, section.holdout, section.n, dtype)
            p_hold = predictive(x_hold)
            info["heldout_accuracy"] = float(np.mean(p_hold.argmax(-1) == y_hold))
            info["heldout_images"] = int(len(y_hold))
            shown = (x_hold, y_hold, p_hold, "held-out")
        else:
            info["heldout_accuracy"] = None
            info["heldout_images"] = 0
        x, y, p, which = shown
        acc = info["heldout_accuracy"] if which == "held-out" else info["train_accuracy"]
        title = (f"{which} digits: predicted class (true class if wrong), probability; "
                 f"accuracy {acc:.3f}; {fitted.sampler}, {len(points)} draws averaged")
        fitted.save("digits.png", lambda f: rundir.write_with(f, lambda t: plots.digits(
            x, p.argmax(-1), t, labels=y, confidence=p.max(-1), title=title)))

    def predictive_figure(self, fitted: Fitted, group: str):
        """The class counts of the training labels against those of the predictive draws."""
        built: CnnBuilt = fitted.built
        name = _labels_variable(fitted.model, built.labels, fitted.section.labels)
        data = fitted.idata[group]
        if name not in data:
            return None
        draws = np.asarray(data[name].values).reshape(-1, len(built.labels))
        what = group.replace("_", " ")
        return lambda path: plots.class_counts(built.labels, draws, path, what=what, name=name)

    def heldout(self, fitted: Fitted, posterior) -> HeldOut | None:
        """The ``cnn.holdout`` digits after the training ones: each draw's class
        probabilities and log-likelihood of their labels (the network in the inference
        dtype), named after the observed variable of the training labels."""
        import jax

        built: CnnBuilt = fitted.built
        section: CnnSection = fitted.section
        if section.holdout <= 0:
            return None
        dtype = section.inference_dtype or section.dtype
        x, y = _images(section, fitted.ctx.path, section.holdout, section.n, dtype)
        module = built.module
        names = list(nets.param_shapes(module, (1, *x.shape[1:])))
        n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
        params = {n: np.asarray(posterior[n].values).reshape(n_chain * n_draw, *posterior[n].shape[2:]) for n in names}

        def log_probs(p):
            return jax.nn.log_softmax(logits(p, x, module=module, dtype=dtype).astype("float64"), axis=-1)

        logp, _ = over_draws(log_probs, params)
        logp = logp.reshape(n_chain, n_draw, *logp.shape[1:])
        return HeldOut(
            name=_labels_variable(fitted.model, built.labels, section.labels),
            observed=y,
            log_likelihood=np.take_along_axis(logp, y[None, None, :, None], axis=-1)[..., 0],
            predictive={"class_probability": np.exp(logp)},
        )


def _labels_variable(model, labels: np.ndarray, default: str) -> str:
    """The observed variable whose data are the training labels (``label`` in cnn.yaml)."""
    from pymc.backends.arviz import find_observations

    for name, data in find_observations(model).items():
        if np.shape(data) == np.shape(labels) and np.array_equal(np.asarray(data), labels):
            return name
    return default


def _images(section: CnnSection, path, n: int, offset: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``offset .. offset + n - 1`` of the section's source (``path`` resolves its files)."""
    x, y = images.load_images(
        section.source,
        n,
        offset=offset,
        data_dir=section.data_dir and str(path(section.data_dir)),
        path=section.path and str(path(section.path)),
        split=section.split,
        dtype=dtype,
    )
    return np.asarray(x), np.asarray(y)


__all__ = ["CnnExperiment", "CnnBuilt", "logits", "cnn_logits", "PREDICTIVE_DRAWS"]
