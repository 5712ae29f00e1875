"""End to end: cached sweeps through ``scaleforge.map`` under real faults lose nothing.

Each test runs the real layers together (``@cached`` + ``DiskTier`` / ``RedisTier`` /
``TieredCache`` + the ``processes`` executor) in real processes and breaks something
for real: SIGKILL of the driver or of a worker, a Redis server stopped mid-sweep, two
"machines" (processes with their own disk tier) racing on one Redis, a full tmpfs.
Every computation appends one line to a call log (``O_APPEND``, from any process) or
increments a Redis counter, so tests assert on *counts* of computations, never on time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _e2e_helpers import SIGNING_KEY, count_calls, finish, poll_until, read_calls, reap_drivers, start_driver

import scaleforge as sf
from scaleforge.cache.decorators import CachedFunction, cached
from scaleforge.cache.disk import DiskTier
from scaleforge.cache.explain import index_key, read_index

pytestmark = [pytest.mark.integration]

KEY_LITERAL = repr(SIGNING_KEY)


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    """Kill whatever driver a failed test left running."""
    yield
    reap_drivers()


# The body shared by the driver scripts: a @cached sweep whose computations are logged.
# Placeholders: {setup} builds ``cache``; {n}, {sleep_s}, {chunksize}, {side_effect}, {extra}.
_SWEEP = """
import json, os, sys, time
import scaleforge as sf
from scaleforge.cache.decorators import cached
from scaleforge.cache.disk import DiskTier
from scaleforge.cache.memory import MemoryTier
from scaleforge.cache.tiered import TieredCache

KEY = {key}
{setup}

@cached(cache=cache)
def work(x):
    time.sleep({sleep_s})
    {side_effect}
    # One line per finished computation, from any process. The path is relative to the
    # driver's directory (its cwd): a literal path would make the code, hence the keys,
    # differ between two machines.
    with open("calls.log", "a") as fh:
        fh.write(f"{{x}}\\n")
    return x * x + 1

N = {n}
keys = [work.key(i) for i in range(N)]
stored_before = len(work.get_many(keys))
{barrier}
with sf.executor("processes", max_workers=2) as ex:
    report = sf.map(work, range(N), executor=ex, chunksize={chunksize}, on_error="collect")
