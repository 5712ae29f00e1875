"""``scaleforge_cache_miss_argument_total``: which single argument made a miss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scaleforge.cache.decorators import CachedFunction, cached
from scaleforge.cache.disk import DiskTier
from scaleforge.cache.explain import code_id, single_argument_change, token_hashes
from scaleforge.cache.memory import MemoryTier
from scaleforge.cache.tiered import TieredCache
from scaleforge.monitor.metrics import REGISTRY

KEY = bytes(range(32))


def misses_by(fn: CachedFunction[Any, Any], argument: str) -> float:
    owner = f"{fn.__wrapped__.__module__}.{fn.__wrapped__.__qualname__}"  # type: ignore[attr-defined]
    value = REGISTRY.get_sample_value(
        "scaleforge_cache_miss_argument_total", {"function": owner, "argument": argument}
    )
    return 0.0 if value is None else value


def all_misses(fn: CachedFunction[Any, Any]) -> float:
    owner = f"{fn.__wrapped__.__module__}.{fn.__wrapped__.__qualname__}"  # type: ignore[attr-defined]
    total = 0.0
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == "scaleforge_cache_miss_argument_total" and sample.labels["function"] == owner:
                total += sample.value
    return total


@pytest.fixture
def tiered(tmp_path: Path) -> TieredCache:
    return TieredCache([MemoryTier(max_bytes="10MB"), DiskTier(tmp_path, key=KEY)])


def test_a_miss_that_changes_one_argument_is_counted_by_name(tiered: TieredCache) -> None:
    @cached(cache=tiered)
    def simulate(kappa: float, field: Any, steps: int = 100) -> float:
        return float(kappa * steps + np.sum(field))

    field = np.arange(10.0)
    simulate(0.5, field)
    assert all_misses(simulate) == 0  # nothing to compare the first miss with
    simulate(0.5, field, steps=200)
    assert misses_by(simulate, "steps") == 1
    simulate(0.5, field + 1.0, steps=200)  # an array argument, hashed by content
    assert misses_by(simulate, "field") == 1
    simulate(0.5, field, steps=200)  # hits are not misses
    simulate(0.5, field, 100)
    assert all_misses(simulate) == 2
    simulate(0.9, field + 5.0, steps=7)  # three arguments differ from every entry: not counted
    assert all_misses(simulate) == 2
    assert simulate.explain(0.9, field + 5.0, steps=8) == "miss: argument 'steps' differs (7 -> 8)"


def test_repeated_scalar_calls_from_the_memo_are_diagnosed_too(tiered: TieredCache) -> None:
    @cached(cache=tiered)
    def grow(a: int, b: int) -> int:
        return a + b

    grow(1, 2)
    grow(1, 3)  # memoised key, then a hit would follow; here: a miss on 'b'
    assert misses_by(grow, "b") == 1
    tiered.delete(grow.key(1, 3))  # evicted: the memo finds the key, the cache misses
    grow(1, 3)
    # The nearest entry is the same call (evicted): not an argument change.
    assert misses_by(grow, "b") == 1 and all_misses(grow) == 1


def test_a_code_or_version_change_is_not_an_argument_miss(tiered: TieredCache) -> None:
    def model(x: int, y: int) -> int:
        return x * y

    v1 = cached(cache=tiered, version="1")(model)
    v1(2, 3)
    v2 = cached(cache=tiered, version="2")(model)  # same function name: same index
    v2(2, 3)  # differs from the v1 entry in its version only
    v2(2, 4)  # nearest: v2(2, 3), one argument
    assert all_misses(v2) == 1 and misses_by(v2, "y") == 1


def test_no_diagnosis_without_an_in_process_memory_tier(tmp_path: Path) -> None:
    @cached(cache=DiskTier(tmp_path, key=KEY))
    def area(w: int, h: int) -> int:
        return w * h

    area(2, 3)
    area(2, 4)  # the index lives on disk only: reading it per miss would cost a decode
    assert all_misses(area) == 0


def test_batch_misses_are_diagnosed_from_pending_manifests(tiered: TieredCache) -> None:
    @cached(cache=tiered)
    def solve(n: int, tol: float = 1e-6) -> float:
        return n * tol

    key = solve.key(10)
    solve.store(key, solve.call_uncached(10))
    keys = [solve.key(10, tol=1e-8), solve.key(11, tol=1e-6), solve.key(12, tol=1e-3)]
    assert solve.get_many([*keys, key]) == {key: 10 * 1e-6}
    assert misses_by(solve, "tol") == 1 and misses_by(solve, "n") == 1
    assert all_misses(solve) == 2  # (12, 1e-3) differs in both


def test_old_index_entries_without_summaries_are_tolerated(tiered: TieredCache) -> None:
    @cached(cache=tiered)
    def f(a: int, b: int) -> int:
        return a - b

    f(1, 1)
    index_key = f._index_key  # type: ignore[attr-defined]
    tiered.set(index_key, ["xxh3_128-v1-" + "0" * 32, *tiered.get(index_key)])
    f(1, 2)
    assert misses_by(f, "b") == 1
    assert f.cache_info()["entries"] == 3  # both formats are listed
    assert f.clear() == 2


def test_single_argument_change_picks_the_nearest_newest_entry() -> None:
    c = code_id("digest", None)
    other = code_id("digest", "2")
    h = token_hashes
    index: list[Any] = [
        "old-format-key",
        ("k1", c, h(["int:1", "int:2", "int:3"])),
        ("k2", other, h(["int:1", "int:2", "int:4"])),
    ]
    # Nearest: k2 differs in its code only (distance 1, newer than k1's one argument).
    assert single_argument_change(index, c, h(["int:1", "int:2", "int:4"])) is None
    assert single_argument_change(index, c, h(["int:9", "int:2", "int:3"])) == 0
    assert single_argument_change(index, c, h(["int:9", "int:9", "int:3"])) is None
    assert single_argument_change(index, c, h(["int:1", "int:2"])) is None  # another signature
    assert single_argument_change([], c, h(["int:1"])) is None
