"""The one way jaxpm runs many fits: tasks on a Dask cluster, each result kept as it finishes.

``jaxpm sweep`` (and ``jaxpm sbc``) hand an :class:`Executor` a list of :class:`Task`
(a key, a module-level function and its arguments) and a :class:`Results` folder; the
executor sends them to a Dask cluster and writes one JSON record per task, whole, the
moment it finishes, so that an interrupted run loses only what was running.

The cluster
    By default a ``distributed.LocalCluster`` of worker *processes*, one per core, one
    thread each (``workers=N`` for another count); with ``scheduler="tcp://host:port"``
    an existing cluster. Worker processes run with ``JAXPM_WORKER_THREADS`` set, which
    :mod:`jaxpm.worker_settings` turns, when jaxpm is imported there, into a PyTensor
    compile directory per process (concurrent compiles into one directory race, pymc
    issue 7819) and JAX settings that keep a task on its core. Workers of an existing
    cluster that were started without it are restarted once with it set (Dask's
    ``Environ`` nanny plugin; their nanny keeps it for later restarts); start them with
    ``JAXPM_WORKER_THREADS=1 dask worker ...`` to avoid that restart.

Per worker, once
    Task functions run in long-lived worker processes: imports, JAX's compiled programs
    and whatever a task keeps with :func:`cached` (a built and compiled model, keyed by
    what it depends on) serve every later task on that worker.

Failures are results
    An exception in a task is an ``error`` record (its message, traceback and worker); a
    worker that dies while running one (a segfault, memory) makes it ``lost``; the other
    tasks go on. Only ``done`` records count as finished for :meth:`Results.pending`, so
    a resumed run repeats the errors and lost tasks and nothing else.

Ctrl-C
    Pending tasks are cancelled, the local cluster is shut down, finished records stay,
    and KeyboardInterrupt reaches the caller (the CLI exits 130). Local worker processes
    ignore the terminal's Ctrl-C themselves, so that they stop by the executor's hand
    rather than each with a traceback.

How a command uses it (``jaxpm sweep`` does, ``jaxpm sbc`` is meant to)
    Make one :class:`Task` per fit, keyed stably (``point-003``, ``sim-0042``), whose
    function is a module-level function taking plain, picklable arguments (a
    :class:`~jaxpm.spec.Spec`, a seed, an index); derive everything random inside it from
    the config's seed and the index (``numpy.random.SeedSequence([seed, i])``), never
    from the worker or the order, so results do not depend on how many workers ran them.
    Put what is costly and shared in :func:`cached` (sbc: the model compiled once with
    shared data, swapped per simulation). Keep a :class:`Results` folder inside the run
    folder; on ``--resume`` run ``results.pending(tasks)`` only. Record
    :meth:`Executor.describe` (the scheduler, the workers) and each outcome's ``worker``.

Example (a cluster of one worker process; tasks are any importable function):

>>> import operator, tempfile
>>> with tempfile.TemporaryDirectory() as tmp, Executor(workers=1) as ex:  # doctest: +SKIP
...     outcomes = ex.run([Task("a", operator.add, (1, 2)), Task("b", operator.truediv, (1, 0))], Results(tmp))
...     [(o.key, o.status, o.value) for o in outcomes]
[('a', 'done', 3), ('b', 'error', None)]
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jaxpm.errors import ConfigError, one_line
from jaxpm.progress import Progress
from jaxpm.rundir import write_json
from jaxpm.worker_settings import THREADS_ENV

CONNECT_SECONDS = 10
"""How long to wait for an existing scheduler to answer, and then for its first worker."""


@dataclass(frozen=True)
class Task:
    """One unit of work: ``fn(*args, **kwargs)`` on some worker.

    ``key`` names the task's record (letters, digits, ``-``, ``_``, ``.``) and must be
    unique in a run; ``fn`` must be importable on the workers (a module-level function
    of an installed package, pickled by reference); its return value must be JSON data.
    """

    key: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


@dataclass
class Outcome:
    """What became of a task: ``done`` (``value``), ``error`` (an exception: ``error`` and
    ``traceback``) or ``lost`` (its worker died). ``worker`` is the worker that ran it
    (address, name, host, pid, PyTensor compile directory), as far as known."""

    key: str
    status: str
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    worker: dict = field(default_factory=dict)
    seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "done"

    @classmethod
    def from_json(cls, data: dict) -> Outcome:
        return cls(**{k: data.get(k) for k in ("key", "status", "value", "error", "traceback", "seconds")},
                   worker=data.get("worker") or {})


class Results:
    """A folder of task records, ``<folder>/<key>.json``, each written whole as its task ends."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def save(self, outcome: Outcome) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json(self.path(outcome.key), asdict(outcome))

    def load(self) -> dict[str, Outcome]:
        """Every record in the folder, by key (a file that cannot be read is skipped)."""
        import json

        out = {}
        for p in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                out[p.stem] = Outcome.from_json(json.loads(p.read_text()))
            except (OSError, ValueError, TypeError):
                continue
        return out

    def pending(self, tasks: Iterable[Task]) -> list[Task]:
        """The tasks without a ``done`` record: never run, interrupted, failed or lost."""
        done = {k for k, o in self.load().items() if o.ok}
        return [t for t in tasks if t.key not in done]


