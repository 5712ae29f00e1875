"""Tests of ``@cached`` / ``CachedFunction``: keys, methods, explain, failures, pickling, single flight."""

from __future__ import annotations

import dataclasses
import importlib
import pickle
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest

from scaleforge.cache.base import MISSING, Tier, TierStats
from scaleforge.cache.decorators import CachedFunction, cached
from scaleforge.cache.memory import MemoryTier
from scaleforge.cache.singleflight import _KEY_LOCKS
from scaleforge.errors import InvalidParameterError, SerializationError
from scaleforge.monitor.metrics import REGISTRY
from scaleforge.settings import config_context

# ---- helpers ------------------------------------------------------------------------------


class SpyTier(MemoryTier):
    """A real MemoryTier that records the options it was called with."""

    def __init__(self) -> None:
        super().__init__(max_bytes=10**8)
        self.get_calls: list[tuple[str, bool]] = []
        self.set_calls: list[tuple[str, float | None]] = []

    def get(self, key: str, default: Any = None, *, mmap: bool = False) -> Any:
        self.get_calls.append((key, mmap))
        return super().get(key, default, mmap=mmap)

    def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        self.set_calls.append((key, ttl_s))
        return super().set(key, value, ttl_s=ttl_s)


class BrokenTier(Tier):
    """A tier whose every operation raises, like a backend that broke its contract."""

    name = "broken"

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def get(self, key: str, default: Any = None, *, mmap: bool = False) -> Any:
        raise self.exc

    def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        raise self.exc

    def delete(self, key: str) -> bool:
        raise self.exc

    def clear(self) -> None:
        raise self.exc

    def stats(self) -> TierStats:
        return TierStats(name=self.name)

    def get_many(self, keys: Any, *, mmap: bool = False) -> dict[str, Any]:
        raise self.exc


class UnpicklableResultTier(MemoryTier):
    """Rejects values it cannot encode the way the disk and Redis tiers' codec does."""

    def set(self, key: str, value: Any, *, ttl_s: float | None = None) -> bool:
        try:
            pickle.dumps(value)
        except Exception as exc:
            raise SerializationError(f"cannot encode {type(value).__name__}") from exc
        return super().set(key, value, ttl_s=ttl_s)


class UnpicklableTier(MemoryTier):
    """A tier that refuses to be pickled: proves CachedFunction never ships its cache."""

    def __reduce__(self) -> Any:
        raise AssertionError("the resolved cache must not be pickled")


def metric_value(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


# Module-level cached function: pickles by reference.
MODULE_CALLS: list[int] = []


@cached
def module_square(x: int, steps: int = 1) -> int:
    MODULE_CALLS.append(x)
    return x * x * steps


@pytest.fixture
def tier() -> MemoryTier:
    return MemoryTier(max_bytes=10**8)


# ---- decoration and validation ---------------------------------------------------------------


def test_bare_and_configured_decorator_compute_once(tier: MemoryTier) -> None:
    calls: list[int] = []

    @cached(cache=tier)
    def f(x: int) -> int:
        calls.append(x)
        return 2 * x

    assert isinstance(f, CachedFunction)
    assert f(3) == 6
    assert f(3) == 6
    assert f(4) == 8
    assert calls == [3, 4]
    assert f.__wrapped__(3) == 6 and f.__name__ == "f"

    with config_context(cache=tier):
        assert module_square(5) == 25
        assert module_square(5) == 25
    assert MODULE_CALLS.count(5) == 1


def test_defaults_and_keywords_share_a_key(tier: MemoryTier) -> None:
    @cached(cache=tier)
    def f(x: int, steps: int = 100, *, scale: float = 1.0) -> float:
        return x * steps * scale

    k = f.key(1)
    assert k == f.key(1, steps=100) == f.key(x=1) == f.key(1, 100, scale=1.0)
    assert k != f.key(1, steps=200)
    assert k != f.key(1.0)  # 1 == 1.0 but the results may differ in type
    assert k != f.key(True)
    assert f.key(2) != k


def test_ignored_parameters_do_not_change_the_key(tier: MemoryTier) -> None:
    calls: list[bool] = []

    @cached(cache=tier, ignore=["verbose"])
    def f(x: int, verbose: bool = False) -> int:
        calls.append(verbose)
        return x

    assert f.key(1, verbose=True) == f.key(1, verbose=False)
    f(1, verbose=True)
    f(1, verbose=False)
    assert calls == [True]


def test_unknown_ignore_name_is_rejected_with_the_real_parameters() -> None:
    with pytest.raises(InvalidParameterError, match=r"'verbos'.*'x', 'verbose'"):

        @cached(ignore=["verbos"])
        def f(x: int, verbose: bool = False) -> int:
            return x

    with pytest.raises(InvalidParameterError, match=r"list of parameter names, e\.g\. ignore=\['verbose'\]"):
        cached(ignore="verbose")(lambda x, verbose=False: x)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"ttl_s": -1}, "'ttl_s'"),
        ({"ttl_s": "1h"}, "'ttl_s'"),
        ({"version": True}, "'version'"),
        ({"version": 1.5}, "'version'"),
        ({"mmap": "yes"}, "'mmap'"),
        ({"cache": {}}, "'cache'.*Got dict"),
        ({"lock_expiry_s": 0}, "'lock_expiry_s'"),
    ],
)
def test_bad_options_are_rejected_at_decoration(options: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):

        @cached(**options)
        def f(x: int) -> int:
            return x


