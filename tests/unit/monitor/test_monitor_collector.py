"""Derived figures from raw metrics: rates, hit rates and percentiles against known answers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import prometheus_client as prom
import pytest

from scaleforge.errors import InvalidParameterError
from scaleforge.monitor.alerts import AlertManager, AlertRule
from scaleforge.monitor.collector import MetricsCollector, histogram_quantile
from scaleforge.monitor.sources import MultiprocessSource, RegistrySource, ScrapeSource, series_key
from scaleforge.testing.fixtures import free_port, wait_for_port


def test_histogram_quantile_known_answers() -> None:
    inf = float("inf")
    # 100 observations uniform on (0, 1] in buckets of 0.1: the q-quantile is q
    buckets = [(round(0.1 * k, 1), 10.0 * k) for k in range(1, 11)] + [(inf, 100.0)]
    for q in (0.1, 0.25, 0.5, 0.9, 0.99):
        assert histogram_quantile(q, buckets) == pytest.approx(q)
    assert histogram_quantile(0.5, [(1.0, 0.0), (inf, 0.0)]) is None
    # everything above the last finite bound: Prometheus answers that bound
    assert histogram_quantile(0.99, [(1.0, 0.0), (2.0, 0.0), (inf, 5.0)]) == 2.0
    with pytest.raises(InvalidParameterError, match="'q'"):
        histogram_quantile(1.5, buckets)


class _Fake:
    """A registry with the metric names the other layers record."""

    def __init__(self) -> None:
        self.reg = prom.CollectorRegistry()
        self.hits = prom.Counter("scaleforge_cache_hits_total", "h", ["tier"], registry=self.reg)
        self.misses = prom.Counter("scaleforge_cache_misses_total", "m", ["tier"], registry=self.reg)
        self.tasks = prom.Counter("scaleforge_tasks_completed_total", "t", ["executor"], registry=self.reg)
        self.queue = prom.Gauge("scaleforge_queue_depth", "q", ["executor"], registry=self.reg)
        self.workers = prom.Gauge("scaleforge_workers", "w", ["executor"], registry=self.reg)
        self.requests = prom.Counter("scaleforge_requests_total", "r", ["model", "status"], registry=self.reg)
        self.latency = prom.Histogram(
            "scaleforge_request_latency_seconds",
            "l",
            ["model"],
            registry=self.reg,
            buckets=[round(0.01 * k, 2) for k in range(1, 11)],
        )
        self.batch = prom.Histogram(
            "scaleforge_batch_size", "b", registry=self.reg, buckets=[1, 2, 4, 8, 16, 32, 64]
        )


def test_rates_hit_rates_and_percentiles_are_exact() -> None:
    fake = _Fake()
    col = MetricsCollector([RegistrySource(fake.reg)], alerts=AlertManager([]), window_s=100.0)
    empty = col.poll(now=1000.0)
    assert "cache_hit_rate" not in empty["figures"]
    assert "tasks_per_s" not in empty["figures"]
    for step in range(1, 6):
        fake.hits.labels(tier="memory").inc(3)
        fake.misses.labels(tier="memory").inc(1)
        fake.hits.labels(tier="disk").inc(1)
        fake.misses.labels(tier="disk").inc(1)
        fake.tasks.labels(executor="processes").inc(20)
        fake.requests.labels(model="m", status="200").inc(9)
        fake.requests.labels(model="m", status="500").inc(1)
        for k in range(1, 11):
            fake.latency.labels(model="m").observe(0.01 * k - 0.005)
        fake.batch.observe(3)
        snap = col.poll(now=1000.0 + 2.0 * step)
    f = snap["figures"]
    assert f["tasks_per_s"] == pytest.approx(10.0)  # 20 tasks every 2 s
    assert f["requests_per_s"] == pytest.approx(5.0)
    assert f["cache_hit_rate:memory"] == pytest.approx(0.75)
    assert f["cache_hit_rate:disk"] == pytest.approx(0.5)
    assert f["cache_hit_rate"] == pytest.approx(20 / 30)
    assert f["error_rate"] == pytest.approx(0.5 / 15.0)  # 0.5 failed req/s over 5 req/s + 10 tasks/s
    # latencies uniform in 10 ms buckets: p50 = 50 ms, p99 = 99 ms
    assert f["latency_p50_s"] == pytest.approx(0.05)
    assert f["latency_p99_s"] == pytest.approx(0.099)
    assert f["batch_size_mean"] == pytest.approx(3.0)
    fake.queue.labels(executor="processes").set(7)
    fake.workers.labels(executor="processes").set(2)
    f = col.poll(now=1012.0)["figures"]
    assert (f["queue_depth"], f["workers"]) == (7.0, 2.0)
    assert f["tasks_per_s"] == pytest.approx(100 / 12)  # nothing new in the last 2 s
    chart = col.snapshot()["charts"]["cache"]["series"]
    assert set(chart) == {"all tiers", "memory", "disk"}


def test_jobs_and_workload_figures() -> None:
    reg = prom.CollectorRegistry()
    by_status = prom.Gauge("scaleforge_jobs_by_status", "s", ["status"], registry=reg)
    finished = prom.Counter("scaleforge_jobs_finished_total", "f", ["workload", "status"], registry=reg)
    samples = prom.Counter("scaleforge_pde_samples_generated_total", "p", ["dataset", "source"], registry=reg)
    episodes = prom.Counter(
        "scaleforge_habitat_episodes_evaluated_total", "e", ["policy", "role"], registry=reg
    )
    col = MetricsCollector([RegistrySource(reg)], alerts=AlertManager([]), window_s=100.0)
    assert "jobs_queued" not in col.poll(now=0.0)["figures"]
    for step in range(1, 5):
        by_status.labels(status="queued").set(10 - step)
        by_status.labels(status="succeeded").set(step)
        finished.labels(workload="w", status="succeeded").inc(2)
        samples.labels(dataset="darcy", source="computed").inc(6)
        samples.labels(dataset="darcy", source="cache").inc(2)
        episodes.labels(policy="pid", role="policy").inc(1)
        snap = col.poll(now=4.0 * step)
    f = snap["figures"]
    assert (f["jobs_queued"], f["jobs_succeeded"]) == (6.0, 4.0)
    assert f["jobs_finished_per_s"] == pytest.approx(0.5)  # 2 every 4 s
    assert f["pde_samples_per_s"] == pytest.approx(2.0)  # 8 every 4 s, computed or cached
    assert f["habitat_episodes_per_s"] == pytest.approx(0.25)
    assert "clustering_runs_per_s" not in f
    workloads = snap["charts"]["workloads"]["series"]
    assert {"pde_samples_per_s", "habitat_episodes_per_s", "jobs_finished_per_s"} <= set(workloads)
    assert {"jobs_queued"} <= set(snap["charts"]["queue"]["series"])


def test_alerts_and_recommendations_come_with_the_snapshot() -> None:
    fake = _Fake()
    rules = [AlertRule("busy", "tasks_per_s", 1.0, 1e9, for_s=0)]
    col = MetricsCollector([RegistrySource(fake.reg)], alerts=AlertManager(rules), window_s=100.0)
    col.record_system({"memory_percent": 96.0, "cpu_percent": 10.0})
    col.poll(now=0.0)
    fake.tasks.labels(executor="processes").inc(50)
    snap = col.poll(now=1.0)
    assert [a["rule"] for a in snap["alerts"]] == ["busy"]
    assert [r["rule"] for r in snap["recommendations"]] == ["memory_near_limit"]


def test_a_dead_source_is_reported_not_raised() -> None:
    col = MetricsCollector([ScrapeSource(f"http://127.0.0.1:{free_port()}/metrics", timeout_s=0.5)])
    snap = col.poll()
    assert snap["sources"][0]["up"] is False
    assert snap["sources"][0]["error"]
    col.close()


_EXPORTER = textwrap.dedent(
    """
    import sys, time
    import prometheus_client as prom
    c = prom.Counter("scaleforge_tasks_completed_total", "t", ["executor"])
    c.labels(executor="ray").inc(42)
    prom.start_http_server(int(sys.argv[1]), addr="127.0.0.1")
    print("ready", flush=True)
    time.sleep(60)
    """
)


@pytest.fixture
def exporter() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _EXPORTER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        proc.kill()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_scrape_source_reads_another_process(exporter: str) -> None:
    src = ScrapeSource(exporter)
    try:
        points = {p.key: p.value for p in src.read()}
    finally:
        src.close()
    assert points[series_key("scaleforge_tasks_completed_total", [("executor", "ray")])] == 42.0
    with pytest.raises(InvalidParameterError, match="http"):
        ScrapeSource("127.0.0.1:8000/metrics")


def test_multiprocess_source_reads_worker_files(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom scaleforge.monitor import metrics\nmetrics.enable_multiprocess(sys.argv[1])\n"
        "metrics.counter('scaleforge_cache_hits_total', 'h', ['tier']).labels(tier='disk').inc(5)\n"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60)
    points = {p.key: p.value for p in MultiprocessSource(tmp_path).read()}
    assert points['scaleforge_cache_hits_total{tier="disk"}'] == 10.0
    with pytest.raises(InvalidParameterError, match="not a directory"):
        MultiprocessSource(tmp_path / "missing")
