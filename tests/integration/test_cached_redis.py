"""``@cached`` single flight across real processes through a real Redis, and a Redis that goes away.

Each worker is a separate Python process running ``_worker.py`` (written into
``tmp_path``), so the cached function has the same identity in every process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.redis]

HMAC_KEY_HEX = "11" * 32

WORKER = textwrap.dedent(
    """
    import sys, time
    import redis
    from scaleforge.cache.decorators import cached
    from scaleforge.cache.memory import MemoryTier
    from scaleforge.cache.redis import RedisTier
    from scaleforge.cache.tiered import TieredCache

    url, prefix, mode, n_procs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    client = redis.Redis.from_url(url)
    cache = TieredCache([MemoryTier(max_bytes=10**7),
                         RedisTier(url, prefix=prefix, key=bytes.fromhex("{key}"))])

    @cached(cache=cache, lock_expiry_s=float(sys.argv[5]) if len(sys.argv) > 5 else 60.0)
    def expensive(x):
        client.incr(prefix + "computations")
        # Stay inside the computation until every process has called, so the
        # others are waiting on the single-flight lock, not finding a result.
        deadline = time.monotonic() + 30
        while int(client.get(prefix + "calling") or 0) < n_procs and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        return x * 2

    if mode == "call":
        client.incr(prefix + "arrived")
        deadline = time.monotonic() + 60
        while int(client.get(prefix + "arrived") or 0) < n_procs and time.monotonic() < deadline:
            time.sleep(0.005)
        client.incr(prefix + "calling")
        print(expensive(21), expensive.cache_info()["computations"], flush=True)
    elif mode == "long":
        # A computation three times longer than the lock's expiry (argv[5] = 1.0 s).
        @cached(cache=cache, lock_expiry_s=float(sys.argv[5]))
        def long_job(x):
            client.incr(prefix + "computations")
            client.set(prefix + "started", 1)
            time.sleep(3.0)
            return x * 3

        if sys.argv[6] == "second":  # call once the first process is inside the computation
            deadline = time.monotonic() + 60
            while not client.get(prefix + "started") and time.monotonic() < deadline:
                time.sleep(0.005)
        print(long_job(7), long_job.cache_info()["computations"], flush=True)
    elif mode == "hold":
        lock = expensive.lock(expensive.key(21))
        acquired = lock.__enter__()
        print("held" if acquired else "not-held", flush=True)
        time.sleep(600)
    """
).replace("{key}", HMAC_KEY_HEX)


@pytest.fixture
def worker(tmp_path: Path) -> Path:
    path = tmp_path / "_worker.py"
    path.write_text(WORKER)
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCALEFORGE_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _spawn(worker: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(worker), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=worker.parent,
    )


def test_four_processes_compute_once(worker: Path, redis_url: str, redis_key_prefix: str) -> None:
    import redis

    n = 4
    procs = [_spawn(worker, redis_url, redis_key_prefix, "call", str(n)) for _ in range(n)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        outputs.append(out.split())
    client = redis.Redis.from_url(redis_url)
    try:
        assert int(client.get(redis_key_prefix + "computations")) == 1
    finally:
        client.close()
    assert all(o[0] == "42" for o in outputs)
    assert sorted(int(o[1]) for o in outputs) == [0, 0, 0, 1]


def test_a_computation_longer_than_the_lock_expiry_runs_once(
    worker: Path, redis_url: str, redis_key_prefix: str
) -> None:
    import redis

    first = _spawn(worker, redis_url, redis_key_prefix, "long", "1", "1.0", "first")
    second = _spawn(worker, redis_url, redis_key_prefix, "long", "1", "1.0", "second")
    outputs = []
    for proc in (first, second):
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        outputs.append(out.split())
    client = redis.Redis.from_url(redis_url)
    try:
        assert int(client.get(redis_key_prefix + "computations")) == 1  # the heartbeat kept the lock
    finally:
        client.close()
    assert outputs == [["21", "1"], ["21", "0"]]  # the second waited and got the first's result


def test_a_killed_lock_holder_does_not_block_forever(
    worker: Path, redis_url: str, redis_key_prefix: str
) -> None:
    import redis

    holder = _spawn(worker, redis_url, redis_key_prefix, "hold", "1", "2.0")
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=30)  # reap it and close its pipes
    # The lock (expiry 2 s) is still in Redis, held by a dead process.
    caller = _spawn(worker, redis_url, redis_key_prefix, "call", "1", "2.0")
    out, err = caller.communicate(timeout=120)
    assert caller.returncode == 0, err
    assert out.split() == ["42", "1"]
    client = redis.Redis.from_url(redis_url)
    try:
        assert int(client.get(redis_key_prefix + "computations")) == 1
    finally:
        client.close()


def test_calls_survive_redis_going_away_and_use_it_again(redis_server: object) -> None:
    from scaleforge.cache.decorators import cached
    from scaleforge.cache.memory import MemoryTier
    from scaleforge.cache.redis import RedisTier
    from scaleforge.cache.tiered import TieredCache

    server = redis_server
    url = server.url  # type: ignore[attr-defined]
    redis_tier = RedisTier(
        url, prefix="sfit:", key=bytes.fromhex(HMAC_KEY_HEX), breaker_cooldown_s=0.2, socket_timeout_s=1.0
    )
    cache = TieredCache([MemoryTier(max_bytes=10**7), redis_tier])
    calls: list[int] = []

    @cached(cache=cache)
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    assert square(3) == 9
    assert redis_tier.get(square.key(3)) == 9
    server.stop()  # type: ignore[attr-defined]
    for x in range(4, 10):  # Redis is gone: every call still returns the right result
        assert square(x) == x * x
    assert square(3) == 9  # memory tier still serves
    server.start()  # type: ignore[attr-defined]
    # After the breaker's cool-down the tier is used again (bounded polling, no fixed sleep).
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if square(100) == 10_000 and redis_tier.get(square.key(100)) == 10_000:
            break
        square.cache.delete(square.key(100))
        time.sleep(0.05)
    else:
        pytest.fail("the Redis tier was not used again after the server came back")
    assert sorted(set(calls)) == [3, 4, 5, 6, 7, 8, 9, 100]


def test_cli_stats_and_clear_the_redis_tier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, redis_key_prefix: str
) -> None:
    import json

    import redis
    from typer.testing import CliRunner

    from scaleforge.cache.registry import default_cache
    from scaleforge.cli.cache import app
    from scaleforge.settings import load_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCALEFORGE_CACHE__DISK__PATH", str(tmp_path / "cache"))
    monkeypatch.setenv("SCALEFORGE_CACHE__KEY_FILE", str(tmp_path / "config" / "hmac.key"))
    monkeypatch.setenv("SCALEFORGE_CACHE__REDIS__ENABLED", "true")
    monkeypatch.setenv("SCALEFORGE_CACHE__REDIS__URL", redis_url)
    monkeypatch.setenv("SCALEFORGE_CACHE__REDIS__PREFIX", redis_key_prefix)
    client = redis.Redis.from_url(redis_url)
    outside = redis_key_prefix.rstrip(":") + "-other:keep"
    client.set(outside, b"x")  # another namespace: clear must not touch it
    try:
        cache = default_cache(load_settings())
        key = "xxh3_128-v1-" + "4" * 32
        assert cache.set(key, list(range(100)))
        cache.close()
        runner = CliRunner()
        result = runner.invoke(app, ["stats", "--json"])
        assert result.exit_code == 0, result.output
        assert [row["tier"] for row in json.loads(result.output)["tiers"]] == ["memory", "disk", "redis"]
        assert client.keys(redis_key_prefix + "*")
        result = runner.invoke(app, ["clear", "--tier", "redis", "--yes"])
        assert result.exit_code == 0, result.output
        assert client.keys(redis_key_prefix + "*") == []
        assert client.get(outside) == b"x"
    finally:
        client.delete(outside)
        client.close()