out = {{
    "stored_before": stored_before,
    "ok": report.results == [i * i + 1 for i in range(N)],
    "errors": [e.message for e in report.errors],
    "hits": report.cache_hits,
    "misses": report.cache_misses,
    "cache_errors": work.cache_info()["errors"],
    "stored_after": len(work.get_many(keys)),
    {extra}
}}
print(json.dumps(out))
"""


def sweep_script(
    *,
    setup: str,
    n: int,
    sleep_s: float = 0.05,
    chunksize: int = 2,
    side_effect: str = "",
    extra: str = "",
    barrier: str = "",
) -> str:
    return _SWEEP.format(
        key=KEY_LITERAL,
        setup=setup,
        n=n,
        sleep_s=sleep_s,
        chunksize=chunksize,
        side_effect=side_effect or "pass",
        extra=extra,
        barrier=barrier,
    )


def _session_processes(sid: int) -> list[int]:
    """Pids of live (non-zombie) processes in session ``sid`` (the driver and its workers)."""
    import psutil

    pids = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getsid(proc.pid) == sid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                pids.append(proc.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return pids


# ---- 1. kill -9 the driver mid-sweep ----------------------------------------------------------
@pytest.mark.timeout(120)
def test_driver_killed_mid_sweep_rerun_computes_only_what_was_not_stored(tmp_path: Path) -> None:
    n, chunksize, workers = 200, 2, 2
    log = tmp_path / "calls.log"
    setup = f"cache = DiskTier({str(tmp_path / 'cache')!r}, max_bytes='200MB', key=KEY)"
    code = sweep_script(setup=setup, n=n, chunksize=chunksize)

    driver = start_driver(tmp_path, "run1", code)
    try:
        poll_until(
            lambda: count_calls(log) >= 40 or driver.poll() is not None, timeout_s=60, what="40 computations"
        )
        assert driver.poll() is None, (tmp_path / "run1.err").read_text()[-3000:]
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=10)
        assert driver.returncode == -signal.SIGKILL
        # The orphaned workers notice their parent is gone and exit without finishing the sweep.
        poll_until(
            lambda: not _session_processes(driver.pid), timeout_s=30, what="the driver's workers to exit"
        )
    finally:
        for pid in _session_processes(driver.pid):  # only if the poll above failed
            os.kill(pid, signal.SIGKILL)
    done_before = count_calls(log)
    assert 40 <= done_before < n

    log.unlink()
    second = finish(start_driver(tmp_path, "run2", code), tmp_path, "run2")
    stored_before = second["stored_before"]
    in_flight = chunksize * workers
    # Results are stored as they arrive: at most the chunks in flight and the last
    # store batch (~50 ms of results) were lost with the driver.
    assert stored_before >= done_before - 4 * in_flight, (stored_before, done_before)
    recomputed = read_calls(log)
    assert second["ok"] and second["errors"] == []
    assert (second["hits"], second["misses"]) == (stored_before, n - stored_before)
    assert n - stored_before <= len(recomputed) <= n - stored_before + in_flight
    assert len(set(recomputed)) == n - stored_before
    assert second["stored_after"] == n and second["cache_errors"] == 0

    log.unlink()
    third = finish(start_driver(tmp_path, "run3", code), tmp_path, "run3")
    assert third["ok"] and (third["hits"], third["misses"]) == (n, 0)
    assert not log.exists()  # nothing computed


# ---- 2. kill -9 a worker during a cached sweep --------------------------------------------------
def _make_logged(cache_dir: Path, starts: Path) -> CachedFunction[..., Any]:
    @cached(cache=DiskTier(cache_dir, max_bytes="100MB", key=SIGNING_KEY))
    def logged(x: int) -> int:
        with open(starts, "a") as fh:  # "pid item" when a computation starts
            fh.write(f"{os.getpid()} {x}\n")
        time.sleep(0.02)
        return 3 * x - 1

    return logged


@pytest.mark.timeout(90)
def test_worker_killed_during_cached_sweep_every_key_stored_once(tmp_path: Path) -> None:
    n = 120
    starts = tmp_path / "starts.log"
    fn = _make_logged(tmp_path / "cache", starts)
    killed: list[int] = []

    def starts_seen() -> list[tuple[int, int]]:
        if not starts.exists():
            return []
        return [(int(p), int(x)) for p, x in (ln.split() for ln in starts.read_text().splitlines())]

    def assassin() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen = starts_seen()
            if len(seen) >= 30:
                pid = seen[-1][0]  # the worker that just started an item: it is mid-task
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.005)

    thread = threading.Thread(target=assassin, daemon=True)
    with sf.executor("processes", max_workers=2) as ex:
        thread.start()
        report = sf.map(fn, range(n), executor=ex, chunksize=2, on_error="collect")
        thread.join(timeout=60)
    assert killed, "the worker was never killed (the sweep finished first?)"
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)  # really dead

    assert report.errors == [] and report.results == [3 * i - 1 for i in range(n)]
    assert (report.cache_hits, report.cache_misses, report.duplicates) == (0, n, 0)
    started = [x for _, x in starts_seen()]
    assert set(started) == set(range(n))
    assert len(started) - n <= 2  # only the dead worker's chunk (at most 2 items) ran again

    keys = [fn.key(i) for i in range(n)]
    tier = DiskTier(tmp_path / "cache", max_bytes="100MB", key=SIGNING_KEY)  # a fresh reader
    index = read_index(tier, index_key(fn.cache_info()["function"]))
    assert sorted(index) == sorted(keys)  # each key recorded exactly once in the function's index
    assert tier.get_many(keys) == {k: 3 * i - 1 for i, k in enumerate(keys)}
    info = fn.cache_info()
    assert info["entries"] == n and info["errors"] == 0 and info["hits"] == 0
    assert info["tiers"]["disk"]["errors"] == 0
    # values + one manifest per value + the function's index, nothing else
    assert tier.stats().entries == 2 * n + 1

    again = sf.map(fn, range(n), on_error="collect")
    assert (again.cache_hits, again.cache_misses) == (n, 0)
    assert len(starts_seen()) == len(started)
    assert (info["hits"], info["misses"]) == (0, n)


# ---- 3. Redis lost mid-sweep ------------------------------------------------------------------------
@pytest.mark.redis
@pytest.mark.timeout(120)
def test_redis_lost_mid_sweep_then_rerun_hits_disk_and_refills_redis(
    tmp_path: Path, redis_server: Any
) -> None:

    n = 60
    log = tmp_path / "calls.log"
    setup = f"""