# ------------------------------------------------------------------ inside a worker

_cache: OrderedDict[Any, Any] = OrderedDict()
_cache_lock = threading.Lock()


def cached(key: Any, build: Callable[[], Any], maxsize: int = 4) -> Any:
    """``build()`` once per worker process and ``key`` (the ``maxsize`` most recent kept).

    A task that needs a compiled model calls ``cached(("model", spec_text), lambda:
    prepare(spec))``: the first task on a worker builds and compiles it, later tasks on
    the same worker get the same object. The key must say everything the value depends
    on. Builds are serialised within a process.

    >>> cached("answer", lambda: 42), cached("answer", lambda: 0)
    (42, 42)
    """
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        value = build()
        _cache[key] = value
        while len(_cache) > maxsize:
            _cache.popitem(last=False)
        return value


def worker_info() -> dict:
    """The Dask worker this runs on (address, name, host, pid, threads, compile directory)."""
    from jaxpm.worker_settings import WORKER

    info: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    with contextlib.suppress(ValueError):  # not inside a worker
        from distributed import get_worker

        w = get_worker()
        info.update(address=w.address, name=str(w.name), nthreads=w.state.nthreads)
    if WORKER is not None:
        info.update(threads=WORKER["threads"], compiledir=WORKER["compiledir"], own_compiledir=WORKER["own_compiledir"])
    return info


def worker_threads() -> int | None:
    """The cores one task may use on this worker (``JAXPM_WORKER_THREADS``); None outside a worker."""
    from jaxpm.worker_settings import WORKER

    return None if WORKER is None else WORKER["threads"]


def call(fn: Callable[..., Any], args: Sequence, kwargs: dict) -> dict:
    """Run one task on a worker; an exception is returned as a record, with the worker that saw it."""
    began = time.perf_counter()
    try:
        value = fn(*args, **kwargs)
        status, error, tb = "done", None, None
    except BaseException as e:  # noqa: BLE001 - a failed task is a result (pyo3 panics are BaseExceptions)
        value, status = None, "error"
        error, tb = f"{type(e).__name__}: {one_line(e)}"[:2000], traceback.format_exc()
    return {"status": status, "value": value, "error": error, "traceback": tb, "worker": worker_info(),
            "seconds": time.perf_counter() - began}


# ------------------------------------------------------------------ the client side


