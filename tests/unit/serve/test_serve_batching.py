"""DynamicBatcher: order and length kept, batches counted in items, adaptive wait, faults, backpressure."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleforge.errors import BatchSizeMismatchError, InvalidParameterError, RequestTimeoutError
from scaleforge.serve.batching import BatchPolicy, DynamicBatcher, QueueFullError, ServerClosingError


def _pid_batch(batch: list[Any]) -> list[int]:
    return [os.getpid()] * len(batch)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_batch_size": 0}, "max_batch_size"),
        ({"max_batch_size": 2.5}, "max_batch_size"),
        ({"max_wait_s": -1}, "max_wait_s"),
        ({"max_wait_s": float("nan")}, "max_wait_s"),
    ],
)
def test_policy_rejects_bad_values(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        BatchPolicy(**kwargs)


def test_batcher_validates_arguments() -> None:
    with pytest.raises(InvalidParameterError, match="handler"):
        DynamicBatcher(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="policy"):
        DynamicBatcher(list, policy=(8, 0.1))  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="max_queue"):
        DynamicBatcher(list, max_queue=0)
    with pytest.raises(InvalidParameterError, match="worker"):
        DynamicBatcher(list, worker="gpu")


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=30),
    max_batch=st.integers(5, 12),
)
def test_outputs_keep_order_and_length_and_batches_never_exceed_max(sizes: list[int], max_batch: int) -> None:
    seen: list[int] = []

    def handler(batch: list[tuple[int, int]]) -> list[tuple[int, int]]:
        seen.append(len(batch))
        return [(r, i * 10) for r, i in batch]

    async def main() -> list[list[tuple[int, int]]]:
        b: DynamicBatcher[Any, Any] = DynamicBatcher(handler, policy=BatchPolicy(max_batch, 0.002))
        await b.start()
        try:
            futs = [b.submit([(r, i) for i in range(n)]) for r, n in enumerate(sizes)]
            return list(await asyncio.gather(*futs))
        finally:
            await b.aclose()

    results = asyncio.run(main())
    assert results == [[(r, i * 10) for i in range(n)] for r, n in enumerate(sizes)]
    assert all(1 <= s <= max_batch for s in seen)
    assert sum(seen) == sum(sizes)  # every item ran exactly once, requests never split


def test_model_runs_off_the_event_loop_thread() -> None:
    async def main() -> tuple[int, list[int]]:
        b: DynamicBatcher[Any, Any] = DynamicBatcher(lambda xs: [threading.get_ident() for _ in xs])
        await b.start()
        try:
            return threading.get_ident(), await b.predict([0, 1])
        finally:
            await b.aclose()

    loop_thread, worker_threads = asyncio.run(main())
    assert set(worker_threads) != {loop_thread}


def test_one_sequential_client_never_waits_for_the_batch_window() -> None:
    # max_wait_s is a minute: if an idle queue waited for it, wait_for (10 s) would fail.
    async def main() -> Any:
        b: DynamicBatcher[Any, Any] = DynamicBatcher(lambda xs: xs, policy=BatchPolicy(64, 60.0))
        await b.start()
        try:
            for i in range(20):
                assert await asyncio.wait_for(b.predict([i]), 10.0) == [i]
            return b.stats()
        finally:
            await b.aclose()

    stats = asyncio.run(main())
    assert stats.batches == 20
    assert stats.mean_batch_size == 1.0


def test_batches_fill_while_the_model_is_busy() -> None:
    gate = threading.Event()
    sizes: list[int] = []

    def handler(xs: list[int]) -> list[int]:
        gate.wait(10)
        sizes.append(len(xs))
        return xs

    async def main() -> None:
        b: DynamicBatcher[Any, Any] = DynamicBatcher(handler, policy=BatchPolicy(16, 0.001))
        await b.start()
        try:
            first = b.submit([0])  # occupies the worker
            await asyncio.sleep(0)
            rest = [b.submit([i]) for i in range(1, 41)]  # queue up behind it
            gate.set()
            assert await first == [0]
            assert [r[0] for r in await asyncio.gather(*rest)] == list(range(1, 41))
        finally:
            await b.aclose()

    asyncio.run(main())
    assert sizes[0] == 1
    assert sizes[1:] == [16, 16, 8]  # 40 queued items leave in full batches


def test_wrong_length_fails_that_batch_only() -> None:
    calls = {"n": 0}

    def handler(xs: list[int]) -> list[int]:
        calls["n"] += 1
        return xs[:-1] if calls["n"] == 1 else xs

    async def main() -> None:
        b: DynamicBatcher[Any, Any] = DynamicBatcher(handler)
        await b.start()
        try:
            with pytest.raises(BatchSizeMismatchError, match="same length"):
                await b.predict([1, 2])
            assert await b.predict([3]) == [3]
            assert b.stats().errors == 1
        finally:
            await b.aclose()

    asyncio.run(main())


def test_handler_exception_reaches_its_requests_and_the_batcher_keeps_serving() -> None:
    def handler(xs: list[int]) -> list[int]:
        if -1 in xs:
            raise RuntimeError("boom")
        return xs

    async def main() -> None:
        b: DynamicBatcher[Any, Any] = DynamicBatcher(handler)
        await b.start()
        try:
            with pytest.raises(RuntimeError, match="boom"):
                await b.predict([-1])
            assert await b.predict([5]) == [5]
        finally:
            await b.aclose()

    asyncio.run(main())


def test_full_queue_raises_queue_full_with_retry_after() -> None:
    gate = threading.Event()

    async def main() -> None:
        b: DynamicBatcher[Any, Any] = DynamicBatcher(
            lambda xs: (gate.wait(10), xs)[1], policy=BatchPolicy(4, 0.0), max_queue=6
        )
        await b.start()
        try:
            running = b.submit([0, 0, 0, 0])
            await asyncio.sleep(0)
            queued = [b.submit([i, i, i]) for i in range(2)]  # 6 items: the queue is full
            with pytest.raises(QueueFullError, match="max_queue=6") as info:
                b.submit([9])
            assert info.value.retry_after_s >= 1
            assert b.queued_items == 6
            gate.set()
            await running
            assert [r[0] for r in await asyncio.gather(*queued)] == [0, 1]
            assert b.stats().rejected == 1
        finally:
            gate.set()
            await b.aclose()

    asyncio.run(main())


def test_request_larger_than_max_batch_or_empty_is_rejected() -> None:
    async def main() -> None:
        b: DynamicBatcher[Any, Any] = DynamicBatcher(list, policy=BatchPolicy(2, 0.0))
        await b.start()
        try:
            with pytest.raises(InvalidParameterError, match="between 1 and max_batch_size=2"):
                b.submit([1, 2, 3])
            with pytest.raises(InvalidParameterError):
                b.submit([])
        finally:
            await b.aclose()

    asyncio.run(main())


def test_deadline_expires_queued_request_with_timeout_error() -> None:
    gate = threading.Event()

    async def main() -> None:
        b: DynamicBatcher[Any, Any] = DynamicBatcher(lambda xs: (gate.wait(10), xs)[1], timeout_s=30.0)
        await b.start()
        try:
            blocker = b.submit([0])
            await asyncio.sleep(0)
            late = b.submit([1], timeout_s=0.05)
            with pytest.raises(RequestTimeoutError, match="deadline"):
                await late
            assert b.queued_items == 0  # the expired request left the queue accounting
            gate.set()
            assert await blocker == [0]
            assert await b.predict([2]) == [2]
            assert b.stats().timeouts == 1
        finally:
            gate.set()
            await b.aclose()

    asyncio.run(main())


def test_aclose_drains_queued_requests_then_refuses_new_ones() -> None:
    gate = threading.Event()

    async def main() -> None:
        b: DynamicBatcher[Any, Any] = DynamicBatcher(
            lambda xs: (gate.wait(10), xs)[1], policy=BatchPolicy(2, 0.0)
        )
        await b.start()
        futs = [b.submit([i]) for i in range(5)]
        closing = asyncio.ensure_future(b.aclose(drain=True))
        await asyncio.sleep(0.01)
        with pytest.raises(ServerClosingError):
            b.submit([99])
        gate.set()
        await closing
        assert [f.result() for f in futs] == [[i] for i in range(5)]

    asyncio.run(main())


def test_aclose_without_drain_fails_queued_requests() -> None:
    gate = threading.Event()

    async def main() -> None:
        b: DynamicBatcher[Any, Any] = DynamicBatcher(
            lambda xs: (gate.wait(10), xs)[1], policy=BatchPolicy(1, 0.0)
        )
        await b.start()
        running = b.submit([0])
        await asyncio.sleep(0)
        queued = b.submit([1])
        closing = asyncio.ensure_future(b.aclose(drain=False))
        await asyncio.sleep(0.01)
        gate.set()
        await closing
        assert await running == [0]
        with pytest.raises(ServerClosingError):
            await queued

    asyncio.run(main())


def test_setup_runs_in_the_worker_before_the_first_batch() -> None:
    state: dict[str, Any] = {}

    def setup() -> None:
        state["thread"] = threading.get_ident()

    async def main() -> list[int]:
        b: DynamicBatcher[Any, Any] = DynamicBatcher(lambda xs: [state["thread"]] * len(xs), setup=setup)
        await b.start()
        try:
            return await b.predict([0])
        finally:
            await b.aclose()

    out = asyncio.run(main())
    assert out == [state["thread"]] and state["thread"] != threading.get_ident()


@pytest.mark.slow
def test_process_worker_runs_the_model_in_another_process() -> None:
    async def main() -> list[int]:
        b: DynamicBatcher[Any, Any] = DynamicBatcher(_pid_batch, worker="process")
        await b.start()
        try:
            return await b.predict([1, 2, 3])
        finally:
            await b.aclose()

    pids = asyncio.run(main())
    assert len(pids) == 3 and pids[0] != os.getpid()
