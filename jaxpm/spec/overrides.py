"""``--set KEY.PATH=VALUE``: changing a config from the command line (or a mapping).

>>> apply_overrides({"ode": {"rtol": 1e-5}}, ["ode.rtol=1.0e-8", "priors.z={dist: Normal, mu: 0, sigma: 1}"])
{'ode': {'rtol': 1e-08}, 'priors': {'z': {'dist': 'Normal', 'mu': 0, 'sigma': 1}}}
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxpm.errors import ConfigError
from jaxpm.section import show
from jaxpm.spec.reading import load_yaml


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of ``raw`` with ``--set`` overrides applied.

    Overrides are ``"a.b.c=VALUE"`` strings, VALUE parsed as YAML (``[c, jax]`` is a
    list, ``1.0e-8`` a number, ``null`` None), or a mapping ``{"a.b.c": value}`` whose
    values are used as they are. Missing intermediate mappings are created, so an
    override may add a new prior: ``priors.z={dist: Normal, mu: 0, sigma: 1}``.
    """
    result = copy.deepcopy(dict(raw))
    if overrides is None:
        return result
    if isinstance(overrides, str):
        overrides = [overrides]
    items = overrides.items() if isinstance(overrides, Mapping) else map(parse_override, overrides)
    for key, value in items:
        if not isinstance(key, str):
            raise ConfigError(str(key), f"override keys must be strings like 'a.b.c', got {show(key)}")
        set_path(result, key, value)
    return result


def parse_override(item: str) -> tuple[str, Any]:
    """``"a.b=VALUE"`` -> ``("a.b", VALUE read as YAML)``; a duplicate key inside VALUE is an error."""
    if not isinstance(item, str):
        raise ConfigError("", f"--set expects KEY.PATH=VALUE, got {show(item)}")
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(key, f"--set expects KEY.PATH=VALUE, got {item!r}")
    try:
        value = load_yaml(text)
    except ConfigError as e:
        if e.key:  # a duplicate key inside the value
            raise ConfigError(f"{key}.{e.key}", f"--set {key}: {e.message}") from None
        raise ConfigError(key, f"--set {key}: cannot parse {text!r} as YAML: {e.message}") from None
    return key, value


def set_path(data: dict[str, Any], key: str, value: Any) -> None:
    """``data[a][b][c] = value`` for ``key = "a.b.c"``, creating missing mappings."""
    parts = [p.strip() for p in key.split(".")]
    if not all(parts):
        raise ConfigError(key, f"--set expects KEY.PATH=VALUE with non-empty dotted parts, got key {key!r}")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if child is None:  # `ode:` left empty in YAML
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(key, f"cannot set {key!r}: {where} is {show(child)}, not a mapping")
        node = child
    node[parts[-1]] = value


def cli_overrides(
    sets: list[str] | None = None,
    backends: list[str] | None = None,
    out: str | Path | None = None,
    sample: bool | None = None,
) -> list[str]:
    """Command-line options as ``KEY.PATH=VALUE`` overrides (``--backend`` etc. are
    shorthands for ``--set``); values are JSON, which YAML reads as it is."""
    overrides = list(sets or [])
    if backends:
        overrides.append(f"evaluate.backends={json.dumps(list(backends))}")
    if out is not None:
        overrides.append(f"output.dir={json.dumps(str(out))}")
    if sample is not None:
        overrides.append(f"sample.enabled={json.dumps(bool(sample))}")
    return overrides


__all__ = ["apply_overrides", "parse_override", "set_path", "cli_overrides"]
