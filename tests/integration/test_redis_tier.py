"""RedisTier against a real Redis: the Tier contract, batching, TTL, large values, lock."""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis

from scaleforge.cache.redis import RedisTier
from scaleforge.errors import InvalidParameterError
from scaleforge.testing.tiers import TierTests

pytestmark = [pytest.mark.integration, pytest.mark.redis]

KEY = bytes(range(32))


@pytest.fixture
def raw(redis_url: str) -> Iterator[Any]:
    """A plain redis-py client, closed afterwards."""
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def tier(redis_url: str, redis_key_prefix: str) -> Iterator[RedisTier]:
    t = RedisTier(redis_url, prefix=redis_key_prefix, key=KEY, breaker_cooldown_s=0.5)
    yield t
    t.close()


class TestRedisTierConformance(TierTests):
    @pytest.fixture
    def tier(self, redis_url: str, redis_key_prefix: str) -> Iterator[RedisTier]:
        t = RedisTier(redis_url, prefix=redis_key_prefix, key=KEY)
        yield t
        t.close()


def test_large_value_round_trip_uses_one_atomic_set(tier: RedisTier, raw: Any) -> None:
    big = np.random.default_rng(0).random(3_000_000)  # 24 MB
    assert tier.set("big", big)
    np.testing.assert_array_equal(tier.get("big"), big)
    stored = raw.get(tier.prefix + "big")
    assert stored is not None and len(stored) > big.nbytes
    assert tier.set("big", big, ttl_s=100)
    ttl = raw.pttl(tier.prefix + "big")
    assert 0 < ttl <= 100_000


def test_default_ttl_and_touch(redis_url: str, redis_key_prefix: str, raw: Any) -> None:
    t = RedisTier(redis_url, prefix=redis_key_prefix, key=KEY, ttl_s=50)
    t.set("k", 1)
    assert 0 < raw.pttl(redis_key_prefix + "k") <= 50_000
    assert t.touch("k", ttl_s=500)
    assert raw.pttl(redis_key_prefix + "k") > 50_000
    t.close()


def test_values_over_max_bytes_are_rejected(redis_url: str, redis_key_prefix: str) -> None:
    t = RedisTier(redis_url, prefix=redis_key_prefix, key=KEY, max_bytes=10_000, compression="none")
    assert t.set("big", np.zeros(10_000)) is False
    assert t.set_many({"a": np.zeros(10_000), "b": 1}) == {"a": False, "b": True}
    assert t.stats().errors == 2
    assert t.get("big") is None


def test_get_many_and_set_many_with_mixed_sizes(tier: RedisTier) -> None:
    items = {f"k{i}": np.full(i * 20_000, i, dtype=np.float64) for i in range(6)}  # up to 800 kB
    assert all(tier.set_many(items).values())
    got = tier.get_many([*items, "absent"])
    assert set(got) == set(items)
    for k, v in items.items():
        np.testing.assert_array_equal(got[k], v)


def test_clear_only_touches_its_namespace(redis_url: str, redis_key_prefix: str) -> None:
    a = RedisTier(redis_url, prefix=redis_key_prefix + "a:", key=KEY)
    b = RedisTier(redis_url, prefix=redis_key_prefix + "b:", key=KEY)
    a.set("k", 1)
    b.set("k", 2)
    a.clear()
    assert a.get("k") is None and b.get("k") == 2
    assert list(b.keys()) == ["k"]


def test_entry_signed_with_another_key_is_a_miss(redis_url: str, redis_key_prefix: str) -> None:
    RedisTier(redis_url, prefix=redis_key_prefix, key=bytes(32)).set("k", {"v": 1})
    reader = RedisTier(redis_url, prefix=redis_key_prefix, key=KEY)
    assert reader.get("k") is None
    assert reader.get_many(["k"]) == {}
    assert reader.stats().errors == 2


def test_pickled_tier_reconnects(tier: RedisTier) -> None:
    tier.set("k", 3)
    clone = pickle.loads(pickle.dumps(tier))
    assert clone.get("k") == 3


def test_lock_is_exclusive_and_expires(tier: RedisTier) -> None:
    inside = 0
    overlaps = 0
    counter_lock = threading.Lock()

    def work() -> None:
        nonlocal inside, overlaps
        for _ in range(5):
            with tier.lock("job", timeout_s=10, blocking_timeout_s=10) as held:
                assert held
                with counter_lock:
                    inside += 1
                    overlaps += inside > 1
                time.sleep(0.002)
                with counter_lock:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == 0

    # A holder that "died": a raw redis-py lock, which nobody renews and nobody releases.
    raw = redis.Redis.from_url(tier._url)
    try:
        assert raw.lock(tier.prefix + "lock:abandoned", timeout=0.2).acquire(blocking=False)
    finally:
        raw.close()
    busy = tier.lock("abandoned", timeout_s=5, blocking_timeout_s=0.01)
    with busy as held:
        assert not held and not busy.unavailable  # still held by the "dead" holder
    with tier.lock("abandoned", timeout_s=5, blocking_timeout_s=5) as held:
        assert held  # acquired once the dead holder's lock expired


def test_a_held_lock_outlives_its_expiry_through_the_heartbeat(tier: RedisTier) -> None:
    from scaleforge.cache.redis import _HEARTBEAT

    holder = tier.lock("long", timeout_s=0.3, blocking_timeout_s=0)
    assert holder.acquire() and holder.renew_interval_s == pytest.approx(0.1)
    deadline = time.monotonic() + 1.2  # four expiries
    while time.monotonic() < deadline:
        with tier.lock("long", timeout_s=5, blocking_timeout_s=0) as held:
            assert not held  # still held: the heartbeat renewed it
        time.sleep(0.05)
    assert holder.renewals >= 3
    holder.release()
    assert holder not in _HEARTBEAT[0]._due  # renewals stopped with the release
    with tier.lock("long", timeout_s=5, blocking_timeout_s=0) as held:
        assert held  # released at once, not at expiry


def test_invalid_arguments(redis_url: str) -> None:
    with pytest.raises(InvalidParameterError, match="url"):
        RedisTier("http://localhost", key=KEY)
    with pytest.raises(InvalidParameterError, match="socket_timeout_s"):
        RedisTier(redis_url, socket_timeout_s=0, key=KEY)
    with pytest.raises(InvalidParameterError, match="ttl_s"):
        RedisTier(redis_url, ttl_s=-1, key=KEY)
    t = RedisTier(redis_url, key=KEY)
    with pytest.raises(InvalidParameterError, match="timeout_s"):
        t.lock("x", timeout_s=-1)
