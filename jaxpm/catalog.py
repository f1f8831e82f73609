"""What ``jaxpm list`` shows: the names a config may use, read from the registries."""

from __future__ import annotations


def catalog() -> dict[str, list[str]]:
    """Kind -> names: experiments, configs, vector fields, solvers, samplers, backends."""
    from jaxpm.backends import BACKENDS
    from jaxpm.experiments.ode import VECTOR_FIELDS
    from jaxpm.experiments.ode.section import solvers
    from jaxpm.experiments.registry import BUILTIN, PLUGIN_FORM
    from jaxpm.sampling import SAMPLERS
    from jaxpm.spec import builtin_configs

    return {
        "experiments": [*BUILTIN, PLUGIN_FORM],
        "configs": sorted(builtin_configs()),
        "vector fields": [*VECTOR_FIELDS, "package.module:function", "file.py:function"],
        "solvers": sorted(solvers()),
        "samplers": list(SAMPLERS),
        "backends": list(BACKENDS),
    }


__all__ = ["catalog"]
