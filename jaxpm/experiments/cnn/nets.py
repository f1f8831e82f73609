"""A flax network from a YAML list of layers, and its parameters as one flat dict.

A network is a list of layers applied in order. A layer with a size is a one-entry
mapping ``{kind: size}``, optionally with options; a layer without one is a string::

    layers:
      - {conv: 32, kernel: 3}      # nn.Conv(32, kernel_size=(3, 3), padding="SAME")
      - relu
      - {avg_pool: 2}              # nn.avg_pool, window (2, 2), stride (2, 2)
      - {conv: 64, kernel: 3}
      - relu
      - {avg_pool: 2}
      - flatten                    # (n, h, w, c) -> (n, h*w*c)
      - {dense: 256}               # nn.Dense(256)
      - relu
      - {dense: 10}                # the logits

That list is :data:`POST_CNN`, flax's MNIST example CNN that the PyMC Labs post makes
Bayesian (824,458 parameters on 28x28x1 images). The layers:

==============  ====================  ===============================================
layer           size                  options
==============  ====================  ===============================================
``conv``        output channels       ``kernel``: int or [h, w] (default 3);
                                      ``padding``: SAME (default) or VALID
``dense``       output features
``avg_pool``    window: int or [h, w] stride = window, padding VALID (flax's default)
``max_pool``    window: int or [h, w] as ``avg_pool``
``flatten``     (a string)            exactly one, after every conv and pool layer
``relu``,       (strings)
``tanh``,
``sigmoid``
==============  ====================  ===============================================

Layers get flax's automatic names, counted per kind: ``Conv_0``, ``Conv_1``, ``Dense_0``,
``Dense_1``. A PyMC model wants one variable per parameter, so this module speaks in
*flat* names, ``<layer>_<param>``: ``Conv_0_kernel``, ``Conv_0_bias``, ... Dense_1_bias.
:func:`param_shapes` lists them with their shapes (without initialising anything), and
:func:`apply_fn` turns the network into ``f(flat_params, images) -> logits``::

    module = build_network()                       # POST_CNN
    shapes = param_shapes(module)                  # {"Conv_0_kernel": (3, 3, 1, 32), ...}
    logits = apply_fn(module)(params, images)      # params: {flat name: array}
    start = init_params(module, seed=1)            # flax's random initialisation, flat

The module is a hashable value (its layers are stored as nested tuples), so two networks
built from equal lists are equal: :func:`jaxpm.ops.jax_op` can take one as a static
argument and reuse what JAX compiled for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import unflatten_dict

from jaxpm.errors import ConfigError, did_you_mean

__all__ = ["POST_CNN", "Network", "build_network", "param_shapes", "apply_fn", "init_params"]

POST_CNN: list = [
    {"conv": 32, "kernel": 3},
    "relu",
    {"avg_pool": 2},
    {"conv": 64, "kernel": 3},
    "relu",
    {"avg_pool": 2},
    "flatten",
    {"dense": 256},
    "relu",
    {"dense": 10},
]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": nn.tanh,
    "sigmoid": nn.sigmoid,
}
POOLS = {"avg_pool": nn.avg_pool, "max_pool": nn.max_pool}
# Layers written as {kind: size, option: value}, with each option's default.
SIZED: dict[str, dict[str, Any]] = {
    "conv": {"kernel": 3, "padding": "SAME"},
    "dense": {},
    "avg_pool": {},
    "max_pool": {},
}
KINDS = (*SIZED, "flatten", *ACTIVATIONS)
SPATIAL = ("conv", *POOLS)  # need (n, h, w, c) input: before flatten

# One normalised layer: (kind, ((option, value), ...)) with the size under "size".
Layer = tuple[str, tuple[tuple[str, Any], ...]]


class Network(nn.Module):
    """A sequential flax network; build it with :func:`build_network`, not by hand."""

    layers: tuple[Layer, ...]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for kind, options in self.layers:
            opt = dict(options)
            if kind == "conv":
                x = nn.Conv(opt["size"], kernel_size=opt["kernel"], padding=opt["padding"])(x)
            elif kind == "dense":
                x = nn.Dense(opt["size"])(x)
            elif kind in POOLS:
                x = POOLS[kind](x, window_shape=opt["size"], strides=opt["size"])
            elif kind == "flatten":
                x = x.reshape((x.shape[0], -1))
            else:
                x = ACTIVATIONS[kind](x)
        return x


def build_network(layers: list | None = None) -> Network:
    """The flax module for a layer list in the format above (``None``: :data:`POST_CNN`).

    Raises :class:`~jaxpm.errors.ConfigError` with key ``cnn.layers[i]`` for the first
    layer that is unknown, misspelt, badly sized or misplaced.
    """
    layers = POST_CNN if layers is None else layers
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ConfigError("cnn.layers", f"expected a non-empty list of layers, got {layers!r}")
    parsed = tuple(_parse(layer, f"cnn.layers[{i}]") for i, layer in enumerate(layers))
    kinds = [kind for kind, _ in parsed]
    if "flatten" not in kinds:
        raise ConfigError("cnn.layers", "no 'flatten': add one after the last conv or pool layer")
    if kinds.count("flatten") > 1:
        raise ConfigError("cnn.layers", f"'flatten' appears {kinds.count('flatten')} times; keep one")
    after = kinds.index("flatten")
    for i, kind in enumerate(kinds[after:], start=after):
        if kind in SPATIAL:
            message = f"{kind} works on images; move it before 'flatten' (layer {after})"
            raise ConfigError(f"cnn.layers[{i}]", message)
    return Network(parsed)


def param_shapes(module: Network, input_shape: tuple[int, ...] = (1, 28, 28, 1)) -> dict[str, tuple[int, ...]]:
    """Each parameter's flat name and shape, in layer order, kernel before bias.

    ``input_shape`` is ``(batch, height, width, channels)``. The shapes come from
    ``jax.eval_shape(module.init, ...)``: no weights are made. (JAX returns them in sorted
    key order, so the order is rebuilt from the layer list.) Raises
    :class:`~jaxpm.errors.ConfigError` if a layer shrinks the image to nothing.
    """
    _check_fits(module, tuple(input_shape))
    x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
    variables = jax.eval_shape(module.init, jax.random.key(0), x)
    return {
        f"{layer}_{param}": tuple(variables["params"][layer][param].shape)
        for layer in _layer_names(module)
        for param in ("kernel", "bias")
    }


def apply_fn(module: Network) -> Callable[[dict[str, jax.Array], jax.Array], jax.Array]:
    """``f(flat_params, images) -> logits``, with ``flat_params`` keyed as :func:`param_shapes`.

    ``f`` splits each name at its last underscore (``Conv_0_kernel`` -> ``Conv_0`` /
    ``kernel``), rebuilds flax's nested ``{"params": {"Conv_0": {"kernel": ...}}}`` and
    calls ``module.apply``. It is pure JAX: jit it, differentiate it, vmap it.
    """

    def f(flat_params: dict[str, jax.Array], images: jax.Array) -> jax.Array:
        params = unflatten_dict({tuple(name.rsplit("_", 1)): value for name, value in flat_params.items()})
        return module.apply({"params": params}, images)

    return f


def init_params(
    module: Network, input_shape: tuple[int, ...] = (1, 28, 28, 1), seed: int = 0
) -> dict[str, np.ndarray]:
    """Flax's own random initialisation of the network, as float64 arrays keyed as
    :func:`param_shapes` (the same order), made by ``module.init(jax.random.key(seed), ...)``.

    Why an optimiser needs it: at the all-zero point (PyMC's initial point for Normal(0, 1)
    weights) every hidden unit is 0, so the last kernel gets no gradient, and the zero
    kernels (and ReLU at 0) pass none back to the layers below: only the last bias moves,
    and a fit started there stalls. Flax's initialisers (LeCun normal kernels, std
    ~ 1/sqrt(fan_in); zero biases) break that symmetry while keeping activations of order
    1. The same seed gives the same arrays.
    """
    names = param_shapes(module, input_shape)  # checks the image fits, fixes the order
    nested = module.init(jax.random.key(seed), jnp.zeros(tuple(input_shape), jnp.float32))["params"]
    flat = {}
    for name in names:
        layer, param = name.rsplit("_", 1)
        flat[name] = np.asarray(nested[layer][param], dtype=np.float64)
    return flat


def _check_fits(module: Network, input_shape: tuple[int, ...]) -> None:
    """Follow the image's height and width through the layers; none may reach zero."""
    height, width = input_shape[1:3]
    for i, (kind, options) in enumerate(module.layers):
        opt = dict(options)
        if kind == "conv" and opt["padding"] == "VALID":
            height, width = height - opt["kernel"][0] + 1, width - opt["kernel"][1] + 1
        elif kind in POOLS:
            height, width = height // opt["size"][0], width // opt["size"][1]
        if height < 1 or width < 1:
            raise ConfigError(
                f"cnn.layers[{i}]",
                f"{kind} shrinks images of shape {input_shape[1:]} to nothing; use fewer or smaller pools or kernels",
            )


