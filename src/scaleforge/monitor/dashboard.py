"""The live web dashboard: FastAPI, server-sent events and static files shipped in the package.

``scaleforge dashboard`` builds a :class:`Dashboard` (a poller thread over a
:class:`~scaleforge.monitor.collector.MetricsCollector`, plus a
:class:`~scaleforge.monitor.sampler.SystemSampler`) and serves
:func:`create_app`:

- ``/``              the page (``static/index.html``; plain SVG charts, no CDN)
- ``/api/snapshot``  the latest snapshot as JSON
- ``/api/stream``    the same, pushed as server-sent events at every poll
- ``/v1/alerts``     the active alerts
- ``/metrics``       this process's metrics (and a multiprocess directory) for Prometheus

It reads metrics from this process, from a multiprocess directory and from
``/metrics`` URLs of other processes, so it can be opened while a ``map`` or a
model server runs elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

from scaleforge._validation import check_number
from scaleforge.errors import MissingDependencyError
from scaleforge.monitor import metrics
from scaleforge.monitor.alerts import AlertManager, AlertRule
from scaleforge.monitor.collector import MetricsCollector
from scaleforge.monitor.sampler import SystemSampler
from scaleforge.monitor.sources import MetricSource, MultiprocessSource, RegistrySource, ScrapeSource
from scaleforge.monitor.timeseries import TimeSeriesStore

try:  # this module is the monitor layer's web backend: it needs FastAPI
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, Response, StreamingResponse
    from fastapi.staticfiles import StaticFiles
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "The dashboard needs FastAPI and uvicorn: pip install 'scaleforge[monitor]'"
    ) from _exc

__all__ = ["STATIC_DIR", "Dashboard", "build_dashboard", "create_app", "run_dashboard", "serve_in_thread"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


def _dumps(obj: Any) -> bytes:
    import orjson

    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)  # NaN/inf become null


class Dashboard:
    """A collector polled on a background thread, with an optional system sampler.

    Parameters
    ----------
    collector : MetricsCollector
    interval_s : float, default=1.0
        Seconds between polls (and between server-sent events).
    sampler : SystemSampler or bool, default=True
        ``True`` starts a sampler of this machine at ``interval_s``; ``False`` none.
    multiprocess_dir : path-like, optional
        Also merged into ``/metrics``.
    """

    def __init__(
        self,
        collector: MetricsCollector,
        *,
        interval_s: float = 1.0,
        sampler: SystemSampler | bool = True,
        multiprocess_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        check_number(interval_s, "interval_s", "Dashboard", minimum=0, exclusive_minimum=True)
        self.collector = collector
        self.interval_s = float(interval_s)
        if sampler is True:
            self.sampler: SystemSampler | None = SystemSampler(interval_s, on_sample=collector.record_system)
        elif sampler is False:
            self.sampler = None
        else:
            self.sampler = sampler
            if sampler.on_sample is None:
                sampler.on_sample = collector.record_system
        self.multiprocess_dir = Path(multiprocess_dir) if multiprocess_dir is not None else None
        self.polls = 0
        self.poll_errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()

    def poll_once(self) -> dict[str, Any]:
        """Poll now and wake the SSE streams."""
        snap = self.collector.poll()
        with self._changed:
            self.polls += 1
            self._changed.notify_all()
        return snap

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # keep serving the last snapshot
                self.poll_errors += 1
                logger.exception("dashboard poll failed")
            self._stop.wait(self.interval_s)

    def start(self) -> Dashboard:
        """Start the sampler and the poller thread."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        if self.sampler is not None:
            self.sampler.sample_once()  # a first sample, so the page is not empty
            self.sampler.start()
        self._thread = threading.Thread(target=self._run, name="scaleforge-dashboard-poll", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the poller and the sampler, flush the store."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self.sampler is not None:
            self.sampler.close()
        self.collector.close()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def wait_for_poll(self, after: int, timeout_s: float) -> int:
        """Block until more than ``after`` polls happened (or timeout); return the poll count."""
        with self._changed:
            self._changed.wait_for(lambda: self.polls > after or self._stop.is_set(), timeout=timeout_s)
            return self.polls

    def metrics_text(self) -> bytes:
        """This process's metrics, merged with the multiprocess directory if any."""
        if self.multiprocess_dir is not None and self.multiprocess_dir.is_dir():
            return metrics.generate_latest(multiprocess_dir=self.multiprocess_dir)
        return metrics.generate_latest()


def build_dashboard(
    *,
    scrape: Iterable[str] = (),
    multiprocess_dir: str | os.PathLike[str] | None = None,
    include_local: bool = True,
    store_path: str | os.PathLike[str] | None = None,
    rules: Iterable[AlertRule] | None = None,
    webhook_url: str | None = None,
    interval_s: float | None = None,
    sampler: bool = True,
    window_s: float = 15.0,
) -> Dashboard:
    """Assemble a dashboard from the usual parts.

    Parameters
    ----------
    scrape : iterable of str, default=()
        ``/metrics`` URLs of other processes.
    multiprocess_dir : path-like, optional
        Directory of multiprocess metrics; defaults to ``Settings.monitor.multiprocess_dir``.
    include_local : bool, default=True
        Read this process's registry too.
    store_path : path-like, optional
        SQLite file for history; defaults to ``Settings.monitor.store_path`` (memory only when unset).
    rules : iterable of AlertRule, optional
        Alert rules; the defaults when omitted.
    webhook_url : str, optional
        POST alert transitions there.
    interval_s : float, optional
        Poll and sample interval; defaults to ``Settings.monitor.sample_interval_s``.
    sampler : bool, default=True
        Sample CPU/memory/GPU of this machine.
    window_s : float, default=15.0
        Window of rates.

    Returns
    -------
    Dashboard
    """
    from scaleforge.settings import get_settings

    settings = get_settings().monitor
    interval = settings.sample_interval_s if interval_s is None else interval_s
    mp_dir = settings.multiprocess_dir if multiprocess_dir is None else multiprocess_dir
    path = settings.store_path if store_path is None else store_path
    sources: list[MetricSource] = []
    own_dir = metrics.multiprocess_dir()
    if include_local and not (mp_dir is not None and own_dir is not None and Path(mp_dir) == own_dir):
        # (a process recording into the directory is read from there, not twice)
        sources.append(RegistrySource())
    if mp_dir is not None:
        Path(mp_dir).mkdir(parents=True, exist_ok=True)
        sources.append(MultiprocessSource(mp_dir))
    sources.extend(ScrapeSource(url) for url in scrape)
    collector = MetricsCollector(
        sources,
        store=TimeSeriesStore(path=path),
        alerts=AlertManager(rules, webhook_url=webhook_url),
        window_s=window_s,
    )
    return Dashboard(collector, interval_s=interval, sampler=sampler, multiprocess_dir=mp_dir)


def create_app(dashboard: Dashboard, *, manage: bool = True) -> FastAPI:
    """The FastAPI application serving a dashboard.

    Parameters
    ----------
    dashboard : Dashboard
    manage : bool, default=True
        Start the dashboard when the app starts and stop it when the app stops.

    Returns
    -------
    fastapi.FastAPI

    Raises
    ------
    MissingDependencyError
        Without FastAPI: ``pip install 'scaleforge[monitor]'``.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage:
            dashboard.start()
        try:
            yield
        finally:
            if manage:
                await asyncio.to_thread(dashboard.stop)

    app = FastAPI(title="scaleforge dashboard", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/api/snapshot")
    def snapshot() -> Response:
        return Response(_dumps(dashboard.collector.snapshot()), media_type="application/json")

    @app.get("/v1/alerts")
    def alerts() -> Response:
        active = [a.to_dict() for a in dashboard.collector.alerts.active()]
        return Response(_dumps({"alerts": active}), media_type="application/json")

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(dashboard.metrics_text(), media_type=metrics.CONTENT_TYPE_LATEST)

    @app.get("/api/health")
    def health() -> Response:
        return Response(_dumps({"status": "ok", "polls": dashboard.polls}), media_type="application/json")

    @app.get("/api/stream")
    async def stream(request: Request) -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            seen = -1
            yield b"retry: 2000\n\n"
            while not dashboard.stopped and not await request.is_disconnected():
                if dashboard.polls != seen:
                    seen = dashboard.polls
                    yield b"data: " + _dumps(dashboard.collector.snapshot()) + b"\n\n"
                else:
                    yield b": keep-alive\n\n"
                # poll a counter rather than park a thread per client: cheap, and no executor to exhaust
                loop = asyncio.get_running_loop()
                deadline = loop.time() + min(dashboard.interval_s * 2, 5.0)
                while dashboard.polls == seen and not dashboard.stopped and loop.time() < deadline:
                    await asyncio.sleep(min(0.05, dashboard.interval_s / 4))

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


def run_dashboard(dashboard: Dashboard, *, host: str = "127.0.0.1", port: int = 8787) -> None:
    """Serve a dashboard with uvicorn until interrupted.

    Parameters
    ----------
    dashboard : Dashboard
    host : str, default="127.0.0.1"
    port : int, default=8787
    """
    check_number(port, "port", "run_dashboard", minimum=0, maximum=65535, integer=True)
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError(
            "The dashboard needs uvicorn: pip install 'scaleforge[monitor]'"
        ) from exc
    uvicorn.run(create_app(dashboard), host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)


@contextlib.contextmanager
def serve_in_thread(dashboard: Dashboard, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve on a thread (for tests and notebooks); yields the base URL.

    Parameters
    ----------
    dashboard : Dashboard
    host : str, default="127.0.0.1"
    port : int, default=0
        0 picks a free port.
    """
    import socket

    import uvicorn

    if port == 0:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
    config = uvicorn.Config(
        create_app(dashboard),
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="scaleforge-dashboard-http", daemon=True)
    thread.start()
    try:
        import time

        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not start on {host}:{port}")
            time.sleep(0.02)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        dashboard.stop()
        thread.join(15)
