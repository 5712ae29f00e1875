"""Schemathesis against the server's own OpenAPI schema: no generated request may get a 5xx.

The schema comes from ``app.openapi()`` (no network); requests go to the same
app served by uvicorn on a free loopback port. Examples are bounded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from scaleforge.serve.app import create_app
from scaleforge.serve.base import ModelAPI, ModelContext
from scaleforge.testing.fixtures import free_port

pytestmark = pytest.mark.integration


class Affine(ModelAPI):
    input_shape = (3,)

    def predict(self, batch: list[Any], ctx: ModelContext) -> list[Any]:
        return list(2 * np.stack(batch) + 1)


@schemathesis.serializer("application/msgpack", "application/x-npy")
def _raw_bytes(ctx: Any, value: Any) -> bytes:
    """Binary bodies are sent as generated: arbitrary bytes must get a 4xx, never a 5xx."""
    if isinstance(value, bytes):
        return value
    return str(value).encode()


APP = create_app({"affine": Affine()}, max_body_bytes=65536)
schema = schemathesis.openapi.from_dict(APP.openapi())


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(APP, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case: Any, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, checks=[not_a_server_error])
    if "{name}" in case.path and case.method.upper() == "POST":  # the same fuzzed body against the real model
        case.path_parameters = {**(case.path_parameters or {}), "name": "affine"}
        case.call_and_validate(base_url=base_url, checks=[not_a_server_error])