cache = TieredCache([
    MemoryTier(max_bytes="50MB"),
    DiskTier({str(tmp_path / "cache")!r}, max_bytes="100MB", key=KEY),
    __import__("scaleforge.cache.redis", fromlist=["RedisTier"]).RedisTier(
        {redis_server.url!r}, prefix="e2e:", key=KEY, socket_timeout_s=1.0, breaker_cooldown_s=0.3
    ),
])"""
    extra = '"redis_errors": cache.tier_stats()[2].errors,'
    code = sweep_script(setup=setup, n=n, extra=extra)

    driver = start_driver(tmp_path, "run1", code)
    poll_until(
        lambda: count_calls(log) >= n // 2 or driver.poll() is not None, timeout_s=60, what="half the sweep"
    )
    redis_server.stop()
    first = finish(driver, tmp_path, "run1")
    assert count_calls(log) >= n  # the run went on while Redis was down
    assert first["ok"] and first["errors"] == []
    assert (first["hits"], first["misses"]) == (0, n)
    assert first["redis_errors"] > 0  # the outage was seen, counted, and absorbed
    assert first["stored_after"] == n  # memory and disk still took every result

    redis_server.start()  # a fresh, empty Redis on the same port
    log.unlink()
    second = finish(start_driver(tmp_path, "run2", code), tmp_path, "run2")
    assert second["ok"] and (second["hits"], second["misses"]) == (n, 0)
    assert not log.exists()  # answered by the disk tier: nothing recomputed
    # Hits are promoted into faster tiers only (TieredCache's documented policy): the emptied
    # Redis is refilled by new results, not by disk hits.


# ---- 4. two machines share Redis --------------------------------------------------------------------
_BARRIER = """
open("ready", "w").close()
deadline = time.monotonic() + 60
while not os.path.exists({go!r}) and time.monotonic() < deadline:
    time.sleep(0.005)
"""


@pytest.mark.redis
@pytest.mark.timeout(120)
def test_two_machines_with_local_disks_share_redis_each_key_computed_once(
    tmp_path: Path, redis_url: str, redis_key_prefix: str
) -> None:
    import redis

    n = 40
    drivers = []
    for m in ("a", "b"):
        machine = tmp_path / m
        machine.mkdir()
        setup = f"""
