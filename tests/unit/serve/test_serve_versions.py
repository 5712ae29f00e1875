"""Versions served from the registry: default, A/B weights, sticky header, shadow, load/unload, real models."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
from _serve_helpers import metric_value, run_with_client

from scaleforge.serve.app import create_app
from scaleforge.serve.registry import ModelRegistry, Routing


def _model_py(k: int) -> bytes:
    return f"def scale(x):\n    return {k} * x\n".encode()


def _registry(tmp_path: Path, versions: dict[str, int]) -> tuple[ModelRegistry, str]:
    name = f"scale-{uuid.uuid4().hex[:8]}"
    reg = ModelRegistry(tmp_path)
    for v, k in versions.items():
        reg.publish(
            name, v, {"m.py": _model_py(k)}, loader="python", entry="m.py:scale", options={"input_shape": [1]}
        )
    return reg, name


def test_default_version_serves_and_explicit_version_pins(tmp_path: Path) -> None:
    reg, name = _registry(tmp_path, {"1": 10, "2": 20})
    reg.set_default(name, "1")
    app = create_app(registry=reg)

    async def body(c: httpx.AsyncClient) -> None:
        url = f"/v1/models/{name}/predict"
        r = (await c.post(url, json={"input": [1]})).json()
        assert (r["version"], r["output"]) == ("1", [10])
        desc = (await c.get(f"/v1/models/{name}")).json()
        assert desc["stored_versions"] == ["1", "2"] and set(desc["versions"]) == {
            "1"
        }  # only routed versions load
        assert len(desc["versions"]["1"]["sha256"]) == 64
        assert (await c.post(f"{url}?version=2", json={"input": [1]})).status_code == 404
        assert (await c.post(f"/v1/models/{name}/versions/2")).status_code == 200
        r = (await c.post(f"{url}?version=2", json={"input": [1]})).json()
        assert (r["version"], r["output"]) == ("2", [20])
        r = (await c.post(url, json={"input": [1]})).json()
        assert r["version"] == "1"  # loading a version does not route to it

    run_with_client(app, body)


def test_weighted_ab_split_and_sticky_header(tmp_path: Path) -> None:
    reg, name = _registry(tmp_path, {"a": 1, "b": 2})
    reg.set_routing(name, Routing(default="a", weights={"a": 1.0, "b": 3.0}, sticky_header="x-user-id"))
    app = create_app(registry=reg)
    url = f"/v1/models/{name}/predict"

    async def body(c: httpx.AsyncClient) -> None:
        counts = Counter()
        for _ in range(400):
            counts[(await c.post(url, json={"input": [1]})).json()["version"]] += 1
        assert counts["b"] / 400 == pytest.approx(0.75, abs=0.08)  # binomial sd ~0.022
        for user in ["alice", "bob", "carol", "dave"]:
            seen = {
                (await c.post(url, json={"input": [1]}, headers={"x-user-id": user})).json()["version"]
                for _ in range(8)
            }
            assert len(seen) == 1

    run_with_client(app, body)


def test_shadow_version_gets_copies_whose_answers_are_discarded(tmp_path: Path) -> None:
    reg, name = _registry(tmp_path, {"1": 1, "2": 2})
    reg.set_routing(name, Routing(default="1", shadow="2"))
    app = create_app(registry=reg)

    async def body(c: httpx.AsyncClient) -> None:
        for i in range(5):
            r = (await c.post(f"/v1/models/{name}/predict", json={"input": [i]})).json()
            assert (r["version"], r["output"]) == ("1", [i])
        shadow_ok = {"model": name, "version": "2", "outcome": "ok"}
        for _ in range(1000):  # the shadow copies finish in the background (bounded: ~10 s)
            text = (await c.get("/metrics")).text
            if metric_value(text, "scaleforge_serve_shadow_requests_total", **shadow_ok) == 5:
                break
            await asyncio.sleep(0.01)
        assert (
            metric_value(
                text, "scaleforge_serve_shadow_requests_total", model=name, version="2", outcome="ok"
            )
            == 5
        )
        assert metric_value(text, "scaleforge_batch_size_sum", model=name, version="2") == 5
        assert metric_value(text, "scaleforge_requests_total", model=name, version="2", status="200") == 0

    run_with_client(app, body)


def test_load_route_and_unload_without_restart(tmp_path: Path) -> None:
    reg, name = _registry(tmp_path, {"1": 1})
    app = create_app(registry=reg)
    url = f"/v1/models/{name}/predict"

    async def body(c: httpx.AsyncClient) -> None:
        reg.publish(name, "2", {"m.py": _model_py(5)}, loader="python", entry="m.py:scale")
        assert (await c.post(f"{url}?version=2", json={"input": [1]})).status_code == 404
        r = await c.put(f"/v1/models/{name}/routing", json={"default": "2"})
        assert r.status_code == 422 and "not loaded" in r.json()["message"]
        assert (await c.post(f"/v1/models/{name}/versions/2")).status_code == 200
        assert (await c.post(f"{url}?version=2", json={"input": [1]})).json()["output"] == [5]
        r = await c.put(f"/v1/models/{name}/routing", json={"default": "2"})
        assert r.status_code == 200
        assert (await c.post(url, json={"input": [1]})).json()["version"] == "2"
        assert reg.routing(name).default == "2"  # persisted
        assert (await c.delete(f"/v1/models/{name}/versions/1")).status_code == 200
        assert (await c.post(f"{url}?version=1", json={"input": [1]})).status_code == 404
        assert (await c.post(f"/v1/models/{name}/versions/9")).status_code == 422
        assert (await c.put(f"/v1/models/{name}/routing", content=b"{")).status_code == 400
        assert (await c.put(f"/v1/models/{name}/routing", json={"weights": {"2": -1}})).status_code == 422

    run_with_client(app, body)


def test_tampered_registry_version_is_refused_at_load(tmp_path: Path) -> None:
    reg, name = _registry(tmp_path, {"1": 1})
    app = create_app(registry=reg)

    async def body(c: httpx.AsyncClient) -> None:
        reg.publish(name, "2", {"m.py": _model_py(2)}, loader="python", entry="m.py:scale")
        (tmp_path / name / "2" / "m.py").write_bytes(_model_py(666))
        r = await c.post(f"/v1/models/{name}/versions/2")
        assert r.status_code == 500 and "Checksum mismatch" in r.json()["message"]
        assert (await c.post(f"/v1/models/{name}/predict", json={"input": [1]})).status_code == 200

    run_with_client(app, body)


def test_torch_export_version_is_served_with_the_exact_affine_answer(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    lin = torch.nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, -1.0]]))
        lin.bias.fill_(0.25)
    reg = ModelRegistry(tmp_path)
    name = f"lin-{uuid.uuid4().hex[:8]}"
    reg.publish_torch(name, "1", lin, np.zeros((4, 2)))
    app = create_app(registry=reg, device="cpu")

    async def body(c: httpx.AsyncClient) -> None:
        r = await c.post(f"/v1/models/{name}/predict", json={"inputs": [[1, 1], [2, 0], [0, 4]]})
        np.testing.assert_allclose(np.array(r.json()["outputs"]).ravel(), [2.25, 6.25, -3.75], rtol=1e-6)
        assert (await c.post(f"/v1/models/{name}/predict", json={"input": [1, 2, 3]})).status_code == 422

    run_with_client(app, body)


@pytest.mark.slow
def test_probabilistic_operator_from_the_workload_is_served_with_mean_and_std(tmp_path: Path) -> None:
    ops = pytest.importorskip("scaleforge.workloads.operators")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 16))
    op = ops.GaussianOperator(
        width=4, modes=2, depth=1, hidden=8, training=ops.TrainConfig(epochs=2, batch_size=8)
    )
    op.fit(x, 2 * x)
    reg = ModelRegistry(tmp_path)
    name = f"fno-{uuid.uuid4().hex[:8]}"
    reg.publish_operator(name, "1", op, options={"quantiles": [0.1, 0.9]})
    app = create_app(registry=reg)
    mean, std = op.predict(x[:2])

    async def body(c: httpx.AsyncClient) -> None:
        r = await c.post(f"/v1/models/{name}/predict", json={"inputs": x[:2].tolist()})
        outs = r.json()["outputs"]
        np.testing.assert_allclose([o["mean"] for o in outs], mean, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose([o["std"] for o in outs], std, rtol=1e-6, atol=1e-9)
        assert np.all(np.array(outs[0]["quantiles"]["0.9"]) > np.array(outs[0]["quantiles"]["0.1"]))
        bad = await c.post(f"/v1/models/{name}/predict", json={"input": [float(v) for v in x[0]] + [1.0]})
        assert bad.status_code in (200, 422)  # a finer 1D grid is valid input for an FNO

    run_with_client(app, body)