def test_non_functions_are_rejected() -> None:
    with pytest.raises(InvalidParameterError, match="Python functions"):
        cached(len)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="Python functions"):
        cached(np.ones(3))  # type: ignore[arg-type]


def test_arguments_that_do_not_fit_the_signature(tier: MemoryTier) -> None:
    @cached(cache=tier)
    def f(x: int, steps: int = 1) -> int:
        return x

    with pytest.raises(InvalidParameterError, match="multiple values for argument 'x'"):
        f(1, x=2)  # type: ignore[misc]
    with pytest.raises(InvalidParameterError, match="missing a required argument: 'x'"):
        f()  # type: ignore[call-arg]
    with pytest.raises(InvalidParameterError, match="unexpected keyword argument 'stps'"):
        f(1, stps=2)  # type: ignore[call-arg]


def test_unhashable_argument_names_the_argument(tier: MemoryTier) -> None:
    @cached(cache=tier)
    def f(x: Any, lock: Any = None) -> int:
        return 1

    with pytest.raises(InvalidParameterError, match="lock"):
        f(1, lock=threading.Lock())


def test_array_arguments_follow_values_not_layout(tier: MemoryTier, global_random_seed: int) -> None:
    calls: list[int] = []

    @cached(cache=tier)
    def total(a: np.ndarray) -> float:
        calls.append(1)
        return float(a.sum())

    a = np.random.default_rng(global_random_seed).random((20, 30))
    first = total(a)
    assert total(np.asfortranarray(a)) == first
    assert total(pickle.loads(pickle.dumps(a))) == first
    assert total(a.T.copy().T) == first
    assert len(calls) == 1
    b = a.copy()
    b[3, 4] += 1.0
    assert total(b) == pytest.approx(first + 1.0)
    assert total(a.astype(np.float32)) == pytest.approx(first, rel=1e-5)
    assert len(calls) == 3


# ---- methods -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Model:
    scale: float
    calls: list[float] = dataclasses.field(default_factory=list, compare=False, hash=False, repr=False)

    @cached(cache=MemoryTier(max_bytes=10**6))
    def predict(self, x: float) -> float:
        self.calls.append(x)
        return self.scale * x

    @staticmethod
    @cached(cache=MemoryTier(max_bytes=10**6))
    def helper(x: float) -> float:
        return x + 1

    @cached(cache=MemoryTier(max_bytes=10**6))
    @staticmethod
    def helper2(x: float) -> float:
        return x + 2

    @classmethod
    @cached(cache=MemoryTier(max_bytes=10**6))
    def build(cls, scale: float) -> str:
        return f"{cls.__name__}({scale})"

    @cached(cache=MemoryTier(max_bytes=10**6))
    @classmethod
    def build2(cls, scale: float) -> str:
        return f"{cls.__name__}:{scale}"


