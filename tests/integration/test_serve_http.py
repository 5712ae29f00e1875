"""The model server over real HTTP: uvicorn on a thread (free port, polled), concurrency, overload, faults.

Also ``scaleforge serve --workers 2`` as a real subprocess with Prometheus multiprocess metrics.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from scaleforge.serve.app import create_app
from scaleforge.serve.base import ModelAPI, ModelContext
from scaleforge.serve.batching import BatchPolicy
from scaleforge.testing.fixtures import free_port, wait_for_port

pytestmark = pytest.mark.integration


class ServerThread:
    """uvicorn serving ``app`` on a free loopback port in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise TimeoutError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


class Scale(ModelAPI):
    """y = 3x, sleeping per batch so that concurrent requests pile up."""

    def __init__(self, sleep_s: float = 0.0, gate: threading.Event | None = None) -> None:
        self.sleep_s = sleep_s
        self.gate = gate
        self.batch_sizes: list[int] = []

    def predict(self, batch: list[Any], ctx: ModelContext) -> list[Any]:
        if self.gate is not None:
            self.gate.wait(30)
        time.sleep(self.sleep_s)
        self.batch_sizes.append(len(batch))
        return list(3 * np.stack(batch))


def _name() -> str:
    return f"scale-{uuid.uuid4().hex[:8]}"


def test_64_concurrent_clients_get_their_own_answers_in_batches() -> None:
    name, model = _name(), Scale(sleep_s=0.01)
    app = create_app({name: model}, policy=BatchPolicy(32, 0.005))

    async def client(c: httpx.AsyncClient, k: int) -> list[bool]:
        ok = []
        for j in range(3):
            v = float(k * 10 + j)
            r = await c.post(f"/v1/models/{name}/predict", json={"input": [v, -v]})
            ok.append(r.status_code == 200 and r.json()["output"] == [3 * v, -3 * v])
        return ok

    async def main(url: str) -> list[list[bool]]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as c:
            return await asyncio.gather(*(client(c, k) for k in range(64)))

    with ServerThread(app) as srv:
        results = asyncio.run(main(srv.url))
        stats = httpx.get(f"{srv.url}/stats").json()["models"][name]["1"]
    assert all(all(r) for r in results)
    assert sum(model.batch_sizes) == 192 and max(model.batch_sizes) <= 32
    assert max(model.batch_sizes) > 1 and stats["batches"] < 192  # concurrent requests share batches


def test_overload_gives_503_with_retry_after_no_crash_bounded_queue_and_memory() -> None:
    import psutil

    name, model = _name(), Scale(sleep_s=0.03)
    app = create_app({name: model}, policy=BatchPolicy(4, 0.0), max_queue=8)
    proc = psutil.Process()
    max_queued = 0

    async def one(c: httpx.AsyncClient, i: int) -> tuple[int, str | None]:
        r = await c.post(f"/v1/models/{name}/predict", json={"input": [float(i)]})
        return r.status_code, r.headers.get("retry-after")

    async def watch(c: httpx.AsyncClient, stop: asyncio.Event) -> None:
        nonlocal max_queued
        while not stop.is_set():
            stats = (await c.get("/stats")).json()["models"][name]["1"]
            max_queued = max(max_queued, stats["queued_items"])
            await asyncio.sleep(0.005)

    async def main(url: str) -> list[tuple[int, str | None]]:
        # no keep-alive reuse: a connection closed by the server's idle timeout must not race a reuse
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        load = httpx.AsyncClient(base_url=url, limits=limits, timeout=60)
        async with load as c, httpx.AsyncClient(base_url=url, timeout=10) as w:
            stop = asyncio.Event()
            watcher = asyncio.ensure_future(watch(w, stop))
            try:
                return await asyncio.gather(*(one(c, i) for i in range(300)))
            finally:
                stop.set()
                await watcher

    with ServerThread(app) as srv:
        rss0 = proc.memory_info().rss
        results = asyncio.run(main(srv.url))
        rss1 = proc.memory_info().rss
        assert httpx.get(f"{srv.url}/health").status_code == 200
        after = httpx.post(f"{srv.url}/v1/models/{name}/predict", json={"input": [2.0]})
        assert after.status_code == 200 and after.json()["output"] == [6.0]
    codes = Counter(code for code, _ in results)
    assert set(codes) <= {200, 503}, codes
    assert codes[503] > 0 and codes[200] > 0
    assert all(ra is not None and int(ra) >= 1 for code, ra in results if code == 503)
    assert max_queued <= 8
    assert rss1 - rss0 < 150 * 2**20  # bounded: rejected requests are not kept


