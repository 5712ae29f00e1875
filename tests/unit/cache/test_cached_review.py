"""Regression tests from the cache review: memo keys, generators, coroutines, exceptions."""

from __future__ import annotations

import asyncio
import math
import threading

import pytest

from scaleforge.cache.decorators import cached
from scaleforge.cache.memory import MemoryTier
from scaleforge.errors import InvalidParameterError


def _tier() -> MemoryTier:
    return MemoryTier(max_bytes="10MB")


@pytest.mark.parametrize("first, second", [(0.0, -0.0), (-0.0, 0.0), (complex(1, 0.0), complex(1, -0.0))])
def test_signed_zero_arguments_get_their_own_entries(first: object, second: object) -> None:
    # 0.0 == -0.0 (and hash alike), but copysign, 1/x, atan2 tell them apart: the keys must too,
    # including through the memo of scalar-only calls.
    @cached(cache=_tier())
    def sign(x: float | complex) -> float:
        return math.copysign(1.0, x.imag if isinstance(x, complex) else x)

    assert sign(first) == sign.call_uncached(first)
    assert sign(second) == sign.call_uncached(second)
    assert sign(x=second) == sign.call_uncached(second)
    assert sign.key(first) != sign.key(second)
    assert sign.cache_info()["computations"] == 2


def test_generator_function_is_rejected_with_a_fix() -> None:
    def numbers(n: int):  # type: ignore[no-untyped-def]
        yield from range(n)

    with pytest.raises(InvalidParameterError, match=r"generator.*list\("):
        cached(cache=_tier())(numbers)


def test_async_generator_function_is_rejected() -> None:
    async def numbers(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            yield i

    with pytest.raises(InvalidParameterError, match="generator"):
        cached(cache=_tier())(numbers)


def test_coroutine_function_is_rejected_with_a_fix() -> None:
    async def fetch(n: int) -> int:
        return n

    with pytest.raises(InvalidParameterError, match=r"async def.*asyncio\.to_thread|async def.*sync"):
        cached(cache=_tier())(fetch)
    with pytest.raises(InvalidParameterError, match="async def"):
        cached(cache=_tier())(staticmethod(fetch))  # type: ignore[arg-type]
    # The event loop is untouched by the rejection.
    assert asyncio.run(fetch(3)) == 3


def test_waiters_recompute_when_the_holder_raises() -> None:
    # Single flight with a failing computation: the waiting thread must not deadlock, and it
    # must get a result of its own (the exception is not cached).
    entered = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    @cached(cache=_tier())
    def flaky(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            entered.set()
            release.wait(10)
            raise RuntimeError("first call fails")
        return x * 10

    errors: list[BaseException] = []

    def first() -> None:
        try:
            flaky(4)
        except RuntimeError as exc:
            errors.append(exc)

    t1 = threading.Thread(target=first)
    t1.start()
    assert entered.wait(10)
    results: list[int] = []
    t2 = threading.Thread(target=lambda: results.append(flaky(4)))
    t2.start()
    release.set()
    t1.join(10)
    t2.join(10)
    assert not t1.is_alive() and not t2.is_alive()
    assert [str(e) for e in errors] == ["first call fails"]
    assert results == [40]
    assert flaky(4) == 40
    assert len(calls) == 2


def test_a_generator_returned_by_a_plain_function_is_not_stored() -> None:
    # A sync wrapper hides the generator from the decoration check: the result must not be
    # stored, or the second caller would get the first caller's exhausted generator.
    def numbers(n: int):  # type: ignore[no-untyped-def]
        yield from range(n)

    @cached(cache=_tier())
    def wrapper(n: int):  # type: ignore[no-untyped-def]
        return numbers(n)

    assert list(wrapper(3)) == [0, 1, 2]
    assert list(wrapper(3)) == [0, 1, 2]
    info = wrapper.cache_info()
    assert info["computations"] == 2
    assert info["errors"] == 2
