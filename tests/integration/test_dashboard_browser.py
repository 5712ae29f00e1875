"""The dashboard in headless Chromium, watching another process that does real work.

A subprocess runs the real layers and serves this process's ``scaleforge.monitor``
registry on ``/metrics``: a ``@cached`` linear solve over a memory tier in front of a
disk tier (``TieredCache``), called through ``scaleforge.map`` on threads with new
keys arriving, and a ``scaleforge.serve`` app answering predict requests (over
``httpx.ASGITransport``). The dashboard scrapes it; the page must show non-zero
figures and charts, and an alert rule with a tiny threshold must appear on the page.
No metric name is written by hand here, so a name changed in a layer but not in the
dashboard fails this test.
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
    import asyncio, sys, time
    import httpx
    import numpy as np
    import prometheus_client as prom
    import scaleforge as sf
    from scaleforge.cache.decorators import cached
    from scaleforge.cache.disk import DiskTier
    from scaleforge.cache.memory import MemoryTier
    from scaleforge.cache.tiered import TieredCache
    from scaleforge.compute.local import ThreadExecutor
    from scaleforge.monitor import metrics
    from scaleforge.serve.app import create_app

    port, cache_dir = int(sys.argv[1]), sys.argv[2]
    tiers = TieredCache([MemoryTier(max_bytes="48KB"), DiskTier(cache_dir, max_bytes="50MB")])

    @cached(cache=tiers)
    def solve(key):
        rng = np.random.default_rng(key)
        a = rng.standard_normal((60, 60)) + 60 * np.eye(60)
        return np.linalg.solve(a, np.ones(60))  # the real work

    def spectrum(x):
        return np.linalg.svd(np.asarray(x, dtype=float).reshape(-1, 4), compute_uv=False)

    app = create_app({"spectrum": spectrum}, tokens={})
    executor = ThreadExecutor(max_workers=2)

    async def main():
        rng = np.random.default_rng(0)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sf.test") as client:
                prom.start_http_server(port, addr="127.0.0.1", registry=metrics.REGISTRY)
                deadline = time.monotonic() + 120
                step = 0
                while time.monotonic() < deadline:
                    step += 1
                    keys = rng.integers(0, 20 + step // 2, size=6).tolist()  # new keys keep arriving
                    await asyncio.to_thread(sf.map, solve, keys, executor=executor, progress=False)
                    inputs = rng.standard_normal((int(rng.integers(1, 9)), 8)).tolist()
                    r = await client.post("/v1/models/spectrum/predict", json={"inputs": inputs})
                    r.raise_for_status()
                    await asyncio.sleep(0.01)

    asyncio.run(main())
    """
)


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(port), str(tmp_path / "cache")])
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