def test_request_timeout_is_504_and_the_server_recovers() -> None:
    gate = threading.Event()
    name = _name()
    app = create_app({name: Scale(gate=gate)}, request_timeout_s=0.2)
    with ServerThread(app) as srv:
        r = httpx.post(f"{srv.url}/v1/models/{name}/predict", json={"input": [1.0]}, timeout=30)
        assert r.status_code == 504 and r.json()["error"] == "timeout"
        gate.set()
        r = httpx.post(f"{srv.url}/v1/models/{name}/predict", json={"input": [1.0]}, timeout=30)
        assert r.status_code == 200


def test_graceful_shutdown_answers_in_flight_requests() -> None:
    gate = threading.Event()
    name = _name()
    app = create_app({name: Scale(gate=gate)}, policy=BatchPolicy(4, 0.0))
    srv = ServerThread(app).__enter__()
    codes: list[int] = []

    def call(i: int) -> None:
        r = httpx.post(f"{srv.url}/v1/models/{name}/predict", json={"input": [float(i)]}, timeout=30)
        codes.append(r.status_code)

    callers = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in callers:
        t.start()
    deadline = time.monotonic() + 10
    while app.state.server.stats()[name]["1"]["requests"] < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    srv.server.should_exit = True  # what SIGTERM does
    time.sleep(0.1)
    gate.set()
    for t in callers:
        t.join(timeout=30)
    srv.thread.join(timeout=30)
    assert not srv.thread.is_alive()
    assert codes == [200] * 8


@pytest.mark.slow
def test_cli_serves_with_two_workers_and_multiprocess_metrics(tmp_path: Path) -> None:
    (tmp_path / "mymodel.py").write_text("def double(x):\n    return 2 * x\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCALEFORGE_")}
    env["SCALEFORGE_MONITOR__MULTIPROCESS_DIR"] = str(tmp_path / "metrics")
    env["SCALEFORGE_SERVE__TOKENS"] = '{"ci": "ci-token-123"}'
    exe = Path(sys.executable).with_name("scaleforge")
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(exe), "serve", "mymodel.py:double", "--workers", "2", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        wait_for_port(port, timeout_s=60)
        url = f"http://127.0.0.1:{port}"
        auth = {"authorization": "Bearer ci-token-123"}
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/ready", headers=auth).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert httpx.post(f"{url}/v1/models/double/predict", json={"input": [1.0]}).status_code == 401
        for i in range(20):  # a new connection each time: both workers answer
            r = httpx.post(f"{url}/v1/models/double/predict", json={"input": [float(i)]}, headers=auth)
            assert r.json()["output"] == [2.0 * i]
        text = httpx.get(f"{url}/metrics", headers=auth).text
        line = next(
            ln for ln in text.splitlines()
            if ln.startswith("scaleforge_requests_total{") and 'status="200"' in ln and 'model="double"' in ln
        )  # fmt: skip
        assert float(line.rsplit(" ", 1)[1]) == 20.0  # summed over the worker processes
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()


@pytest.mark.ray
@pytest.mark.slow
def test_ray_serve_backend_serves_the_same_app() -> None:
    try:
        import ray
        from ray import serve
    except ImportError as exc:  # ray without its serve extra
        pytest.skip(f"Ray Serve is not installed ({exc}): pip install 'ray[serve]'")
    from scaleforge.serve.server import ServeSpec, deploy_ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()
    try:
        deploy_ray(ServeSpec("math:fabs", max_batch_size=8), http_port=port, name="sf-serve-test")
        url = f"http://127.0.0.1:{port}"
        r = httpx.post(f"{url}/v1/models/fabs/predict", json={"inputs": [-2.5, 3]}, timeout=60)
        assert r.status_code == 200 and r.json()["outputs"] == [2.5, 3.0]
        r = httpx.post(f"{url}/v1/models/fabs/predict", json={"inputs": ["x"]}, timeout=60)
        assert r.status_code == 422 and r.json()["error"] == "invalid_input"
    finally:
        serve.shutdown()
        if started:
            ray.shutdown()
