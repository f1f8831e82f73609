"""The run folder: ``<out>/<name>/<run-id>/``, written file by file, each file whole.

A run folder is created only once the model has been built (bad input leaves nothing
behind). Every file is written to a temporary name and renamed into place, so a file
either exists complete or not at all, even when the run is interrupted.

>>> import tempfile, json
>>> with tempfile.TemporaryDirectory() as tmp:
...     folder = RunFolder.create(tmp, "demo")
...     info = {"ok": True}
...     with folder.recorded(info, "run.json"):
...         folder.save("notes.txt", lambda p: write_text(p, "hello"))
...     sorted(p.name for p in folder.path.iterdir()), json.loads((folder.path / "run.json").read_text())["files"]
(['notes.txt', 'run.json'], ['notes.txt', 'run.json'])
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def new_run_dir(out: Path | str, name: str) -> Path:
    """A fresh folder whose name sorts by creation time; never reuses an existing one."""
    parent = Path(out) / name
    parent.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        run_dir = parent / (stamp if i == 0 else f"{stamp}-{i:03d}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise RuntimeError(f"cannot create a run folder under {parent}")


def write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` whole or not at all (a temporary file renamed into place)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path | str, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path: Path | str, obj: Any) -> Path:
    """``obj`` as indented JSON; NaN and infinities as the strings ``"nan"``, ``"inf"``, ``"-inf"``."""
    return write_text(path, dumps(obj, indent=2) + "\n")


def write_with(path: Path | str, writer: Callable[[str], Any]) -> Path:
    """Call ``writer(tmp_path)`` (e.g. a plot's savefig), then move the file into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        writer(tmp)
        _publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _publish(tmp: str, path: Path) -> None:
    """Give the temporary file ordinary permissions (mkstemp makes it 0600), move it in place."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def json_default(obj: Any) -> Any:
    """``json.dumps``'s ``default``: numpy arrays and scalars, paths."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``"nan"``, ``"inf"`` or ``"-inf"``.

    JSON has no NaN: Python's ``json`` writes a bare ``NaN`` that strict readers reject.

    >>> json_safe({"a": [1.0, float("nan")], "b": -math.inf})
    {'a': [1.0, 'nan'], 'b': '-inf'}
    """
    if isinstance(obj, float | np.floating):
        value = float(obj)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    return obj


def dumps(obj: Any, **kwargs) -> str:
    """JSON text of ``obj`` as jaxpm writes it everywhere (see :func:`json_safe`)."""
    return json.dumps(json_safe(obj), default=json_default, allow_nan=False, **kwargs)


def plain(x: Any) -> float | list:
    """An array as a Python float (0-d) or a nested list of floats, for JSON."""
    x = np.asarray(x, dtype=float)
    return float(x) if x.ndim == 0 else x.tolist()


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("jaxpm", "pymc", "pytensor", "jax", "jaxlib", "diffrax", "equinox", "flax", "numpy", "arviz",
                "nutpie", "numpyro", "blackjax", "dask", "distributed"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


@contextlib.contextmanager
def recorded(info: dict, path: Path, files: list[str], before_write: Callable[[dict], Any] | None = None):
    """Run the body, then write ``info`` to ``path`` whatever happened.

    ``info["status"]`` ends as ``finished``, ``interrupted`` (Ctrl-C) or ``failed`` (with
    ``info["error"]``); ``info["files"]`` lists ``files`` and ``path`` itself.
    ``before_write(info)`` runs just before writing (e.g. to stop a clock).
    """
    try:
        yield
        info["status"] = "finished"
    except KeyboardInterrupt:
        info["status"] = "interrupted"
        raise
    except BaseException as e:
        info["status"] = "failed"
        info["error"] = f"{type(e).__name__}: {e}"
        raise
    finally:
        if before_write is not None:
            before_write(info)
        info["files"] = sorted({*files, Path(path).name})
        write_json(path, info)


class RunFolder:
    """One run folder and the files written into it so far (what ``run.json`` lists).

    ``save(name, writer)`` calls ``writer(path)`` and records ``name``; writers use the
    ``write_*`` functions above so that each file is whole or absent.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.files: list[str] = []

    @classmethod
    def create(cls, out: Path | str, name: str) -> RunFolder:
        """A fresh ``<out>/<name>/<run-id>/`` (see :func:`new_run_dir`)."""
        return cls(new_run_dir(out, name))

    def save(self, name: str, writer: Callable[[Path], Any]) -> None:
        """Write the file ``name`` (a path relative to the folder) with ``writer``."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        writer(target)
        if name not in self.files:
            self.files.append(name)

    def recorded(self, info: dict, name: str, before_write: Callable[[dict], Any] | None = None):
        """:func:`recorded` for the file ``name`` in this folder, listing this folder's files."""
        return recorded(info, self.path / name, self.files, before_write)


__all__ = [
    "RunFolder", "new_run_dir", "write_bytes", "write_text", "write_json", "write_with", "json_default",
    "json_safe", "dumps", "plain", "versions", "recorded",
]
