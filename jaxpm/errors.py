"""The one error type a user sees for bad input, and how errors are shown on one line.

Every way a config can be wrong ends in a :class:`ConfigError`, which the CLI prints as
one line, ``error: <config>: <key.path>: <what is wrong and what would be right>``, and
turns into exit status 2. Code deep inside (expressions, experiments, data loading) may
raise it without knowing the config's name; :meth:`ConfigError.within` fills it in.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
    """Bad input: names the config, the key path inside it, and the fix."""

    def __init__(self, key: str, message: str, config: str | None = None):
        self.key = key
        self.message = message
        self.config = config
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [p for p in (self.config, self.key) if p]
        return ": ".join([*parts, self.message])

    def within(self, config: str | None = None, prefix: str | None = None) -> ConfigError:
        """The same error, with the config name and/or a key prefix filled in."""
        key = self.key
        if prefix:
            key = f"{prefix}.{key}" if key else prefix
        return ConfigError(key, self.message, config if self.config is None else self.config)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`"; did you mean 'x'?"` when a close match exists, else a list of choices."""
    choices = sorted(set(map(str, choices)))
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    if len(choices) <= 12:
        return f"; expected one of: {', '.join(choices)}"
    return ""


def first_line(e: BaseException | str) -> str:
    """The first non-empty line of an exception's message (its type's name when it has none)."""
    text = str(e).strip()
    if text:
        return text.splitlines()[0].strip()
    return type(e).__name__ if isinstance(e, BaseException) else ""


def one_line(e: BaseException) -> str:
    """An exception's whole message folded onto one line (its type's name when it has none)."""
    return " ".join(str(e).split()) or type(e).__name__
