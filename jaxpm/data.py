"""Reading data files a config names: ``.csv`` (columns by name) and ``.npy``.

One reader for everyone: observed data (``observed: {file: data.csv, columns: [a, b]}``),
ODE save times (``saveat: {file: data.csv, column: t}``). Every problem is a one-line
:class:`~jaxpm.errors.ConfigError` under the key the caller names.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = pathlib.Path(tmp) / "d.csv"
...     _ = path.write_text("t,y\\n0,1.5\\n1,2.5\\n")
...     read_table(path, ["y"], "observed"), read_column(path, "t", "ode.saveat")
(array([1.5, 2.5]), array([0., 1.]))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxpm.errors import ConfigError, did_you_mean, first_line

SUFFIXES = (".csv", ".npy")
"""The file types jaxpm reads."""


def check_suffix(path: str | Path, columns: Sequence[str] | None = None) -> str | None:
    """Why ``path`` cannot be read as data (a message), or None when it can."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        return f"cannot read {suffix or 'extension-less'} files; expected a .csv or .npy file"
    if columns and suffix != ".csv":
        return "columns apply to .csv files only; remove them for .npy"
    return None


def read_table(path: str | Path, columns: Sequence[str] | None, key: str) -> np.ndarray:
    """A ``.csv`` file (``columns`` of it, or every column) as a float array, or a ``.npy``
    file's array as it was saved.

    One CSV column comes back as a vector, several as a ``(rows, columns)`` matrix.
    Errors name ``<key>.file`` or ``<key>.columns``.
    """
    path = Path(path)
    problem = check_suffix(path, columns)
    if problem:
        raise ConfigError(f"{key}.columns" if columns and "columns" in problem else f"{key}.file", problem)
    if path.suffix.lower() == ".npy":
        try:
            return np.asarray(np.load(path, allow_pickle=False))
        except Exception as e:  # noqa: BLE001 - numpy raises many types; all mean "unreadable"
            raise ConfigError(f"{key}.file", f"cannot read {path}: {first_line(e)}") from None
    frame = _csv(path, f"{key}.file")
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            hint = did_you_mean(missing[0], [str(c) for c in frame.columns])
            raise ConfigError(f"{key}.columns", f"no column '{missing[0]}' in {path.name}{hint}")
        frame = frame[list(columns)]
    try:
        data = frame.to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}.file", f"{path.name} has non-numeric values; select numeric columns") from None
    return data[:, 0] if data.shape[1] == 1 else data


def read_column(path: str | Path, column: str, key: str) -> np.ndarray:
    """One numeric column of a CSV file as a float vector; errors name ``<key>.file`` or ``<key>.column``."""
    path = Path(path)
    frame = _csv(path, f"{key}.file")
    if column not in frame.columns:
        columns = [str(c) for c in frame.columns]
        raise ConfigError(f"{key}.column", f"no column {column!r} in {path}{did_you_mean(column, columns)}")
    try:
        return frame[column].to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}.column", f"column {column!r} of {path} is not numeric") from None


def _csv(path: Path, key: str):
    import pandas as pd

    try:
        return pd.read_csv(path)
    except Exception as e:  # noqa: BLE001 - pandas raises many types; all mean "unreadable"
        raise ConfigError(key, f"cannot read {path} as CSV: {first_line(e)}") from None


__all__ = ["SUFFIXES", "check_suffix", "read_table", "read_column"]
