"""From pydantic's errors to one line a user can act on.

A pydantic ``ValidationError`` never reaches the user: its first error becomes a
:class:`~jaxpm.errors.ConfigError` whose key is the dotted path into the YAML
(``evaluate.backends[1]``) and whose message is one line that says what is wrong and
what would be right (``'cuda' is not a backend; expected one of: c, jax, numba``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from jaxpm.errors import ConfigError, did_you_mean
from jaxpm.section import ERROR_TYPE, show

_TYPE_MESSAGES = {
    "a number": {"float_type", "float_parsing", "finite_number", "decimal_type", "decimal_parsing"},
    "an integer": {"int_type", "int_parsing", "int_from_float", "int_parsing_size"},
    "true or false": {"bool_type", "bool_parsing"},
    "a string": {"string_type", "string_sub_type", "string_unicode"},
    "a list": {"list_type", "tuple_type", "iterable_type", "set_type"},
    "a mapping": {"dict_type", "mapping_type", "model_type", "model_attributes_type"},
}
_BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="),
           "less_than": ("lt", "<"), "less_than_equal": ("le", "<=")}
#: How a Literal field's values are called in "'cuda' is not a backend".
_NOUNS = {"backends": "backend", "sampler": "sampler", "sensitivity": "sensitivity mode",
          "source": "data source", "dtype": "dtype", "inference_dtype": "dtype", "start": "start point",
          "optimizer": "stochastic optimiser", "mass_matrix": "mass matrix"}


def config_error(exc: ValidationError, data: Any, label: str) -> ConfigError:
    """The first pydantic error as a :class:`ConfigError` with a YAML key path."""
    error = exc.errors(include_url=False)[0]
    kind, loc, ctx = error["type"], tuple(error["loc"]), error.get("ctx") or {}
    parts = _key_parts(loc, data, missing=kind == "missing")
    if kind == ERROR_TYPE:
        parts += [(p, isinstance(p, int)) for p in ctx.get("at", ())]
    field = next((str(p) for p, index in reversed(parts) if not index), "")
    message = _message(kind, ctx, error.get("input"), loc, field, error["msg"])
    return ConfigError(_format_key(parts), message, label)


def _key_parts(loc: tuple, data: Any, missing: bool) -> list[tuple[Any, bool]]:
    """The parts of ``loc`` that are real YAML keys or list indices, as ``(part, is_index)``.

    pydantic's ``loc`` also holds its own markers (union tags such as ``'<list>'``,
    ``'function-after[...]'``, ``'[key]'``). Walking the input alongside tells them
    apart: a real part is a key of the current mapping or an index into the current
    list. The one exception is a missing key, which is absent by definition.
    """
    parts: list[tuple[Any, bool]] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, Mapping) and part in node:
            parts.append((part, False))
            node = node[part]
        elif (isinstance(node, (list, tuple)) and isinstance(part, int)
              and not isinstance(part, bool) and 0 <= part < len(node)):
            parts.append((part, True))
            node = node[part]
        elif missing and i == len(loc) - 1:
            parts.append((part, False))
    return parts


def _format_key(parts: list[tuple[Any, bool]]) -> str:
    key = ""
    for part, index in parts:
        key += f"[{part}]" if index else (f".{part}" if key else str(part))
    return key


def _message(kind: str, ctx: dict, value: Any, loc: tuple, field: str, fallback: str) -> str:
    """One line saying what is wrong and what would be right."""
    if kind == ERROR_TYPE:
        return str(ctx["message"])
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", fallback))
    if kind == "missing":
        return f"required key {show(loc[-1])} is missing"
    if kind == "extra_forbidden":
        return f"unknown key {show(loc[-1])}"
    if "[key]" in loc:
        return f"names must be strings, got {show(value)}"
    if kind == "literal_error":
        choices = re.findall(r"'((?:[^'\\]|\\.)*)'", str(ctx.get("expected", "")))
        noun = _NOUNS.get(field, f"valid {field or 'value'}")
        return f"{show(value)} is not a {noun}{did_you_mean(value, choices)}"
    if kind in _BOUNDS:
        name, op = _BOUNDS[kind]
        return f"expected a value {op} {ctx.get(name)}, got {show(value)}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length', 1)} item(s), got an empty list"
    if kind == "string_too_short":
        return "expected a non-empty string"
    for expected, kinds in _TYPE_MESSAGES.items():
        if kind in kinds:
            return f"expected {expected}, got {show(value)}"
    return fallback.splitlines()[0]


__all__ = ["config_error"]
