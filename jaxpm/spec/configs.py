"""The configs jaxpm ships, and what a command-line argument names.

``jaxpm run ode`` runs the packaged ``configs/ode.yaml`` from any directory; a path that
exists always wins over a built-in name.
"""

from __future__ import annotations

import os
from pathlib import Path

from jaxpm.errors import ConfigError, did_you_mean

CONFIG_DIR = Path(__file__).parent.parent / "configs"
"""The packaged configs (``jaxpm/configs`` is a symlink to the repository's ``configs/``)."""

TRUST_CONFIGS = ("exp", "ode", "cnn")
"""What ``check-grad`` and ``compare-backends`` run with no CONFIG: the post's three cases."""


def builtin_configs(config_dir: Path | None = None) -> dict[str, Path]:
    """Name -> path of each packaged config (``configs/*.yaml``), sorted by name."""
    folder = config_dir or CONFIG_DIR
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_config(name_or_path: str | os.PathLike, config_dir: Path | None = None) -> Path:
    """The config file meant by a CLI argument: an existing file, else a built-in name.

    ``"configs/ode.yaml"`` is a path; ``"ode"`` is the packaged ``ode.yaml`` unless a
    file called ``ode`` exists in the working directory.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    builtins = builtin_configs(config_dir)
    if text in builtins:
        return builtins[text]
    if path.exists():
        raise ConfigError("", "is a directory, not a config file", text)
    hint = did_you_mean(text, builtins) if builtins and os.sep not in text and not path.suffix else ""
    raise ConfigError("", f"no such config file or built-in config{hint}", text)


__all__ = ["CONFIG_DIR", "TRUST_CONFIGS", "builtin_configs", "resolve_config"]