class Opaque:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = 0

    @cached(cache=MemoryTier(max_bytes=10**6))
    def value(self, x: int) -> int:
        return x

    @cached(cache=MemoryTier(max_bytes=10**6), ignore=["self"])
    def counted(self, x: int) -> int:
        self.calls += 1
        return x * 10


def test_methods_are_cached_by_instance_content() -> None:
    m1 = Model(2.0)
    assert m1.predict(3.0) == 6.0
    assert m1.predict(3.0) == 6.0
    assert m1.calls == [3.0]
    m2 = Model(2.0)  # equal content: shares the entry
    assert m2.predict(3.0) == 6.0
    assert m2.calls == []
    m3 = Model(5.0)  # other content: its own entry
    assert m3.predict(3.0) == 15.0
    assert m3.calls == [3.0]
    assert m1.predict.key(3.0) == m2.predict.key(3.0) != m3.predict.key(3.0)
    assert m1.predict.call_uncached(1.0) == 2.0
    assert m1.predict.lookup(3.0) == 6.0
    assert Model.predict(m1, 3.0) == 6.0  # unbound access through the class


def test_unhashable_self_suggests_ignore() -> None:
    with pytest.raises(InvalidParameterError, match=r"ignore=\['self'\]"):
        Opaque().value(1)
    a, b = Opaque(), Opaque()
    assert a.counted(2) == 20 and b.counted(2) == 20
    assert a.calls + b.calls == 1


def test_static_and_class_methods_in_either_order() -> None:
    assert Model.helper(1.0) == 2.0 == Model(1.0).helper(1.0)
    assert Model.helper2(1.0) == 3.0 == Model(1.0).helper2(1.0)
    assert Model.build(2.0) == "Model(2.0)"
    assert Model(1.0).build(2.0) == "Model(2.0)"
    assert Model.build2(2.0) == "Model:2.0"

    class Sub(Model):
        pass

    # cls is part of the key: the subclass gets its own entry.
    assert Sub.build(2.0) == "Sub(2.0)"
    assert Sub.build2(2.0) == "Sub:2.0"


# ---- lookup, refresh, clear, store, cache_info -------------------------------------------------


def test_lookup_refresh_and_clear(tier: MemoryTier) -> None:
    calls: list[int] = []

    @cached(cache=tier)
    def f(x: int) -> int:
        calls.append(x)
        return x * len(calls)

    with pytest.raises(KeyError, match="no cached result"):
        f.lookup(2)
    assert f(2) == 2
    assert f.lookup(2) == 2
    assert f.refresh(2) == 4  # recomputed and overwritten
    assert f(2) == 4 and f.lookup(2) == 4
    assert f(3) == 9
    assert len(calls) == 3
    assert f.cache_info()["entries"] == 2
    assert f.clear() == 2
    with pytest.raises(KeyError):
        f.lookup(2)
    assert f(2) == 8
    assert len(calls) == 4


def test_clear_only_removes_this_functions_entries(tier: MemoryTier) -> None:
    @cached(cache=tier)
    def f(x: int) -> int:
        return x

    @cached(cache=tier)
    def g(x: int) -> int:
        return -x

    f(1), g(1)
    f.clear()
    with pytest.raises(KeyError):
        f.lookup(1)
    assert g.lookup(1) == -1


def test_store_get_many_and_call_uncached(tier: MemoryTier) -> None:
    calls: list[int] = []

    @cached(cache=tier)
    def f(x: int, steps: int = 10) -> int:
        calls.append(x)
        return x * steps

    keys = [f.key(i) for i in range(4)]
    assert f.get_many(keys) == {}
    assert f.call_uncached(2) == 20
    assert calls == [2]
    assert f.get_many(keys) == {}  # call_uncached never writes
    for i in (0, 2):
        assert f.store(keys[i], f.call_uncached(i)) is True
    assert f.get_many(keys) == {keys[0]: 0, keys[2]: 20}
    assert f(2) == 20
    assert calls == [2, 0, 2]  # the call was a hit
    # store() recorded the manifest that key() computed, so explain() can use it
    assert f.explain(2, steps=11) == "miss: argument 'steps' differs (10 -> 11)"
    info = f.cache_info()
    assert info["hits"] == 3 and info["misses"] == 10 and info["entries"] == 2
    with pytest.raises(InvalidParameterError, match="non-empty str"):
        f.store(b"key", 1)  # type: ignore[arg-type]