from scaleforge.cache.redis import RedisTier
local_disk = DiskTier({str(machine / "cache")!r}, max_bytes="100MB", key=KEY)
cache = TieredCache([
    MemoryTier(max_bytes="50MB"), local_disk, RedisTier({redis_url!r}, prefix={redis_key_prefix!r}, key=KEY),
])"""
        side_effect = f"import redis; redis.Redis.from_url({redis_url!r}).incr({redis_key_prefix + 'count:'!r} + str(x))"
        extra = '"local_disk": len(local_disk.get_many(keys)),'
        code = sweep_script(
            setup=setup,
            n=n,
            sleep_s=0.03,
            chunksize=1,
            side_effect=side_effect,
            extra=extra,
            barrier=_BARRIER.format(go=str(tmp_path / "go")),
        )
        drivers.append((m, start_driver(machine, "sweep", code)))
    # Start both sweeps at the same moment: each driver says it is ready, then waits for "go".
    poll_until(
        lambda: all((tmp_path / m / "ready").exists() for m, _ in drivers), timeout_s=60, what="both drivers"
    )
    (tmp_path / "go").touch()
    outs = [finish(proc, tmp_path / m, "sweep", timeout_s=100) for m, proc in drivers]

    client = redis.Redis.from_url(redis_url)
    try:
        counts = client.mget([f"{redis_key_prefix}count:{i}" for i in range(n)])
    finally:
        client.close()
    assert [int(c) if c is not None else 0 for c in counts] == [1] * n  # once in total, not once per machine
    for out in outs:
        assert out["ok"] and out["errors"] == [] and out["cache_errors"] == 0
        assert out["stored_after"] == n
        # what the other machine computed arrived through Redis and landed on this machine's disk
        assert out["local_disk"] == n
    computed = [count_calls(tmp_path / m / "calls.log") for m, _ in drivers]
    assert sum(computed) == n
    assert sum(out["misses"] for out in outs) >= n


# ---- 5. full disk during a sweep ----------------------------------------------------------------------
@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs the test can grow later (``mount -o remount,size=...``)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs here (needs root / CAP_SYS_ADMIN): {res.stderr.decode().strip()}"
        )
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _make_blocky(disk: DiskTier, log: Path) -> CachedFunction[..., Any]:
    @cached(cache=disk)
    def blocky(x: int) -> np.ndarray:
        with open(log, "a") as fh:
            fh.write(f"{x}\n")
        return np.full(25_000, float(x))  # 200 kB: one file per entry

    return blocky


@pytest.mark.timeout(90)
def test_full_disk_during_sweep_returns_everything_and_rerun_fills_the_gaps(
    tmp_path: Path, tiny_tmpfs: Path
) -> None:
    n = 30  # 30 x 200 kB = 6 MB > 3 MB
    log = tmp_path / "calls.log"
    disk = DiskTier(tiny_tmpfs / "cache", max_bytes="1GB", key=SIGNING_KEY, compression="none")
    fn = _make_blocky(disk, log)
    report = sf.map(fn, range(n), executor="processes", chunksize=2, on_error="collect")
    assert report.errors == [] and report.cache_misses == n
    for i, value in enumerate(report.results):
        np.testing.assert_array_equal(value, np.full(25_000, float(i)))

    keys = [fn.key(i) for i in range(n)]
    found = DiskTier(tiny_tmpfs / "cache", max_bytes="1GB", key=SIGNING_KEY).get_many(keys)
    stored = {i for i, k in enumerate(keys) if k in found}
    assert 0 < len(stored) < n
    # every failed write was counted by the tier (never raised), and shows in cache_info()
    assert disk.stats().errors >= n - len(stored)
    assert fn.cache_info()["tiers"]["disk"]["errors"] >= n - len(stored)
    assert report.store_failures == n - len(stored)  # and the map says how many it could not keep
    assert not list((tiny_tmpfs / "cache" / "data").rglob("*.tmp"))  # no temp file left behind

    res = subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_tmpfs)], capture_output=True)
    assert res.returncode == 0, res.stderr.decode()
    log.unlink()
    again = sf.map(fn, range(n), executor="processes", chunksize=2, on_error="collect")
    assert again.errors == [] and (again.cache_hits, again.cache_misses) == (len(stored), n - len(stored))
    assert sorted(read_calls(log)) == sorted(set(range(n)) - stored)  # exactly what was not stored
    for i, value in enumerate(again.results):
        np.testing.assert_array_equal(value, np.full(25_000, float(i)))
    assert len(disk.get_many(keys)) == n


# ---- 6. the PDE generator on the distributed profile --------------------------------------------------
_PDE = """
import hashlib, json
from scaleforge.settings import Settings, set_settings

set_settings(Settings(profile="distributed", cache={{
    "disk": {{"path": {disk!r}}},
    "redis": {{"url": {url!r}, "prefix": {prefix!r}}},
    "key_file": {key_file!r},
}}))
from scaleforge.workloads import pde

ds = pde.generate("darcy", 48, 16)
print(json.dumps({{
    "stats": {{k: v for k, v in ds.stats.items() if k != "seconds"}},
    "shape": list(ds.outputs.shape),
    "digest": hashlib.sha256(ds.inputs.tobytes() + ds.outputs.tobytes()).hexdigest(),
}}))
"""


@pytest.mark.redis
@pytest.mark.timeout(120)
def test_pde_generate_on_distributed_profile_second_machine_computes_nothing(
    tmp_path: Path, redis_url: str, redis_key_prefix: str
) -> None:
    import redis

    key_file = tmp_path / "config" / "hmac.key"  # outside both disk caches
    outs = []
    for m in ("a", "b"):  # two machines: one Redis, a disk tier each
        machine = tmp_path / m
        machine.mkdir()
        code = _PDE.format(
            disk=str(machine / "cache"), url=redis_url, prefix=redis_key_prefix, key_file=str(key_file)
        )
        outs.append(finish(start_driver(machine, "gen", code), machine, "gen", timeout_s=100))
    first, second = outs
    blocks = first["stats"]["blocks"]
    assert blocks >= 1 and first["shape"] == [48, 16, 16]
    assert first["stats"]["computed_blocks"] == blocks and first["stats"]["computed_samples"] == 48
    assert second["stats"]["cached_blocks"] == blocks  # all answered from Redis
    assert second["stats"]["computed_blocks"] == 0 and second["stats"]["computed_samples"] == 0
    assert second["digest"] == first["digest"]
    client = redis.Redis.from_url(redis_url)
    try:
        assert sum(1 for _ in client.scan_iter(match=redis_key_prefix + "*", count=1000)) >= blocks
    finally:
        client.close()
