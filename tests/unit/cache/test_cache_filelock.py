"""File locks and DiskTier single flight between real local processes (no Redis)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from scaleforge.cache.decorators import cached
from scaleforge.cache.disk import DiskTier
from scaleforge.cache.filelock import FileLock
from scaleforge.cache.memory import MemoryTier
from scaleforge.cache.tiered import TieredCache
from scaleforge.errors import InvalidParameterError

KEY = bytes(range(32))
_ctx = multiprocessing.get_context("fork")


def _lock_files(root: Path) -> list[Path]:
    return [p for p in (root / "locks").rglob("*.lock")] if (root / "locks").exists() else []


def test_disk_tier_declares_and_returns_a_file_lock(tmp_path: Path) -> None:
    tier = DiskTier(tmp_path, key=KEY)
    assert tier.supports_lock is True
    assert TieredCache([MemoryTier(max_bytes=10**6), tier]).supports_lock is True
    with tier.lock("some:key", blocking_timeout_s=0) as held:
        assert held is True
        (path,) = _lock_files(tmp_path)
        assert path.parent.parent == tmp_path / "locks" and len(path.parent.name) == 2
        with tier.lock("some:key", blocking_timeout_s=0) as other:  # a second holder is excluded
            assert other is False
        with tier.lock("other:key", blocking_timeout_s=0) as other:  # other names are independent
            assert other is True
    assert _lock_files(tmp_path) == []  # removed on release: lock files do not accumulate


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"timeout_s": 0}, "timeout_s"), ({"blocking_timeout_s": -1}, "blocking_timeout_s")],
)
def test_disk_lock_validates_its_arguments(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    tier = DiskTier(tmp_path, key=KEY)
    with pytest.raises(InvalidParameterError, match=match):
        tier.lock("k", **kwargs)
    with pytest.raises(InvalidParameterError, match="non-empty str"):
        tier.lock("")


def test_a_waiter_on_a_removed_lock_file_relocks_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "k.lock"
    first = FileLock(path, blocking_timeout_s=0)
    assert first.acquire()
    got: list[bool] = []
    waiter = FileLock(path, blocking_timeout_s=None)
    thread = threading.Thread(target=lambda: got.append(waiter.acquire()))
    thread.start()
    time.sleep(0.05)  # let the waiter open the current file and block on it
    first.release()  # unlinks the file the waiter opened
    thread.join(timeout=30)
    assert got == [True]
    # The waiter holds the file now at the path (not the removed inode), so newcomers are excluded.
    assert path.exists()
    assert FileLock(path, blocking_timeout_s=0).acquire() is False
    waiter.release()
    assert not path.exists()


def test_a_bounded_wait_times_out(tmp_path: Path) -> None:
    path = tmp_path / "k.lock"
    with FileLock(path, blocking_timeout_s=0) as held:
        assert held
        start = time.monotonic()
        with FileLock(path, blocking_timeout_s=0.1) as other:
            assert other is False
        assert time.monotonic() - start >= 0.1


def test_an_unwritable_lock_directory_is_unavailable_not_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where the lock directory should be
    lock = FileLock(blocker / "sub" / "k.lock", blocking_timeout_s=0)
    with lock as held:
        assert held is False
    assert lock.unavailable is True


# ---- real processes --------------------------------------------------------------------------------
def _hold(path: str, ready: Any, fork_sleeper: bool, sleeper_pid: Any) -> None:
    lock = FileLock(path, blocking_timeout_s=0)
    if not lock.acquire():
        os._exit(3)
    if fork_sleeper:  # a worker forked while the lock is held must not keep it alive
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        sleeper_pid.value = pid
    ready.set()
    time.sleep(60)


@pytest.mark.parametrize("fork_sleeper", [False, True])
def test_a_sigkilled_holder_frees_the_lock_at_once(tmp_path: Path, fork_sleeper: bool) -> None:
    path = str(tmp_path / "locks" / "k.lock")
    ready = _ctx.Event()
    sleeper_pid = _ctx.Value("i", 0)
    proc = _ctx.Process(target=_hold, args=(path, ready, fork_sleeper, sleeper_pid), daemon=True)
    proc.start()
    try:
        assert ready.wait(timeout=30)
        assert FileLock(path, blocking_timeout_s=0).acquire() is False  # held by the other process
        os.kill(proc.pid, signal.SIGKILL)
        # Not proc.join(): the forked sleeper keeps the process sentinel pipe open.
        deadline = time.monotonic() + 30
        while proc.exitcode is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert proc.exitcode == -signal.SIGKILL
        # Free at once (no expiry to wait for), even with the holder's forked child alive.
        taker = FileLock(path, blocking_timeout_s=0)
        assert taker.acquire() is True
        taker.release()
    finally:
        if sleeper_pid.value:
            os.kill(sleeper_pid.value, signal.SIGKILL)
        if proc.is_alive():
            proc.kill()


def _call_once(root: str, counter: str, barrier: Any, out: Any) -> None:
    tier = DiskTier(root, key=KEY)
    cache = TieredCache([MemoryTier(max_bytes=10**6), tier])

    @cached(cache=cache)
    def slow_square(x: int) -> int:
        with open(counter, "a") as f:  # one line per computation, in any process
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)  # long enough for every other process to arrive and wait
        return x * x

    barrier.wait(timeout=30)
    out.put((slow_square(12), slow_square.cache_info()["computations"]))


def test_four_local_processes_sharing_a_disk_tier_compute_once(tmp_path: Path) -> None:
    counter = tmp_path / "computations.txt"
    counter.touch()
    barrier = _ctx.Barrier(4)
    out = _ctx.Queue()
    procs = [
        _ctx.Process(target=_call_once, args=(str(tmp_path / "cache"), str(counter), barrier, out))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert len(counter.read_text().split()) == 1  # computed once, by one process
    assert sorted(results) == [(144, 0), (144, 0), (144, 0), (144, 1)]
    assert _lock_files(tmp_path / "cache") == []


def _square_logged(x: int, counter: str, started: Any = None, sleep_s: float = 0.0) -> int:
    with open(counter, "a") as f:  # one line per computation, in any process
        f.write(f"{os.getpid()}\n")
    if started is not None:
        started.set()
    time.sleep(sleep_s)
    return x * x


def _die_while_computing(root: str, counter: str, started: Any) -> None:
    fn = cached(cache=DiskTier(root, key=KEY), ignore=["counter", "started", "sleep_s"])(_square_logged)
    fn(12, counter, started, 60.0)  # killed inside, holding the lock


def test_a_holder_killed_mid_computation_lets_a_waiter_compute_at_once(tmp_path: Path) -> None:
    root, counter = tmp_path / "cache", tmp_path / "computations.txt"
    counter.touch()
    started = _ctx.Event()
    proc = _ctx.Process(target=_die_while_computing, args=(str(root), str(counter), started), daemon=True)
    proc.start()
    assert started.wait(timeout=30)
    fn = cached(cache=DiskTier(root, key=KEY), ignore=["counter", "started", "sleep_s"])(_square_logged)
    key = fn.key(12, str(counter))
    with fn.lock(key, blocking=False) as held:
        assert held is False  # the other process holds it while it computes
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=30)
    with fn.lock(key, blocking=False) as held:
        assert held is True  # freed by the kernel the moment the holder died
    assert fn(12, str(counter)) == 144
    assert counter.read_text().split() == [str(proc.pid), str(os.getpid())]
