"""What ``jaxpm list`` shows: the names a config may use."""

from __future__ import annotations


def catalog() -> dict[str, list[str]]:
    import diffrax

    from jaxpm.backends import MODES
    from jaxpm.experiments.vector_fields import BUILTIN
    from jaxpm.model import BUILTIN_EXPERIMENTS
    from jaxpm.spec import Sample, builtin_configs

    solvers = sorted(
        name
        for name in dir(diffrax)
        if isinstance(getattr(diffrax, name), type)
        and issubclass(getattr(diffrax, name), diffrax.AbstractSolver)
        and not name.startswith("Abstract")
        and not getattr(getattr(diffrax, name), "__abstractmethods__", None)
    )
    samplers = list(Sample.model_fields["sampler"].annotation.__args__)
    return {
        "experiments": [*BUILTIN_EXPERIMENTS, "package.module:function"],
        "configs": sorted(builtin_configs()),
        "vector fields": [*BUILTIN, "package.module:function", "file.py:function"],
        "solvers": solvers,
        "samplers": samplers,
        "backends": list(MODES),
    }
