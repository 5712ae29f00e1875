"""The HTTP app in-process: endpoints, formats, faults (4xx never 5xx for bad input), auth, metrics."""

from __future__ import annotations

import asyncio
import io
import logging
import uuid
from typing import Any

import httpx
import numpy as np
import pytest
from _serve_helpers import metric_value, run_with_client

from scaleforge.serve.app import create_app
from scaleforge.serve.base import ModelAPI, ModelContext
from scaleforge.serve.batching import BatchPolicy
from scaleforge.settings import Settings


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"  # metrics are process-global: fresh labels per test


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


class Affine(ModelAPI):
    """y = 2x + 1 on items of shape (3,)."""

    input_shape = (3,)

    def predict(self, batch: list[Any], ctx: ModelContext) -> list[Any]:
        return list(2 * np.stack(batch) + 1)


class FailsOnNegative(ModelAPI):
    """Raises for any batch holding a negative number; a wrong-length answer for 999."""

    def predict(self, batch: list[Any], ctx: ModelContext) -> list[Any]:
        if any((x < 0).any() for x in batch):
            raise RuntimeError("negative input crashed the model")
        if any((x == 999).any() for x in batch):
            return []
        return [x.sum() for x in batch]


def _assert_error(r: httpx.Response, status: int, kind: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    doc: dict[str, Any] = r.json()
    assert set(doc) == {"error", "message", "error_id"} and len(doc["error_id"]) == 32 and doc["message"]
    if kind is not None:
        assert doc["error"] == kind
    return doc


def test_predict_json_single_and_many_and_models_listing() -> None:
    name = _name("affine")
    app = create_app({name: Affine()})

    async def body(c: httpx.AsyncClient) -> None:
        r = await c.post(f"/v1/models/{name}/predict", json={"inputs": [[1, 2, 3], [0, 0, 0]]})
        assert r.status_code == 200
        assert r.json() == {"outputs": [[3, 5, 7], [1, 1, 1]], "model": name, "version": "1"}
        r = await c.post(f"/v1/models/{name}/predict", json={"input": [1, 1, 1]})
        assert r.json()["output"] == [3, 3, 3]
        r = await c.post(f"/v1/models/{name}/predict?version=1", json={"input": [1, 1, 1]})
        assert r.status_code == 200
        models = (await c.get("/v1/models")).json()["models"]
        assert {"name": name, "versions": ["1"]}.items() <= next(
            m for m in models if m["name"] == name
        ).items()
        desc = (await c.get(f"/v1/models/{name}")).json()
        assert desc["versions"]["1"]["input"]["input_shape"] == [3]
        assert (await c.get("/ready")).json()["status"] == "ready"
        assert (await c.get("/health")).json() == {"status": "ok"}
        stats = (await c.get("/stats")).json()["models"][name]["1"]
        assert stats["requests"] == 3 and stats["items"] == 4

    run_with_client(app, body)


def test_binary_formats_npy_and_msgpack() -> None:
    from scaleforge.serve.wire import pack_msgpack, unpack_msgpack

    name = _name("affine")
    app = create_app({name: Affine()})
    x = np.arange(6, dtype=np.float32).reshape(2, 3)

    async def body(c: httpx.AsyncClient) -> None:
        r = await c.post(
            f"/v1/models/{name}/predict",
            content=_npy(x),
            headers={"content-type": "application/x-npy", "accept": "application/x-npy"},
        )
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-npy"
        np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), 2 * x + 1)
        r = await c.post(
            f"/v1/models/{name}/predict",
            content=pack_msgpack({"inputs": x}),
            headers={"content-type": "application/msgpack", "accept": "application/msgpack"},
        )
        out = unpack_msgpack(r.content)
        np.testing.assert_array_equal(np.stack(out["outputs"]), 2 * x + 1)
        assert out["outputs"][0].dtype == np.float32  # raw buffers keep the dtype
        r = await c.post(
            f"/v1/models/{name}/predict", json={"input": [1, 2, 3]}, headers={"accept": "text/html"}
        )
        _assert_error(r, 406, "not_acceptable")

    run_with_client(app, body)