class Executor:
    """A Dask client on a local cluster of worker processes, or on an existing cluster.

    Parameters
    ----------
    scheduler
        ``tcp://host:port`` of an existing Dask scheduler; None starts a ``LocalCluster``.
    workers
        Worker processes of the local cluster (default: one per core); each has one thread.
    progress
        Where progress goes (a bar on stderr in the CLI).
    timeout
        Seconds to wait for an existing scheduler to answer, and then for its first worker.

    Use it as a context manager; :meth:`run` as often as needed inside.
    """

    def __init__(self, scheduler: str | None = None, workers: int | None = None, progress: Progress | None = None,
                 timeout: float = CONNECT_SECONDS):
        if scheduler is not None and workers is not None:
            raise ConfigError("--workers", "--workers sizes the local cluster; with --scheduler the cluster has "
                                           "the workers it has: drop one of them")
        if workers is not None and workers < 1:
            raise ConfigError("--workers", f"expected at least 1 worker, got {workers}")
        self.scheduler_arg = scheduler
        self.timeout = timeout
        self.n_workers = workers or os.cpu_count() or 1
        self.progress = progress or Progress.quiet()
        self.client = None
        self.cluster = None
        self.notes: list[str] = []
        self._environ_before: dict[str, str | None] = {}
        self._log_level: int | None = None

    # -- start and stop

    def __enter__(self) -> Executor:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        from distributed import Client

        # Dask's own log lines (a worker that died, a key it could not gather) say what the
        # records say already; the records are what the user reads
        self._log_level = logging.getLogger("distributed").level
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        if self.scheduler_arg is None:
            self.cluster = self._local_cluster()
            self.client = Client(self.cluster)
            return
        try:
            self.client = Client(self.scheduler_arg, timeout=f"{self.timeout}s")
        except (OSError, ValueError, TypeError) as e:
            raise ConfigError("--scheduler", f"cannot reach a Dask scheduler at {self.scheduler_arg!r}: "
                                             f"{one_line(e)}; start one with `dask scheduler`") from None
        try:
            self.client.wait_for_workers(1, timeout=self.timeout)
        except TimeoutError:
            raise ConfigError("--scheduler", f"the scheduler at {self.scheduler_arg} has no workers; start some "
                                             f"with `{THREADS_ENV}=1 dask worker {self.scheduler_arg}`") from None
        self._worker_environment()

    def _local_cluster(self):
        import dask
        from distributed import LocalCluster

        # JAXPM_WORKER_THREADS must be in a worker's environment when its process starts:
        # a spawned process runs our __main__ (the jaxpm script, so `import jaxpm`) before
        # the nanny's `env` applies. Dask's pre-spawn environment is set in this process
        # for the spawn; it is taken out again on close.
        spawn_env = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), THREADS_ENV: "1"}
        self._environ_before = {k: os.environ.get(k) for k in spawn_env}
        settings = {"distributed.scheduler.allowed-failures": 0, "distributed.nanny.pre-spawn-environ": spawn_env}
        with dask.config.set(settings), _ignoring_sigint():
            # allowed-failures 0: a task whose worker dies is lost at once, not retried on
            # (and killing) the next worker. SIGINT ignored while the worker processes
            # are spawned: they inherit it, and the terminal's Ctrl-C reaches only us.
            return LocalCluster(n_workers=self.n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                dashboard_address=None, silence_logs=logging.ERROR)

    def _worker_environment(self) -> None:
        """Restart, once, the workers of an existing cluster that run without ``JAXPM_WORKER_THREADS``."""
        from distributed.diagnostics.plugin import Environ

        missing = [a for a, v in self.client.run(os.getenv, THREADS_ENV).items() if not v]
        if not missing:
            return
        self.progress.print(f"restarting {len(missing)} of the cluster's workers once with {THREADS_ENV}=1, so "
                            "that each compiles into a PyTensor directory of its own")
        count = len(self.client.scheduler_info(n_workers=-1)["workers"])
        self.client.register_plugin(Environ({THREADS_ENV: "1"}), name="jaxpm-worker-environment")
        with contextlib.suppress(TimeoutError):
            self.client.wait_for_workers(count, timeout=2 * self.timeout)
        still = [a for a, v in self.client.run(os.getenv, THREADS_ENV).items() if not v]
        if still:
            note = (f"{len(still)} workers have no nanny to restart them and share one PyTensor compile "
                    f"directory; start them with {THREADS_ENV}=1")
            self.notes.append(note)
            self.progress.print(f"[yellow]warning:[/yellow] {note}")

    def close(self) -> None:
        for thing in (self.client, self.cluster):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close()
        self.client = self.cluster = None
        for key, value in self._environ_before.items():  # what spawning local workers set here
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._environ_before = {}
        if self._log_level is not None:
            logging.getLogger("distributed").setLevel(self._log_level)
            self._log_level = None

    # -- what it is

    @property
    def scheduler(self) -> str:
        """The scheduler's address (the local cluster's too)."""
        return self.client.scheduler.address if self.client is not None else str(self.scheduler_arg)

    def describe(self) -> dict:
        """``{"scheduler", "cluster": "local" | "existing", "workers": {address: {name, host, threads}}}``."""
        workers = {}
        if self.client is not None:
            for address, w in self.client.scheduler_info(n_workers=-1)["workers"].items():
                workers[address] = {"name": str(w.get("name")), "host": w.get("host"), "threads": w.get("nthreads")}
        return {"scheduler": self.scheduler, "cluster": "local" if self.cluster is not None else "existing",
                "workers": workers, "notes": list(self.notes)}

    # -- running

    def run(self, tasks: Sequence[Task], results: Results, on_outcome: Callable[[Outcome], Any] | None = None,
            what: str = "tasks", failed: Callable[[Outcome], bool] | None = None) -> list[Outcome]:
        """Run ``tasks`` on the cluster; save each :class:`Outcome` in ``results`` as it ends
        and pass it to ``on_outcome``. Returns the outcomes in the order they ended.

        The progress bar counts an outcome as failed when ``failed(outcome)`` (default:
        it is not ``done``; a caller whose tasks return their own verdict says so here).

        Ctrl-C (or KeyboardInterrupt from ``on_outcome``) cancels what has not ended and
        re-raises; what ended is saved already.
        """
        from distributed import as_completed

        keys = [t.key for t in tasks]
        if len(set(keys)) != len(keys):
            raise ValueError("task keys must be unique")
        tag = uuid.uuid4().hex[:8]
        futures = {}
        for t in tasks:
            f = self.client.submit(call, t.fn, tuple(t.args), dict(t.kwargs), key=f"jaxpm-{t.key}-{tag}", pure=False)
            futures[f] = t
        outcomes: list[Outcome] = []
        try:
            with _bar(self.progress, what, len(tasks), failed or (lambda o: not o.ok)) as advance:
                for future in as_completed(futures):
                    outcome = _outcome(future, futures[future])
                    results.save(outcome)
                    outcomes.append(outcome)
                    advance(outcome)
                    if on_outcome is not None:
                        on_outcome(outcome)
        except BaseException:
            self.client.cancel(list(futures), force=True)
            raise
        return outcomes


