"""The dashboard's HTTP API, in process (the SSE stream and uvicorn are in tests/integration)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import prometheus_client as prom
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scaleforge.monitor.alerts import AlertManager, AlertRule
from scaleforge.monitor.collector import MetricsCollector
from scaleforge.monitor.dashboard import STATIC_DIR, Dashboard, build_dashboard, create_app
from scaleforge.monitor.sources import RegistrySource


class _Client:
    """A synchronous face over httpx's in-process ASGI transport (no server, no socket)."""

    def __init__(self, app: Any) -> None:
        self._app = app

    def get(self, path: str) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self._app)
            async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
                response = await client.get(path)
                await response.aread()
                return response

        return asyncio.run(go())


@pytest.fixture
def served() -> Iterator[tuple[_Client, prom.Counter]]:
    reg = prom.CollectorRegistry()
    tasks = prom.Counter("scaleforge_tasks_completed_total", "t", ["executor"], registry=reg)
    rules = [AlertRule("Busy workers", "tasks_per_s", 0.5, 1e9, for_s=0)]
    collector = MetricsCollector([RegistrySource(reg)], alerts=AlertManager(rules), window_s=30)
    dash = Dashboard(collector, interval_s=0.05, sampler=False).start()
    try:
        yield _Client(create_app(dash, manage=False)), tasks
    finally:
        dash.stop()
    assert dash.stopped


def _wait_for(
    client: _Client, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 20.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    snap: dict[str, Any] = {}
    while time.monotonic() < deadline:
        snap = client.get("/api/snapshot").json()
        if predicate(snap):
            return snap
        time.sleep(0.02)
    raise AssertionError(f"snapshot never satisfied the condition: {snap}")


def test_endpoints(served: tuple[_Client, prom.Counter]) -> None:
    client, tasks = served
    page = client.get("/")
    assert page.status_code == 200 and "scaleforge" in page.text and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/v1/alerts").json() == {"alerts": []}
    tasks.labels(executor="processes").inc(5)
    snap = _wait_for(client, lambda s: s["figures"].get("tasks_per_s", 0) > 0)
    assert snap["figures"]["tasks_completed_total"] == 5.0
    alerts = _wait_for(client, lambda s: bool(s["alerts"]))["alerts"]
    assert alerts[0]["rule"] == "Busy workers"
    assert client.get("/v1/alerts").json()["alerts"][0]["severity"] == "warning"
    text = client.get("/metrics").text
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "scaleforge_alerts_fired" in names
    assert client.get("/api/health").json()["status"] == "ok"


def test_build_dashboard_reads_settings_and_persists(tmp_path: Path) -> None:
    dash = build_dashboard(
        multiprocess_dir=tmp_path / "mp", store_path=tmp_path / "ts.sqlite", interval_s=0.5, sampler=False
    )
    assert [s.kind for s in dash.collector.sources] == ["registry", "multiprocess"]
    dash.poll_once()
    dash.stop()
    assert (tmp_path / "ts.sqlite").stat().st_size > 0


def test_static_files_are_shipped() -> None:
    assert {p.name for p in STATIC_DIR.iterdir()} >= {"index.html", "app.js", "style.css"}
    html = (STATIC_DIR / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # no CDN