def test_bad_input_gets_4xx_json_errors_never_5xx() -> None:
    name = _name("affine")
    app = create_app({name: Affine()}, max_body_bytes=4096, policy=BatchPolicy(8, 0.001))
    url = f"/v1/models/{name}/predict"

    async def body(c: httpx.AsyncClient) -> None:
        _assert_error(await c.post(url, content=b"{not json"), 400, "malformed_body")
        doc = _assert_error(await c.post(url, content=b'{"input": [NaN, 1, 2]}'), 400, "malformed_body")
        assert "NaN" in doc["message"]
        doc = _assert_error(await c.post(url, json={"input": [1, 2]}), 422, "invalid_input")
        assert "shape" in doc["message"]
        doc = _assert_error(await c.post(url, json={"input": ["a", "b", "c"]}), 422, "invalid_input")
        assert "dtype" in doc["message"]
        _assert_error(await c.post(url, json={"input": [1, None, 2]}), 422)
        _assert_error(await c.post(url, json={"input": [[1, 2], [3]]}), 422)
        nan = np.array([[1.0, np.nan, 2.0]])
        doc = _assert_error(
            await c.post(url, content=_npy(nan), headers={"content-type": "application/x-npy"}), 422
        )
        assert "NaN" in doc["message"]
        _assert_error(await c.post(url, json={"inputs": []}), 422)
        _assert_error(await c.post(url, json={"inputs": [[1, 2, 3]] * 9}), 422)  # > max_batch_size items
        _assert_error(await c.post(url, json={"values": [1]}), 422)
        _assert_error(await c.post(url, json={"inputs": [[0.5] * 3] * 8, "pad": "x" * 5000}), 413)
        _assert_error(await c.post(url, content=b"1,2,3", headers={"content-type": "text/csv"}), 415)
        _assert_error(await c.post("/v1/models/nope/predict", json={"input": [1, 2, 3]}), 404, "not_found")
        _assert_error(await c.post(f"{url}?version=9", json={"input": [1, 2, 3]}), 404, "not_found")
        _assert_error(await c.get("/v1/models/nope"), 404)
        _assert_error(await c.get("/no/such/path"), 404)
        r = await c.post(url, json={"input": [1, 2, 3]})  # still serving after all that
        assert r.status_code == 200
        metrics = (await c.get("/metrics")).text
        assert metric_value(metrics, "scaleforge_serve_errors_total", model=name, kind="invalid_input") >= 8

    run_with_client(app, body)


def test_model_exception_gives_500_with_error_id_and_server_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = _name("fails")
    app = create_app({name: FailsOnNegative()})
    url = f"/v1/models/{name}/predict"

    async def body(c: httpx.AsyncClient) -> None:
        doc = _assert_error(await c.post(url, json={"input": [-1.0]}), 500, "model_error")
        assert "negative input crashed" in doc["message"]
        assert doc["error_id"] in caplog.text  # the id ties the response to the logged traceback
        doc = _assert_error(await c.post(url, json={"input": [999.0]}), 500, "model_error")
        assert "same length" in doc["message"]
        r = await c.post(url, json={"inputs": [[1.0, 2.0]]})
        assert r.status_code == 200 and r.json()["outputs"] == [3.0]
        text = (await c.get("/metrics")).text
        assert metric_value(text, "scaleforge_serve_errors_total", model=name, kind="model_error") == 2
        assert metric_value(text, "scaleforge_requests_total", model=name, status="500") == 2

    with caplog.at_level(logging.ERROR, logger="scaleforge.serve.app"):
        run_with_client(app, body)