def _layer_names(module: Network) -> list[str]:
    """Flax's automatic names of the layers with parameters: Conv_0, Conv_1, Dense_0, ..."""
    counts = {"conv": 0, "dense": 0}
    names = []
    for kind, _ in module.layers:
        if kind in counts:
            names.append(f"{kind.capitalize()}_{counts[kind]}")
            counts[kind] += 1
    return names


def _parse(layer: Any, key: str) -> Layer:
    """One YAML layer as a hashable ``(kind, options)``, sizes as tuples, defaults filled in."""
    if isinstance(layer, str):
        if layer in SIZED:
            raise ConfigError(key, f"{layer} needs a size, e.g. {{{layer}: {32 if layer in ('conv', 'dense') else 2}}}")
        if layer not in KINDS:
            raise ConfigError(key, f"unknown layer '{layer}'{did_you_mean(layer, KINDS)}")
        return layer, ()
    if not isinstance(layer, dict) or not layer:
        raise ConfigError(key, f"expected a layer name or a mapping like {{conv: 32}}, got {layer!r}")
    kinds = [k for k in layer if k in KINDS]
    if len(kinds) > 1:
        raise ConfigError(key, f"one layer per list item; got {' and '.join(map(repr, kinds))}")
    if not kinds:
        word = str(next(iter(layer)))
        raise ConfigError(key, f"unknown layer '{word}'{did_you_mean(word, KINDS)}")
    kind = kinds[0]
    if kind not in SIZED:
        raise ConfigError(key, f"{kind} takes no size or options; write it as the string '{kind}'")
    defaults = SIZED[kind]
    for name in layer:
        if name != kind and name not in defaults:
            raise ConfigError(key, f"unknown option '{name}' for {kind}{did_you_mean(name, defaults or ['(none)'])}")
    opt = {**defaults, **{k: v for k, v in layer.items() if k != kind}, "size": layer[kind]}
    if kind in ("conv", "dense"):
        opt["size"] = _positive(opt["size"], key, f"{kind} size (output features)")
    else:
        opt["size"] = _pair(opt["size"], key, f"{kind} window")
    if kind == "conv":
        opt["kernel"] = _pair(opt["kernel"], key, "conv kernel")
        padding = str(opt["padding"]).upper()
        if padding not in ("SAME", "VALID"):
            raise ConfigError(key, f"conv padding must be SAME or VALID, got {opt['padding']!r}")
        opt["padding"] = padding
    return kind, tuple(sorted(opt.items()))


def _positive(value: Any, key: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(key, f"{what} must be a positive integer, got {value!r}")
    return value


def _pair(value: Any, key: str, what: str) -> tuple[int, int]:
    """An int ``k`` as ``(k, k)``, or a two-item list of ints as a tuple."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ConfigError(key, f"{what} must be an integer or [height, width], got {value!r}")
        return _positive(value[0], key, what), _positive(value[1], key, what)
    k = _positive(value, key, what)
    return k, k
