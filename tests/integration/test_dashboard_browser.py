"""The dashboard in headless Chromium, watching another process that does real work.

A subprocess solves small linear systems in a loop, with a dict cache in front
(memory tier) and a slower "disk" tier, and records the metric names the
cache/compute/serve layers use through prometheus_client, served on
``/metrics``. The dashboard scrapes it, the page must show non-zero figures and
charts, and an alert rule with a tiny threshold must appear on the page.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from scaleforge.monitor.alerts import AlertRule
from scaleforge.monitor.dashboard import build_dashboard, serve_in_thread
from scaleforge.testing.fixtures import free_port, require_or_skip, wait_for_port

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

_WORKER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import prometheus_client as prom

    hits = prom.Counter("scaleforge_cache_hits_total", "hits", ["tier"])
    misses = prom.Counter("scaleforge_cache_misses_total", "misses", ["tier"])
    done = prom.Counter("scaleforge_tasks_completed_total", "tasks", ["executor"])
    queue = prom.Gauge("scaleforge_queue_depth", "queue", ["executor"])
    workers = prom.Gauge("scaleforge_workers", "workers", ["executor"])
    requests = prom.Counter("scaleforge_requests_total", "requests", ["model", "status"])
    latency = prom.Histogram("scaleforge_request_latency_seconds", "latency", ["model"],
                             buckets=[0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1])
    batch = prom.Histogram("scaleforge_batch_size", "batch", buckets=[1, 2, 4, 8, 16, 32, 64])
    prom.start_http_server(int(sys.argv[1]), addr="127.0.0.1")
    rng = np.random.default_rng(0)
    memory, disk = {}, {}
    workers.labels(executor="processes").set(2)
    deadline = time.monotonic() + 120
    step = 0
    while time.monotonic() < deadline:
        step += 1
        key = int(rng.integers(0, 20 + step // 3))  # new keys keep arriving: misses keep computing
        if key in memory:
            hits.labels(tier="memory").inc()
        else:
            misses.labels(tier="memory").inc()
            if key in disk:
                hits.labels(tier="disk").inc()
                memory[key] = disk[key]
            else:
                misses.labels(tier="disk").inc()
                a = rng.standard_normal((60, 60)) + 60 * np.eye(60)
                x = np.linalg.solve(a, np.ones(60))       # the real work
                disk[key] = memory[key] = x
                done.labels(executor="processes").inc()
        if len(memory) > 15:
            memory.pop(next(iter(memory)))
        t0 = time.perf_counter()
        n = int(rng.integers(1, 9))
        np.linalg.svd(rng.standard_normal((n * 8, 16)))  # a "request" batch
        latency.labels(model="darcy").observe(time.perf_counter() - t0)
        requests.labels(model="darcy", status="200").inc(n)
        batch.observe(n)
        queue.labels(executor="processes").set(int(rng.integers(0, 5)))
        time.sleep(0.01)
    """
)


@pytest.fixture
def worker() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(port)])
    try:
        wait_for_port(port, timeout_s=60)
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        proc.kill()
        proc.wait(10)


def test_stream_pushes_snapshots_over_uvicorn() -> None:
    import httpx
    import prometheus_client as prom

    from scaleforge.monitor.collector import MetricsCollector
    from scaleforge.monitor.dashboard import Dashboard
    from scaleforge.monitor.sources import RegistrySource

    collector = MetricsCollector([RegistrySource(prom.CollectorRegistry())])
    dash = Dashboard(collector, interval_s=0.1, sampler=False)
    events = []
    with serve_in_thread(dash) as url, httpx.stream("GET", url + "/api/stream", timeout=10) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
            if len(events) == 2:
                break
    assert events[1]["time"] > events[0]["time"]
    assert set(events[0]) >= {"figures", "charts", "alerts", "recommendations", "sources"}
    assert dash.stopped


@pytest.mark.browser
def test_dashboard_shows_live_data_and_an_injected_alert(worker: str, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        require_or_skip(f"{CHROMIUM} is missing: apt-get install chromium (make test-setup)")
    sync_api = pytest.importorskip("playwright.sync_api")
    rule = AlertRule(
        "Injected test alert", "tasks_per_s", 0.001, 1e12, for_s=0, description="test-only threshold"
    )
    dash = build_dashboard(scrape=[worker], include_local=False, interval_s=0.25, rules=[rule], window_s=5.0)
    shot = tmp_path / "dashboard.png"
    with serve_in_thread(dash) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url, wait_until="domcontentloaded")
            # figures at the top: non-zero numbers, not the empty state
            page.wait_for_function(
                "() => { const b = document.querySelector('#card-tasks .big');"
                " return b && !b.classList.contains('empty') && parseFloat(b.textContent) > 0; }",
                timeout=30_000,
            )
            page.wait_for_function(
                "() => ['tasks', 'cache', 'latency', 'requests', 'system'].every(id => {"
                " const c = document.getElementById('chart-' + id);"
                " return c && Number(c.dataset.points) > 0 && c.querySelector('polyline'); })",
                timeout=30_000,
            )
            page.wait_for_selector("#alerts li[data-rule='Injected test alert']", timeout=30_000)
            page.wait_for_function("() => Number(document.body.dataset.updates || 0) >= 5", timeout=30_000)
            assert page.locator("#conn").inner_text() == "live"
            cache_text = page.locator("#card-cache .big").inner_text()
            assert cache_text.endswith("%") and float(cache_text.rstrip("%")) > 0
            assert float(page.locator("#card-requests .big").inner_text().replace("k", "")) > 0
            assert (
                "ms" in page.locator("#card-latency .big").inner_text()
                or "µs" in page.locator("#card-latency .big").inner_text()
            )
            assert page.locator("#card-alerts .big").inner_text() == "1"
            assert "tasks_per_s" in page.locator("#alerts").inner_text()
            assert page.locator("#chart-cache polyline").count() == 3  # all tiers, memory, disk
            page.screenshot(path=str(shot), full_page=True)
            assert errors == []
        finally:
            browser.close()
    assert shot.stat().st_size > 20_000
