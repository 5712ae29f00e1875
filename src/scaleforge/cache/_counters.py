"""Per-tier counters shared by the tier backends (private).

Hot paths bump plain ints; :meth:`TierCounters.sync_metrics` pushes the deltas
to Prometheus (``scaleforge_cache_*{tier}``) from ``stats()`` and at most once a
second from writes, so a memory-tier hit costs no metrics call at all. Get
latencies are binned locally into the histogram's buckets and pushed the same
way (about 0.2 µs per get instead of ~1-2 µs for ``Histogram.observe``).
Backend failures are logged through :meth:`TierCounters.error`, at most one
warning per message every 10 s per tier.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from typing import Any

from scaleforge.cache.base import TierStats
from scaleforge.monitor import metrics

__all__ = ["TierCounters"]

_LOG_INTERVAL_S = 10.0
_SYNC_INTERVAL_S = 1.0
# Buckets for tier get latency: 1 µs .. 10 s.
_GET_BUCKETS = (1e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 10.0)


class TierCounters:
    """Event counters of one tier plus its Prometheus children (cached at construction)."""

    __slots__ = (
        "_bins",
        "_bins_sum",
        "_get_hist",
        "_last_log",
        "_last_sync",
        "_lock",
        "_m_bytes",
        "_m_errors",
        "_m_evictions",
        "_m_hits",
        "_m_misses",
        "_suppressed",
        "_synced",
        "deletes",
        "errors",
        "evictions",
        "get_time_s",
        "hits",
        "misses",
        "name",
        "set_time_s",
        "sets",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits = self.misses = self.sets = self.deletes = self.errors = self.evictions = 0
        self.get_time_s = self.set_time_s = 0.0
        self._m_hits = metrics.counter("scaleforge_cache_hits_total", "Cache hits", ["tier"]).labels(
            tier=name
        )
        self._m_misses = metrics.counter("scaleforge_cache_misses_total", "Cache misses", ["tier"]).labels(
            tier=name
        )
        self._m_errors = metrics.counter(
            "scaleforge_cache_errors_total", "Cache backend failures and rejected entries", ["tier"]
        ).labels(tier=name)
        self._m_evictions = metrics.counter(
            "scaleforge_cache_evictions_total", "Entries evicted to respect a byte budget", ["tier"]
        ).labels(tier=name)
        self._m_bytes = metrics.gauge(
            "scaleforge_cache_bytes", "Bytes held by a cache tier", ["tier"]
        ).labels(tier=name)
        self._get_hist = metrics.histogram(
            "scaleforge_cache_get_seconds", "Latency of cache tier gets", ["tier"], buckets=_GET_BUCKETS
        ).labels(tier=name)
        self._synced = [0, 0, 0, 0]
        self._last_sync = 0.0
        self._bins = [0] * (len(_GET_BUCKETS) + 1)
        self._bins_sum = 0.0
        self._lock = threading.Lock()
        self._last_log: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def observe_get(self, seconds: float) -> None:
        """Record one get's latency (tiers slower than memory only)."""
        self.get_time_s += seconds
        self._bins_sum += seconds
        self._bins[bisect.bisect_left(_GET_BUCKETS, seconds)] += 1

    def error(self, logger: logging.Logger, message: str, *args: Any) -> None:
        """Count one error and log ``message % args`` as a warning, rate-limited per message."""
        self.errors += 1
        now = time.monotonic()
        with self._lock:
            last = self._last_log.get(message, -_LOG_INTERVAL_S)
            if now - last < _LOG_INTERVAL_S:
                self._suppressed[message] = self._suppressed.get(message, 0) + 1
                return
            self._last_log[message] = now
            suppressed = self._suppressed.pop(message, 0)
        if suppressed:
            logger.warning(message + " (%d similar warnings suppressed)", *args, suppressed)
        else:
            logger.warning(message, *args)

    def maybe_sync(self, bytes_now: int) -> None:
        """Push deltas to Prometheus if the last push is older than a second."""
        if time.monotonic() - self._last_sync >= _SYNC_INTERVAL_S:
            self.sync_metrics(bytes_now)

    def sync_metrics(self, bytes_now: int) -> None:
        """Push the counters' increase since the last push to Prometheus."""
        with self._lock:
            now = (self.hits, self.misses, self.errors, self.evictions)
            deltas = [max(0, a - b) for a, b in zip(now, self._synced, strict=False)]
            self._synced = list(now)
            self._last_sync = time.monotonic()
            bins, self._bins = self._bins, [0] * (len(_GET_BUCKETS) + 1)
            bins_sum, self._bins_sum = self._bins_sum, 0.0
        self._push_histogram(bins, bins_sum)
        for child, delta in zip(
            (self._m_hits, self._m_misses, self._m_errors, self._m_evictions), deltas, strict=False
        ):
            if delta:
                child.inc(delta)
        self._m_bytes.set(bytes_now)

    def _push_histogram(self, bins: list[int], bins_sum: float) -> None:
        if not any(bins):
            return
        hist: Any = self._get_hist
        try:  # prometheus_client keeps one non-cumulative value per bucket
            for i, n in enumerate(bins):
                if n:
                    hist._buckets[i].inc(n)
            hist._sum.inc(bins_sum)
        except (AttributeError, IndexError):  # another client version: replay bucket bounds
            bounds = (*_GET_BUCKETS, _GET_BUCKETS[-1] * 10)
            for i, n in enumerate(bins):
                for _ in range(min(n, 10_000)):
                    hist.observe(bounds[i])

    def snapshot(self, *, bytes_now: int, entries: int, max_bytes: int | None) -> TierStats:
        """Return a :class:`TierStats` and sync Prometheus."""
        self.sync_metrics(bytes_now)
        return TierStats(
            name=self.name,
            hits=self.hits,
            misses=self.misses,
            sets=self.sets,
            deletes=self.deletes,
            errors=self.errors,
            evictions=self.evictions,
            bytes=bytes_now,
            entries=entries,
            max_bytes=max_bytes,
            get_time_s=self.get_time_s,
            set_time_s=self.set_time_s,
        )

    def reset(self) -> None:
        """Zero the counters (after ``clear``); Prometheus counters keep their totals."""
        self.sync_metrics(0)
        with self._lock:
            self.hits = self.misses = self.sets = self.deletes = self.errors = self.evictions = 0
            self.get_time_s = self.set_time_s = 0.0
            self._synced = [0, 0, 0, 0]
