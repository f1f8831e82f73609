"""The built-in experiments. Each module has one function, ``build(section, ctx)``, that
turns its YAML section into named graph nodes through :class:`jaxpm.model.Context`:

- :mod:`~jaxpm.experiments.exp`: ``y = exp(x)`` through a wrapped JAX function;
- :mod:`~jaxpm.experiments.ode`: a diffrax ODE solve;
- :mod:`~jaxpm.experiments.cnn`: a flax CNN's logits on image data.
"""
