"""Helpers several test files share: the CLI run in-process, and a Dask cluster started by hand.

Not a test module (pytest collects ``test_*.py``); test files import it by name, as the
tests folder is on ``sys.path`` while they are collected.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from jaxpm.cli import app

BIN = Path(sys.executable).parent
"""The folder of this interpreter's console scripts (jaxpm, dask)."""


def invoke(*args):
    """``jaxpm ARGS`` in this process; an exception other than the CLI's exit is a test error."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        raise AssertionError("".join(traceback.format_exception(*result.exc_info)))
    return result


def invoke_json(*args, code: int = 0) -> dict:
    """``jaxpm ARGS --json``: the exit status must be ``code`` and stdout nothing but the JSON."""
    result = invoke(*args, "--json")
    assert result.exit_code == code, (result.exit_code, result.stderr[-3000:])
    return json.loads(result.stdout)


def stop(proc: subprocess.Popen) -> None:
    """Stop a dask scheduler or worker: SIGINT (they close cleanly on it), then kill."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def hand_started_cluster(tmp: Path, env: dict[str, str], workers: int = 2):
    """A ``dask scheduler`` and ``workers`` ``dask worker`` processes (one thread each,
    named ``hand-0``, ``hand-1``, ...) on 127.0.0.1, started as a user would, with
    environment ``env`` and their logs in ``tmp``: the scheduler's address."""
    file = tmp / "scheduler.json"
    procs = [subprocess.Popen([BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", file], env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                              stderr=open(tmp / "scheduler.log", "w"))]  # noqa: SIM115
    try:
        deadline = time.time() + 60
        while not file.exists() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(file.read_text())["address"]
        for i in range(workers):
            procs.append(subprocess.Popen(
                [BIN / "dask", "worker", address, "--nthreads", "1", "--no-dashboard", "--name", f"hand-{i}"],
                env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=open(tmp / f"worker-{i}.log", "w")))  # noqa: SIM115
        yield address
    finally:
        for proc in reversed(procs):
            stop(proc)
