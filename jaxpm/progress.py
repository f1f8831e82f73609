"""Progress on stderr for anything that takes more than a moment (rich).

Commands pass a :class:`Progress` down; library callers get a quiet one. Output goes to
stderr so that ``--json`` keeps stdout clean.
"""

from __future__ import annotations

import contextlib
import time

from rich.console import Console


class Progress:
    def __init__(self, console: Console | None, enabled: bool = True):
        self.console = console
        self.enabled = enabled and console is not None

    @classmethod
    def quiet(cls) -> Progress:
        return cls(None, enabled=False)

    @classmethod
    def stderr(cls) -> Progress:
        return cls(Console(stderr=True))

    @contextlib.contextmanager
    def step(self, what: str):
        """A spinner and the time elapsed while ``what`` runs, then a line saying how long it took."""
        if not self.enabled:
            yield
            return
        from rich.progress import Progress as Bar
        from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

        start = time.perf_counter()
        if self.console.is_terminal:  # a live spinner only where it can redraw itself
            columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
            with Bar(*columns, console=self.console, transient=True) as bar:
                bar.add_task(f"{what} ...", total=None)
                yield
        else:
            yield
        self.console.print(f"[dim]{what}: {time.perf_counter() - start:.1f} s[/dim]")

    def print(self, *args, **kwargs):
        if self.enabled:
            self.console.print(*args, **kwargs)