def test_tokens_protect_everything_but_health() -> None:
    name = _name("affine")
    settings = Settings(serve={"tokens": {"ci": "ci-token-123", "ops": "ops-token-456"}})
    app = create_app({name: Affine()}, settings=settings)
    url = f"/v1/models/{name}/predict"

    async def body(c: httpx.AsyncClient) -> None:
        assert (await c.get("/health")).status_code == 200
        for path in ["/ready", "/metrics", "/stats", "/v1/models", f"/v1/models/{name}"]:
            r = await c.get(path)
            _assert_error(r, 401, "unauthorized")
            assert r.headers["www-authenticate"] == "Bearer"
        _assert_error(await c.post(url, json={"input": [1, 2, 3]}), 401)
        bad = {"authorization": "Bearer ops-token-457"}
        _assert_error(await c.post(url, json={"input": [1, 2, 3]}, headers=bad), 401)
        good = {"authorization": "Bearer ops-token-456"}
        assert (await c.post(url, json={"input": [1, 2, 3]}, headers=good)).status_code == 200
        text = (await c.get("/metrics", headers=good)).text
        assert metric_value(text, "scaleforge_serve_client_requests_total", client="ops") >= 2

    run_with_client(app, body)


def test_metrics_per_model_and_version() -> None:
    name = _name("affine")
    app = create_app({name: Affine()}, latency_buckets=[0.001, 0.01, 0.1, 1.0, 10.0])

    async def body(c: httpx.AsyncClient) -> None:
        url = f"/v1/models/{name}/predict"
        await asyncio.gather(*(c.post(url, json={"inputs": [[1, 2, 3]] * 2}) for _ in range(10)))
        text = (await c.get("/metrics")).text
        labels = {"model": name, "version": "1"}
        assert metric_value(text, "scaleforge_requests_total", status="200", **labels) == 10
        assert metric_value(text, "scaleforge_request_latency_seconds_count", **labels) == 10
        assert metric_value(text, "scaleforge_batch_size_sum", **labels) == 20  # items, not requests
        assert metric_value(text, "scaleforge_queue_wait_seconds_count", **labels) == 10
        assert 'scaleforge_request_latency_seconds_bucket{le="+Inf"' in text

    run_with_client(app, body)


