"""The shipped Grafana dashboard and Prometheus config parse and use the metric names we record."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"

# names recorded by scaleforge.monitor and the cache/compute/serve/jobs/workload layers through
# monitor.metrics; tests/integration/test_metrics_everywhere.py checks that real work produces them all
KNOWN = {
    "scaleforge_cache_hits_total",
    "scaleforge_cache_misses_total",
    "scaleforge_cache_bytes",
    "scaleforge_cache_evictions_total",
    "scaleforge_tasks_completed_total",
    "scaleforge_tasks_failed_total",
    "scaleforge_queue_depth",
    "scaleforge_workers",
    "scaleforge_requests_total",
    "scaleforge_request_latency_seconds_bucket",
    "scaleforge_batch_size_sum",
    "scaleforge_batch_size_count",
    "scaleforge_batch_size_bucket",
    "scaleforge_system_cpu_percent",
    "scaleforge_system_memory_percent",
    "scaleforge_gpu_utilization_percent",
    "scaleforge_jobs_by_status",
    "scaleforge_jobs_finished_total",
    "scaleforge_jobs_claim_seconds_bucket",
    "scaleforge_jobs_wait_seconds_bucket",
    "scaleforge_pde_samples_generated_total",
    "scaleforge_habitat_episodes_evaluated_total",
    "scaleforge_clustering_ensemble_runs_total",
}


def test_grafana_dashboard_is_importable_json() -> None:
    doc = json.loads((DEPLOY / "grafana" / "scaleforge-dashboard.json").read_text())
    assert doc["__inputs"][0]["pluginId"] == "prometheus"
    titles = [p["title"] for p in doc["panels"]]
    assert len(titles) == len(set(titles)) >= 10
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    used = {
        m for p in doc["panels"] for t in p["targets"] for m in re.findall(r"scaleforge_[a-z_]+", t["expr"])
    }
    assert used <= KNOWN, used - KNOWN


def test_prometheus_config_scrapes_metrics_endpoints() -> None:
    cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert {"scaleforge-serve", "scaleforge-dashboard"} <= set(jobs)
    assert all(j.get("metrics_path", "/metrics") == "/metrics" for j in jobs.values())
    assert jobs["scaleforge-dashboard"]["static_configs"][0]["targets"] == ["127.0.0.1:8787"]
