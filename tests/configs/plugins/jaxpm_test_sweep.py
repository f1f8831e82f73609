"""A plugin experiment for the sweep tests: ``y = 2 x``, which inside a jaxpm worker
process (``JAXPM_WORKER_THREADS`` set) can sleep, raise or kill its process, as the
``plugin:`` section says. In the test process itself (where the sweep validates every
point) it always builds, so that these are failures at run time, not bad input.
"""

import os
import time


def build(section, ctx):
    x = ctx.value(section.get("input", "x"), "plugin.input")
    if os.environ.get("JAXPM_WORKER_THREADS"):
        time.sleep(float(section.get("sleep", 0)))
        if section.get("fail") == "raise":
            raise RuntimeError("this point fails on purpose")
        if section.get("fail") == "die":
            os._exit(3)  # the worker process dies, as a segfault would end it
    ctx.add(section.get("output", "y"), 2.0 * x, deterministic=True, key="plugin.output")
