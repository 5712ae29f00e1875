"""Helpers shared by the serve tests: drive a FastAPI app in-process with its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


@contextlib.asynccontextmanager
async def app_client(app: Any, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan (startup, then drain on exit) around an httpx client bound to it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://sf.test", headers=headers
        ) as client:
            yield client


def run_with_client(app: Any, body: Callable[[httpx.AsyncClient], Awaitable[T]], **headers: str) -> T:
    """Run ``body(client)`` against the app on a fresh event loop."""

    async def main() -> T:
        async with app_client(app, **headers) as client:
            return await body(client)

    return asyncio.run(main())


def metric_value(text: str, name: str, **labels: str) -> float:
    """Value of one Prometheus sample in an exposition (0.0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return 0.0
