"""The run folder: ``<out>/<name>/<run-id>/``, written file by file, each file whole.

A run folder is created only once the model has been built (bad input leaves nothing
behind). Every file is written to a temporary name and renamed into place, so a file
either exists complete or not at all, even when the run is interrupted.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def new_run_dir(out: Path, name: str) -> Path:
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


def write_bytes(path: Path, data: bytes) -> Path:
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


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path: Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, default=_default, allow_nan=True) + "\n")


def write_with(path: Path, writer) -> Path:
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


def _default(obj):
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    from importlib.metadata import PackageNotFoundError, version
    import platform

    out = {"python": platform.python_version()}
    for pkg in ("jaxpm", "pymc", "pytensor", "jax", "jaxlib", "diffrax", "equinox", "flax", "numpy", "arviz", "nutpie", "numpyro", "blackjax"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


@contextlib.contextmanager
def recorded(info: dict, path: Path, files: list[str], before_write=None):
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
        info["files"] = sorted([*files, Path(path).name])
        write_json(path, info)
