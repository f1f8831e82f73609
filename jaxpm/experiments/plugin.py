"""``experiment: "package.module:build"``: a user's own experiment, through the same door.

The config's free-form ``plugin:`` mapping is passed as the section; ``build(section,
ctx)`` adds named nodes through the :class:`~jaxpm.experiments.context.Context`
(``ctx.value``, ``ctx.apply``, ``ctx.add``). An exception inside the user's function is
bad input (exit status 2, one line naming the function), never a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaxpm.errors import ConfigError
from jaxpm.experiments.base import Experiment


class PluginExperiment(Experiment):
    """An experiment whose ``build`` is a user's function ``build(section, ctx)``."""

    def __init__(self, ref: str, build: Callable[[Any, Any], Any]):
        self.ref = ref
        self.function = build

    def build(self, section: Any, ctx) -> Any:
        try:
            return self.function(section, ctx)
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001 - the user's code failed: bad input, not a crash
            raise ConfigError("plugin", f"experiment '{self.ref}' failed: {type(e).__name__}: {e}") from e


__all__ = ["PluginExperiment"]