def test_operator_is_served_with_mean_std_and_quantiles() -> None:
    class Op:
        def predict(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
            return 2 * np.asarray(x), np.abs(x) + 1

        def sample(self, x: Any, n: int, *, random_state: int | None = None) -> np.ndarray:
            return np.repeat((2 * np.asarray(x))[:, None], n, axis=1)

    name = _name("op")
    app = create_app({name: Op()}, model_options={name: {"quantiles": [0.5]}})

    async def body(c: httpx.AsyncClient) -> None:
        r = await c.post(f"/v1/models/{name}/predict", json={"input": [1.0, -3.0]})
        doc = r.json()
        assert doc["mean"] == [2.0, -6.0] and doc["std"] == [2.0, 4.0]
        assert doc["quantiles"] == {"0.5": [2.0, -6.0]}

    run_with_client(app, body)


def test_fastapi_route_serves_when_mounted_under_another_app() -> None:
    from fastapi import FastAPI

    name = _name("affine")
    inner = create_app({name: Affine()})
    outer = FastAPI()
    outer.mount("/api", inner)

    async def main() -> None:
        async with inner.router.lifespan_context(inner):
            transport = httpx.ASGITransport(app=outer)
            async with httpx.AsyncClient(transport=transport, base_url="http://sf.test") as c:
                r = await c.post(f"/api/v1/models/{name}/predict", json={"input": [0, 1, 2]})
                assert r.status_code == 200 and r.json()["output"] == [1, 3, 5]
                r = await c.post(f"/api/v1/models/{name}/predict", json={"input": [0, 1]})
                _assert_error(r, 422, "invalid_input")

    asyncio.run(main())


def test_openapi_documents_every_endpoint() -> None:
    app = create_app({_name("affine"): Affine()})
    paths = app.openapi()["paths"]
    for path in [
        "/v1/models/{name}/predict",
        "/v1/models",
        "/v1/models/{name}",
        "/health",
        "/ready",
        "/metrics",
        "/stats",
    ]:
        assert path in paths
    predict = paths["/v1/models/{name}/predict"]["post"]
    assert {"application/json", "application/msgpack", "application/x-npy"} <= set(
        predict["requestBody"]["content"]
    )
    assert {"400", "401", "404", "413", "422", "500", "503", "504"} <= set(predict["responses"])


def test_ready_is_503_before_startup_and_create_app_validates() -> None:
    from scaleforge.errors import InvalidParameterError

    app = create_app({})

    async def body(c: httpx.AsyncClient) -> None:
        _assert_error(await c.get("/ready"), 503, "not_ready")

    run_with_client(app, body)
    with pytest.raises(InvalidParameterError, match="max_body_bytes"):
        create_app({}, max_body_bytes=0)


def test_lifespan_shutdown_drains_in_flight_requests() -> None:
    import threading

    gate = threading.Event()

    class Slow(ModelAPI):
        def predict(self, batch: list[Any], ctx: ModelContext) -> list[Any]:
            gate.wait(10)
            return [float(x.sum()) for x in batch]

    name = _name("slow")
    app = create_app({name: Slow()}, policy=BatchPolicy(4, 0.0))

    async def main() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sf.test") as c:
            ctx = app.router.lifespan_context(app)
            await ctx.__aenter__()
            reqs = [
                asyncio.ensure_future(c.post(f"/v1/models/{name}/predict", json={"input": [i]}))
                for i in range(6)
            ]
            await asyncio.sleep(0.05)
            shutdown = asyncio.ensure_future(ctx.__aexit__(None, None, None))
            await asyncio.sleep(0.05)
            gate.set()
            await shutdown
            return [r.status_code for r in await asyncio.gather(*reqs)]

    assert asyncio.run(main()) == [200] * 6


def test_model_server_predicts_without_http() -> None:
    from scaleforge.serve.runtime import ModelNotFoundError, ModelServer

    server = ModelServer(policy=BatchPolicy(4, 0.001), settings=Settings())
    server.add("affine", Affine())

    async def main() -> None:
        await server.start()
        try:
            assert server.ready
            out = await server.predict("affine", [[1, 2, 3], [0, 0, 0]])
            np.testing.assert_array_equal(np.stack(out), [[3, 5, 7], [1, 1, 1]])
            with pytest.raises(ModelNotFoundError, match="Loaded models: affine"):
                await server.predict("other", [[1, 2, 3]])
        finally:
            await server.aclose()
        assert not server.ready

    asyncio.run(main())


def test_one_invalid_item_fails_only_its_request_with_422() -> None:
    from scaleforge.errors import InvalidParameterError

    class GridOp:
        def predict(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
            if np.shape(x)[1] < 4:
                raise InvalidParameterError("grid too coarse: use at least 4 points")
            return 2 * np.asarray(x), np.ones(np.shape(x))

        def sample(self, x: Any, n: int, *, random_state: int | None = None) -> np.ndarray:
            raise NotImplementedError

    name = _name("grid")
    app = create_app({name: GridOp()}, policy=BatchPolicy(8, 0.05))

    async def body(c: httpx.AsyncClient) -> None:
        url = f"/v1/models/{name}/predict"
        good4, good6, bad = await asyncio.gather(
            c.post(url, json={"input": [1.0] * 4}),
            c.post(url, json={"input": [1.0] * 6}),
            c.post(url, json={"input": [1.0, 1.0]}),
        )
        assert good4.json()["mean"] == [2.0] * 4 and good6.json()["mean"] == [2.0] * 6
        assert "coarse" in _assert_error(bad, 422, "invalid_input")["message"]

    run_with_client(app, body)