def test_cache_info_counts_and_tiers(tier: MemoryTier) -> None:
    @cached(cache=tier)
    def f(x: int) -> int:
        return x

    f(1), f(1), f(1), f(2)
    info = f.cache_info()
    assert (info["hits"], info["misses"], info["computations"], info["errors"]) == (2, 2, 2, 0)
    assert info["function"].endswith("test_cache_info_counts_and_tiers.<locals>.f")
    (stats,) = info["tiers"].values()
    assert stats["hits"] >= 2 and stats["entries"] >= 2


def test_options_reach_the_tier() -> None:
    spy = SpyTier()

    @cached(cache=spy, ttl_s=30, mmap=True, version=3)
    def f(x: int) -> int:
        return x

    assert (f.ttl_s, f.mmap, f.version) == (30.0, True, "3")
    key = f.key(1)
    f(1)
    assert (key, True) in spy.get_calls
    assert (key, 30.0) in spy.set_calls
    assert f.identity.qualname.endswith("f") and f.identity.version in ("3", 3)


def test_mmap_hits_from_a_real_disk_tier_are_read_only_maps(tmp_path: Path, global_random_seed: int) -> None:
    from scaleforge.cache.disk import DiskTier

    disk = DiskTier(tmp_path / "cache", max_bytes="100MB", key=b"k" * 32)

    @cached(cache=disk, mmap=True)
    def noise(n: int) -> np.ndarray:
        return np.random.default_rng(global_random_seed).random(n)

    computed = noise(200_000)
    assert computed.flags.writeable  # the computed result is returned as is
    mapped = noise(200_000)
    np.testing.assert_array_equal(mapped, computed)
    assert not mapped.flags.writeable  # served from the file, not copied into memory
    disk.close()


def test_metrics_count_hits_and_misses(tier: MemoryTier) -> None:
    @cached(cache=tier)
    def metered(x: int) -> int:
        return x

    name = metered.cache_info()["function"]
    hits0 = metric_value("scaleforge_cached_calls_total", function=name, result="hit")
    misses0 = metric_value("scaleforge_cached_calls_total", function=name, result="miss")
    metered(1), metered(1), metered(1)
    metered.cache_info()  # hits reach Prometheus at most once a second, or on cache_info / a miss
    assert metric_value("scaleforge_cached_calls_total", function=name, result="hit") == hits0 + 2
    assert metric_value("scaleforge_cached_calls_total", function=name, result="miss") == misses0 + 1


# ---- cache resolution ------------------------------------------------------------------------


def test_cache_precedence_argument_context_default(tier: MemoryTier) -> None:
    other = MemoryTier(max_bytes=10**6)

    @cached
    def f(x: int) -> int:
        return x

    @cached(cache=tier)
    def g(x: int) -> int:
        return x

    with config_context(cache=other):
        assert f.cache is other
        assert g.cache is tier
        f(1)
    assert f.key(1) in other
    with config_context(cache="memory"), pytest.raises(InvalidParameterError, match="config_context"):
        f(1)


def test_cache_disabled_computes_every_time(tier: MemoryTier) -> None:
    calls: list[int] = []

    @cached(cache=tier)
    def f(x: int) -> int:
        calls.append(x)
        return x

    with config_context(cache_enabled=False):
        f(1), f(1)
        assert type(f.cache).__name__ == "NullTier"
    assert calls == [1, 1]


# ---- failures never fail the computation ----------------------------------------------------


