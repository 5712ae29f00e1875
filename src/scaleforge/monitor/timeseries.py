"""A small time-series store: one ring buffer per series, optionally persisted to SQLite.

The dashboard and the detectors read recent history from here; rates (hits/s,
tasks/s) are computed from successive samples of counters. When a deployment
outgrows it, Prometheus scrapes ``/metrics`` instead (``deploy/prometheus``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from scaleforge._validation import check_number
from scaleforge.errors import InvalidParameterError

__all__ = ["RingBuffer", "TimeSeriesStore"]

logger = logging.getLogger(__name__)


class RingBuffer:
    """A fixed-capacity buffer of ``(time, value)`` pairs, oldest overwritten first.

    Parameters
    ----------
    capacity : int
        Number of points kept.
    """

    __slots__ = ("_count", "_head", "_t", "_v", "capacity")

    def __init__(self, capacity: int) -> None:
        check_number(capacity, "capacity", "RingBuffer", minimum=1, integer=True)
        self.capacity = capacity
        self._t = np.zeros(capacity, dtype=np.float64)
        self._v = np.zeros(capacity, dtype=np.float64)
        self._head = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, t: float, value: float) -> None:
        """Add one point."""
        self._t[self._head] = t
        self._v[self._head] = value
        self._head = (self._head + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)

    def arrays(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return copies of the times and values, oldest first."""
        if self._count < self.capacity:
            return self._t[: self._count].copy(), self._v[: self._count].copy()
        order = np.r_[self._head : self.capacity, 0 : self._head]
        return self._t[order], self._v[order]

    def last(self) -> tuple[float, float] | None:
        """Return the newest point, or ``None`` when empty."""
        if self._count == 0:
            return None
        i = (self._head - 1) % self.capacity
        return float(self._t[i]), float(self._v[i])


