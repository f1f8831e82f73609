"""Reading YAML: a config file, or one ``--set`` value, through PyYAML's SafeLoader.

PyYAML keeps the last of two equal keys in a mapping without a word, so a config with
``y0`` twice under ``priors:`` would silently lose the first; here a duplicate key at any
depth is bad input naming the key's path and both lines.

>>> load_yaml("a: 1\\nb: {c: 2}")
{'a': 1, 'b': {'c': 2}}
>>> load_yaml("priors:\\n  y0: 1\\n  y0: 2\\n")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
jaxpm.errors.ConfigError: priors.y0: duplicate key 'y0' at line 3 (first at line 2): YAML keeps only the last...
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from jaxpm.errors import ConfigError
from jaxpm.section import show


def load_yaml(text: str) -> Any:
    """The value ``text`` holds (``yaml.safe_load``: no Python tags); a duplicate mapping key
    or invalid YAML is a :class:`~jaxpm.errors.ConfigError`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        _no_duplicate_keys(node, "")
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("", _yaml_message(exc)) from None


def read_config(path: Path, label: str) -> dict[str, Any]:
    """The top-level mapping of a YAML config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError("", "cannot read config: not UTF-8 text", label) from None
    except OSError as exc:
        raise ConfigError("", f"cannot read config: {exc.strerror or exc}", label) from None
    try:
        raw = load_yaml(text)
    except ConfigError as exc:
        raise exc.within(config=label) from None
    if raw is None:
        raise ConfigError("", "the config is empty; expected a mapping with at least 'experiment'", label)
    if not isinstance(raw, dict):
        raise ConfigError("", f"expected a mapping of keys at the top level, got {show(raw)}", label)
    return raw


def _no_duplicate_keys(node, path: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            here = f"{path}.{key}" if path else str(key)
            if key is not None and key != "<<":
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise ConfigError(here, f"duplicate key {key!r} at line {line} (first at line {seen[key]}): "
                                            "YAML keeps only the last one; remove or rename one")
                seen[key] = line
            _no_duplicate_keys(value_node, here)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _no_duplicate_keys(item, f"{path}[{i}]")


def _yaml_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    if mark is None:
        return f"invalid YAML: {problem}"
    return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"


__all__ = ["load_yaml", "read_config"]