@pytest.mark.parametrize("exc", [ConnectionError("redis down"), OSError(28, "No space left on device")])
def test_a_broken_cache_never_fails_the_call(exc: BaseException) -> None:
    calls: list[int] = []

    @cached(cache=BrokenTier(exc))
    def f(x: int) -> int:
        calls.append(x)
        return x + 1

    assert f(1) == 2 and f(1) == 2
    assert calls == [1, 1]
    assert f.cache_info()["errors"] >= 2
    assert f.get_many([f.key(1)]) == {}
    assert f.store(f.key(1), 2) is False
    assert f.clear() == 0
    assert f.explain(1).startswith("miss")


def test_unpicklable_result_is_returned_and_counted() -> None:
    @cached(cache=UnpicklableResultTier(max_bytes=10**6))
    def make_lock(x: int) -> Any:
        return threading.Lock()

    lock = make_lock(1)
    assert hasattr(lock, "acquire")
    assert make_lock.cache_info()["errors"] == 1
    assert make_lock(1) is not lock  # nothing was stored: computed again


def test_errors_of_the_function_propagate_and_are_not_cached(tier: MemoryTier) -> None:
    calls: list[int] = []

    @cached(cache=tier)
    def f(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            raise ValueError("first call fails")
        return x

    with pytest.raises(ValueError, match="first call fails"):
        f(1)
    assert f(1) == 1
    assert calls == [1, 1]


# ---- explain ------------------------------------------------------------------------------------


def test_explain_arguments_and_version(tier: MemoryTier) -> None:
    @cached(cache=tier, version="1")
    def simulate(kappa: np.ndarray, steps: int = 100) -> float:
        return float(kappa.sum()) * steps

    kappa = np.linspace(0, 1, 50)
    assert (
        simulate.explain(kappa)
        == "miss: no earlier entry of '" + simulate.cache_info()["function"] + "' in the cache"
    )
    simulate(kappa)
    assert simulate.explain(kappa) == "hit"
    assert simulate.explain(np.asfortranarray(kappa), steps=100) == "hit"
    assert simulate.explain(kappa, steps=200) == "miss: argument 'steps' differs (100 -> 200)"
    message = simulate.explain(kappa * 2)
    assert message.startswith("miss: argument 'kappa' differs (ndarray(shape=(50,), dtype=float64)")

    v2 = cached(cache=tier, version="2")(simulate.__wrapped__)
    assert v2.explain(kappa) == "miss: version changed ('1' -> '2')"


def test_explain_names_a_changed_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tier: MemoryTier
) -> None:
    module = tmp_path / "sf_explain_mod.py"
    source = textwrap.dedent(
        """
        import scaleforge as sf

        def grad(x):
            return 2 * x

        @sf.cached
        def solve(x):
            return grad(x) + 1
        """
    )
    module.write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with config_context(cache=tier):
        mod = importlib.import_module("sf_explain_mod")
        assert mod.solve(3) == 7
        module.write_text(source.replace("return 2 * x", "return 3 * x + 0"))
        mod = importlib.reload(mod)
        message = mod.solve.explain(3)
        assert message.startswith("miss: ")
        assert "helper" in message and "grad" in message, message
        assert mod.solve(3) == 10
        # Reformatting and comments do not change the identity.
        module.write_text(source.replace("return 2 * x", "return   3*x+0  # a comment"))
        mod = importlib.reload(mod)
        assert mod.solve.explain(3) == "hit"
        # Editing the function itself.
        module.write_text(source.replace("return 2 * x", "return 3 * x + 0").replace("+ 1", "+ 10"))
        mod = importlib.reload(mod)
        assert mod.solve.explain(3) == "miss: code of 'sf_explain_mod.solve' changed"
    sys.modules.pop("sf_explain_mod", None)


