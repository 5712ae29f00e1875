"""Cache-aware map with the real @cached: only misses run, duplicates run once, results persist."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import scaleforge as sf
from scaleforge.cache.decorators import cached
from scaleforge.cache.disk import DiskTier

pytestmark = pytest.mark.integration


def _count_calls(log: Path) -> list[int]:
    return [int(v) for v in log.read_text().split()] if log.exists() else []


def make_sweep(cache_dir: Path, log: Path):  # type: ignore[no-untyped-def]
    @cached(cache=DiskTier(cache_dir, max_bytes="100MB"))
    def simulate(x: float) -> float:
        with open(log, "a") as fh:  # O_APPEND: one line per call, from any process
            fh.write(f"{x}\n")
        return x * x

    return simulate


def test_rerun_with_one_percent_new_items_computes_exactly_the_new_items(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    simulate = make_sweep(tmp_path / "cache", log)
    n = 300
    first = sf.map(simulate, range(n), on_error="collect")
    assert first.results == [float(i * i) for i in range(n)]
    assert (first.cache_hits, first.cache_misses) == (0, n)
    assert sorted(_count_calls(log)) == list(range(n))

    log.unlink()
    new = list(range(n, n + 3))  # 1 %
    second = sf.map(simulate, list(range(n)) + new, on_error="collect")
    assert second.results == [float(i * i) for i in range(n + 3)]
    assert (second.cache_hits, second.cache_misses) == (n, 3)
    assert sorted(_count_calls(log)) == new


def test_duplicates_are_computed_once(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    simulate = make_sweep(tmp_path / "cache", log)
    report = sf.map(simulate, [1, 2, 1, 1, 3, 2], on_error="collect")
    assert report.results == [1.0, 4.0, 1.0, 1.0, 9.0, 4.0]
    assert report.duplicates == 3 and report.cache_misses == 3
    assert sorted(_count_calls(log)) == [1, 2, 3]


def test_results_stored_before_a_failure_are_kept(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"

    @cached(cache=DiskTier(tmp_path / "cache", max_bytes="100MB"))
    def fragile(x: int) -> int:
        with open(log, "a") as fh:
            fh.write(f"{x}\n")
        if x == 7 and not (tmp_path / "fixed").exists():
            raise RuntimeError("boom")
        return -x

    report = sf.map(fragile, range(10), chunksize=1, executor="processes", on_error="collect")
    assert [e.index for e in report.errors] == [7]
    (tmp_path / "fixed").touch()
    log.unlink()
    assert sf.map(fragile, range(10)) == [-i for i in range(10)]
    # every result that arrived the first time was stored as it arrived: only the failure reruns
    assert _count_calls(log) == [7]


def test_cached_map_with_threads_and_shared_argument(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"

    @cached(cache=DiskTier(tmp_path / "cache", max_bytes="100MB"))
    def scaled(i: int, weights: np.ndarray) -> float:
        with open(log, "a") as fh:
            fh.write(f"{i}\n")
        return float(weights[i] * 2)

    w = np.arange(10.0)
    assert sf.map(scaled, range(10), executor="threads", weights=w) == [2.0 * i for i in range(10)]
    assert sf.map(scaled, range(10), executor="processes", weights=w) == [2.0 * i for i in range(10)]
    assert len(_count_calls(log)) == 10
    assert sf.map(scaled, range(10), weights=w + 1) == [2.0 * (i + 1) for i in range(10)]  # new key
    assert len(_count_calls(log)) == 20


@pytest.mark.redis
def test_shared_redis_cache_two_maps_do_not_compute_the_same_key_twice(
    tmp_path: Path, redis_url: str, redis_key_prefix: str
) -> None:
    """Two processes run the same sweep against one Redis tier: each key is computed once."""
    import subprocess
    import sys
    import textwrap

    log = tmp_path / "calls.log"
    script = tmp_path / "sweep.py"
    script.write_text(
        textwrap.dedent(f"""
        import time, scaleforge as sf
        from scaleforge.cache.decorators import cached
        from scaleforge.cache.redis import RedisTier

        @cached(cache=RedisTier({redis_url!r}, prefix={redis_key_prefix!r}))
        def slow(x):
            with open({str(log)!r}, "a") as fh:
                fh.write(f"{{x}}\\n")
            time.sleep(0.05)
            return x * 3

        report = sf.map(slow, range(40), chunksize=1, on_error="collect")
        assert report.results == [3 * i for i in range(40)], report
        print(report.cache_hits, report.cache_misses)
    """)
    )
    env = {**os.environ, "PYTHONPATH": str(Path(sf.__file__).parents[1])}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
    calls = _count_calls(log)
    assert sorted(calls) == list(range(40))  # every key computed exactly once across both machines
