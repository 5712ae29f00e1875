"""``ExecutorTests``: the conformance suite every executor backend passes.

Subclass it in a test module and supply an ``executor`` fixture::

    @pytest.fixture(scope="module")
    def my_executor():
        with MyExecutor() as ex:
            yield ex

    class TestMyExecutor(ExecutorTests):
        @pytest.fixture
        def executor(self, my_executor):
            return my_executor

The tests exercise the :class:`~scaleforge.compute.base.Executor` contract
and :func:`scaleforge.map` on it: results and order, exceptions that reach
the caller, per-task timeouts, shared arguments, retries, and lambdas.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scaleforge.compute.base import Executor
from scaleforge.compute.map import MapReport, imap, map
from scaleforge.errors import TaskError

__all__ = ["ExecutorTests"]


def _square(x: int) -> int:
    return x * x


def _fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


def _sleep_then(x: float) -> float:
    time.sleep(x)
    return x


def _record_attempt(x: int, log: str) -> int:
    with open(log, "a") as fh:
        fh.write(f"{x}\n")
    raise RuntimeError(f"always fails: {x}")


def _row_sum(i: int, arr: Any) -> float:
    return float(np.asarray(arr)[i].sum())


class ExecutorTests:
    """Behaviour every :class:`~scaleforge.compute.base.Executor` must have.

    Subclasses provide an ``executor`` fixture (any scope).
    """

    def test_is_a_concurrent_futures_executor(self, executor: Executor) -> None:
        assert isinstance(executor, cf.Executor)
        assert executor.num_workers >= 1
        assert isinstance(executor.name, str)

    def test_submit_returns_the_result(self, executor: Executor) -> None:
        assert executor.submit(_square, 7).result(timeout=60) == 49

    def test_submit_task_with_kwargs(self, executor: Executor) -> None:
        fut = executor.submit_task(_fail_on, (3,), {"bad": 5})
        assert fut.result(timeout=60) == 3

    def test_exception_reaches_the_caller(self, executor: Executor) -> None:
        fut = executor.submit(_fail_on, 5, 5)
        with pytest.raises(ValueError, match="bad item 5"):
            fut.result(timeout=60)

    def test_lambda_runs(self, executor: Executor) -> None:
        assert executor.submit(lambda a, b: a + b, 2, 3).result(timeout=60) == 5

    def test_concurrent_futures_map_keeps_order(self, executor: Executor) -> None:
        assert list(executor.map(_square, range(20))) == [i * i for i in range(20)]

    def test_timeout_fails_the_task(self, executor: Executor) -> None:
        # backends that cannot stop a task (threads, Dask) let it finish in the background
        duration = 30.0 if executor.kills_timed_out_tasks else 2.0
        fut = executor.submit_task(_sleep_then, (duration,), timeout_s=0.5)
        with pytest.raises(TimeoutError):
            fut.result(timeout=60)
        # the executor is still usable afterwards
        assert executor.submit(_square, 4).result(timeout=60) == 16

    def test_scaleforge_map_matches_builtin_map(self, executor: Executor) -> None:
        items = list(range(500))
        assert map(_square, items, executor=executor) == [i * i for i in items]

    def test_map_unordered_returns_every_result(self, executor: Executor) -> None:
        out = map(_square, range(100), executor=executor, ordered=False)
        assert sorted(out) == [i * i for i in range(100)]

    def test_imap_yields_in_order(self, executor: Executor) -> None:
        assert list(imap(_square, range(50), executor=executor)) == [i * i for i in range(50)]

    def test_failing_item_raises_task_error_with_index(self, executor: Executor) -> None:
        with pytest.raises(TaskError) as info:
            map(_fail_on, range(30), executor=executor, bad=17)
        assert info.value.index == 17
        assert isinstance(info.value.__cause__, ValueError)

    def test_exact_attempts_then_task_error(self, executor: Executor, tmp_path: Path) -> None:
        log = tmp_path / "attempts.log"
        with pytest.raises(TaskError) as info:
            map(_record_attempt, [11], executor=executor, retries=2, retry_backoff_s=0.0, log=str(log))
        assert info.value.attempts == 3
        assert log.read_text().split() == ["11", "11", "11"]

    def test_collect_reports_failures_and_keeps_results(self, executor: Executor) -> None:
        report = map(_fail_on, range(10), executor=executor, on_error="collect", bad=4)
        assert isinstance(report, MapReport)
        assert report.n_failed == 1 and report.n_succeeded == 9
        assert report.results[4] is None and report.results[9] == 9
        assert [e.index for e in report.errors] == [4]
        assert report.errors[0].exception_type.endswith("ValueError")

    def test_shared_array_argument(self, executor: Executor) -> None:
        arr = np.arange(300_000, dtype=np.float64).reshape(1000, 300)  # 2.4 MB: above the threshold
        out = map(_row_sum, range(0, 1000, 100), executor=executor, arr=arr)
        assert out == [float(arr[i].sum()) for i in range(0, 1000, 100)]

    def test_worker_pid_is_not_the_caller_for_process_backends(self, executor: Executor) -> None:
        pid = executor.submit(os.getpid).result(timeout=60)
        assert (pid == os.getpid()) == (not executor.needs_pickling)