def test_a_rebound_helper_is_noticed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tier: MemoryTier
) -> None:
    module = tmp_path / "sf_rebind_mod.py"
    module.write_text(
        textwrap.dedent(
            """
            import scaleforge as sf

            def grad(x):
                return 2 * x

            @sf.cached
            def solve(x):
                return grad(x) + 1
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr("scaleforge.cache._core._REVALIDATE_S", 0.0)  # re-validate on every call
    with config_context(cache=tier):
        mod = importlib.import_module("sf_rebind_mod")
        assert mod.solve(3) == 7
        key = mod.solve.key(3)

        def grad(x: int) -> int:
            return 10 * x

        monkeypatch.setattr(mod, "grad", grad)  # same CachedFunction, helper re-bound at run time
        assert mod.solve.key(3) != key
        assert mod.solve(3) == 31
    sys.modules.pop("sf_rebind_mod", None)


# ---- pickling --------------------------------------------------------------------------------


def test_pickle_by_reference_drops_the_resolved_cache() -> None:
    with config_context(cache=UnpicklableTier(max_bytes=10**6)):
        module_square(7)
        data = pickle.dumps(module_square)
    assert len(data) < 200  # a reference, not a function body or a cache
    assert pickle.loads(data) is module_square


def test_cloudpickle_by_value_in_a_fresh_process(tmp_path: Path) -> None:
    tier = UnpicklableTier(max_bytes=10**6)

    @cached(version="7", ignore=["verbose"], ttl_s=60)
    def local_cube(x: int, verbose: bool = False) -> int:
        return x**3

    with config_context(cache=tier):
        assert local_cube(2) == 8
        data = cloudpickle.dumps(local_cube)
    clone = cloudpickle.loads(data)
    assert isinstance(clone, CachedFunction) and clone is not local_cube
    assert (clone.version, clone.ttl_s) == ("7", 60.0)
    assert clone.key(2, verbose=True) == local_cube.key(2)

    script = textwrap.dedent(
        """
        import sys, cloudpickle
        from scaleforge.cache.memory import MemoryTier
        from scaleforge.settings import config_context
        f = cloudpickle.loads(sys.stdin.buffer.read())
        with config_context(cache=MemoryTier(max_bytes=10**6)):
            print(f(3), f(3), f.cache_info()["computations"], f.key(2))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], input=data, capture_output=True, check=True, timeout=120
    ).stdout.decode()
    assert out.split() == ["27", "27", "1", local_cube.key(2)]


# ---- single flight across threads ---------------------------------------------------------------


def test_single_flight_across_threads(tier: MemoryTier) -> None:
    n_threads = 8
    release = threading.Event()
    computed: list[int] = []

    @cached(cache=tier)
    def slow(x: int) -> int:
        computed.append(x)
        assert release.wait(timeout=30)
        return x * 2

    key = slow.key(21)
    barrier = threading.Barrier(n_threads)
    results: list[int] = []

    def worker() -> None:
        barrier.wait()
        results.append(slow(21))

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for t in threads:
        t.start()
    # Wait (bounded) until every thread is inside the single-flight lock table for this key.
    for _ in range(30_000):
        entry = _KEY_LOCKS._locks.get(key)
        if entry is not None and entry[1] == n_threads:
            break
        time.sleep(0.001)
    else:
        pytest.fail("threads never all reached the single-flight lock")
    release.set()
    for t in threads:
        t.join(timeout=30)
    assert results == [42] * n_threads
    assert computed == [21]
    assert slow.cache_info()["computations"] == 1


def test_missing_sentinel_is_not_a_cached_value(tier: MemoryTier) -> None:
    @cached(cache=tier)
    def none(x: int) -> None:
        return None

    assert none(1) is None
    assert none.lookup(1) is None  # a cached None is a hit
    assert none.cache_info()["computations"] == 1
    assert MISSING is not None


def _child_call(f: CachedFunction[[int], int], x: int, queue: Any) -> None:
    queue.put(f(x))


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_is_not_blocked_by_a_parent_threads_lock(tier: MemoryTier) -> None:
    import multiprocessing

    @cached(cache=tier)
    def f(x: int) -> int:
        return x + 1

    key = f.key(5)
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with f.lock(key), f._lock:  # a thread holds the key lock and the function's lock
            entered.set()
            release.wait(timeout=60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert entered.wait(timeout=30)
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_child_call, args=(f, 5, queue))
        child.start()
        assert queue.get(timeout=60) == 6  # the child computed instead of waiting forever
        child.join(timeout=60)
        assert child.exitcode == 0
    finally:
        release.set()
        holder.join(timeout=30)