class TimeSeriesStore:
    """Named series of ``(time, value)`` points in memory, optionally persisted to SQLite.

    Parameters
    ----------
    capacity : int, default=3600
        Points kept in memory per series (an hour at one sample per second).
    path : path-like, optional
        SQLite file; when given, points are written there (on :meth:`flush`,
        called every ``flush_every`` appends) and the newest ``capacity``
        points of each series are loaded back at construction.
    retention_s : float, optional
        Points older than this are deleted from the file on flush.
    flush_every : int, default=256
        Appends between automatic flushes.

    Raises
    ------
    InvalidParameterError
        For a bad capacity, or a ``path`` that is not a usable SQLite file.

    Examples
    --------
    >>> store = TimeSeriesStore(capacity=10)
    >>> store.append("tasks_total", 0.0, t=0.0); store.append("tasks_total", 5.0, t=1.0)
    >>> store.rate("tasks_total")
    5.0
    """

    def __init__(
        self,
        capacity: int = 3600,
        *,
        path: str | os.PathLike[str] | None = None,
        retention_s: float | None = None,
        flush_every: int = 256,
    ) -> None:
        check_number(capacity, "capacity", "TimeSeriesStore", minimum=1, integer=True)
        check_number(
            retention_s, "retention_s", "TimeSeriesStore", minimum=0, allow_none=True, exclusive_minimum=True
        )
        check_number(flush_every, "flush_every", "TimeSeriesStore", minimum=1, integer=True)
        self.capacity = capacity
        self.retention_s = retention_s
        self.flush_every = flush_every
        self._series: dict[str, RingBuffer] = {}
        self._lock = threading.RLock()
        self._pending: list[tuple[str, float, float]] = []
        self._db: sqlite3.Connection | None = None
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self._open(self.path)

    # ------------------------------------------------------------------ persistence
    def _open(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS points (series TEXT NOT NULL, t REAL NOT NULL, v REAL NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS points_series_t ON points (series, t)")
            rows = db.execute(
                "SELECT series, t, v FROM (SELECT series, t, v, ROW_NUMBER() OVER "
                "(PARTITION BY series ORDER BY t DESC) AS rn FROM points) WHERE rn <= ? ORDER BY series, t",
                (self.capacity,),
            ).fetchall()
        except (sqlite3.Error, OSError) as exc:
            raise InvalidParameterError(
                f"The 'path' parameter of TimeSeriesStore ({str(path)!r}) is not a usable SQLite file: {exc}. "
                "Pass a writable path to a new or existing store, or path=None for memory only."
            ) from exc
        self._db = db
        for series, t, v in rows:
            self._buffer(series).append(t, v)

    def flush(self) -> None:
        """Write pending points to SQLite (no-op in memory-only mode)."""
        with self._lock:
            if self._db is None or not self._pending:
                self._pending.clear()
                return
            pending, self._pending = self._pending, []
            try:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT INTO points (series, t, v) VALUES (?, ?, ?)", pending)
                if self.retention_s is not None:
                    self._db.execute("DELETE FROM points WHERE t < ?", (time.time() - self.retention_s,))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:  # persistence is best effort: memory keeps working
                logger.warning("could not persist %d points to %s: %s", len(pending), self.path, exc)
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")

    def close(self) -> None:
        """Flush and close the SQLite file."""
        with self._lock:
            self.flush()
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> TimeSeriesStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def _buffer(self, series: str) -> RingBuffer:
        buf = self._series.get(series)
        if buf is None:
            buf = self._series[series] = RingBuffer(self.capacity)
        return buf

    def append(self, series: str, value: float, *, t: float | None = None) -> None:
        """Add one point to ``series`` (time defaults to now, in seconds since the epoch).

        Parameters
        ----------
        series : str
            Series name, e.g. ``'scaleforge_cache_hits_total{tier="memory"}'``.
        value : float
        t : float, optional
        """
        self.extend({series: value}, t=t)

    def extend(self, values: Mapping[str, float], *, t: float | None = None) -> None:
        """Add one point to each of several series at the same time ``t``.

        Non-finite values are skipped.
        """
        now = time.time() if t is None else float(t)
        with self._lock:
            for series, value in values.items():
                v = float(value)
                if not math.isfinite(v):
                    continue
                self._buffer(series).append(now, v)
                if self._db is not None:
                    self._pending.append((series, now, v))
            if len(self._pending) >= self.flush_every:
                self.flush()

    # ------------------------------------------------------------------ reading
    def names(self) -> list[str]:
        """Return the series names, sorted."""
        with self._lock:
            return sorted(self._series)

    def __contains__(self, series: object) -> bool:
        return series in self._series

    def get(
        self, series: str, *, since: float | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Return ``(times, values)`` of ``series``, oldest first (empty arrays when unknown).

        Parameters
        ----------
        series : str
        since : float, optional
            Only points with ``t >= since``.
        """
        with self._lock:
            buf = self._series.get(series)
            if buf is None:
                return np.empty(0), np.empty(0)
            t, v = buf.arrays()
        if since is not None:
            keep = t >= since
            t, v = t[keep], v[keep]
        return t, v

    def last(self, series: str) -> float | None:
        """Return the newest value of ``series``, or ``None``."""
        with self._lock:
            buf = self._series.get(series)
            point = buf.last() if buf is not None else None
        return None if point is None else point[1]

    def rate(self, series: str, *, window_s: float | None = None) -> float | None:
        """Per-second increase of a counter series over the last ``window_s`` seconds.

        Counter resets (a restarted process) are handled as Prometheus'
        ``rate`` does: a decrease starts a new run from zero.

        Parameters
        ----------
        series : str
        window_s : float, optional
            Defaults to the whole buffer.

        Returns
        -------
        float or None
            ``None`` with fewer than two points in the window.
        """
        t, v = self.get(series)
        if window_s is not None and len(t):
            keep = t >= t[-1] - window_s
            t, v = t[keep], v[keep]
        if len(t) < 2 or t[-1] <= t[0]:
            return None
        return self.increase_of(v) / float(t[-1] - t[0])

    @staticmethod
    def increase_of(values: NDArray[np.float64]) -> float:
        """Total increase of a counter's successive values, counting resets."""
        if len(values) < 2:
            return 0.0
        d = np.diff(values)
        d = np.where(d < 0, values[1:], d)  # a reset: the counter restarted from zero
        return float(d.sum())

    def rate_series(
        self, series: str, *, since: float | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per-second rate between successive points of a counter series."""
        t, v = self.get(series, since=since)
        if len(t) < 2:
            return np.empty(0), np.empty(0)
        dt = np.diff(t)
        dv = np.diff(v)
        dv = np.where(dv < 0, v[1:], dv)
        ok = dt > 0
        return t[1:][ok], dv[ok] / dt[ok]

    def clear(self, names: Iterable[str] | None = None) -> None:
        """Drop series from memory (all when ``names`` is None); the file is untouched."""
        with self._lock:
            if names is None:
                self._series.clear()
            else:
                for name in names:
                    self._series.pop(name, None)
