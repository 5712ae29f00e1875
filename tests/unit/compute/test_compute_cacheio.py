"""The cache-aware map's bulk path: keys equal @cached's, shared arguments hashed once,
keying streams, results stored in batches by a writer thread, locks released after storing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import scaleforge as sf
from scaleforge.cache.decorators import cached
from scaleforge.cache.disk import DiskTier
from scaleforge.cache.memory import MemoryTier
from scaleforge.compute import _cacheio
from scaleforge.compute._cacheio import MapKeyer, ResultStore


def _memory() -> MemoryTier:
    return MemoryTier(max_bytes="50MB")


@cached(cache=_memory())
def _plain(x: int) -> int:
    return x + 1


@cached(cache=_memory())
def _with_defaults(x: float, steps: int = 10, *, scale: float = 1.0) -> float:
    return x * steps * scale


@cached(cache=_memory(), ignore=["verbose"])
def _ignoring(x: int, mesh: Any = None, verbose: bool = False) -> int:
    return x


@cached(cache=_memory())
def _pair(a: int, b: str, mesh: Any = None) -> str:
    return f"{a}{b}"


@pytest.mark.parametrize(
    ("fn", "items", "shared", "star"),
    [
        (_plain, [0, 1, -5, 10**20], {}, False),
        (_with_defaults, [0.5, 2.0], {}, False),
        (_with_defaults, [0.5, 2.0], {"steps": 3, "scale": 0.5}, False),
        (_ignoring, [1, 2], {"mesh": np.arange(1000.0), "verbose": True}, False),
        (_pair, [(1, "a"), (2, "b")], {"mesh": np.ones((20, 30))}, True),
        (_plain, [np.arange(5), "text", (1, 2)], {}, False),
    ],
)
def test_map_keys_equal_the_decorator_keys(
    fn: Any, items: list[Any], shared: dict[str, Any], star: bool
) -> None:
    keyer = MapKeyer(fn, shared, star)
    assert keyer.bulk  # the fast path is taken (the fallback would trivially agree)
    for item in items:
        call = item if star else (item,)
        key, tokens = keyer.key(item)
        assert key == fn.key(*call, **shared)
        assert tokens is not None and set(tokens) <= set(fn.__wrapped__.__code__.co_varnames)


def test_a_shared_array_is_hashed_once_per_map_not_once_per_item(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, int] = {}
    real = _cacheio.argument_token

    def counting(value: Any, name: str, owner: str) -> str:
        calls[name] = calls.get(name, 0) + 1
        return real(value, name, owner)

    monkeypatch.setattr(_cacheio, "argument_token", counting)
    ran: list[int] = []

    @cached(cache=_memory())
    def weigh(i: int, mesh: np.ndarray) -> float:
        ran.append(i)
        return float(mesh[i])

    mesh = np.arange(200.0)
    out = sf.map(weigh, range(200), executor="threads", mesh=mesh, on_error="collect")
    assert out.results == [float(i) for i in range(200)]
    assert calls == {"mesh": 1, "i": 200}
    again = sf.map(weigh, range(200), executor="threads", mesh=mesh, on_error="collect")
    assert (again.cache_hits, again.cache_misses) == (200, 0)
    assert sorted(ran) == list(range(200))
    assert calls["mesh"] == 2  # once more for the second map
    # a different shared array is a different key for every item
    changed = sf.map(weigh, range(200), executor="threads", mesh=mesh + 1, on_error="collect")
    assert changed.cache_misses == 200 and changed.results[3] == 4.0


def test_keying_streams_first_items_run_before_the_input_is_hashed() -> None:
    """The input blocks at item 300 until an item has run: without streaming, this deadlocks."""
    first_ran = threading.Event()
    stalled: list[bool] = []

    def source() -> Iterator[int]:
        for i in range(600):
            if i == 300:
                stalled.append(not first_ran.wait(timeout=20))
            yield i

    @cached(cache=_memory())
    def step(x: int) -> int:
        first_ran.set()
        return 2 * x

    assert sf.map(step, source(), executor="threads") == [2 * i for i in range(600)]
    assert stalled == [False]


def test_results_are_stored_in_batches_indexed_and_unlocked(tmp_path: Path) -> None:
    disk = DiskTier(tmp_path / "cache", max_bytes="100MB")

    @cached(cache=disk)
    def cube(x: int) -> int:
        return x**3

    keyer = MapKeyer(cube, {}, False)
    store = ResultStore(keyer)
    keys = []
    for i in range(300):
        key, tokens = keyer.key(i)
        lock = cube.lock(key, blocking=False)
        assert lock.__enter__() is True
        store.put(key, i**3, i, tokens, lock)
        keys.append(key)
    store.close()
    assert store.stored == 300
    assert store.batches < 300  # batched, not one write per result
    assert cube.get_many(keys) == {k: i**3 for i, k in enumerate(keys)}
    assert cube.lookup(7) == 343
    for key in keys[:20]:  # every lock was released after its value was stored
        with cube.lock(key, blocking=False) as held:
            assert held is True
    # manifests were stored: explain names the differing argument
    assert "argument 'x' differs" in cube.explain(301)
    assert cube.clear() == 300  # every key joined the function's index
    assert cube.get_many(keys) == {}


def test_a_failing_cache_never_fails_the_map() -> None:
    class BrokenTier(MemoryTier):
        def set_many(self, items: Any, *, ttl_s: float | None = None) -> dict[str, bool]:
            raise OSError("disk full")

        def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
            raise OSError("disk full")

    @cached(cache=BrokenTier(max_bytes="1MB"))
    def half(x: int) -> float:
        return x / 2

    report = sf.map(half, range(50), executor="threads", on_error="collect")
    assert report.ok and report.results == [i / 2 for i in range(50)]
    assert half.cache_info()["errors"] >= 1


def test_a_key_computed_earlier_in_the_map_is_not_computed_again() -> None:
    """Duplicates further apart than one key batch are answered by the writer's queue or the cache."""
    ran: list[int] = []

    @cached(cache=_memory())
    def once(x: int) -> int:
        ran.append(x)
        return -x

    items = [7, *range(100, 1100), 7, 7]
    report = sf.map(once, items, executor="threads", on_error="collect")
    assert report.results == [-x for x in items]
    assert ran.count(7) == 1
    assert report.cache_misses + report.cache_hits + report.duplicates == len(items)
    assert report.duplicates + report.cache_hits >= 2


