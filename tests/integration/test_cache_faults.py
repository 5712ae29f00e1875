"""Cache tiers under real faults: kill -9, concurrent processes, a dying Redis, tampering, a full disk."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scaleforge.cache.disk import DiskTier
from scaleforge.cache.memory import MemoryTier
from scaleforge.cache.redis import RedisTier
from scaleforge.cache.tiered import TieredCache
from scaleforge.codec import FrameCodec, Signer

pytestmark = pytest.mark.integration

KEY = bytes(range(32))
WRONG_KEY = bytes(32)
N_ELEMENTS = 1_000_000  # 8 MB int64 entries
_ctx = multiprocessing.get_context("fork")


# ---- kill -9 a writer mid-write, 50 times ---------------------------------------------------------
def _writer(path: str, seed: int, mid_write: Any = None) -> None:
    if mid_write is not None:
        # Deterministic variant: write part of the entry, tell the parent, and wait to be killed.
        import scaleforge.cache._diskio as disk_module

        real_write_all = disk_module.write_all

        def half_then_hang(fd: int, buffers: Any) -> None:
            real_write_all(fd, [memoryview(b)[: len(b) // 2] for b in buffers])
            mid_write.set()
            time.sleep(60)

        disk_module.write_all = half_then_hang  # type: ignore[assignment]
    tier = DiskTier(path, key=KEY, max_bytes="60MB", compression="none")
    rng = np.random.default_rng(seed)
    i = 0
    while True:
        v = int(rng.integers(1, 10**9))
        arr = np.full(N_ELEMENTS, v, dtype=np.int64)
        tier.set(f"k{i % 4}", arr if i % 2 else {"v": v, "arr": arr})
        i += 1


def _check_entry(value: Any) -> bool:
    """True if ``value`` is a miss or a complete entry as the writer wrote it."""
    if value is None:
        return False
    if isinstance(value, dict):
        arr, v = value["arr"], value["v"]
    else:
        arr, v = value, int(value[0])
    assert arr.shape == (N_ELEMENTS,) and arr.dtype == np.int64
    assert v >= 1 and arr[0] == v and arr[-1] == v and (arr == v).all()
    return True


@pytest.mark.slow
def test_kill_9_writer_50_times_readers_never_see_partial_values(
    tmp_path: Path, global_random_seed: int
) -> None:
    reader = DiskTier(tmp_path, key=KEY, max_bytes="60MB", compression="none")
    rng = np.random.default_rng(global_random_seed)
    complete = 0
    for round_ in range(50):
        # Every 5th round the kill is certain to land mid-write; the others at a random moment.
        mid_write = _ctx.Event() if round_ % 5 == 4 else None
        proc = _ctx.Process(
            target=_writer, args=(str(tmp_path), global_random_seed + round_, mid_write), daemon=True
        )
        proc.start()
        deadline = time.monotonic() + float(rng.uniform(0.02, 0.15))
        while time.monotonic() < deadline or (mid_write is not None and not mid_write.is_set()):
            for k in ("k0", "k1", "k2", "k3"):  # read while the writer writes
                complete += _check_entry(reader.get(k))
            if time.monotonic() > deadline + 30:
                pytest.fail(
                    f"the writer never reached its write (alive={proc.is_alive()}, exit={proc.exitcode}, round={round_})"
                )
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=30)
        assert proc.exitcode == -signal.SIGKILL
        for k in ("k0", "k1", "k2", "k3"):
            complete += _check_entry(reader.get(k))
            complete += _check_entry(reader.get(k, mmap=True))
    assert complete > 0  # the writers did get entries through
    assert reader.stats().errors == 0  # no torn entry was ever visible, not even as a MAC failure
    # Kills did land mid-write: they left partial temp files behind, which readers never saw.
    assert reader.sweep_temp_files(max_age_s=0.0) >= 10
    assert not [p for p in (tmp_path / "data").rglob("*.tmp")]


# ---- 4 processes hammering the same keys ----------------------------------------------------------
def _hammer(path: str, seed: int, budget: int, out: Any) -> None:
    tier = DiskTier(path, key=KEY, max_bytes=budget, compression="none")
    rng = np.random.default_rng(seed)
    bad = reads = 0
    for _ in range(250):
        k = f"k{int(rng.integers(12))}"
        if rng.random() < 0.5:
            size = int(rng.choice([2_000, 30_000, 150_000, 400_000]))
            fill = int(rng.integers(256))
            tier.set(k, np.full(size, fill, dtype=np.uint8))
        else:
            v = tier.get(k)
            if v is not None:
                reads += 1
                if not (
                    v.dtype == np.uint8 and v.size in (2_000, 30_000, 150_000, 400_000) and (v == v[0]).all()
                ):
                    bad += 1
    s = tier.stats()
    out.put((bad, reads, s.errors, s.evictions))


@pytest.mark.slow
def test_four_processes_hammering_same_keys_stay_valid_and_within_budget(
    tmp_path: Path, global_random_seed: int
) -> None:
    budget = 2_000_000
    out = _ctx.Queue()
    procs = [
        _ctx.Process(target=_hammer, args=(str(tmp_path), global_random_seed + i, budget, out))
        for i in range(4)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert [r[0] for r in results] == [0, 0, 0, 0]  # no invalid read
    assert sum(r[1] for r in results) > 0
    assert [r[2] for r in results] == [0, 0, 0, 0]  # no MAC failure, no I/O error
    assert sum(r[3] for r in results) > 0  # the budget was under pressure
    tier = DiskTier(tmp_path, key=KEY, max_bytes=budget)
    s = tier.stats()
    assert s.bytes <= budget
    on_disk = sum(p.stat().st_size for p in (tmp_path / "data").rglob("*.sfc"))
    import sqlite3

    with sqlite3.connect(tmp_path / "index.sqlite3") as db:
        in_index = db.execute("SELECT COALESCE(SUM(LENGTH(blob)), 0) FROM entries").fetchone()[0]
        (indexed,) = db.execute("SELECT COALESCE(SUM(size), 0) FROM entries").fetchone()
    assert indexed == s.bytes  # the trigger-maintained total is exact
    assert on_disk + in_index <= budget
    for k in tier.keys():  # noqa: SIM118 - a Tier is not iterable
        v = tier.get(k)
        assert v is None or (v == v[0]).all()


# ---- Redis stops in the middle of a run -----------------------------------------------------------
@pytest.mark.redis
def test_redis_stopping_and_restarting(redis_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    tier = RedisTier(redis_server.url, key=KEY, socket_timeout_s=2.0, breaker_cooldown_s=0.2)
    cache = TieredCache([MemoryTier(), tier])
    assert cache.set("before", 1)
    assert tier.get("before") == 1

    redis_server.stop()
    assert tier.get("before") is None  # the first failure opens the breaker
    assert tier.breaker_state == "open"
    for i in range(50):  # while open: immediate, counted misses and failed writes
        assert tier.get("before") is None
        assert tier.set(f"x{i}", i) is False
        assert tier.get_many(["before", "x"]) == {}
    outage_lock = tier.lock("during-outage", timeout_s=5, blocking_timeout_s=1)
    with outage_lock as held:
        assert held is False and outage_lock.unavailable
    # The cache as a whole keeps answering from memory, and caching new values there.
    assert cache.get("before") == 1
    assert cache.set("during", 2) is True and cache.get("during") == 2
    assert tier.stats().errors >= 150
    assert caplog.text.count("Redis unavailable") <= 2  # rate-limited

    redis_server.start()
    deadline = time.monotonic() + 30
    while not tier.set("after", 3) and time.monotonic() < deadline:
        time.sleep(0.05)  # wait out the cool-down; the half-open trial then succeeds
    assert tier.breaker_state == "closed"
    assert tier.get("after") == 3
    assert cache.set("again", 4) and tier.get("again") == 4
    cache.close()


# ---- tampered entries whose unpickling would create a file ----------------------------------------
class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def test_tampered_disk_entries_are_misses_and_never_unpickled(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    cache_dir = tmp_path / "cache"
    big = np.random.default_rng(0).random(100_000)
    # 1. forged with the wrong key, small (in the index) and large (a file)
    forger = DiskTier(cache_dir, key=WRONG_KEY)
    forger.set("small", _Evil(str(target)))
    forger.set("large", {"pad": big, "evil": _Evil(str(target))})
    # 2. written with the right key, then bytes flipped on disk
    honest = DiskTier(cache_dir, key=KEY)
    honest.set("flipped", {"pad": big, "evil": _Evil(str(target))})
    (path,) = [
        p
        for p in (cache_dir / "data").rglob("*.sfc")
        if p.stat().st_mtime == max(q.stat().st_mtime for q in (cache_dir / "data").rglob("*.sfc"))
    ]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    reader = DiskTier(cache_dir, key=KEY)
    for k in ("small", "large", "flipped"):
        assert reader.get(k) is None
        assert reader.get(k, mmap=True) is None
    assert not target.exists()
    assert reader.stats().errors == 3  # each bad entry counted once, then dropped
    # Control: the payload is live.
    pickle.loads(pickle.dumps(_Evil(str(target)))).close()
    assert target.exists()


@pytest.mark.redis
def test_tampered_redis_entries_are_misses_and_never_unpickled(
    tmp_path: Path, redis_url: str, redis_key_prefix: str
) -> None:
    import redis

    target = tmp_path / "pwned"
    client = redis.Redis.from_url(redis_url)
    evil = _Evil(str(target))
    client.set(redis_key_prefix + "forged", FrameCodec(Signer(WRONG_KEY)).encode(evil).tobytes())
    client.set(redis_key_prefix + "raw_pickle", pickle.dumps(evil))
    good = bytearray(FrameCodec(Signer(KEY)).encode(evil).tobytes())
    good[-3] ^= 0x01
    client.set(redis_key_prefix + "flipped", bytes(good))
    tier = RedisTier(redis_url, prefix=redis_key_prefix, key=KEY)
    assert tier.get("forged") is None
    assert tier.get("raw_pickle") is None
    assert tier.get("flipped") is None
    assert tier.get_many(["forged", "raw_pickle", "flipped"]) == {}
    assert not target.exists()
    assert tier.stats().errors == 6
    tier.close()
    client.close()


# ---- disk full ------------------------------------------------------------------------------------
@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB filesystem the test owns: tmpfs, else a loop-mounted ext2 image."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True
        ).returncode
        == 0
    )
    if not mounted and shutil.which("mkfs.ext2"):
        image = tmp_path / "fs.img"
        with open(image, "wb") as f:
            f.truncate(2 * 2**20)
        ok = subprocess.run(["mkfs.ext2", "-q", "-F", str(image)], capture_output=True).returncode == 0
        mounted = (
            ok
            and subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True).returncode
            == 0
        )
    if not mounted:
        pytest.skip("cannot mount a small tmpfs or loop filesystem here (needs root / CAP_SYS_ADMIN)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_set_fails_cleanly_and_old_entries_stay_readable(small_filesystem: Path) -> None:
    disk = DiskTier(small_filesystem / "cache", max_bytes="1GB", key=KEY, compression="none")
    cache = TieredCache([MemoryTier(), disk])
    rng = np.random.default_rng(0)
    stored: dict[str, np.ndarray] = {}
    failed = 0
    for i in range(12):  # 12 x 300 kB > 2 MB
        value = rng.random(37_500)
        key = f"k{i}"
        assert cache.set(key, value) is True  # the memory tier still takes it: the caller never fails
        if disk.get(key) is not None:
            stored[key] = value
        else:
            failed += 1
    assert failed > 0 and stored
    assert disk.stats().errors >= failed
    assert not list((small_filesystem / "cache" / "data").rglob("*.tmp"))  # temp files removed
    for key, value in stored.items():
        np.testing.assert_array_equal(disk.get(key), value)
    assert disk.set("tiny", 1) in (True, False)  # small writes may or may not fit; never raise
