"""Turn raw metrics from several sources into the figures a person reads.

:class:`MetricsCollector` polls its sources, appends every series to a
:class:`~scaleforge.monitor.timeseries.TimeSeriesStore`, and derives figures
from successive samples: cache hit rate per tier, tasks/s, queue depth,
workers, requests/s and latency percentiles (from histogram buckets), batch
sizes, CPU/memory/GPU. It then evaluates alerts, anomaly detectors and
recommendations, and returns a JSON-ready snapshot the dashboard renders.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from scaleforge._validation import check_number
from scaleforge.errors import InvalidParameterError
from scaleforge.monitor.alerts import AlertManager
from scaleforge.monitor.anomaly import RobustZScoreDetector
from scaleforge.monitor.recommend import CACHE_MISS_ARGUMENT_METRIC, recommend
from scaleforge.monitor.sources import MetricSource, Point
from scaleforge.monitor.timeseries import TimeSeriesStore

__all__ = ["CHARTS", "MetricsCollector", "histogram_quantile"]

logger = logging.getLogger(__name__)

# chart id -> (title, unit, figure prefix). Series of a chart are the figures "<prefix>" or "<prefix>:<label>".
CHARTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "cache": ("Cache hit rate per tier", "ratio", ("cache_hit_rate",)),
    "tasks": ("Tasks per second", "1/s", ("tasks_per_s",)),
    "queue": ("Queue depth and workers", "count", ("queue_depth", "workers", "jobs_queued", "jobs_running")),
    "requests": ("Requests per second", "1/s", ("requests_per_s",)),
    "latency": ("Request latency", "s", ("latency_p50_s", "latency_p95_s", "latency_p99_s")),
    "batch": ("Batch size", "items", ("batch_size_mean", "batch_size_p95")),
    "system": ("CPU and memory", "%", ("cpu_percent", "memory_percent", "gpu_utilization_percent")),
    "workloads": (
        "Workload progress",
        "1/s",
        ("pde_samples_per_s", "habitat_episodes_per_s", "clustering_runs_per_s", "jobs_finished_per_s"),
    ),
}

# figure -> counter whose rate over the window it is (workloads and jobs).
_RATE_FIGURES: dict[str, str] = {
    "pde_samples_per_s": "scaleforge_pde_samples_generated_total",
    "habitat_episodes_per_s": "scaleforge_habitat_episodes_evaluated_total",
    "clustering_runs_per_s": "scaleforge_clustering_ensemble_runs_total",
    "jobs_finished_per_s": "scaleforge_jobs_finished_total",
}

_CUMULATIVE = ("_total", "_count", "_sum", "_bucket")
_ANOMALY_FIGURES = ("tasks_per_s", "requests_per_s", "latency_p99_s", "cpu_percent", "cache_hit_rate")


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Estimate a quantile from cumulative histogram buckets, as Prometheus does.

    Parameters
    ----------
    q : float
        Quantile in [0, 1].
    buckets : sequence of (float, float)
        ``(upper_bound, cumulative_count)`` pairs; the last bound should be ``inf``.

    Returns
    -------
    float or None
        Linear interpolation inside the bucket holding rank ``q * total``; ``None`` when empty.

    Examples
    --------
    >>> histogram_quantile(0.5, [(1.0, 0), (2.0, 10), (float("inf"), 10)])
    1.5
    """
    check_number(q, "q", "histogram_quantile", minimum=0, maximum=1)
    pairs = sorted((float(le), float(c)) for le, c in buckets)
    if not pairs or pairs[-1][1] <= 0:
        return None
    total = pairs[-1][1]
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for i, (le, c) in enumerate(pairs):
        if c >= rank and c > prev_c:
            if math.isinf(le):
                return prev_le if i > 0 else None
            lower = prev_le if i > 0 else min(0.0, le)
            return lower + (le - lower) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return pairs[-2][0] if len(pairs) > 1 else None


