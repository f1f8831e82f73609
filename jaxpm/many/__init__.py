"""Many runs: the commands that run many fits at once, and the one executor they share.

- :mod:`~jaxpm.many.executor`: :class:`Executor` runs :class:`Task`\\ s on a Dask cluster
  (a local cluster of worker processes, or ``--scheduler``), keeps each :class:`Outcome`
  in a :class:`Results` folder as it ends, and gives tasks a per-worker :func:`cached`;
- :mod:`~jaxpm.many.sweep`: ``jaxpm sweep``, a grid of variants of one config;
- :mod:`~jaxpm.many.report`: the sweep's table, sort order and ``sweep.png``;
- :mod:`~jaxpm.many.sbc`: ``jaxpm sbc``, simulation-based calibration, with
  :mod:`~jaxpm.many.ranks` (ranks and the uniformity test) and
  :mod:`~jaxpm.many.sbc_report` (its table, ``ranks.png`` and ``ecdf.png``).

These sit above the runner: nothing below imports them.
"""

from jaxpm.many.executor import Executor, Outcome, Results, Task, cached, worker_info, worker_threads
from jaxpm.many.sweep import Plan, SweepResult, plan, run_sweep

__all__ = ["Executor", "Task", "Outcome", "Results", "cached", "worker_info", "worker_threads", "Plan",
           "SweepResult", "plan", "run_sweep"]