def test_map_misses_are_diagnosed_like_direct_calls() -> None:
    from scaleforge.cache.decorators import CachedFunction
    from scaleforge.monitor.metrics import REGISTRY

    if not hasattr(CachedFunction, "_diagnose_miss"):
        pytest.skip("this cache layer does not diagnose misses")

    @cached(cache=_memory())
    def scaled(x: int, steps: int) -> int:
        return x * steps

    labels = {"function": f"{scaled.__module__}.{scaled.__qualname__}", "argument": "steps"}
    before = REGISTRY.get_sample_value("scaleforge_cache_miss_argument_total", labels) or 0.0
    assert sf.map(scaled, range(20), executor="threads", steps=1) == list(range(20))
    assert sf.map(scaled, range(20), executor="threads", steps=2) == [2 * i for i in range(20)]
    after = REGISTRY.get_sample_value("scaleforge_cache_miss_argument_total", labels) or 0.0
    assert after > before  # the second sweep's misses differ from stored entries in 'steps' only


def test_without_the_bulk_hooks_the_public_per_call_path_gives_the_same_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_cacheio, "_bulk_capable", lambda fn: False)
    ran: list[int] = []

    @cached(cache=DiskTier(tmp_path / "cache", max_bytes="100MB"))
    def square(x: int, offset: int = 0) -> int:
        ran.append(x)
        return x * x + offset

    assert not MapKeyer(square, {}, False).bulk
    first = sf.map(square, [3, 1, 3, 2], executor="threads", offset=1, on_error="collect")
    assert first.results == [10, 2, 10, 5] and first.duplicates == 1
    again = sf.map(square, [1, 2, 3, 4], executor="threads", offset=1, on_error="collect")
    assert again.results == [2, 5, 10, 17]
    assert (again.cache_hits, again.cache_misses) == (3, 1)
    assert sorted(ran) == [1, 2, 3, 4]
    assert square.clear() == 4  # stored through CachedFunction.store: indexed as usual


@cached
def _square_for_context(x: int) -> int:
    return x * x


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_map_stores_into_the_cache_chosen_by_config_context(executor: str) -> None:
    from scaleforge.settings import config_context

    tier = MemoryTier()
    with config_context(cache=tier):
        out = sf.map(_square_for_context, range(12), executor=executor, progress=False)
        keys = [_square_for_context.key(i) for i in range(12)]
    assert out == [i * i for i in range(12)]
    # every result went to the context's tier (the background writer runs in the caller's context)
    assert [tier.get(k) for k in keys] == out
