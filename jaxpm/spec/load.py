"""``load_spec``: a config file, a built-in name, a mapping or a Spec, made into a valid Spec."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from jaxpm.errors import ConfigError
from jaxpm.experiments.registry import BUILTIN
from jaxpm.section import plain_value
from jaxpm.spec.configs import resolve_config
from jaxpm.spec.overrides import apply_overrides
from jaxpm.spec.reading import read_config
from jaxpm.spec.schema import DICT_LABEL, DICT_NAME, Spec, SpecBase
from jaxpm.spec.translate import config_error


def load_spec(
    source: str | os.PathLike | Mapping[str, Any] | SpecBase,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
) -> Spec:
    """Read, override and validate a config; every failure is a :class:`~jaxpm.errors.ConfigError`.

    Parameters
    ----------
    source
        A path, a built-in config name (``"ode"``), a mapping (label ``"<dict>"``, paths
        relative to the working directory) or a :class:`Spec` (returned as is, or
        re-validated with the overrides applied).
    overrides
        ``["key.path=VALUE", ...]`` (VALUE read as YAML) or ``{"key.path": value}``.

    Examples
    --------
    >>> spec = load_spec("ode", overrides=["ode.rtol=1e-8", "evaluate.backends=[c]"])
    >>> spec.ode.rtol, spec.evaluate.backends, spec.name
    (1e-08, ['c'], 'ode')
    >>> spec.ode.save_times()
    array([0., 1., 2., 3.])
    >>> load_spec({"experiment": "ode"})
    Traceback (most recent call last):
    ...
    jaxpm.errors.ConfigError: <dict>: ode: missing section 'ode' for experiment 'ode'
    """
    if isinstance(source, SpecBase):
        if not overrides:
            return source
        raw, label, base_dir = source.model_dump(mode="json", fallback=plain_value), source.label, source.base_dir
        raw = {k: v for k, v in raw.items() if not (k in BUILTIN and v is None)}
        name = source.name
    elif isinstance(source, Mapping):
        raw, label, base_dir, name = dict(source), DICT_LABEL, Path.cwd(), DICT_NAME
    else:
        label = os.fspath(source)
        path = resolve_config(label)
        raw = read_config(path, label)
        base_dir, name = Path(os.path.abspath(path)).parent, path.stem
    try:
        raw = apply_overrides(raw, overrides)
    except ConfigError as exc:
        raise exc.within(config=label) from None
    raw.setdefault("name", name)
    try:
        spec = Spec.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise config_error(exc, raw, label) from None
    spec._label, spec._base_dir = label, base_dir
    return spec


__all__ = ["load_spec"]
