"""pytest fixtures shared by scaleforge's tests and by backend authors.

Services are found through ``SCALEFORGE_REDIS_URL`` / ``SCALEFORGE_DATABASE_URL``
(defaults: the loopback Redis and PostgreSQL of a developer machine). A test
that needs an absent service is skipped with the reason, unless
``SCALEFORGE_REQUIRE_SERVICES=1`` (CI), where it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = [
    "clean_environ",
    "database_url",
    "free_port",
    "global_random_seed",
    "redis_key_prefix",
    "redis_server",
    "redis_url",
    "require_or_skip",
    "wait_for_port",
]

# Read once at import, before the autouse fixture clears SCALEFORGE_* for each test.
_REDIS_URL = os.environ.get("SCALEFORGE_REDIS_URL", "redis://127.0.0.1:6379/15")
_DATABASE_URL = os.environ.get("SCALEFORGE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_REQUIRE = os.environ.get("SCALEFORGE_REQUIRE_SERVICES", "") == "1"
_SEED = int(os.environ.get("SCALEFORGE_TEST_SEED", "42"))


def require_or_skip(reason: str) -> None:
    """Skip the current test with ``reason``, or fail it when services are required."""
    if _REQUIRE:
        pytest.fail(f"SCALEFORGE_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout_s: float = 30.0) -> None:
    """Poll until something accepts connections on ``host:port`` (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout_s} s")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove SCALEFORGE_* variables so a developer's environment cannot change a test."""
    for key in list(os.environ):
        if key.startswith("SCALEFORGE_"):
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def global_random_seed() -> int:
    """The seed every randomised test uses (``SCALEFORGE_TEST_SEED``, default 42)."""
    return _SEED


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a reachable Redis, or skip (fail under SCALEFORGE_REQUIRE_SERVICES=1)."""
    try:
        import redis
    except ImportError:
        require_or_skip("redis-py is not installed: pip install 'scaleforge[redis]'")
    try:
        client = redis.Redis.from_url(_REDIS_URL, socket_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:
        require_or_skip(f"no Redis at {_REDIS_URL} ({exc}); set SCALEFORGE_REDIS_URL")
    return _REDIS_URL


@pytest.fixture
def redis_key_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix for one test; its keys are deleted afterwards."""
    import redis

    prefix = f"sftest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class RedisServer:
    """A private ``redis-server`` on a free loopback port that a test may stop and restart."""

    def __init__(self, workdir: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            require_or_skip("redis-server is not on PATH; install Debian's redis-server")
        self._exe = str(exe)
        self._workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [
                self._exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout_s=15)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """Start a private Redis the test can stop (``.stop()``) and restart (``.start()``)."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def database_url() -> str:
    """SQLAlchemy URL of a reachable PostgreSQL, or skip (fail when services are required)."""
    try:
        import sqlalchemy as sa
    except ImportError:
        require_or_skip("SQLAlchemy is not installed: pip install 'scaleforge[jobs]'")
    try:
        engine = sa.create_engine(_DATABASE_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:
        require_or_skip(f"no PostgreSQL at {_DATABASE_URL} ({exc}); set SCALEFORGE_DATABASE_URL")
    return _DATABASE_URL