def _outcome(future, task: Task) -> Outcome:
    """A finished future as an :class:`Outcome`."""
    from distributed import CancelledError
    from distributed.scheduler import KilledWorker

    if future.status == "finished":
        return Outcome(key=task.key, **future.result())
    try:
        exc = future.exception()
    except CancelledError:
        return Outcome(key=task.key, status="lost", error="cancelled by the cluster (its worker went away)")
    if isinstance(exc, KilledWorker):
        last = getattr(exc.last_worker, "address", None)
        return Outcome(key=task.key, status="lost", worker={"address": last} if last else {},
                       error=f"the worker running it died ({last}); see that worker's log")
    return Outcome(key=task.key, status="error", error=f"{type(exc).__name__}: {one_line(exc)}"[:2000])


@contextlib.contextmanager
def _ignoring_sigint():
    """SIGINT ignored in this process for the body (main thread only; elsewhere nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _bar(progress: Progress, what: str, total: int, is_failure: Callable[[Outcome], bool]):
    """A rich progress bar on the progress console: done / failed / elapsed / ETA.
    Yields ``advance(outcome)``."""
    if not progress.enabled or total == 0:
        yield lambda outcome: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bar

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("[red]{task.fields[failed]} failed[/red]"), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())
    with Bar(*columns, console=progress.console, transient=True) as bar:
        task = bar.add_task(what, total=total, failed=0)
        failed = 0

        def advance(outcome: Outcome) -> None:
            nonlocal failed
            failed += bool(is_failure(outcome))
            bar.update(task, advance=1, failed=failed)

        yield advance


__all__ = ["Task", "Outcome", "Results", "Executor", "cached", "call", "worker_info", "worker_threads",
           "CONNECT_SECONDS"]
