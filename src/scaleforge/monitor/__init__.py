"""Monitoring: metrics, sampling, alerts, anomaly detection, profiling and the dashboard.

The metrics API (:mod:`scaleforge.monitor.metrics`) is what other layers call,
so importing it must stay cheap: the names below are loaded lazily, on first
use. The rest serves people: a system sampler, a time-series store, alerts,
anomaly and regression detection, profiling and recommendations. The web
dashboard lives in :mod:`scaleforge.monitor.dashboard` (it needs FastAPI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaleforge._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "DEFAULT_RULES": "scaleforge.monitor.alerts",
    "REGISTRY": "scaleforge.monitor.metrics",
    "Alert": "scaleforge.monitor.alerts",
    "AlertManager": "scaleforge.monitor.alerts",
    "AlertRule": "scaleforge.monitor.alerts",
    "AnomalyDetector": "scaleforge.monitor.anomaly",
    "BenchHistory": "scaleforge.monitor.regression",
    "DetectionScore": "scaleforge.monitor.anomaly",
    "EWMADetector": "scaleforge.monitor.anomaly",
    "FigureComparison": "scaleforge.monitor.regression",
    "MetricSource": "scaleforge.monitor.sources",
    "MetricsCollector": "scaleforge.monitor.collector",
    "MultiprocessSource": "scaleforge.monitor.sources",
    "Recommendation": "scaleforge.monitor.recommend",
    "RegistrySource": "scaleforge.monitor.sources",
    "RobustZScoreDetector": "scaleforge.monitor.anomaly",
    "ScrapeSource": "scaleforge.monitor.sources",
    "SystemSampler": "scaleforge.monitor.sampler",
    "TimeSeriesStore": "scaleforge.monitor.timeseries",
    "WebhookNotifier": "scaleforge.monitor.alerts",
    "compare": "scaleforge.monitor.regression",
    "counter": "scaleforge.monitor.metrics",
    "detect_anomalies": "scaleforge.monitor.anomaly",
    "enable_multiprocess": "scaleforge.monitor.metrics",
    "evaluate_detection": "scaleforge.monitor.anomaly",
    "gauge": "scaleforge.monitor.metrics",
    "generate_latest": "scaleforge.monitor.metrics",
    "histogram": "scaleforge.monitor.metrics",
    "histogram_quantile": "scaleforge.monitor.collector",
    "profile": "scaleforge.monitor.profiling",
    "profile_call": "scaleforge.monitor.profiling",
    "profile_script": "scaleforge.monitor.profiling",
    "recommend": "scaleforge.monitor.recommend",
}

__all__ = [
    "DEFAULT_RULES",
    "REGISTRY",
    "Alert",
    "AlertManager",
    "AlertRule",
    "AnomalyDetector",
    "BenchHistory",
    "DetectionScore",
    "EWMADetector",
    "FigureComparison",
    "MetricSource",
    "MetricsCollector",
    "MultiprocessSource",
    "Recommendation",
    "RegistrySource",
    "RobustZScoreDetector",
    "ScrapeSource",
    "SystemSampler",
    "TimeSeriesStore",
    "WebhookNotifier",
    "compare",
    "counter",
    "detect_anomalies",
    "enable_multiprocess",
    "evaluate_detection",
    "gauge",
    "generate_latest",
    "histogram",
    "histogram_quantile",
    "profile",
    "profile_call",
    "profile_script",
    "recommend",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)


if TYPE_CHECKING:
    from scaleforge.monitor.alerts import DEFAULT_RULES, Alert, AlertManager, AlertRule, WebhookNotifier
    from scaleforge.monitor.anomaly import (
        AnomalyDetector,
        DetectionScore,
        EWMADetector,
        RobustZScoreDetector,
        detect_anomalies,
        evaluate_detection,
    )
    from scaleforge.monitor.collector import MetricsCollector, histogram_quantile
    from scaleforge.monitor.metrics import (
        REGISTRY,
        counter,
        enable_multiprocess,
        gauge,
        generate_latest,
        histogram,
    )
    from scaleforge.monitor.profiling import profile, profile_call, profile_script
    from scaleforge.monitor.recommend import Recommendation, recommend
    from scaleforge.monitor.regression import BenchHistory, FigureComparison, compare
    from scaleforge.monitor.sampler import SystemSampler
    from scaleforge.monitor.sources import MetricSource, MultiprocessSource, RegistrySource, ScrapeSource
    from scaleforge.monitor.timeseries import TimeSeriesStore
