"""The progress bar of :func:`scaleforge.map`: items, cache hits, failures, rate, ETA.

Shown when ``progress=True``, or by default when stderr is a terminal
(``config_context(progress=...)`` / ``Settings.compute.progress`` override
that); the same bar for every backend because the parent process draws it.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["MapProgress", "make_progress", "should_show"]


def should_show(progress: bool | None) -> bool:
    """Resolve ``progress``: explicit > config_context/settings > ``sys.stderr.isatty()``."""
    from scaleforge.settings import resolve

    value = resolve("progress", progress)
    if value is None:
        try:
            return bool(sys.stderr.isatty())
        except (AttributeError, ValueError):
            return False
    return bool(value)


class MapProgress:
    """Counters of one map and, when enabled, a rich progress bar.

    Parameters
    ----------
    total : int or None
        Number of items when known.
    enabled : bool
        Draw the bar on stderr.
    description : str, default="map"
        Shown at the left of the bar.
    """

    def __init__(self, total: int | None, *, enabled: bool, description: str = "map") -> None:
        self.total = total
        self.done = 0
        self.hits = 0
        self.failed = 0
        self.started = time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        self._last = 0.0
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("hits {task.fields[hits]}  failed {task.fields[failed]}  {task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(description, total=total, hits=0, failed=0, rate="")

    @property
    def enabled(self) -> bool:
        """True if a bar is drawn."""
        return self._bar is not None

    def advance(self, done: int = 0, *, hits: int = 0, failed: int = 0) -> None:
        """Count finished items (``done`` includes hits and failures)."""
        self.done += done
        self.hits += hits
        self.failed += failed
        if self._bar is not None:
            now = time.monotonic()
            if now - self._last < 0.1 and (self.total is None or self.done < self.total):
                return  # redraw at most 10 times a second
            self._last = now
            rate = self.done / max(now - self.started, 1e-9)
            self._bar.update(
                self._task, completed=self.done, hits=self.hits, failed=self.failed, rate=f"{rate:,.0f} it/s"
            )

    def close(self) -> None:
        """Draw the final state and stop the bar."""
        if self._bar is not None:
            self._last = 0.0
            self.advance()
            self._bar.stop()
            self._bar = None


def make_progress(total: int | None, progress: bool | None, description: str = "map") -> MapProgress:
    """Build the :class:`MapProgress` of one map."""
    return MapProgress(total, enabled=should_show(progress), description=description)