class MetricsCollector:
    """Poll metric sources and derive the dashboard's figures, alerts and hints.

    Parameters
    ----------
    sources : iterable of MetricSource
    store : TimeSeriesStore, optional
        Where the derived figures (``fig:<name>`` series) are kept, and persisted if
        it has a path; defaults to an in-memory store of 3600 points per series.
    alerts : AlertManager, optional
        Defaults to :class:`AlertManager` with the default rules.
    window_s : float, default=15.0
        Window of rates and windowed percentiles.
    history_s : float, default=600.0
        Length of the chart series returned in snapshots.
    anomaly_window : int, default=60
        Window of the robust z-score detectors run on the main figures.
    raw_capacity : int, default=256
        Polls of each raw series kept in memory for rates; must cover ``window_s``.
    """

    def __init__(
        self,
        sources: Iterable[MetricSource],
        *,
        store: TimeSeriesStore | None = None,
        alerts: AlertManager | None = None,
        window_s: float = 15.0,
        history_s: float = 600.0,
        anomaly_window: int = 60,
        raw_capacity: int = 256,
    ) -> None:
        self.sources = list(sources)
        for src in self.sources:
            if not isinstance(src, MetricSource):
                raise InvalidParameterError(
                    f"MetricsCollector sources must be MetricSource objects. Got {src!r}."
                )
        check_number(window_s, "window_s", "MetricsCollector", minimum=0, exclusive_minimum=True)
        check_number(history_s, "history_s", "MetricsCollector", minimum=0, exclusive_minimum=True)
        self.store = store if store is not None else TimeSeriesStore()
        # Raw series only feed rates over the window: a short in-memory buffer each, never persisted.
        self._raw = TimeSeriesStore(capacity=raw_capacity)
        self.alerts = alerts if alerts is not None else AlertManager()
        self.window_s = float(window_s)
        self.history_s = float(history_s)
        self._lock = threading.Lock()
        self._system: dict[str, float] = {}
        self._status: dict[str, dict[str, Any]] = {}
        self._detectors = {
            f: RobustZScoreDetector(window=anomaly_window, min_periods=20) for f in _ANOMALY_FIGURES
        }
        self._anomalies: deque[dict[str, Any]] = deque(maxlen=20)
        self._last: dict[str, Any] = {}
        self._prev_poll: float | None = None

    # ------------------------------------------------------------------ input
    def record_system(self, sample: dict[str, float]) -> None:
        """Receive a sampler sample (use as ``SystemSampler(on_sample=collector.record_system)``)."""
        with self._lock:
            self._system = dict(sample)

    def _read_sources(self, now: float) -> dict[str, list[Point]]:
        out: dict[str, list[Point]] = {}
        for src in self.sources:
            try:
                points = src.read()
            except Exception as exc:  # a dead target must not stop the dashboard
                self._status[src.name] = {"name": src.name, "kind": src.kind, "up": False, "error": str(exc)}
                logger.debug("metric source %s failed: %s", src.name, exc)
                continue
            self._status[src.name] = {
                "name": src.name,
                "kind": src.kind,
                "up": True,
                "error": "",
                "series": len(points),
            }
            out[src.name] = points
        return out

    # ------------------------------------------------------------------ derivations
    def _increase(self, key: str, now: float) -> float:
        _, v = self._raw.get(key, since=now - self.window_s - 1e-9)
        return TimeSeriesStore.increase_of(v)

    def _sum_latest(self, latest: dict[str, list[tuple[str, Point]]], name: str) -> float | None:
        rows = latest.get(name)
        return None if not rows else float(sum(p.value for _, p in rows))

    def _rate(
        self, latest: dict[str, list[tuple[str, Point]]], name: str, now: float, by: str | None = None
    ) -> dict[str, float]:
        """Per-second increase over the window, summed per value of label ``by`` ("" when by is None)."""
        out: dict[str, float] = defaultdict(float)
        span = self._span(now)
        for key, point in latest.get(name, []):
            if span <= 0:
                continue
            out[point.label(by) if by else ""] += self._increase(key, now) / span
        return dict(out)

    def _span(self, now: float) -> float:
        t, _ = self._raw.get("fig:polls", since=now - self.window_s - 1e-9)
        return float(t[-1] - t[0]) if len(t) >= 2 else 0.0

    def _histogram(
        self, latest: dict[str, list[tuple[str, Point]]], base: str, now: float
    ) -> tuple[list[tuple[float, float]], float, float]:
        """Buckets, sum and count of a histogram over the window (cumulative when nothing moved)."""
        windowed: dict[float, float] = defaultdict(float)
        cumulative: dict[float, float] = defaultdict(float)
        for key, point in latest.get(base + "_bucket", []):
            le = float(point.label("le", "inf").replace("+Inf", "inf"))
            windowed[le] += self._increase(key, now)
            cumulative[le] += point.value
        sums = latest.get(base + "_sum", [])
        counts = latest.get(base + "_count", [])
        w_count = sum(self._increase(k, now) for k, _ in counts)
        if w_count > 0:
            w_sum = sum(self._increase(k, now) for k, _ in sums)
            return sorted(windowed.items()), w_sum, w_count
        return sorted(cumulative.items()), sum(p.value for _, p in sums), sum(p.value for _, p in counts)

    def poll(self, now: float | None = None) -> dict[str, Any]:
        """Read every source once, update the store and return a fresh snapshot.

        Parameters
        ----------
        now : float, optional
            Poll time (seconds since the epoch); defaults to ``time.time()``.

        Returns
        -------
        dict
            See :meth:`snapshot`.
        """
        t = time.time() if now is None else float(now)
        by_source = self._read_sources(t)
        latest: dict[str, list[tuple[str, Point]]] = defaultdict(list)
        raw: dict[str, float] = {"fig:polls": 1.0}
        for src_name, points in by_source.items():
            for p in points:
                key = f"{src_name}|{p.key}"
                raw[key] = p.value
                latest[p.name].append((key, p))
        if self._prev_poll is not None:
            # A counter first seen now was created since the last poll, at zero: without this
            # point its first increments would be lost from the rate.
            born = {k: 0.0 for k in raw if k not in self._raw and k.split("{", 1)[0].endswith(_CUMULATIVE)}
            if born:
                self._raw.extend(born, t=self._prev_poll)
        self._prev_poll = t
        self._raw.extend(raw, t=t)
        figures = self._derive(latest, t)
        fig_series = {
            f"fig:{k}": v for k, v in figures.items() if isinstance(v, (int, float)) and v is not None
        }
        self.store.extend(fig_series, t=t)
        anomalies = self._detect(figures, t)
        alerts = self.alerts.evaluate(
            {k: v for k, v in figures.items() if isinstance(v, (int, float))}, now=t
        )
        snapshot: dict[str, Any] = {
            "time": t,
            "sources": list(self._status.values()),
            "figures": figures,
            "cache_miss_arguments": [
                {"function": p.label("function"), "argument": p.label("argument"), "count": p.value}
                for _, p in latest.get(CACHE_MISS_ARGUMENT_METRIC, [])
            ],
            "alerts": [a.to_dict() for a in alerts],
            "anomalies": list(anomalies),
        }
        snapshot["recommendations"] = [r.to_dict() for r in recommend(snapshot)]
        snapshot["charts"] = self._charts(t)
        with self._lock:
            self._last = snapshot
        return snapshot

    def _derive(self, latest: dict[str, list[tuple[str, Point]]], now: float) -> dict[str, Any]:
        f: dict[str, Any] = {}
        # cache, per tier and overall
        hits = self._rate(latest, "scaleforge_cache_hits_total", now, by="tier")
        misses = self._rate(latest, "scaleforge_cache_misses_total", now, by="tier")
        tot_hits: dict[str, float] = defaultdict(float)
        tot_miss: dict[str, float] = defaultdict(float)
        for _, p in latest.get("scaleforge_cache_hits_total", []):
            tot_hits[p.label("tier")] += p.value
        for _, p in latest.get("scaleforge_cache_misses_total", []):
            tot_miss[p.label("tier")] += p.value
        tiers = sorted(set(tot_hits) | set(tot_miss))
        lookups_total = sum(tot_hits.values()) + sum(tot_miss.values())
        if tiers:
            f["cache_lookups_total"] = lookups_total
            f["cache_hits_total"] = sum(tot_hits.values())
            w_h, w_m = sum(hits.values()), sum(misses.values())
            if w_h + w_m > 0:
                f["cache_hit_rate"] = w_h / (w_h + w_m)
                f["cache_lookups_per_s"] = w_h + w_m
            elif lookups_total > 0:
                f["cache_hit_rate"] = sum(tot_hits.values()) / lookups_total
                f["cache_lookups_per_s"] = 0.0
            for tier in tiers:
                h, m = hits.get(tier, 0.0), misses.get(tier, 0.0)
                th, tm = tot_hits.get(tier, 0.0), tot_miss.get(tier, 0.0)
                if h + m > 0:
                    f[f"cache_hit_rate:{tier}"] = h / (h + m)
                elif th + tm > 0:
                    f[f"cache_hit_rate:{tier}"] = th / (th + tm)
        # compute
        done = latest.get("scaleforge_tasks_completed_total")
        if done:
            f["tasks_completed_total"] = sum(p.value for _, p in done)
            f["tasks_per_s"] = sum(self._rate(latest, "scaleforge_tasks_completed_total", now).values())
            executors = sorted({p.label("executor") for _, p in done if p.label("executor")})
            if executors:
                f["executor"] = executors[0]
        failed = self._rate(latest, "scaleforge_tasks_failed_total", now)
        for name, key in (("scaleforge_queue_depth", "queue_depth"), ("scaleforge_workers", "workers")):
            value = self._sum_latest(latest, name)
            if value is not None:
                f[key] = value
        buckets, d_sum, d_count = self._histogram(latest, "scaleforge_task_duration_seconds", now)
        if d_count > 0:
            f["task_duration_mean_s"] = d_sum / d_count
            total = [p.value for _, p in latest.get("scaleforge_task_duration_seconds_count", [])]
            f["task_duration_count"] = float(sum(total))
        # serve
        req = latest.get("scaleforge_requests_total")
        err_rate = 0.0
        if req:
            f["requests_total"] = sum(p.value for _, p in req)
            f["requests_per_s"] = sum(self._rate(latest, "scaleforge_requests_total", now).values())
            span = self._span(now)
            for key, p in req:
                status = p.label("status") or p.label("code") or p.label("outcome")
                if span > 0 and (
                    status.startswith("5") or status in ("error", "failed", "failure", "timeout")
                ):
                    err_rate += self._increase(key, now) / span
        denom = f.get("requests_per_s", 0.0) + f.get("tasks_per_s", 0.0) + sum(failed.values())
        if denom > 0:
            f["error_rate"] = (err_rate + sum(failed.values())) / denom
        buckets, _, count = self._histogram(latest, "scaleforge_request_latency_seconds", now)
        if count > 0:
            for q, name in ((0.5, "latency_p50_s"), (0.95, "latency_p95_s"), (0.99, "latency_p99_s")):
                f[name] = histogram_quantile(q, buckets)
        buckets, b_sum, b_count = self._histogram(latest, "scaleforge_batch_size", now)
        if b_count > 0:
            f["batch_size_mean"] = b_sum / b_count
            f["batch_size_p95"] = histogram_quantile(0.95, buckets)
            f["batches_total"] = float(sum(p.value for _, p in latest.get("scaleforge_batch_size_count", [])))
        limit = self._sum_latest(latest, "scaleforge_max_batch_size")
        if limit is not None:
            f["max_batch_size"] = limit
        # jobs: per-status counts read from the job database (the same figure in every process: max)
        for _, p in latest.get("scaleforge_jobs_by_status", []):
            status = p.label("status")
            if status in ("queued", "running", "succeeded", "failed", "cancelled"):
                f[f"jobs_{status}"] = max(f.get(f"jobs_{status}", 0.0), p.value)
        if "jobs_queued" not in f:
            rows = latest.get("scaleforge_jobs_queued")
            if rows:
                f["jobs_queued"] = max(p.value for _, p in rows)
        # workloads and jobs throughput
        for figure, name in _RATE_FIGURES.items():
            if latest.get(name):
                f[figure] = sum(self._rate(latest, name, now).values())
        # system: the sampler of this process, else gauges read from the sources
        with self._lock:
            system = dict(self._system)
        for key in ("cpu_percent", "memory_percent", "memory_used_bytes", "memory_total_bytes"):
            if key in system:
                f[key] = system[key]
        if "process_memory_bytes" in system:
            f["process_memory_bytes"] = system["process_memory_bytes"]
        if "process_cpu_percent" in system:
            f["process_cpu_percent"] = system["process_cpu_percent"]
        for name, key in (
            ("scaleforge_system_cpu_percent", "cpu_percent"),
            ("scaleforge_system_memory_percent", "memory_percent"),
        ):
            rows = latest.get(name)
            if key not in f and rows:
                f[key] = max(p.value for _, p in rows)
        gpu = [v for k, v in system.items() if k.startswith("gpu") and k.endswith("_utilization_percent")]
        if not gpu:
            gpu = [p.value for _, p in latest.get("scaleforge_gpu_utilization_percent", [])]
        if gpu:
            f["gpu_utilization_percent"] = float(np.mean(gpu))
        return f

    def _detect(self, figures: dict[str, Any], now: float) -> list[dict[str, Any]]:
        for name, det in self._detectors.items():
            value = figures.get(name)
            if value is None:
                continue
            verdict = det.update(float(value))
            if verdict.is_anomaly:
                self._anomalies.appendleft(
                    {
                        "figure": name,
                        "time": now,
                        "value": float(value),
                        "baseline": verdict.baseline,
                        "score": verdict.score if math.isfinite(verdict.score) else None,
                    }
                )
        return list(self._anomalies)

    def _charts(self, now: float) -> dict[str, Any]:
        since = now - self.history_s
        names = [n[4:] for n in self.store.names() if n.startswith("fig:")]
        charts: dict[str, Any] = {}
        for chart_id, (title, unit, prefixes) in CHARTS.items():
            series: dict[str, list[list[float]]] = {}
            for name in names:
                base, _, label = name.partition(":")
                if base in prefixes:
                    t, v = self.store.get("fig:" + name, since=since)
                    series[label or ("all tiers" if base == "cache_hit_rate" else base)] = [
                        [round(float(a), 3), float(b)] for a, b in zip(t, v, strict=True)
                    ]
            charts[chart_id] = {"title": title, "unit": unit, "series": series}
        return charts

    def snapshot(self) -> dict[str, Any]:
        """Return the latest snapshot (polling once if there is none yet).

        Returns
        -------
        dict
            ``time``, ``sources``, ``figures``, ``charts``, ``alerts``,
            ``anomalies``, ``recommendations``, ``cache_miss_arguments``.
        """
        with self._lock:
            last = self._last
        return last if last else self.poll()

    def close(self) -> None:
        """Close the sources and flush the store."""
        for src in self.sources:
            try:
                src.close()
            except Exception:
                logger.debug("closing %s failed", src.name, exc_info=True)
        self.store.flush()
