"""What importing jaxpm sets up in a worker process of many runs (``jaxpm sweep``, ``jaxpm sbc``).

A process is a jaxpm worker when ``JAXPM_WORKER_THREADS`` is set in its environment
(:mod:`jaxpm.many.executor` sets it for the Dask worker processes it starts, and restarts
the workers of an existing cluster once with it set). It holds the cores one task may
use, normally 1. Importing jaxpm there, before PyTensor or JAX start:

- gives the process a PyTensor compile directory of its own. Processes compiling into
  one directory at once race or queue on its lock (pymc issue 7819), so each worker
  takes the first free slot ``<root>/<host>/<n>`` and holds a lock on it while it lives;
  the next worker, or the next sweep, takes another. Slots are kept, so a later worker
  finds what an earlier one compiled. ``<root>`` is ``JAXPM_WORKER_DIR``, by default
  ``~/.cache/jaxpm/pytensor-workers``; a ``base_compiledir`` in your own
  ``PYTENSOR_FLAGS`` wins;
- gives JAX as many CPU devices as the task's cores (``JAXPM_HOST_DEVICES``, see
  :mod:`jaxpm.jax_settings`), so numpyro and blackjax run chains one after the other
  instead of one thread per chain on a single core, and, for one core, keeps XLA's
  CPU thread pools to one thread (unless ``XLA_FLAGS`` is yours).

Elsewhere it does nothing. :data:`WORKER` says what it did (None outside a worker).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

THREADS_ENV = "JAXPM_WORKER_THREADS"
DIR_ENV = "JAXPM_WORKER_DIR"
DEFAULT_DIR = "~/.cache/jaxpm/pytensor-workers"
ONE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

WORKER: dict | None = None
"""In a worker: ``{"threads", "compiledir", "own_compiledir", "host_devices"}``; else None."""

_held = []  # the slot's lock, held for the life of the process


def _flag(flags: str, name: str) -> str | None:
    """The value of ``name`` in PYTENSOR_FLAGS-style text ``a=1,b=2`` (None when absent)."""
    for part in flags.split(","):
        key, _, value = part.partition("=")
        if key.strip() == name:
            return value.strip()
    return None


def take_slot(root: Path):
    """The first slot under ``root`` whose lock is free, with that lock held."""
    from filelock import FileLock, Timeout

    root.mkdir(parents=True, exist_ok=True)
    for n in range(10_000):
        lock = FileLock(root / f"{n}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        return root / str(n), lock
    raise RuntimeError(f"no free PyTensor compile directory under {root}")


def setup() -> dict | None:
    """Apply the worker settings once (see the module's docstring); None outside a worker."""
    global WORKER
    text = os.environ.get(THREADS_ENV, "").strip()
    if WORKER is not None or not text:
        return WORKER
    threads = max(1, int(text)) if text.isdigit() else 1
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if _flag(flags, "base_compiledir") is not None:  # yours, or inherited from the worker that started us
        compiledir, own = _flag(flags, "base_compiledir"), False
    elif "pytensor" in sys.modules:  # too late to choose: PyTensor read its flags at import
        compiledir, own = None, False
    else:
        root = Path(os.path.expanduser(os.environ.get(DIR_ENV) or DEFAULT_DIR)) / socket.gethostname()
        path, lock = take_slot(root)
        _held.append(lock)
        os.environ["PYTENSOR_FLAGS"] = ",".join(p for p in (flags, f"base_compiledir={path}") if p)
        compiledir, own = str(path), True
    os.environ.setdefault("JAXPM_HOST_DEVICES", str(threads))
    if threads == 1 and "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = ONE_THREAD_XLA
    WORKER = {"threads": threads, "compiledir": compiledir, "own_compiledir": own,
              "host_devices": int(os.environ["JAXPM_HOST_DEVICES"])}
    return WORKER


setup()

__all__ = ["WORKER", "THREADS_ENV", "DIR_ENV", "DEFAULT_DIR", "setup", "take_slot"]
