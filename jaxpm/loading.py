"""Load a user's function from ``package.module:function`` or ``path/to/file.py:function``."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path

from jaxpm.errors import ConfigError


def load_callable(ref: str, base_dir: Path | None, key: str) -> Callable:
    """The function ``ref`` names; a ``.py`` path is relative to ``base_dir``."""
    target, _, attr = ref.rpartition(":")
    if not target or not attr:
        raise ConfigError(key, f"expected 'package.module:function' or 'file.py:function', got '{ref}'")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise ConfigError(key, f"file not found: {path}")
        spec = importlib.util.spec_from_file_location(f"jaxpm_user_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001 - the user's file failed to import
            raise ConfigError(key, f"cannot import {path}: {type(e).__name__}: {e}") from None
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise ConfigError(key, f"cannot import '{target}': {e}; is it installed or on PYTHONPATH?") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(key, f"'{target}' has no function '{attr}'")
    return fn
