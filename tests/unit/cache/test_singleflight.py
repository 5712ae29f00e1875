"""Tests of the single-flight locks: in-process key locks and the shared-tier lock adapter."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from scaleforge.cache.memory import MemoryTier
from scaleforge.cache.singleflight import KeyLocks, find_lock_tier, single_flight
from scaleforge.cache.tiered import TieredCache
from scaleforge.errors import CacheError, InvalidParameterError
from scaleforge.monitor.metrics import REGISTRY


class LockingTier(MemoryTier):
    """A shared tier with a lock primitive, like RedisTier, backed by threading locks."""

    def __init__(self, fail: BaseException | None = None) -> None:
        super().__init__(max_bytes=10**6)
        self.fail = fail
        self.calls: list[tuple[str, float, float | None]] = []
        self._locks: dict[str, threading.Lock] = {}
        self.released = 0

    @property
    def is_shared(self) -> bool:
        return True

    @property
    def supports_lock(self) -> bool:
        return True

    @contextlib.contextmanager
    def lock(self, name: str, *, timeout_s: float, blocking_timeout_s: float | None) -> Iterator[bool]:
        self.calls.append((name, timeout_s, blocking_timeout_s))
        if self.fail is not None:
            raise self.fail
        lock = self._locks.setdefault(name, threading.Lock())
        acquired = lock.acquire(timeout=-1 if blocking_timeout_s is None else blocking_timeout_s)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()
                self.released += 1


class SharedNoLock(MemoryTier):
    """Shared, with a ``lock`` attribute, but no declared lock: must not be probed."""

    @property
    def is_shared(self) -> bool:
        return True

    def lock(self, name: str, **kwargs: Any) -> Any:  # type: ignore[override]
        raise AssertionError("single flight must not call lock() on a tier without supports_lock")


def errors_metric(op: str) -> float:
    value = REGISTRY.get_sample_value("scaleforge_singleflight_errors_total", {"op": op})
    return 0.0 if value is None else value


def hold_in_thread(locks_cm: Any) -> tuple[threading.Event, threading.Event, threading.Thread]:
    """Enter ``locks_cm`` in another thread; return (entered, release, thread)."""
    entered, release = threading.Event(), threading.Event()

    def run() -> None:
        with locks_cm:
            entered.set()
            release.wait(timeout=30)

    thread = threading.Thread(target=run)
    thread.start()
    assert entered.wait(timeout=30)
    return entered, release, thread


def test_key_locks_exclude_per_key_and_free_their_table() -> None:
    locks = KeyLocks()
    _, release, thread = hold_in_thread(locks.hold("a"))
    with locks.hold("a", blocking=False) as acquired:
        assert acquired is False
    with locks.hold("a", timeout_s=0.05) as acquired:
        assert acquired is False
    with locks.hold("b", blocking=False) as acquired:  # other keys are independent
        assert acquired is True
    release.set()
    thread.join(timeout=30)
    with locks.hold("a", blocking=False) as acquired:
        assert acquired is True
    assert len(locks) == 0


def test_key_locks_serialise_threads() -> None:
    locks = KeyLocks()
    inside = 0
    overlaps = 0
    guard = threading.Lock()
    barrier = threading.Barrier(6)

    def run() -> None:
        nonlocal inside, overlaps
        barrier.wait()
        for _ in range(50):
            with locks.hold("k") as acquired:
                assert acquired
                with guard:
                    inside += 1
                    overlaps += inside > 1
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert overlaps == 0
    assert len(locks) == 0


def test_find_lock_tier_uses_the_supports_lock_capability() -> None:
    plain = MemoryTier(max_bytes=10**6)
    shared = LockingTier()
    assert plain.supports_lock is False
    assert find_lock_tier(plain) is None
    assert find_lock_tier(SharedNoLock(max_bytes=10**6)) is None  # is_shared + a lock attribute is not enough
    assert find_lock_tier(shared) is shared
    assert find_lock_tier(object()) is None
    with_lock = TieredCache([plain, shared])
    assert with_lock.supports_lock is True
    assert find_lock_tier(with_lock) is with_lock
    without = TieredCache([plain, SharedNoLock(max_bytes=10**6)])
    assert without.supports_lock is False and find_lock_tier(without) is None
    with single_flight(without, "k") as held:  # in-process lock only
        assert held is True


def test_the_default_tier_lock_raises_cache_error() -> None:
    with pytest.raises(CacheError, match="supports_lock"):
        MemoryTier(max_bytes=10**6).lock("k")
    with pytest.raises(CacheError, match="supports_lock"):
        TieredCache([MemoryTier(max_bytes=10**6)]).lock("k")


def test_tiered_lock_takes_every_tier_lock_fastest_first() -> None:
    first, second = LockingTier(), LockingTier()
    cache = TieredCache([MemoryTier(max_bytes=10**6), first, second])
    with single_flight(cache, "key2", expiry_s=5.0) as held:
        assert held is True
        assert first.calls == [("singleflight:key2", 5.0, None)]
        assert second.calls == [("singleflight:key2", 5.0, None)]
        assert first.released == second.released == 0
    assert first.released == second.released == 1


def test_tiered_lock_stops_at_a_timed_out_tier_and_keeps_the_faster_locks() -> None:
    first, second = LockingTier(), LockingTier()
    cache = TieredCache([first, second])
    # Another process holds the slower tier's lock.
    _, release, thread = hold_in_thread(second.lock("singleflight:k", timeout_s=5, blocking_timeout_s=None))
    try:
        with single_flight(cache, "k", timeout_s=0.05) as held:
            assert held is False
            assert first._locks["singleflight:k"].locked()  # the faster lock stays held for the block
        assert not first._locks["singleflight:k"].locked()
        # A timed-out faster tier: the slower one is never tried.
        _, release1, thread1 = hold_in_thread(
            first.lock("singleflight:j", timeout_s=5, blocking_timeout_s=None)
        )
        n = len(second.calls)
        with single_flight(cache, "j", blocking=False) as held:
            assert held is False
        assert len(second.calls) == n
        release1.set()
        thread1.join(timeout=30)
    finally:
        release.set()
        thread.join(timeout=30)


def test_single_flight_takes_the_shared_lock_with_expiry() -> None:
    tier = LockingTier()
    with single_flight(tier, "key1", expiry_s=7.0) as held:
        assert held is True
        # No timeout: wait for the holder (a live one renews its lock, a dead one loses it).
        assert tier.calls == [("singleflight:key1", 7.0, None)]
    assert tier.released == 1
    with single_flight(tier, "key1", blocking=False):
        pass
    assert tier.calls[-1][2] == 0.0
    with single_flight(tier, "key1", timeout_s=2.0):
        pass
    assert 0.0 < tier.calls[-1][2] <= 2.0  # type: ignore[operator]


def test_single_flight_gives_up_when_another_process_holds_the_shared_lock() -> None:
    tier = LockingTier()
    # Another "process": holds the shared lock directly, not the in-process key lock.
    _, release, thread = hold_in_thread(tier.lock("singleflight:k", timeout_s=5, blocking_timeout_s=None))
    try:
        with single_flight(tier, "k", timeout_s=0.05) as held:
            assert held is False
        with single_flight(tier, "k", blocking=False) as held:
            assert held is False
    finally:
        release.set()
        thread.join(timeout=30)
    with single_flight(tier, "k", blocking=False) as held:
        assert held is True


def test_a_failing_shared_lock_degrades_to_in_process() -> None:
    before = errors_metric("acquire")
    tier = LockingTier(fail=ConnectionError("redis is down"))
    with single_flight(tier, "k") as held:
        assert held is True  # compute anyway
    assert errors_metric("acquire") == before + 1


def test_a_shared_lock_timeout_exception_means_not_held() -> None:
    tier = LockingTier(fail=TimeoutError("could not acquire"))
    with single_flight(tier, "k") as held:
        assert held is False


def test_in_process_exclusion_comes_first() -> None:
    tier = LockingTier()
    _, release, thread = hold_in_thread(single_flight(tier, "k"))
    try:
        start_calls = len(tier.calls)
        with single_flight(tier, "k", blocking=False) as held:
            assert held is False
        assert len(tier.calls) == start_calls  # never reached the shared lock
    finally:
        release.set()
        thread.join(timeout=30)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeout_s": -1}, "'timeout_s'"),
        ({"timeout_s": "1"}, "'timeout_s'"),
        ({"expiry_s": 0}, "'expiry_s'"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with (
        pytest.raises(InvalidParameterError, match=match),
        single_flight(MemoryTier(max_bytes=10**6), "k", **kwargs),
    ):
        pass


def test_timeout_bounds_the_in_process_wait() -> None:
    tier = MemoryTier(max_bytes=10**6)
    _, release, thread = hold_in_thread(single_flight(tier, "k"))
    try:
        with single_flight(tier, "k", timeout_s=0.1) as held:
            assert held is False  # returned instead of waiting for the holder
    finally:
        release.set()
        thread.join(timeout=30)
