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

Inference. NUTS over the post's 824k weights is not practical on a CPU (~2-4 s per
gradient). What is, and what ``configs/cnn.yaml`` does with ``--sample``::

    cnn:
      inference_dtype: float32
    sample:
      sampler: advi         # or map: pm.find_MAP, at most `iterations` evaluations
      iterations: 40        # full-batch steps (~75 s on one core): ~95% held-out accuracy
      draws: 20
      start: flax           # flax's random initialisation (from the seed), not all zeros
      start_sigma: 0.01     # PyMC's 0.69 per weight overflows the logits
      optimizer: adam
      learning_rate: 0.01

All-zero weights (PyMC's initial point) are a dead start: no gradient reaches the hidden
layers (see :func:`jaxpm.nets.init_params`). The run's ``sampling`` block reports
``train_accuracy`` and ``heldout_accuracy`` (the ``holdout`` images after the first
``n``), and ``digits.png`` shows held-out digits with their predicted classes.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxpm import images, nets
from jaxpm.ops import jax_op


def logits(params, x, *, module, dtype):
    """The network's logits for images ``x`` (static: the flax module and compute dtype)."""
    params = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    return nets.apply_fn(module)(params, jnp.asarray(x, dtype))


cnn_logits = jax_op(logits, name="cnn")


def build(section, ctx):
    x, y = images.load_images(
        section.source,
        section.n,
        data_dir=section.data_dir and str(ctx.path(section.data_dir)),
        path=section.path and str(ctx.path(section.path)),
        split=section.split,
        dtype=section.dtype,
    )
    module = nets.build_network(section.layers)
    prior = section.weight_prior
    params = {}
    for name, shape in nets.param_shapes(module, (1, *x.shape[1:])).items():
        var = ctx.distribution(name, prior.dist, {**prior.params, "shape": list(shape)}, "cnn.weight_prior")
        params[name] = ctx.add(name, var, key="cnn.weight_prior")
    out = ctx.apply(cnn_logits, params, x, module=module, dtype=section.dtype, key="cnn.layers")
    ctx.add(section.output, out, key="cnn.output")
    ctx.add_data(section.labels, y, key="cnn.labels")
    ctx.info["cnn"] = {"module": module, "images": x, "labels": y, "output": section.output}
