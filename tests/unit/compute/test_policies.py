"""Chunking, retry and autoscaling policies, and the autoscaling pool for real."""

from __future__ import annotations

import time

import pytest

import scaleforge as sf
from scaleforge.compute.autoscale import AutoscalePolicy, Autoscaler
from scaleforge.compute.chunking import AutoChunker, FixedChunker
from scaleforge.compute.local import ProcessExecutor
from scaleforge.compute.retry import RetryPolicy
from scaleforge.errors import InvalidParameterError


def test_auto_chunker_probes_then_keeps_overhead_small() -> None:
    c = AutoChunker(2, overhead_s=2e-4, max_overhead_fraction=0.02)
    assert not c.calibrated and c.next_size(10_000) == 1
    c.observe(1, 1e-3)  # 1 ms tasks
    size = c.next_size(2_000)
    assert size == 10  # 10 ms chunks: 0.2 ms overhead is 2 %
    assert 2e-4 / (size * 1e-3) <= 0.05


def test_auto_chunker_groups_tiny_tasks_but_balances_the_tail() -> None:
    c = AutoChunker(2)
    c.observe(100, 100e-6)  # 1 µs per item
    assert c.next_size(10_000) >= 1_250
    assert c.next_size(10_000) * 2 <= 10_000  # both workers get work
    assert c.next_size(None) <= c.max_size


def test_auto_chunker_guided_tail_balances_two_workers() -> None:
    c = AutoChunker(2, overhead_s=4e-4)
    c.observe(1, 1e-3)  # 1 ms items
    sizes, remaining = [], 2000
    while remaining:
        sizes.append(c.next_size(remaining))
        remaining -= sizes[-1]
    assert sizes[0] == 20  # 20 ms chunks: 0.4 ms overhead is 2 %
    assert sizes == sorted(sizes, reverse=True)  # chunks only shrink toward the end
    assert max(sizes[-4:]) <= 5  # the tail is fine-grained (down to the floor)
    # greedy list scheduling on 2 workers (what the pool does): the finish times differ by
    # at most one tail chunk, so the makespan is within 5 ms of the ideal 1000 ms
    free = [0.0, 0.0]
    for size in sizes:
        i = free.index(min(free))
        free[i] += size * 1e-3
    assert abs(free[0] - free[1]) <= max(sizes[-2:]) * 1e-3 + 1e-9
    assert max(free) <= 1.0 + 0.005 + 1e-9


def test_fixed_chunker() -> None:
    f = FixedChunker(5)
    assert f.next_size(3) == 3 and f.next_size(None) == 5 and f.calibrated


def test_retry_backoff_doubles_and_caps() -> None:
    p = RetryPolicy(retries=5, backoff_s=0.5, max_backoff_s=1.5)
    assert [p.delay_s(a) for a in range(5)] == [0.0, 0.5, 1.0, 1.5, 1.5]
    assert p.max_attempts == 6 and p.should_retry(5) and not p.should_retry(6)
    with pytest.raises(InvalidParameterError, match="retries"):
        RetryPolicy(retries=-1)


def test_autoscaler_grows_after_sustained_backlog_and_shrinks_after_cooldown() -> None:
    a = Autoscaler(
        AutoscalePolicy(min_workers=1, max_workers=3, backlog_per_worker=2, grow_after_s=1, idle_cooldown_s=5)
    )
    assert a.decide(0.0, workers=0, busy=0, backlog=0) == 1  # below the minimum
    assert a.decide(0.0, workers=1, busy=1, backlog=10) == 0  # not yet sustained
    assert a.decide(1.5, workers=1, busy=1, backlog=10) == 1
    assert a.decide(1.6, workers=2, busy=2, backlog=10) == 0
    assert a.decide(3.0, workers=2, busy=2, backlog=10) == 1
    assert a.decide(5.0, workers=3, busy=3, backlog=50) == 0  # at the maximum
    assert a.decide(10.0, workers=3, busy=0, backlog=0) == 0  # idle, cool-down starts
    assert a.decide(15.1, workers=3, busy=0, backlog=0) == -1
    assert a.decide(15.2, workers=2, busy=1, backlog=1) == 0
    assert a.decide(30.0, workers=1, busy=0, backlog=0) == 0  # never below the minimum


def test_autoscale_policy_validation() -> None:
    with pytest.raises(InvalidParameterError, match="min_workers"):
        AutoscalePolicy(min_workers=5, max_workers=2)
    with pytest.raises(InvalidParameterError, match="idle_cooldown_s"):
        AutoscalePolicy(idle_cooldown_s=-1)


def _nap(x: int) -> int:
    time.sleep(0.02)
    return x


def test_process_pool_autoscales_without_losing_or_duplicating_tasks() -> None:
    from scaleforge.monitor.metrics import REGISTRY

    def decisions(direction: str) -> float:
        value = REGISTRY.get_sample_value(
            "scaleforge_autoscale_decisions_total", {"executor": "processes", "direction": direction}
        )
        return value or 0.0

    up0, down0 = decisions("up"), decisions("down")
    policy = AutoscalePolicy(
        min_workers=1, max_workers=3, backlog_per_worker=1, grow_after_s=0.05, idle_cooldown_s=0.2
    )
    with ProcessExecutor(autoscale=policy) as ex:
        assert ex.live_workers == 1
        out = sf.map(_nap, range(150), executor=ex, chunksize=1)
        assert out == list(range(150))  # nothing lost, nothing duplicated, order kept
        assert ex.stats()["tasks_done"] == 150
        assert max(n for d, n in ex.scale_events if d == "up") >= 2
        deadline = time.monotonic() + 20
        while ex.live_workers > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ex.live_workers == 1
        assert any(d == "down" for d, _ in ex.scale_events)
    assert decisions("up") > up0 and decisions("down") > down0
